//! Media sessions that never connect are removed: a WHIP publisher or WHEP player that
//! never completes ICE and DTLS, or a browser whose relay connection does not come up,
//! would otherwise hold a seat in its room (and memory) for as long as the server
//! runs. Checked with the shard's periodic work; `ShardConfig::connect_timeout` after
//! its `Rtc` was made, a session still not connected is told why and removed.

use std::time::{Duration, Instant};

use tracing::info;

use super::Shard;
use crate::signaling::protocol::{ErrorCode, PeerId, ServerMsg};

/// How long str0m's ICE-lite agent keeps a candidate pair without a binding request
/// from the browser (`is` crate, `RECENT_BINDING_REQUEST`): when the last pair goes,
/// the agent reports `Disconnected`.
const ICE_PAIR_LIFETIME: Duration = Duration::from_secs(15);

/// What to tell a participant whose ICE agent reported `Disconnected`, or `None` when
/// that is not final.
///
/// Before media ever connected, `Disconnected` means only "no usable candidate pair
/// yet": the agent reports it as soon as it holds a remote candidate that pairs with
/// none of ours (another address family or transport, trickled before the browser's
/// first check arrived), and goes back to checking when a pair forms. Removing the
/// participant then cut calls 0.8 s after joining; the connect timeout decides instead.
/// After media connected it means every pair went 15 s without a check from the
/// browser, and the message says so, with the times.
pub(super) fn ice_lost_message(
    now: Instant,
    born: Instant,
    connected_at: Option<Instant>,
) -> Option<String> {
    let connected_at = connected_at?;
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    Some(format!(
        "the server stopped hearing from your device: no ICE check for {} \
         (connection lost {} after media connected, {} after joining)",
        secs(ICE_PAIR_LIFETIME),
        secs(now.saturating_duration_since(connected_at)),
        secs(now.saturating_duration_since(born)),
    ))
}

impl Shard {
    /// Removes every session here whose media has not connected within the deadline.
    pub(super) fn expire_unconnected(&mut self, now: Instant) {
        let deadline = self.cfg.connect_timeout;
        let late: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| {
                p.here().is_some_and(|l| {
                    l.connected_at.is_none()
                        && l.rtc
                            .as_ref()
                            .is_some_and(|d| now.saturating_duration_since(d.born()) >= deadline)
                })
            })
            .map(|p| p.id)
            .collect();
        for id in late {
            info!(id, "media did not connect in time: removed");
            self.counters.connect_timeouts += 1;
            let message = format!(
                "your media connection to the server did not come up within {} s",
                deadline.as_secs()
            );
            self.signal(id, ServerMsg::error(ErrorCode::MediaFailed, message));
            self.leave(now, id, "no media connection");
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use std::time::Duration;

    use str0m::media::{Direction, MediaKind};

    use super::*;
    use crate::sfu::shard::ShardConfig;

    fn shard() -> Shard {
        Shard::new(ShardConfig {
            candidates: vec!["127.0.0.1:5000".parse().unwrap()],
            tcp_candidates: vec![],
            room_capacity: 2,
            viewer_capacity: 0,
            room_tokens: Default::default(),
            operator_token: None,
            worker: 0,
            seed: 1,
            connect_timeout: Duration::from_secs(30),
            direct_rate: 20,
            chat: Default::default(),
            record: None,
            bandwidth_estimation: true,
        })
    }

    /// An offer that will never connect (nobody is behind it).
    fn offer(direction: Direction) -> String {
        let mut rtc = str0m::Rtc::builder().build(Instant::now());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, direction, None, None, None);
        let (offer, _) = api.apply().expect("an offer");
        offer.to_sdp_string()
    }

    #[test]
    fn whip_sessions_that_never_connect_give_their_seat_back() {
        let t0 = Instant::now();
        let mut s = shard();
        for id in 1..=2 {
            let r = s.whip(t0, id, "stage", None, &offer(Direction::SendOnly));
            assert!(r.is_ok(), "{r:?}");
        }
        let full = s.whip(t0, 3, "stage", None, &offer(Direction::SendOnly));
        assert!(matches!(full, Err((ErrorCode::RoomFull, _))), "{full:?}");
        s.handle_timeout(t0 + Duration::from_secs(29));
        assert_eq!(s.peer_count(), 2, "still within the deadline");
        for sec in 30..32 {
            s.handle_timeout(t0 + Duration::from_secs(sec));
        }
        assert_eq!(s.peer_count(), 0, "both removed");
        assert_eq!(s.counters().connect_timeouts, 2);
        let r = s.whip(
            t0 + Duration::from_secs(32),
            4,
            "stage",
            None,
            &offer(Direction::SendOnly),
        );
        assert!(r.is_ok(), "a real publisher gets in: {r:?}");
    }

    #[test]
    fn ice_disconnected_before_media_connected_is_not_final() {
        let born = Instant::now();
        assert_eq!(
            ice_lost_message(born + Duration::from_millis(800), born, None),
            None
        );
    }

    #[test]
    fn ice_lost_after_connecting_says_when() {
        let born = Instant::now();
        let connected = born + Duration::from_millis(600);
        let m = ice_lost_message(born + Duration::from_millis(20_700), born, Some(connected))
            .expect("final once connected");
        assert!(m.contains("no ICE check for 15.0 s"), "{m}");
        assert!(m.contains("20.1 s after media connected"), "{m}");
        assert!(m.contains("20.7 s after joining"), "{m}");
        assert!(!m.contains("media traffic"), "{m}");
    }
}
