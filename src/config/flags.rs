//! The command-line flags (clap), and the parsers of the values clap cannot check
//! with a type of its own.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::{check_room_token, DEFAULT_SPREAD_VIEWERS_AFTER};

/// lanrelay: a WebRTC relay (SFU) for local networks. Open one of the printed URLs on
/// each device to call through this machine.
#[derive(Debug, Clone, Parser)]
#[command(name = "lanrelay", version, about, long_about = None)]
pub struct Args {
    /// HTTPS address and port for the web app and the WebSocket signaling. Port 0
    /// picks a free port.
    #[arg(
        long,
        global = true,
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:8443"
    )]
    pub listen: SocketAddr,

    /// UDP address and port for all media (ICE, DTLS, SRTP). Default: the same IP and
    /// port number as --listen, so one port number is opened in the firewall.
    #[arg(long, global = true, value_name = "ADDR:PORT")]
    pub media_listen: Option<SocketAddr>,

    /// An address browsers reach this machine at, put in the ICE host candidates and
    /// the server certificate; repeat for several. Default: the --media-listen or
    /// --listen IP when it is not a wildcard, else every non-loopback, non-link-local
    /// IPv4 and global IPv6 address.
    #[arg(long, global = true, value_name = "IP")]
    pub advertise: Vec<IpAddr>,

    /// A DNS name this machine is reached by, added to the server certificate and the
    /// printed URLs; repeat for several. The host name, HOST.local and localhost are
    /// always in the certificate.
    #[arg(long, global = true, value_name = "NAME", value_parser = parse_hostname)]
    pub hostname: Vec<String>,

    /// Directory for lanrelay's certificate authority (ca.crt, ca.key) and the server
    /// certificate it issues (server.crt, server.key), created on first start.
    #[arg(long, global = true, value_name = "DIR", default_value = "certs")]
    pub certs: PathBuf,

    /// Serve this certificate chain (PEM, server certificate first) instead of one
    /// from lanrelay's own CA; needs --key. Reloaded when the file changes.
    #[arg(long, global = true, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// The private key (PEM) for --cert. Reloaded when the file changes.
    #[arg(long, global = true, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Plain-HTTP helper: redirects pages to HTTPS and serves the CA certificate and
    /// the install page (/trust) to devices that do not trust it yet. "off" disables
    /// it. Default: the --listen IP, port 8080 (port 0 when --listen has port 0).
    #[arg(long, global = true, value_name = "ADDR:PORT|off", value_parser = parse_http_listen)]
    pub http_listen: Option<HttpListen>,

    /// Same as --http-listen off.
    #[arg(long, global = true, conflicts_with = "http_listen")]
    pub no_http: bool,

    /// Most participants in one room.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub room_capacity: u32,

    /// Most viewers (receive-only) in one room; 0 means limited only by the machine.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub viewer_capacity: u32,

    /// Protect a room with a token: WHIP/WHEP requests for ROOM must carry
    /// `Authorization: Bearer TOKEN`, and browsers must join with `token=TOKEN` in the
    /// room link. Repeat for several rooms.
    #[arg(long, value_name = "ROOM=TOKEN", value_parser = parse_room_token)]
    pub room_token: Vec<(String, String)>,

    /// A token for the operator: with it (`Authorization: Bearer TOKEN` or
    /// `?token=TOKEN`), /api/rooms shows every room and the addresses of every relayed
    /// leg, and /metrics answers only to it. Visible in the process list: prefer
    /// --operator-token-file.
    #[arg(long, value_name = "TOKEN", conflicts_with = "operator_token_file")]
    pub operator_token: Option<String>,

    /// Read the operator token (see --operator-token) from this file (surrounding white
    /// space, such as the final newline, is not part of it).
    #[arg(long, value_name = "PATH")]
    pub operator_token_file: Option<PathBuf>,

    /// Media worker threads. Each room is served by one worker (the least busy when it
    /// opens), so rooms spread over the cores. Default: one per CPU core.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=62))]
    pub workers: Option<u32>,

    /// Viewers of one room that the room's own media worker serves; further viewers go
    /// to the least busy worker, so one presenter's audience uses every core (the
    /// room's worker hands each packet once to each other worker).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SPREAD_VIEWERS_AFTER)]
    pub spread_viewers_after: u32,

    /// Seconds a media session (a browser's relay connection once it has offered, a
    /// WHIP publisher, a WHEP player) may take to connect before the server removes it
    /// and frees its seat.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout: u64,

    /// Direct-call signals one participant may send per second (twice as many in a
    /// burst); more are refused with an error to the sender, so nobody can flood
    /// another participant off the server.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub direct_rate: u32,

    /// Longest chat message, in characters (after trimming); a longer one is refused
    /// with `tooLarge`.
    #[arg(long, value_name = "CHARS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub chat_max_len: u32,

    /// Chat messages one participant or viewer may send per 10 seconds; more are
    /// refused with `rateLimited`, while everyone else's still arrive.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub chat_rate: u32,

    /// Chat messages a room keeps for those who join later (0: none); they go with
    /// the room.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub chat_history: u32,

    /// Viewers (watch links) may write in the chat, not only read it.
    #[arg(long)]
    pub viewers_can_chat: bool,

    /// Rooms that may exist at once; a join or WHIP/WHEP request that would open one
    /// more is refused (WebSocket error `unavailable`, HTTP 503).
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms: u32,

    /// Participants, viewers and WHIP/WHEP sessions at once, server-wide; more are
    /// refused (WebSocket error `unavailable`, HTTP 503).
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions: u32,

    /// Sessions (WebSocket participants and viewers, WHIP/WHEP sessions) one client
    /// address may have at once; more are refused (`unavailable`, HTTP 503).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_per_address: u32,

    /// Sessions one client address may open per minute (joins, viewers, WHIP/WHEP
    /// requests; all at once, then one every 60/N seconds); more are refused
    /// (`rateLimited`, HTTP 429), so a script cannot churn rooms and sessions.
    #[arg(long, value_name = "N", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_joins_per_minute: u32,

    /// TCP connections one client address may hold open at once, on the HTTPS port
    /// and the HTTP helper together; further connections are closed at once.
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,

    /// KiB a second the server reads from one signaling WebSocket (four seconds' worth
    /// at once); a client that sends more is read more slowly and told so
    /// (`rateLimited`), so it cannot take the server's time from other calls. Each
    /// message counts as at least 0.5 KiB.
    #[arg(long, value_name = "KIB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub signaling_rate: u32,

    /// Seconds a participant whose signaling WebSocket dropped (without `leave`) is
    /// kept in its call, media flowing, for the page to reconnect and resume it with
    /// the token of its `joined` message; the others see no leave. 0: a dropped
    /// WebSocket leaves at once.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub resume_grace: u64,

    /// Where recordings are written (created when the first one starts). Nothing is
    /// recorded unless the operator asks (`POST /api/rooms/ROOM/recording`).
    #[arg(long, value_name = "DIR", default_value = "recordings")]
    pub recordings: PathBuf,

    /// Offer no ICE-TCP candidate: media only over UDP. By default the HTTPS port also
    /// takes media over TCP (RFC 6544), for networks that pass HTTPS but block UDP;
    /// browsers use it only when UDP does not get through.
    #[arg(long)]
    pub no_tcp_media: bool,

    /// Do not estimate the bandwidth towards each receiver. Simulcast layers are then
    /// chosen by each receiver's screen and quality setting only, and viewers and WHEP
    /// players do not negotiate transport-wide congestion control at all. For LANs
    /// where every receiver has the bandwidth for the best layer (wired screens): it
    /// saves about a sixth of the CPU per forwarded packet and 100 KiB per viewer
    /// (docs/benchmarks.md). Participants who publish keep the server's feedback for
    /// their own uploads.
    #[arg(long)]
    pub no_bandwidth_estimation: bool,

    /// Seconds a client may take to send a request's headers (on HTTPS and the HTTP
    /// helper, and between requests on a kept-alive connection) before the connection
    /// is closed, so idle or half-sent connections cannot pile up.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub header_timeout: u64,

    /// Join a cluster of lanrelay nodes coordinated through this NATS server
    /// (JetStream on): rooms open on one node, other nodes send participants there and
    /// serve viewers as edges. Needs --node-url. Without it the server stands alone.
    #[arg(long, value_name = "nats://HOST:4222", requires = "node_url")]
    pub cluster: Option<String>,

    /// In a cluster: where browsers and players reach this node (the page is sent
    /// here), e.g. https://10.0.0.2:8443. Every node's certificate must be trusted by
    /// the same CA.
    #[arg(long, value_name = "https://HOST:PORT")]
    pub node_url: Option<String>,

    /// In a cluster: this node's name, unique among the nodes (letters, digits, - and
    /// _; the machine's hostname by default).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// In a cluster: viewers of one room its origin node serves itself before it sends
    /// further viewers to the least loaded other node.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_EDGE_AFTER)]
    pub edge_after: u32,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Viewers a room's origin serves before further ones go to edge nodes.
