//! Building a peer's `Rtc`: ICE-lite in RTP mode with the server's certificate and
//! candidates, the codecs the server forwards, and bandwidth estimation where it is
//! wanted (`--no-bandwidth-estimation`).
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::ice::IceCreds;
use str0m::net::TcpType;
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, Rtc};
use tracing::warn;

use super::Shard;

/// Video packets kept per send stream for retransmission (and as its send queue) until
/// `tune_send_stream` (negotiate.rs) sets the cache of a forwarded video stream to its
/// own size. str0m's default of 1000 costs about 430 bytes a slot per receiver.
const SEND_BUFFER_VIDEO: usize = 256;

/// The bandwidth estimate towards a receiver before any feedback: what a LAN carries.
const BWE_START: Bitrate = Bitrate::kbps(5_000);

impl Shard {
    /// Whether the bandwidth towards a peer whose offer negotiates transport-wide CC
    /// (`twcc`) is estimated: only with its feedback does the estimate move.
    pub(super) fn estimates(&self, twcc: bool) -> bool {
        twcc && self.cfg.bandwidth_estimation
    }

    /// A peer's `Rtc`. The bandwidth towards it is estimated when [`Shard::estimates`]
    /// says so. Without bandwidth estimation (`--no-bandwidth-estimation`), a peer that
    /// only receives (a viewer, a WHEP player) does not negotiate transport-wide CC at
    /// all: it has no feedback to send and the server none to read (a publisher keeps
    /// it: its browser estimates its own upload from the server's feedback).
    pub(super) fn build_rtc(
        &self,
        now: Instant,
        creds: IceCreds,
        twcc: bool,
        receive_only: bool,
    ) -> Rtc {
        let bwe = self.estimates(twcc);
        let mut cfg = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_local_ice_credentials(creds)
            .set_dtls_cert(self.dtls_cert.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .set_send_buffer_video(SEND_BUFFER_VIDEO);
        if bwe {
            // Bandwidth estimation towards each browser picks its simulcast layers; it
            // only probes once a desired bitrate is set (see choose_layers). It starts
            // at what a LAN carries, so receivers start on a good layer.
            cfg = cfg.enable_bwe(Some(BWE_START));
        }
        if !self.cfg.bandwidth_estimation && receive_only {
            cfg = cfg.set_extension_map(without_twcc(ExtensionMap::standard()));
        }
        let mut rtc = cfg.build(now);
        for addr in &self.cfg.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => warn!(%addr, "unusable candidate address: {e}"),
            }
        }
        // TCP after UDP: its lower type preference makes browsers use it only where
        // UDP does not get through.
        for addr in &self.cfg.tcp_candidates {
            let tcp = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build();
            match tcp {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => warn!(%addr, "unusable TCP candidate address: {e}"),
            }
        }
        rtc
    }
}

/// Whether an SDP offer negotiates transport-wide congestion control feedback, which
/// the bandwidth estimate needs.
pub(super) fn offers_twcc(sdp: &str) -> bool {
    sdp.contains("transport-wide-cc-extensions")
}

/// `exts` without transport-wide CC's sequence number.
fn without_twcc(exts: ExtensionMap) -> ExtensionMap {
    let mut out = ExtensionMap::empty();
    for (id, ext) in exts.iter() {
        if *ext != Extension::TransportSequenceNumber {
            out.set(id, ext.clone());
        }
    }
    out
}
