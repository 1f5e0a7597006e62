//! Start-up: binds every socket, starts the media engine, the HTTPS server, the HTTP
//! helper and the certificate reloader, and returns a [`Server`] with the bound
//! addresses (what the integration tests use); [`run`] is `main`'s way in, and
//! [`certs_command`] the `lanrelay certs` subcommand.

use std::future::Future;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use time::OffsetDateTime;
use tracing::{info, warn};

use axum_server::tls_rustls::RustlsAcceptor;

use crate::config::Config;
use crate::conns::{ConnectionLimit, LimitAcceptor};
use crate::https_port::SplitAcceptor;
use crate::sfu::engine::{self, EngineHandle, MediaSockets};
use crate::sfu::tcp::TcpMedia;
use crate::sfu::udp::UdpIo;
use crate::signaling::session::ReadLimit;
use crate::state::AppState;
use crate::{banner, certs, helper, http, net, trust};

/// A running server.
pub struct Server {
    /// Where HTTPS listens (real port when 0 was asked for).
    pub https_addr: SocketAddr,
    /// Where the plain-HTTP helper listens; `None` when it is off (or could not bind).
    pub http_addr: Option<SocketAddr>,
    /// Where the media sockets listen.
    pub media_addrs: Vec<SocketAddr>,
    /// The ICE host candidates given to browsers.
    pub candidates: Vec<SocketAddr>,
    /// URLs to open, one per advertised address (and `--hostname`).
    pub urls: Vec<String>,
    /// The install page on the HTTP helper, one per advertised address.
    pub trust_urls: Vec<String>,
    /// What a client should trust (PEM): lanrelay's CA certificate, or the custom
    /// certificate chain given with `--cert`.
    pub cert_pem: String,
    /// Whether lanrelay's own CA issued the server certificate.
    pub own_ca: bool,
    pub engine: EngineHandle,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    helper: Option<HelperTask>,
    /// The recorder's writer thread, finished at shutdown.
    recordings: crate::record::Recordings,
    reload: tokio::task::JoinHandle<()>,
    /// The cluster task (`--cluster`).
    cluster: Option<crate::cluster::Task>,
}

/// The HTTP helper's task and the way to stop it.
struct HelperTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Stops accepting connections and waits for the HTTPS server to end; finishes
    /// the recordings' files first.
    pub async fn shutdown(self) {
        let recording = self.engine.stop_recordings().await;
        if recording > 0 {
            info!(
                rooms = recording,
                "recordings stopped: finishing their files"
            );
        }
        self.recordings
            .finish(std::time::Duration::from_secs(10))
            .await;
        self.reload.abort();
        if let Some(c) = self.cluster {
            // It gives back this node's entry and the rooms it was the origin of.
            let _ = c.stop.send(());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), c.task).await;
        }
        if let Some(h) = self.helper {
            let _ = h.stop.send(());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), h.task).await;
        }
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

