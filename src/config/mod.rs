//! The resolved configuration the server runs with, built from the command-line flags
//! (`flags.rs`) and checked where clap cannot check alone.

mod flags;

pub use flags::{parse_hostname, Args, Command, HttpListen, DEFAULT_EDGE_AFTER};

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub media_listen: SocketAddr,
    /// Empty means: discover the machine's addresses.
    pub advertise: Vec<IpAddr>,
    /// Extra DNS names for the server certificate and the printed URLs.
    pub hostnames: Vec<String>,
    pub certs_dir: PathBuf,
    /// A certificate of one's own; when set, no CA is created or used.
    pub custom_cert: Option<CustomCert>,
    /// The plain-HTTP helper's address; `None` turns it off.
    pub http_listen: Option<SocketAddr>,
    /// How often the certificate files are checked for changes (hot reload).
    pub cert_poll: Duration,
    pub room_capacity: usize,
    /// Most viewers in one room (0: no limit).
    pub viewer_capacity: usize,
    /// Rooms that need a token, with their tokens.
    pub room_tokens: Vec<(String, String)>,
    /// The operator's token: every room and address on /api/rooms, and /metrics.
    pub operator_token: Option<String>,
    /// Where to read the operator token at start (`--operator-token-file`).
    pub operator_token_file: Option<PathBuf>,
    /// Media worker threads.
    pub workers: usize,
    /// Viewers of a room its own worker serves before viewers spread to other workers.
    pub spread_viewers_after: usize,
    /// How long a media session may take to connect.
    pub connect_timeout: Duration,
    /// Direct-call signals per second per participant.
    pub direct_rate: u32,
    /// The chat's limits, and whether viewers may write.
    pub chat: crate::chat::ChatLimits,
    /// Rooms that may exist at once.
    pub max_rooms: usize,
    /// Sessions (participants, viewers, WHIP/WHEP) at once.
    pub max_sessions: usize,
    /// Sessions from one client address at once.
    pub max_per_address: usize,
    /// Sessions one client address may open per minute.
    pub max_joins_per_minute: u32,
    /// TCP connections from one client address at once (HTTPS and the helper).
    pub max_connections_per_address: usize,
    /// Bytes a second read from one signaling WebSocket.
    pub signaling_rate: u32,
    /// How long a participant whose WebSocket dropped waits to be resumed.
    pub resume_grace: Duration,
    /// Media over TCP on the HTTPS port (ICE-TCP passive candidates).
    pub tcp_media: bool,
    /// Estimate the bandwidth towards each receiver.
    pub bandwidth_estimation: bool,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// The cluster this node is part of (`--cluster`), if any.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Where recordings are written.
    pub recordings: PathBuf,
}

/// Up to this many viewers a room stays on one worker: one core fans a packet out to
/// 50 receivers in well under a millisecond, and a second worker would cost CPU (its own
/// timers, smaller send batches, a copy handed over) without making anyone's video
/// arrive sooner. Beyond it, the audience spreads over the cores.
pub const DEFAULT_SPREAD_VIEWERS_AFTER: u32 = 50;

