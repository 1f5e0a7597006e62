//! A recording whose disk fills up: the recordings folder is a small tmpfs the test
//! mounts (root only; otherwise the test says it is skipped and why). The writer
//! cannot go on, so the room's recording stops with a message to every page (and the
//! log), the call carries on (media still flows between the participants), and the
//! file written so far plays: ffprobe reads VP8 and Opus from it and ffmpeg decodes
//! it. The tmpfs is unmounted whatever happens (a guard that unmounts on drop, also
//! when an assertion fails).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::clip::{have, Clip};
use common::{temp_dir, TestPeer};

const TOKEN: &str = "operator-secret-token-disk";

/// A tmpfs of `size` mounted at a fresh directory, unmounted (and the directory
/// removed) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = temp_dir("disk-full");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a file open in a server that did not stop): detach it.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

async fn post(server: &lanrelay::Server, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(common::tls_client(server));
    let tcp = tokio::net::TcpStream::connect(server.https_addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn codecs(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let mut c: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    c.sort();
    c
}

fn decoded_video_frames(path: &Path) -> (u64, String) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let frames = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or(0);
    (frames, String::from_utf8_lossy(&out.stderr).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_recording_and_the_call_goes_on() {
    if !have("ffmpeg") || !have("ffprobe") {
        eprintln!("SKIPPED: needs ffmpeg and ffprobe (apt-get install ffmpeg; tests/run.sh does)");
        return;
    }
    if !is_root() {
        eprintln!("SKIPPED: a full disk is a small tmpfs this test mounts, which needs root");
        return;
    }
    let disk = match Tmpfs::mount("400k") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED: cannot mount a tmpfs here: {e}");
            return;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let work = temp_dir("disk-full-clip");
    let clip = Arc::new(Clip::make(&work).expect("the clip is made"));
    let mut config = lanrelay::Config::loopback(temp_dir("certs"));
    config.operator_token = Some(TOKEN.into());
    config.recordings = disk.0.clone();
    let server = lanrelay::start(config).await.expect("server starts");
    let alice = TestPeer::join_with_clip(&server, "full", "alice", clip.clone()).await;
    let bob = TestPeer::join_with_clip(&server, "full", "bob", clip).await;
    // The clip's frames are real VP8 and Opus, not the test participant's numbered
    // payloads: Bob counts them as frames he cannot check (`corrupt`).
    bob.wait_for("alice's media", Duration::from_secs(15), |s| s.corrupt > 30)
        .await;

    assert_eq!(post(&server, "/api/rooms/full/recording").await, 200);
    // 400 KiB go in a few seconds of two participants' VP8 and Opus.
    for p in [&alice, &bob] {
        p.wait_for(
            "the recording stops by itself",
            Duration::from_secs(30),
            |s| s.recording.len() >= 2 && !s.recording[1].0,
        )
        .await;
    }
    let (on, message) = bob.seen().recording[1].clone();
    assert!(!on);
    let message = message.expect("the stop says why");
    println!("the room heard: {message}");
    assert!(message.starts_with("the recording stopped"), "{message}");
    assert!(
        message.contains("No space left on device"),
        "says why: {message}"
    );

    // The call carries on: Bob still gets Alice's frames (about 80 a second).
    let before = bob.seen().corrupt;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = bob.seen().corrupt;
    println!(
        "bob received {} frames in the 2 s after the stop",
        after - before
    );
    assert!(
        after > before + 60,
        "media still flows: {before} -> {after}"
    );

    // What was written plays.
    let written: Vec<PathBuf> = std::fs::read_dir(&disk.0)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "webm"))
        .collect();
    assert!(!written.is_empty(), "a file was written");
    let mut playable = 0;
    for path in &written {
        let (n, errors) = decoded_video_frames(path);
        println!("{}: {n} video frames decoded {errors}", path.display());
        if n > 0 {
            assert_eq!(codecs(path), ["opus", "vp8"], "{}", path.display());
            playable += 1;
        }
    }
    assert!(playable >= 1, "a file written before the disk filled plays");
    alice.leave().await;
    bob.leave().await;
    server.shutdown().await;
    drop(disk);
}
