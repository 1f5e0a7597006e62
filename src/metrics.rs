//! `GET /metrics`: the engine's counters and gauges in the Prometheus text exposition
//! format (version 0.0.4), for operators who scrape the box. A pure function of an
//! engine [`Status`] and the rooms snapshot, so it is tested without a server.
//!
//! Loss and bitrate are gauges over the participants whose relay connection is up,
//! aggregated (mean and max, sums) rather than labelled per participant, so the number
//! of series stays fixed however many people join.

use std::fmt::Write;

use crate::conns::ConnectionStats;
use crate::sfu::engine::{Status, WorkerStatus};
use crate::sfu::shard::RoomSnapshot;

/// The Content-Type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric.
/// What the limits outside the media engine counted.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    pub(crate) connections: ConnectionStats,
    /// Times a signaling connection went over --signaling-rate.
    pub(crate) signaling_throttled: u64,
    /// Participants resumed on a new WebSocket, and resumes refused (unknown token,
    /// or one already under way).
    pub(crate) resumed: u64,
    pub(crate) resume_refused: u64,
    /// ICE-TCP connections open, frames dropped on their way in, connections closed
    /// for breaking the framing.
    pub(crate) tcp_open: usize,
    pub(crate) tcp_dropped: u64,
    pub(crate) tcp_refused: u64,
    /// Recording: rooms being recorded, files open, bytes written, frames not
    /// recorded, recordings stopped by a full queue or a write error.
    pub(crate) recording: Recording,
}

/// What the recorder counted (see [`crate::record::RecordStats`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Recording {
    pub(crate) rooms: u64,
    pub(crate) files_open: u64,
    pub(crate) bytes: u64,
    pub(crate) frames_dropped: u64,
    pub(crate) failures: u64,
}

/// The cluster's figures, for a node in one (`--cluster`).
pub(crate) fn render_cluster(out: &mut String, status: &Status, c: &crate::cluster::Figures) {
    metric(
        out,
        "lanrelay_cluster_connected",
        "gauge",
        "1 when NATS answered this node's last heartbeat.",
        &[("", if c.connected { 1.0 } else { 0.0 })],
    );
    metric(
        out,
        "lanrelay_cluster_nodes",
        "gauge",
        "Live nodes in the cluster, this one included, at the last heartbeat.",
        &[("", c.nodes.len() as f64)],
    );
    metric(
        out,
        "lanrelay_cluster_origin_rooms",
        "gauge",
        "Rooms this node is the origin of.",
        &[("", c.origin_of.len() as f64)],
    );
    metric(
        out,
        "lanrelay_cluster_edge_rooms",
        "gauge",
        "Rooms whose viewers this node serves as an edge.",
        &[("", c.edge_of.len() as f64)],
    );
    metric(
        out,
        "lanrelay_relay_links",
        "gauge",
        "Relay links to and from other nodes.",
        &[("", status.relay_links as f64)],
    );
    metric(
        out,
        "lanrelay_relayed_packets_total",
        "counter",
        "RTP packets sent on relay links to edge nodes (once per edge, not per viewer).",
        &[("", status.relayed_packets as f64)],
    );
    metric(
        out,
        "lanrelay_relayed_bytes_total",
        "counter",
        "RTP payload bytes sent on relay links to edge nodes.",
        &[("", status.relayed_bytes as f64)],
    );
    metric(
        out,
        "lanrelay_placements_total",
        "counter",
        "Placement decisions for joins and WHIP/WHEP requests: served here as the room's origin, as an edge, sent to another node, or refused (NATS unreachable).",
        &[
            ("decision=\"origin\"", c.placed_origin as f64),
            ("decision=\"edge\"", c.placed_edge as f64),
            ("decision=\"redirect\"", c.placed_redirect as f64),
            ("decision=\"unavailable\"", c.placed_unavailable as f64),
        ],
    );
    metric(
        out,
        "lanrelay_cluster_claims_lost_total",
        "counter",
        "Room entries another node wrote first (two nodes opening one room at once).",
        &[("", c.claims_lost as f64)],
    );
    metric(
        out,
        "lanrelay_cluster_messages_total",
        "counter",
        "Messages to and from other nodes over NATS.",
        &[
            ("direction=\"out\"", c.messages_sent as f64),
            ("direction=\"in\"", c.messages_received as f64),
        ],
    );
}