/// Binds every socket, starts the media engine, the HTTPS server, the HTTP helper
/// and the certificate reloader.
pub async fn start(config: Config) -> anyhow::Result<Server> {
    raise_open_files();
    // What clap could not check (a Config built in code, rules across flags).
    config.check()?;
    let operator_token = config.resolve_operator_token()?;
    // One TLS backend in the process (aws-lc-rs, shared with str0m's DTLS).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let mut media = bind_media(&config)?;
    let media_addrs: Vec<SocketAddr> = media.sockets.iter().map(UdpIo::local_addr).collect();
    let candidates = media.candidates.clone();
    let advertised: Vec<IpAddr> = candidates.iter().map(SocketAddr::ip).collect();

    // --advertise addresses go in the certificate even when no media socket of their
    // family could be bound for them.
    let mut cert_ips = advertised.clone();
    cert_ips.extend(config.advertise.iter().copied());
    let wanted = certificate_names(&config, &cert_ips);
    let source = cert_source(&config);
    let certs =
        certs::prepare(&source, &wanted, OffsetDateTime::now_utc()).context("TLS certificate")?;
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        certs.cert_pem.clone().into_bytes(),
        certs.key_pem.clone().into_bytes(),
    )
    .await
    .context("TLS certificate or key is invalid")?;

    let listener = listen_tcp(config.listen)
        .with_context(|| format!("cannot listen on {} (HTTPS)", config.listen))?;
    let https_addr = listener.local_addr()?;
    let helper_listener = bind_helper(&config);
    let http_addr = match &helper_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };

    let mut urls: Vec<String> = advertised
        .iter()
        .map(|ip| net::https_url(*ip, https_addr.port()))
        .collect();
    urls.extend(
        config
            .hostnames
            .iter()
            .map(|h| format!("https://{h}:{}/", https_addr.port())),
    );
    if https_addr.ip().is_unspecified() || https_addr.ip().is_loopback() {
        let local = format!("https://localhost:{}/", https_addr.port());
        if !urls.contains(&local) {
            urls.push(local);
        }
    }
    let trust_urls: Vec<String> = match http_addr {
        // 0.0.0.0 takes IPv4 only; [::] takes both.
        Some(a) if a.ip().is_unspecified() => advertised
            .iter()
            .filter(|ip| ip.is_ipv4() || a.is_ipv6())
            .map(|ip| format!("http://{}/trust", SocketAddr::new(*ip, a.port())))
            .collect(),
        Some(a) => vec![format!("http://{a}/trust")],
        None => vec![],
    };

    let current = Arc::new(RwLock::new(certs.summary.clone()));
    let trust = Arc::new(trust::TrustInfo {
        ca: certs.ca.as_deref().map(trust::CaFiles::new),
        server: current.clone(),
        https_urls: urls.clone(),
        trust_urls: trust_urls.clone(),
    });

    // ICE-TCP: passive candidates on the HTTPS port, for each advertised address it
    // listens on.
    if config.tcp_media {
        media.tcp_candidates = advertised
            .iter()
            .filter(|ip| listens_on(config.listen.ip(), **ip))
            .map(|ip| SocketAddr::new(*ip, https_addr.port()))
            .collect();
    }
    let (recordings, record_failures) = crate::record::Recordings::start(config.recordings.clone())
        .context("cannot start the recorder thread")?;
    let engine = engine::spawn(
        media,
        engine::Limits {
            room_capacity: config.room_capacity,
            viewer_capacity: config.viewer_capacity,
            // Keyed by the normalised name: the shard looks up a room's look-alikes
            // by the same key (`token::room_key`).
            room_tokens: config
                .room_tokens
                .iter()
                .map(|(room, token)| (crate::token::room_key(room), token.clone()))
                .collect(),
            operator_token: operator_token.clone(),
            spread_viewers_after: config.spread_viewers_after,
            connect_timeout: config.connect_timeout,
            direct_rate: config.direct_rate,
            chat: config.chat,
            max_rooms: config.max_rooms,
            max_sessions: config.max_sessions,
            max_per_address: config.max_per_address,
            joins_per_minute: config.max_joins_per_minute,
            record: Some(recordings.sink()),
            bandwidth_estimation: config.bandwidth_estimation,
        },
        config.workers,
    )
    .context("cannot start the media workers")?;
    let cluster = config.cluster.clone().map(|cfg| {
        // Ids from a base of this node's own: they travel to other nodes.
        engine::spread_peer_ids(rand::random());
        let from_workers = engine
            .set_cluster_rx()
            .expect("the workers' messages for other nodes are taken once");
        let (cluster, task) = crate::cluster::shell::start(cfg, engine.clone(), from_workers);
        engine.set_cluster(cluster);
        task
    });
    // A recording the writer could not go on with (a full disk) stops in its room,
    // which hears why.
    tokio::spawn(stop_failed_recordings(engine.clone(), record_failures));
    let connections = ConnectionLimit::new(config.max_connections_per_address);
    let tcp_stats = Arc::new(crate::sfu::tcp::TcpStats::default());
    let app = http::router(AppState {
        tcp: tcp_stats.clone(),
        connections: connections.clone(),
        signaling: ReadLimit::new(config.signaling_rate),
        resumes: Arc::new(crate::signaling::resume::Resumes::new(config.resume_grace)),
        engine: engine.clone(),
        trust: trust.clone(),
        access: Arc::new(crate::api::Access::new(operator_token, &config.room_tokens)),
        record_dir: Arc::new(config.recordings.clone()),
        record_stats: recordings.stats.clone(),
        record_access: recordings.access.clone(),
    });
    let handle = axum_server::Handle::new();
    // Connections per client address are counted on both listeners together; on the
    // HTTPS port, connections that are ICE-TCP media go to the media engine.
    let limited = LimitAcceptor::new(connections);
    let tcp_media = config
        .tcp_media
        .then(|| TcpMedia::new(engine.clone(), tcp_stats));
    let split = SplitAcceptor::new(limited.clone(), tcp_media.clone(), config.header_timeout);
    let mut server = axum_server::from_tcp(listener)?
        .acceptor(RustlsAcceptor::new(tls.clone()).acceptor(split))
        .handle(handle.clone());
    // A client that opens a connection and sends a request's headers slowly, or never,
    // is cut off (the TLS handshake has its own 10 s limit in axum-server).
    server
        .http_builder()
        .http1()
        .header_read_timeout(config.header_timeout);
    // The client's address reaches the handlers (the limits per address).
    let task = tokio::spawn(server.serve(app.into_make_service_with_connect_info::<SocketAddr>()));

    let helper = match helper_listener {
        Some(l) => {
            // Where to redirect a request whose Host header is unusable.
            let fallback = match advertised.first() {
                Some(IpAddr::V6(ip)) => format!("[{ip}]"),
                Some(ip) => ip.to_string(),
                None => "localhost".to_string(),
            };
            // Redirects keep only the names and addresses the certificate covers.
            let app = helper::router(
                trust.clone(),
                https_addr.port(),
                fallback,
                wanted.names.clone(),
            );
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let helper_handle = axum_server::Handle::new();
            let mut helper_server = axum_server::from_tcp(l)?
                .acceptor(limited)
                .handle(helper_handle.clone());
            helper_server
                .http_builder()
                .http1()
                .header_read_timeout(config.header_timeout);
            tokio::spawn(async move {
                let _ = stopped.await;
                helper_handle.graceful_shutdown(Some(std::time::Duration::from_millis(500)));
            });
            let task = tokio::spawn(helper_server.serve(app.into_make_service()));
            Some(HelperTask { stop, task })
        }
        None => None,
    };

    let (cert_path, key_path) = source.leaf_paths();
    let own_ca = certs.ca.is_some();
    let reload = certs::reload::spawn(certs::reload::Watch {
        cert_path,
        key_path,
        tls,
        poll: config.cert_poll,
        current,
        renewal: certs.ca.clone().map(|ca| (ca, wanted)),
    });

    Ok(Server {
        https_addr,
        http_addr,
        media_addrs,
        candidates,
        urls,
        trust_urls,
        cert_pem: certs.trust_pem().to_string(),
        own_ca,
        engine,
        handle,
        task,
        helper,
        reload,
        cluster,
        recordings,
    })
}