/// `--cert FILE --key FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl From<Args> for Config {
    fn from(a: Args) -> Self {
        let http_listen = match (a.no_http, a.http_listen) {
            (true, _) | (_, Some(HttpListen::Off)) => None,
            (false, Some(HttpListen::On(addr))) => Some(addr),
            // Follow --listen: its IP, and port 0 when it asks for a free port.
            (false, None) => Some(SocketAddr::new(
                a.listen.ip(),
                if a.listen.port() == 0 { 0 } else { 8080 },
            )),
        };
        let custom_cert = match (a.cert, a.key) {
            (Some(cert), Some(key)) => Some(CustomCert { cert, key }),
            _ => None,
        };
        Config {
            listen: a.listen,
            media_listen: a.media_listen.unwrap_or(a.listen),
            advertise: a.advertise,
            hostnames: a.hostname,
            certs_dir: a.certs,
            custom_cert,
            http_listen,
            cert_poll: Duration::from_secs(2),
            room_capacity: a.room_capacity as usize,
            viewer_capacity: a.viewer_capacity as usize,
            room_tokens: a.room_token,
            operator_token: a.operator_token,
            operator_token_file: a.operator_token_file,
            workers: a.workers.map_or_else(default_workers, |n| n as usize),
            spread_viewers_after: a.spread_viewers_after as usize,
            connect_timeout: Duration::from_secs(a.connect_timeout),
            direct_rate: a.direct_rate,
            chat: crate::chat::ChatLimits {
                max_len: a.chat_max_len as usize,
                rate: a.chat_rate,
                history: a.chat_history as usize,
                viewers_write: a.viewers_can_chat,
            },
            max_rooms: a.max_rooms as usize,
            max_sessions: a.max_sessions as usize,
            max_per_address: a.max_per_address as usize,
            max_joins_per_minute: a.max_joins_per_minute,
            max_connections_per_address: a.max_connections_per_address as usize,
            signaling_rate: a.signaling_rate.saturating_mul(1024),
            resume_grace: Duration::from_secs(a.resume_grace),
            tcp_media: !a.no_tcp_media,
            bandwidth_estimation: !a.no_bandwidth_estimation,
            header_timeout: Duration::from_secs(a.header_timeout),
            cluster: a.cluster.map(|nats| crate::cluster::ClusterConfig {
                nats,
                node: a
                    .node_name
                    .or_else(|| {
                        // A host name's dots are not allowed in a node name.
                        crate::net::hostname().map(|h| {
                            h.chars()
                                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                                .collect()
                        })
                    })
                    .unwrap_or_else(|| "lanrelay".to_string()),
                url: a
                    .node_url
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_string(),
                edge_after: a.edge_after as usize,
            }),
            recordings: a.recordings,
        }
    }
}

impl Config {
    /// A configuration for tests: everything on 127.0.0.1 with ephemeral ports,
    /// including the HTTP helper.
    pub fn loopback(certs_dir: PathBuf) -> Self {
        let recordings = certs_dir.join("recordings");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
        Config {
            listen: any,
            media_listen: any,
            advertise: vec![],
            hostnames: vec![],
            certs_dir,
            custom_cert: None,
            http_listen: Some(any),
            cert_poll: Duration::from_millis(250),
            room_capacity: 8,
            viewer_capacity: 0,
            room_tokens: vec![],
            operator_token: None,
            operator_token_file: None,
            workers: 2,
            spread_viewers_after: DEFAULT_SPREAD_VIEWERS_AFTER as usize,
            connect_timeout: Duration::from_secs(30),
            direct_rate: 20,
            chat: crate::chat::ChatLimits::default(),
            max_rooms: 500,
            max_sessions: 2000,
            max_per_address: 64,
            max_joins_per_minute: 120,
            max_connections_per_address: 128,
            signaling_rate: 256 * 1024,
            resume_grace: Duration::from_secs(30),
            tcp_media: true,
            bandwidth_estimation: true,
            header_timeout: Duration::from_secs(10),
            cluster: None,
            recordings,
        }
    }
}

/// One media worker per CPU core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A flag the server cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--room-token {value:?}: {reason}")]
    RoomToken { value: String, reason: String },
    #[error("--operator-token: {0}")]
    OperatorToken(String),
    #[error("--operator-token-file {path:?}: {reason}")]
    OperatorTokenFile { path: PathBuf, reason: String },
    #[error("{0}")]
    Cluster(String),
}