pub(crate) fn render(status: &Status, rooms: &[RoomSnapshot], limits: Limits) -> String {
    let conns = limits.connections;
    let mut out = String::with_capacity(2048);
    let connected: Vec<_> = rooms
        .iter()
        .flat_map(|r| r.participants.iter())
        .filter_map(|p| p.relay.as_ref())
        .collect();

    metric(
        &mut out,
        "lanrelay_rooms",
        "gauge",
        "Rooms that exist now.",
        &[("", status.rooms as f64)],
    );
    metric(
        &mut out,
        "lanrelay_participants",
        "gauge",
        "Participants in all rooms.",
        &[("", status.participants as f64)],
    );
    metric(
        &mut out,
        "lanrelay_relay_connected_participants",
        "gauge",
        "Participants whose media connection to the server is up.",
        &[("", connected.len() as f64)],
    );
    metric(
        &mut out,
        "lanrelay_forwarded_packets_total",
        "counter",
        "RTP packets forwarded to receivers.",
        &[("", status.forwarded_packets as f64)],
    );
    metric(
        &mut out,
        "lanrelay_forwarded_bytes_total",
        "counter",
        "RTP payload bytes forwarded to receivers (headers and SRTP overhead not counted).",
        &[("", status.forwarded_bytes as f64)],
    );
    metric(
        &mut out,
        "lanrelay_unroutable_datagrams_total",
        "counter",
        "Datagrams on the media port that belonged to no participant.",
        &[("", status.unroutable_datagrams as f64)],
    );
    metric(
        &mut out,
        "lanrelay_rejected_datagrams_total",
        "counter",
        "Datagrams a participant's WebRTC stack refused or could not parse.",
        &[("", status.rejected_datagrams as f64)],
    );
    metric(
        &mut out,
        "lanrelay_stun_refused_total",
        "counter",
        "STUN requests refused before reaching a participant's WebRTC stack: a wrong MESSAGE-INTEGRITY, a request replayed from another address, or an address another participant holds.",
        &[("", status.stun_refused as f64)],
    );
    metric(
        &mut out,
        "lanrelay_relay_tcp_participants",
        "gauge",
        "Participants whose media connection to the server is up over TCP (ICE-TCP on the HTTPS port) rather than UDP.",
        &[(
            "",
            connected
                .iter()
                .filter(|s| s.protocol.as_deref() == Some("tcp"))
                .count() as f64,
        )],
    );
    metric(
        &mut out,
        "lanrelay_tcp_media_connections",
        "gauge",
        "ICE-TCP connections open on the HTTPS port.",
        &[("", limits.tcp_open as f64)],
    );
    metric(
        &mut out,
        "lanrelay_tcp_connections",
        "gauge",
        "TCP connections open now on the HTTPS port and the HTTP helper.",
        &[("", conns.open as f64)],
    );
    metric(
        &mut out,
        "lanrelay_refused_total",
        "counter",
        "What a limit refused: direct-call signals over --direct-rate (direct), chat messages over --chat-rate (chat_rate) or --chat-max-len (chat_length) or from viewers without --viewers-can-chat (chat_viewer), media sessions that did not connect within --connect-timeout and were removed (unconnected), joins and WHIP/WHEP requests over --max-rooms (rooms), --max-sessions (sessions), --max-per-address (per_address) or --max-joins-per-minute (join_rate), TCP connections over --max-connections-per-address (connections), signaling connections read more slowly for sending over --signaling-rate (signaling_rate), resumes with a token that names no participant waiting to be resumed, or one already being resumed (resume_token), ICE-TCP connections closed for a first frame that is not STUN for this server or a frame over 8 KiB (tcp_framing).",
        &[
            ("limit=\"direct\"", status.direct_refused as f64),
            ("limit=\"chat_rate\"", status.chat_refused_rate as f64),
            ("limit=\"chat_length\"", status.chat_refused_length as f64),
            ("limit=\"chat_viewer\"", status.chat_refused_viewer as f64),
            ("limit=\"not_host\"", status.not_host as f64),
            ("limit=\"unconnected\"", status.connect_timeouts as f64),
            ("limit=\"rooms\"", status.refused_rooms as f64),
            ("limit=\"sessions\"", status.refused_sessions as f64),
            ("limit=\"per_address\"", status.refused_per_address as f64),
            ("limit=\"join_rate\"", status.refused_rate as f64),
            ("limit=\"connections\"", conns.refused as f64),
            ("limit=\"signaling_rate\"", limits.signaling_throttled as f64),
            ("limit=\"tcp_framing\"", limits.tcp_refused as f64),
            ("limit=\"resume_token\"", limits.resume_refused as f64),
        ],
    );
    let rec = limits.recording;
    metric(
        &mut out,
        "lanrelay_recordings_active",
        "gauge",
        "Rooms being recorded now.",
        &[("", rec.rooms as f64)],
    );
    metric(
        &mut out,
        "lanrelay_recording_files_open",
        "gauge",
        "Recording files being written now (one per participant and track group).",
        &[("", rec.files_open as f64)],
    );
    metric(
        &mut out,
        "lanrelay_recording_bytes_total",
        "counter",
        "Bytes written to recording files.",
        &[("", rec.bytes as f64)],
    );
    metric(
        &mut out,
        "lanrelay_recording_frames_dropped_total",
        "counter",
        "Frames not recorded: incomplete after loss, video waiting for a keyframe, or a full recorder queue.",
        &[("", rec.frames_dropped as f64)],
    );
    metric(
        &mut out,
        "lanrelay_recording_host_actions_total",
        "counter",
        "Recordings started or stopped by a room's host from the call page (accepted), and starts refused (a direct room, or a server that records nothing).",
        &[
            (
                "result=\"accepted\"",
                status.host_recordings.saturating_sub(status.recordings_refused) as f64,
            ),
            ("result=\"refused\"", status.recordings_refused as f64),
        ],
    );
    metric(
        &mut out,
        "lanrelay_recording_failures_total",
        "counter",
        "Recordings stopped because the recorder could not keep up or could not write (a full disk).",
        &[("", rec.failures as f64)],
    );
    metric(
        &mut out,
        "lanrelay_chat_messages_total",
        "counter",
        "Chat messages posted in rooms (each counted once, however many read it).",
        &[("", status.chat_messages as f64)],
    );
    metric(
        &mut out,
        "lanrelay_resumed_total",
        "counter",
        "Participants whose signaling WebSocket dropped and who were resumed on a new one within --resume-grace (the others saw no leave).",
        &[("", limits.resumed as f64)],
    );
    metric(
        &mut out,
        "lanrelay_dropped_total",
        "counter",
        "What the engine dropped, by lane: datagrams for an address family without a media socket (no_socket), signaling messages for sessions too far behind, which were disconnected (session), direct-call signals for a participant too far behind, which stays (direct), route changes the receive task had no room for (route), commands whose worker was gone (control), ICE-TCP frames whose worker's media lane was full (tcp_in).",
        &[
            ("lane=\"no_socket\"", status.no_socket_drops as f64),
            ("lane=\"session\"", status.session_drops as f64),
            ("lane=\"direct\"", status.direct_drops as f64),
            ("lane=\"route\"", status.route_drops as f64),
            ("lane=\"control\"", status.control_drops as f64),
            ("lane=\"tcp_in\"", limits.tcp_dropped as f64),
        ],
    );
    metric(
        &mut out,
        "lanrelay_send_drops_total",
        "counter",
        "Datagrams the kernel refused to send (full socket buffer, unreachable destination).",
        &[("", status.send_drops as f64)],
    );
    let labels: Vec<String> = (0..status.workers.len())
        .map(|i| format!("worker=\"{i}\""))
        .collect();
    let per_worker = |f: fn(&WorkerStatus) -> f64| -> Vec<(&str, f64)> {
        labels
            .iter()
            .zip(&status.workers)
            .map(|(l, w)| (l.as_str(), f(w)))
            .collect()
    };
    metric(
        &mut out,
        "lanrelay_worker_busy_seconds_total",
        "counter",
        "Seconds each media worker spent handling input rather than waiting (its load: rate() of this is the busy share of one core).",
        &per_worker(|w| w.busy_seconds),
    );
    metric(
        &mut out,
        "lanrelay_worker_participants",
        "gauge",
        "Participants and viewers served by each media worker.",
        &per_worker(|w| w.participants as f64),
    );
    metric(
        &mut out,
        "lanrelay_worker_rooms",
        "gauge",
        "Rooms served by each media worker.",
        &per_worker(|w| w.rooms as f64),
    );
    metric(
        &mut out,
        "lanrelay_worker_forwarded_packets_total",
        "counter",
        "RTP packets each media worker forwarded to receivers.",
        &per_worker(|w| w.forwarded_packets as f64),
    );
    metric(
        &mut out,
        "lanrelay_worker_rtc_timeouts_total",
        "counter",
        "Timeouts each media worker gave its peers' WebRTC sessions (RTCP, ICE and pacer timers).",
        &per_worker(|w| w.rtc_timeouts as f64),
    );
    metric(
        &mut out,
        "lanrelay_worker_queue_drops_total",
        "counter",
        "Datagram batches dropped because a media worker's queue was full (it is overloaded).",
        &per_worker(|w| w.queue_drops as f64),
    );

    let loss = |f: fn(&crate::signaling::protocol::LegStats) -> Option<f64>| {
        let v: Vec<f64> = connected.iter().filter_map(|s| f(s)).collect();
        let max = v.iter().copied().fold(0.0, f64::max);
        let mean = if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        };
        (mean, max)
    };
    let (up_mean, up_max) = loss(|s| s.up_loss);
    let (down_mean, down_max) = loss(|s| s.down_loss);
    metric(
        &mut out,
        "lanrelay_leg_loss_ratio",
        "gauge",
        "Packet loss (0..1) on relayed legs over the last second: up = participant to server as the server saw it, down = server to participant as the participant reported; mean and max over connected participants.",
        &[
            ("direction=\"up\",stat=\"mean\"", up_mean),
            ("direction=\"up\",stat=\"max\"", up_max),
            ("direction=\"down\",stat=\"mean\"", down_mean),
            ("direction=\"down\",stat=\"max\"", down_max),
        ],
    );
    // fold from +0.0: an empty f64 sum is -0.0, which would print as "-0".
    let up_bps = connected.iter().fold(0.0, |a, s| a + s.up_bps);
    let down_bps = connected.iter().fold(0.0, |a, s| a + s.down_bps);
    metric(
        &mut out,
        "lanrelay_media_bitrate_bps",
        "gauge",
        "Media bitrate summed over connected participants: up = received by the server, down = sent by it.",
        &[("direction=\"up\"", up_bps), ("direction=\"down\"", down_bps)],
    );
    out
}