/// Stops the recording of each room the writer thread gave up on.
async fn stop_failed_recordings(
    engine: EngineHandle,
    mut failures: tokio::sync::mpsc::UnboundedReceiver<crate::record::Failure>,
) {
    while let Some(f) = failures.recv().await {
        let message = format!("the recording stopped: {}", f.message);
        let _ = engine.recording(&f.room, false, Some(message)).await;
    }
}

/// Runs the server until `shutdown` completes or the HTTPS server fails.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut server = start(config).await?;
    print!(
        "{}",
        banner::Banner {
            urls: &server.urls,
            trust_urls: &server.trust_urls,
            own_ca: server.own_ca,
            ansi: std::io::stdout().is_terminal(),
        }
        .render()
    );
    if let Some(a) = server.http_addr {
        println!("HTTP helper on TCP {a} (the CA and /trust; redirects the rest to HTTPS)");
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

/// `lanrelay certs [--renew]`: the report to print.
pub fn certs_command(config: &Config, renew: bool) -> anyhow::Result<String> {
    let advertised =
        net::advertise_addresses(&config.advertise, config.media_listen, config.listen);
    let wanted = certificate_names(config, &advertised);
    let source = cert_source(config);
    let mut out = certs::command::run(&source, &wanted, renew, OffsetDateTime::now_utc())?;
    if let (certs::Source::LocalCa { .. }, Some(h)) = (&source, config.http_listen) {
        if h.port() != 0 {
            let ips: Vec<IpAddr> = if h.ip().is_unspecified() {
                advertised
            } else {
                vec![h.ip()]
            };
            out.push_str("\nInstall page (while lanrelay runs):\n");
            for ip in ips {
                out.push_str(&format!(
                    "  http://{}/trust\n",
                    SocketAddr::new(ip, h.port())
                ));
            }
        }
    }
    Ok(out)
}

/// Where the server certificate comes from.
fn cert_source(config: &Config) -> certs::Source {
    match &config.custom_cert {
        Some(c) => certs::Source::Files {
            cert: c.cert.clone(),
            key: c.key.clone(),
        },
        None => certs::Source::LocalCa {
            dir: config.certs_dir.clone(),
        },
    }
}

/// Every name and address the server certificate should cover.
fn certificate_names(config: &Config, advertised: &[IpAddr]) -> certs::Wanted {
    let hostname = net::hostname();
    let ips = certs::names::reachable_ips(config.listen, advertised, &net::lan_addresses());
    certs::Wanted {
        names: certs::names::server_names(hostname.as_deref(), &config.hostnames, &ips),
        hostname,
    }
}

/// Binds the HTTP helper's port; a failure is logged, not fatal (the port, 8080 by
/// default, may be taken by something else, and HTTPS works without the helper).
fn bind_helper(config: &Config) -> Option<std::net::TcpListener> {
    let addr = config.http_listen?;
    match listen_tcp(addr) {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(
                %addr,
                "cannot listen on the HTTP helper port ({e}); devices fetch the CA over \
                 HTTPS instead (pick another port with --http-listen, or --no-http)"
            );
            None
        }
    }
}