impl Config {
    /// Checks the flags clap cannot check alone (and a `Config` built in code): every
    /// `--room-token` names a valid room, exactly as written, with a non-empty token,
    /// and no two protect look-alikes of one room. A bad one would leave the room it
    /// meant open, so it stops the start.
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut seen: Vec<(String, &str)> = Vec::new();
        for (room, token) in &self.room_tokens {
            let value = format!("{room}={token}");
            check_room_token(room, token).map_err(|reason| ConfigError::RoomToken {
                value: value.clone(),
                reason,
            })?;
            let key = crate::token::room_key(room);
            if let Some((_, other)) = seen.iter().find(|(k, _)| *k == key) {
                return Err(ConfigError::RoomToken {
                    value,
                    reason: format!(
                        "the room {room:?} is also protected as {other:?} (room names that \
                         differ only in case or width are one room for tokens)"
                    ),
                });
            }
            seen.push((key, room));
        }
        if let Some(t) = &self.operator_token {
            check_token(t).map_err(ConfigError::OperatorToken)?;
        }
        if let Some(c) = &self.cluster {
            let name_ok = !c.node.is_empty()
                && c.node.len() <= 64
                && c.node
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
            if !name_ok {
                return Err(ConfigError::Cluster(format!(
                    "--node-name {:?}: use 1 to 64 letters, digits, - and _",
                    c.node
                )));
            }
            if !c.url.starts_with("https://") {
                return Err(ConfigError::Cluster(format!(
                    "--node-url {:?}: give the https:// URL browsers reach this node at",
                    c.url
                )));
            }
        }
        Ok(())
    }

    /// The operator token: `--operator-token`, or read from `--operator-token-file`
    /// (trimmed); a file that cannot be read or holds no usable token stops the start.
    pub fn resolve_operator_token(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = &self.operator_token_file else {
            return Ok(self.operator_token.clone());
        };
        let bad = |reason: String| ConfigError::OperatorTokenFile {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let token = text.trim();
        check_token(token).map_err(bad)?;
        Ok(Some(token.to_string()))
    }
}

/// Why `token` cannot be a token: empty, or white space or control characters that
/// no client would send (`Authorization: Bearer` is trimmed).
fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    if token.trim() != token || token.chars().any(char::is_control) {
        return Err("the token starts or ends with white space or has control characters".into());
    }
    Ok(())
}

