//! Starting a lanrelay server for a run: the given binary on 127.0.0.1 with ephemeral
//! ports, a throw-away certificate directory and a room capacity large enough for
//! the scenario. The HTTPS port is read from the line it prints at start.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::LoadError;

/// A server this process started; killed when dropped.
pub struct Spawned {
    child: Child,
    /// `https://127.0.0.1:PORT`
    pub base: String,
    pub pid: u32,
    certs: PathBuf,
}

impl Spawned {
    /// Starts `binary` with `extra` flags after the fixed ones.
    pub fn start(
        binary: &Path,
        room_capacity: usize,
        extra: &[String],
        cpus: Option<&str>,
    ) -> Result<Spawned, LoadError> {
        let certs = std::env::temp_dir().join(format!(
            "lanrelay-load-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        // Every simulated participant comes from 127.0.0.1: lift the limits per
        // address and server-wide, on servers that have them (an older build, run
        // for an A/B comparison, would refuse the flags).
        let help = Command::new(binary)
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut lifted: Vec<&str> = Vec::new();
        for flag in [
            "--max-per-address",
            "--max-sessions",
            "--max-rooms",
            "--max-joins-per-minute",
            "--max-connections-per-address",
        ] {
            if help.contains(flag) {
                lifted.extend([flag, "1000000"]);
            }
        }
        // taskset execs the server: the child's pid is the server's.
        let mut command = match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.args(["-c", list]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--certs"])
            .arg(&certs)
            .args(["--room-capacity", &room_capacity.clamp(1, 1000).to_string()])
            .args(&lifted)
            .args(extra)
            // Per-join info lines are not what is measured.
            .env("RUST_LOG", "lanrelay=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| LoadError::Spawn(format!("{}: {e}", binary.display())))?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| LoadError::Spawn("no stdout".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(base) = parse_https_line(&line) {
                    if let Some(t) = tx.take() {
                        let _ = t.send(base);
                    }
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LoadError::Spawn(
                    "the server did not print its address within 20 s".into(),
                ));
            }
        };
        Ok(Spawned {
            child,
            base,
            pid,
            certs,
        })
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.certs);
    }
}

/// `HTTPS on TCP 127.0.0.1:PORT, media on UDP ...` → `https://127.0.0.1:PORT`.
fn parse_https_line(line: &str) -> Option<String> {
    let rest = line.strip_prefix("HTTPS on TCP ")?;
    let addr: std::net::SocketAddr = rest.split(',').next()?.trim().parse().ok()?;
    Some(format!("https://{addr}"))
}

/// The lanrelay a run loads: the one `--spawn` starts (with `extra` flags after
/// `--server-arg`'s; kept running while the returned
/// `Spawned` lives), or the one `--server-url` / `--server-pid` names. Its base URL and
/// process id.
pub fn lanrelay_target(
    args: &crate::config::Args,
    extra: &[String],
) -> Result<(Option<Spawned>, String, u32), LoadError> {
    match (&args.spawn, &args.server_url, args.server_pid) {
        (Some(path), _, _) => {
            let flags: Vec<String> = args.server_arg.iter().chain(extra).cloned().collect();
            let spawned = Spawned::start(path, 1000, &flags, args.server_cpus.as_deref())?;
            let (base, pid) = (spawned.base.clone(), spawned.pid);
            Ok((Some(spawned), base, pid))
        }
        (None, Some(url), Some(pid)) => Ok((None, url.trim_end_matches('/').to_string(), pid)),
        _ => Err(LoadError::Usage(
            "lanrelay needs --spawn PATH or --server-url URL --server-pid PID".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_line() {
        assert_eq!(
            parse_https_line("HTTPS on TCP 127.0.0.1:40123, media on UDP 127.0.0.1:51000"),
            Some("https://127.0.0.1:40123".into())
        );
        assert_eq!(parse_https_line("  https://localhost:1/"), None);
    }
}