/// Whether a listener bound to `listen` takes connections to `ip`.
fn listens_on(listen: IpAddr, ip: IpAddr) -> bool {
    match listen {
        // [::] takes IPv4 too on Linux (dual stack), 0.0.0.0 only IPv4.
        IpAddr::V6(l) if l.is_unspecified() => true,
        IpAddr::V4(l) if l.is_unspecified() => ip.is_ipv4(),
        l => l == ip,
    }
}

/// A non-blocking TCP listener on `addr` with `SO_REUSEADDR`, so that a server
/// restarted at once (systemd after a crash, `kill -9` then start) gets its port back
/// although the connections of the previous process linger in `TIME_WAIT`; without
/// it the bind fails for up to a minute. (Rust's std sets it too on Unix, but does
/// not promise it.) UDP needs nothing: a UDP port is free the moment its process dies,
/// and `SO_REUSEADDR` on UDP would let two servers share one port.
fn listen_tcp(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
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
        tcp_candidates: Vec::new(),
    })
}

/// Raises the process's open-file soft limit to its hard limit: every WebSocket,
/// HTTPS connection and certificate file is a descriptor, and the common soft limit of
/// 1,024 lets a thousand idle connections lock everyone else out.
fn raise_open_files() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => warn!("cannot raise the open-file limit from {soft}: {e}"),
        },
        Ok(_) => {}
        Err(e) => warn!("cannot read the open-file limit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The restart case: the server closes its side of a connection first (as a
    /// killed process does), which leaves the port in `TIME_WAIT`; a new listener
    /// must get the same port at once.
    #[test]
    fn a_port_left_in_time_wait_is_bound_again_at_once() {
        let first = listen_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        first.set_nonblocking(false).unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (mut accepted, _) = first.accept().unwrap();
        accepted.write_all(b"bye").unwrap();
        drop(accepted);
        drop(first);
        let mut buf = [0; 8];
        let _ = client.read(&mut buf);
        drop(client);
        let again = listen_tcp(addr).expect("the port is free again at once");
        assert_eq!(again.local_addr().unwrap(), addr);
        assert!(socket2::SockRef::from(&again).reuse_address().unwrap());
    }
}
