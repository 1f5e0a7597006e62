//! Command-line flags and the resolved configuration the server runs with.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

/// lanrelay: a WebRTC relay (SFU) for local networks. Open one of the printed URLs on
/// each device to call through this machine.
#[derive(Debug, Clone, Parser)]
#[command(name = "lanrelay", version, about, long_about = None)]
pub struct Args {
    /// HTTPS address and port for the web app and the WebSocket signaling. Port 0
    /// picks a free port.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// UDP address and port for all media (ICE, DTLS, SRTP). Default: the same IP and
    /// port number as --listen, so one port number is opened in the firewall.
    #[arg(long, value_name = "ADDR:PORT")]
    pub media_listen: Option<SocketAddr>,

    /// An address browsers reach this machine at, put in the ICE host candidates;
    /// repeat for several. Default: the --media-listen or --listen IP when it is not a
    /// wildcard, else every non-loopback, non-link-local IPv4 and global IPv6 address.
    #[arg(long, value_name = "IP")]
    pub advertise: Vec<IpAddr>,

    /// Directory for the TLS certificate and key (generated on first start, reused
    /// afterwards).
    #[arg(long, value_name = "DIR", default_value = "certs")]
    pub certs: PathBuf,

    /// Most participants in one room.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub room_capacity: u32,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub media_listen: SocketAddr,
    /// Empty means: discover the machine's addresses.
    pub advertise: Vec<IpAddr>,
    pub certs_dir: PathBuf,
    pub room_capacity: usize,
}

impl From<Args> for Config {
    fn from(a: Args) -> Self {
        Config {
            listen: a.listen,
            media_listen: a.media_listen.unwrap_or(a.listen),
            advertise: a.advertise,
            certs_dir: a.certs,
            room_capacity: a.room_capacity as usize,
        }
    }
}

impl Config {
    /// A configuration for tests: everything on 127.0.0.1 with ephemeral ports.
    pub fn loopback(certs_dir: PathBuf) -> Self {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
        Config {
            listen: any,
            media_listen: any,
            advertise: vec![],
            certs_dir,
            room_capacity: 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