/// Why `ROOM=TOKEN` cannot protect a room: the rule of a room name at join, and the
/// name exactly as written (joins trim names, so `"board "` would protect a room
/// nobody can join while `board` stays open); a token that a client can send.
pub(super) fn check_room_token(room: &str, token: &str) -> Result<(), String> {
    crate::signaling::protocol::check_name(room)
        .map_err(|e| format!("the room name {room:?} {e}"))?;
    if room.trim() != room {
        return Err(format!(
            "the room name {room:?} starts or ends with white space (rooms are joined \
             by the trimmed name, so this one would stay open)"
        ));
    }
    if token.is_empty() {
        return Err(format!("the token for room {room:?} is empty"));
    }
    // `Authorization: Bearer` is trimmed, and a space cannot be typed into every
    // client: such a token could never be given.
    if token.trim() != token || token.chars().any(char::is_control) {
        return Err(format!(
            "the token for room {room:?} starts or ends with white space or has control \
             characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn media_defaults_to_the_https_address() {
        let a = Args::try_parse_from(["lanrelay", "--listen", "127.0.0.1:9000"]).unwrap();
        let c = Config::from(a);
        assert_eq!(c.media_listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.room_capacity, 8);
        let a = Args::try_parse_from([
            "lanrelay",
            "--media-listen",
            "0.0.0.0:4000",
            "--advertise",
            "192.0.2.1",
            "--advertise",
            "2001:db8::1",
        ])
        .unwrap();
        let c = Config::from(a);
        assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(c.advertise.len(), 2);
        assert!(Args::try_parse_from(["lanrelay", "--room-capacity", "0"]).is_err());
    }

    #[test]
    fn http_helper_follows_listen_and_can_be_turned_off() {
        let c = Config::from(Args::try_parse_from(["lanrelay"]).unwrap());
        assert_eq!(c.http_listen, Some("0.0.0.0:8080".parse().unwrap()));
        let c =
            Config::from(Args::try_parse_from(["lanrelay", "--listen", "127.0.0.1:0"]).unwrap());
        assert_eq!(c.http_listen, Some("127.0.0.1:0".parse().unwrap()));
        let c =
            Config::from(Args::try_parse_from(["lanrelay", "--http-listen", "[::]:8081"]).unwrap());
        assert_eq!(c.http_listen, Some("[::]:8081".parse().unwrap()));
        for off in [["--http-listen", "off"].as_slice(), &["--no-http"]] {
            let args = Args::try_parse_from(std::iter::once("lanrelay").chain(off.iter().copied()));
            assert_eq!(Config::from(args.unwrap()).http_listen, None, "{off:?}");
        }
        assert!(Args::try_parse_from(["lanrelay", "--http-listen", "8080"]).is_err());
        assert!(
            Args::try_parse_from(["lanrelay", "--no-http", "--http-listen", "0.0.0.0:1"]).is_err()
        );
    }

    #[test]
    fn custom_certificate_needs_both_files() {
        assert!(Args::try_parse_from(["lanrelay", "--cert", "a.pem"]).is_err());
        assert!(Args::try_parse_from(["lanrelay", "--key", "a.pem"]).is_err());
        let a = Args::try_parse_from(["lanrelay", "--cert", "c.pem", "--key", "k.pem"]).unwrap();
        let c = Config::from(a);
        assert_eq!(
            c.custom_cert,
            Some(CustomCert {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
    }

    #[test]
    fn bad_room_tokens_stop_the_start() {
        let a = Args::try_parse_from(["lanrelay", "--room-token", "board=tok"]).unwrap();
        let c = Config::from(a);
        assert_eq!(c.room_tokens, [("board".to_string(), "tok".to_string())]);
        assert_eq!(c.check(), Ok(()));
        for bad in [
            "board =tok",
            " board=tok",
            "board=",
            "=tok",
            "board",
            "board= tok",
            "secret\u{200B}=tok",
            "a\u{7}b=tok",
        ] {
            let e = Args::try_parse_from(["lanrelay", "--room-token", bad])
                .expect_err(bad)
                .to_string();
            assert!(e.contains("--room-token"), "{bad:?}: {e}");
        }
        let e = Args::try_parse_from(["lanrelay", "--room-token", "board =tok"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("board =tok"), "{e}");
        assert!(e.contains("white space"), "{e}");

        // The same checks for a Config built in code, and across flags.
        let mut c = Config::loopback("certs".into());
        c.room_tokens = vec![("board ".into(), "tok".into())];
        let e = c.check().unwrap_err().to_string();
        assert!(e.starts_with("--room-token \"board =tok\": "), "{e}");
        c.room_tokens = vec![
            ("secret".into(), "a".into()),
            ("ＳＥＣＲＥＴ".into(), "b".into()),
        ];
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("also protected as \"secret\""), "{e}");
        c.room_tokens = vec![("board".into(), String::new())];
        assert!(c.check().unwrap_err().to_string().contains("is empty"));
    }

    #[test]
    fn hostnames_and_the_certs_subcommand() {
        let a = Args::try_parse_from([
            "lanrelay",
            "--hostname",
            "Box.example.org",
            "--hostname",
            "relay",
        ])
        .unwrap();
        assert_eq!(a.hostname, ["box.example.org", "relay"]);
        assert!(a.command.is_none());
        assert!(Args::try_parse_from(["lanrelay", "--hostname", "bad name"]).is_err());
        assert!(Args::try_parse_from(["lanrelay", "--hostname", "-x"]).is_err());
        // Flags may follow the subcommand.
        let a =
            Args::try_parse_from(["lanrelay", "certs", "--certs", "/tmp/c", "--renew"]).unwrap();
        assert!(matches!(a.command, Some(Command::Certs { renew: true })));
        assert_eq!(a.certs, PathBuf::from("/tmp/c"));
    }
}