pub const DEFAULT_EDGE_AFTER: u32 = 100;

/// Subcommands; without one, lanrelay runs the server.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Show the certificate authority's fingerprint and the server certificate's
    /// names and expiry.
    Certs {
        /// Issue a new server certificate now, from the same CA, for the current
        /// names and addresses (a running server picks it up within seconds).
        #[arg(long)]
        renew: bool,
    },
}

/// The value of --http-listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListen {
    Off,
    On(SocketAddr),
}

fn parse_room_token(s: &str) -> Result<(String, String), String> {
    let Some((room, token)) = s.split_once('=') else {
        return Err("expected ROOM=TOKEN".into());
    };
    check_room_token(room, token)?;
    Ok((room.to_string(), token.to_string()))
}

fn parse_http_listen(s: &str) -> Result<HttpListen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(HttpListen::Off);
    }
    s.parse()
        .map(HttpListen::On)
        .map_err(|_| format!("expected ADDR:PORT or off, got {s:?}"))
}

/// A DNS name: letters, digits, '-' and '.', labels of 1–63 characters; lower-cased.
pub fn parse_hostname(s: &str) -> Result<String, String> {
    if crate::certs::names::is_dns_name(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "{s:?} is not a DNS name (letters, digits, '-' and '.')"
        ))
    }
}
