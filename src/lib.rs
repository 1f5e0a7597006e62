//! lanrelay: a self-hosted WebRTC relay (SFU) for local networks.
//!
//! Browsers load the web app over HTTPS, join a room over a WebSocket
//! ([`signaling`]), and send their audio and video to this server, which terminates
//! ICE, DTLS and SRTP with str0m and forwards each RTP packet to the other
//! participants ([`sfu`]). Calls therefore work wherever each device can reach the
//! server, even where devices cannot reach each other.
//!
//! The shape:
//! - [`sfu::engine`] is the one task that owns the UDP sockets, the timers and every
//!   peer's `Rtc`; [`sfu::core`] is its Sans-IO logic (routing, negotiation,
//!   forwarding) and [`room`] its membership registry.
//! - [`signaling::session`] serves one WebSocket and talks to the engine through a
//!   channel of commands; [`signaling::protocol`] is the typed wire format.
//! - [`http`] is the router: web app, `/ws`, `/healthz`, `/metrics` ([`metrics`]).
//!   [`certs`] provides TLS.
//!
//! [`start`] brings it all up and returns a [`Server`] with the bound addresses, which
//! is what the integration tests use; `main` calls [`run`].

pub mod certs;
pub mod config;
pub mod http;
pub mod load;
pub mod metrics;
pub mod net;
pub mod room;
pub mod sfu;
pub mod signaling;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use tracing::{info, warn};

pub use config::Config;
use sfu::engine::{self, EngineHandle, MediaSockets};
use sfu::udp::UdpIo;

/// A running server.
pub struct Server {
    /// Where HTTPS listens (real port when 0 was asked for).
    pub https_addr: SocketAddr,
    /// Where the media sockets listen.
    pub media_addrs: Vec<SocketAddr>,
    /// The ICE host candidates given to browsers.
    pub candidates: Vec<SocketAddr>,
    /// URLs to open, one per advertised address.
    pub urls: Vec<String>,
    /// The HTTPS certificate (PEM), for clients that want to trust it.
    pub cert_pem: String,
    pub engine: EngineHandle,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Stops accepting connections and waits for the HTTPS server to end.
    pub async fn shutdown(self) {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(1)));
        let _ = self.task.await;
    }

    /// Waits until the HTTPS server ends by itself.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("HTTPS server task")??;
        Ok(())
    }
}

/// Binds every socket, starts the media engine and the HTTPS server.
pub async fn start(config: Config) -> anyhow::Result<Server> {
    // One TLS backend in the process (aws-lc-rs, shared with str0m's DTLS).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let media = bind_media(&config)?;
    let media_addrs: Vec<SocketAddr> = media.sockets.iter().map(UdpIo::local_addr).collect();
    let candidates = media.candidates.clone();
    let advertised: Vec<IpAddr> = candidates.iter().map(SocketAddr::ip).collect();

    let hostname = net::hostname();
    let certs = certs::load_or_generate(&config.certs_dir, &advertised, hostname.as_deref())
        .context("TLS certificate")?;
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        certs.cert_pem.clone().into_bytes(),
        certs.key_pem.clone().into_bytes(),
    )
    .await
    .context("TLS certificate or key is invalid")?;

    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {} (HTTPS)", config.listen))?;
    listener.set_nonblocking(true)?;
    let https_addr = listener.local_addr()?;

    let engine = engine::spawn(media, config.room_capacity);
    let app = http::router(http::AppState {
        engine: engine.clone(),
    });
    let handle = axum_server::Handle::new();
    let server = axum_server::tls_rustls::from_tcp_rustls(listener, tls)?.handle(handle.clone());
    let task = tokio::spawn(server.serve(app.into_make_service()));

    let mut urls: Vec<String> = advertised
        .iter()
        .map(|ip| net::https_url(*ip, https_addr.port()))
        .collect();
    if https_addr.ip().is_unspecified() || https_addr.ip().is_loopback() {
        let local = format!("https://localhost:{}/", https_addr.port());
        if !urls.contains(&local) {
            urls.push(local);
        }
    }
    Ok(Server {
        https_addr,
        media_addrs,
        candidates,
        urls,
        cert_pem: certs.cert_pem,
        engine,
        handle,
        task,
    })
}

/// Runs the server until `shutdown` completes or the HTTPS server fails.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut server = start(config).await?;
    println!("lanrelay is running. Open one of these on each device:");
    for u in &server.urls {
        println!("  {u}");
    }
    println!(
        "HTTPS on TCP {}, media on UDP {}",
        server.https_addr,
        server
            .media_addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    tokio::select! {
        _ = shutdown => {
            info!("shutting down");
            server.shutdown().await;
            Ok(())
        }
        r = &mut server.task => {
            r.context("HTTPS server task")??;
            Ok(())
        }
    }
}

/// Binds the media socket(s): the configured address, plus the other address family
/// on the same port when the configured address is a wildcard and addresses of that
/// family are advertised.
fn bind_media(config: &Config) -> anyhow::Result<MediaSockets> {
    let primary = UdpIo::bind(config.media_listen)
        .with_context(|| format!("cannot listen on UDP {} (media)", config.media_listen))?;
    let port = primary.local_addr().port();
    let mut ips = net::advertise_addresses(&config.advertise, config.media_listen, config.listen);
    let mut sockets = vec![primary];
    let wildcard = config.media_listen.ip().is_unspecified();
    let other_family: Vec<IpAddr> = ips
        .iter()
        .copied()
        .filter(|ip| ip.is_ipv4() != config.media_listen.is_ipv4())
        .collect();
    if !other_family.is_empty() {
        let second = if !wildcard {
            None
        } else if config.media_listen.is_ipv4() {
            UdpIo::bind(SocketAddr::new(IpAddr::from([0u16; 8]), port)).ok()
        } else {
            UdpIo::bind(SocketAddr::new(IpAddr::from([0u8; 4]), port)).ok()
        };
        match second {
            Some(s) => sockets.push(s),
            None => {
                warn!(
                    ?other_family,
                    "no media socket for these addresses; not advertising them"
                );
                ips.retain(|ip| ip.is_ipv4() == config.media_listen.is_ipv4());
            }
        }
    }
    let candidates = ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    Ok(MediaSockets {
        sockets,
        candidates,
    })
}
