//! The engine's figures summed over its workers: what `/api/status` and `/metrics`
//! report.

use super::lanes::{Report, WorkerStatus};

/// A snapshot of the engine, for health checks and tests.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub rooms: usize,
    pub participants: usize,
    pub forwarded_packets: u64,
    /// RTP payload bytes forwarded (without headers and SRTP overhead).
    pub forwarded_bytes: u64,
    pub unroutable_datagrams: u64,
    pub rejected_datagrams: u64,
    /// STUN requests refused before reaching a peer's `Rtc` (wrong MESSAGE-INTEGRITY,
    /// replayed from another address, or an address another peer holds).
    pub stun_refused: u64,
    /// Datagrams the kernel refused to send (full socket buffer, unreachable).
    pub send_drops: u64,
    /// Datagrams for an address family without a media socket.
    pub no_socket_drops: u64,
    /// Signaling messages dropped for sessions too far behind (disconnected).
    pub session_drops: u64,
    /// Direct-call signals dropped because their receiver was behind (it stays).
    pub direct_drops: u64,
    /// Direct-call signals refused because their sender sent too many.
    pub direct_refused: u64,
    /// Chat messages posted, and refused: over --chat-rate, over --chat-max-len, from
    /// a viewer where viewers only read.
    pub chat_messages: u64,
    pub chat_refused_rate: u64,
    pub chat_refused_length: u64,
    pub chat_refused_viewer: u64,
    /// `host` actions refused: the sender was not the room's host.
    pub not_host: u64,
    /// The host's record and stop actions from the call page, and those refused.
    pub host_recordings: u64,
    pub recordings_refused: u64,
    /// Media sessions removed because they did not connect in time.
    pub connect_timeouts: u64,
    /// Joins and WHIP/WHEP sessions refused at the server-wide room limit.
    pub refused_rooms: u64,
    /// Joins and WHIP/WHEP sessions refused at the server-wide session limit.
    pub refused_sessions: u64,
    /// Joins and WHIP/WHEP sessions refused at the limit per client address.
    pub refused_per_address: u64,
    /// Joins and WHIP/WHEP sessions refused at the rate of new ones per address.
    pub refused_rate: u64,
    /// Route changes the receive task had no room for.
    pub route_drops: u64,
    /// Relay links to and from other nodes (a cluster), and the RTP packets and
    /// payload bytes this node sent on them (each once per edge node).
    pub relay_links: usize,
    pub relayed_packets: u64,
    pub relayed_bytes: u64,
    /// Commands that found their worker gone (the engine stopping).
    pub control_drops: u64,
    /// Each media worker's load.
    pub workers: Vec<WorkerStatus>,
}

impl Status {
    /// Adds one worker's figures.
    pub(super) fn add(&mut self, w: &Report) {
        self.rooms += w.status.rooms;
        self.participants += w.status.participants;
        self.forwarded_packets += w.counters.forwarded;
        self.forwarded_bytes += w.counters.forwarded_bytes;
        self.unroutable_datagrams += w.counters.unroutable;
        self.rejected_datagrams += w.counters.rejected;
        self.stun_refused += w.counters.stun_refused;
        self.send_drops += w.send_drops;
        self.no_socket_drops += w.no_socket_drops;
        self.session_drops += w.session_drops;
        self.direct_drops += w.direct_drops;
        self.direct_refused += w.counters.direct_refused;
        self.chat_messages += w.counters.chat_messages;
        self.chat_refused_rate += w.counters.chat_refused_rate;
        self.chat_refused_length += w.counters.chat_refused_length;
        self.chat_refused_viewer += w.counters.chat_refused_viewer;
        self.not_host += w.counters.not_host;
        self.host_recordings += w.counters.host_recordings;
        self.recordings_refused += w.counters.recordings_refused;
        self.connect_timeouts += w.counters.connect_timeouts;
        self.route_drops += w.route_drops;
        self.relay_links += w.relay_links;
        self.relayed_packets += w.counters.relayed;
        self.relayed_bytes += w.counters.relayed_bytes;
        self.workers.push(w.status);
    }
}