/// One metric family: HELP, TYPE and one sample per label set (`""` for none).
fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_has_help_type_and_samples() {
        let status = Status {
            rooms: 2,
            participants: 3,
            forwarded_packets: 12345,
            forwarded_bytes: 9_876_543,
            unroutable_datagrams: 1,
            rejected_datagrams: 0,
            stun_refused: 4,
            send_drops: 0,
            session_drops: 2,
            workers: vec![
                WorkerStatus {
                    busy_seconds: 1.5,
                    ..WorkerStatus::default()
                },
                WorkerStatus {
                    busy_seconds: 0.25,
                    participants: 3,
                    rooms: 2,
                    ..WorkerStatus::default()
                },
            ],
            ..Status::default()
        };
        let conns = ConnectionStats {
            open: 3,
            refused: 5,
        };
        let limits = Limits {
            connections: conns,
            signaling_throttled: 6,
            resumed: 2,
            resume_refused: 4,
            ..Limits::default()
        };
        let text = render(&status, &[], limits);
        assert!(text.contains("\nlanrelay_refused_total{limit=\"resume_token\"} 4\n"));
        assert!(text.contains("\nlanrelay_resumed_total 2\n"));
        assert!(text.contains("\nlanrelay_refused_total{limit=\"signaling_rate\"} 6\n"));
        assert!(text.contains("\nlanrelay_tcp_connections 3\n"));
        assert!(text.contains("\nlanrelay_refused_total{limit=\"connections\"} 5\n"));
        assert!(text.contains("\nlanrelay_stun_refused_total 4\n"));
        assert!(text.contains("\nlanrelay_dropped_total{lane=\"session\"} 2\n"));
        assert!(text.contains("# TYPE lanrelay_forwarded_packets_total counter\n"));
        assert!(text.contains("\nlanrelay_forwarded_packets_total 12345\n"));
        assert!(text.contains("\nlanrelay_forwarded_bytes_total 9876543\n"));
        assert!(text.contains("\nlanrelay_rooms 2\n"));
        assert!(text.contains("lanrelay_worker_busy_seconds_total{worker=\"0\"} 1.5\n"));
        assert!(text.contains("lanrelay_worker_busy_seconds_total{worker=\"1\"} 0.25\n"));
        assert!(text.contains("lanrelay_worker_participants{worker=\"1\"} 3\n"));
        assert!(text.contains("lanrelay_leg_loss_ratio{direction=\"down\",stat=\"max\"} 0\n"));
        assert!(text.contains("lanrelay_media_bitrate_bps{direction=\"up\"} 0\n"));
        // Every sample line is `name{labels} value` with a numeric value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name and value");
            assert!(name.starts_with("lanrelay_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
