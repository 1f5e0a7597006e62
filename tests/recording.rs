//! Recording a call: the operator starts and stops it over HTTPS, everyone in the
//! room hears it, and the files play: `ffprobe` finds VP8 and Opus and a duration
//! within 0.5 s of the time recorded, `ffmpeg` decodes every frame without an error,
//! also with loss on the publisher's leg and across a mute and a camera turned off.
//! Skipped (with a message) where ffmpeg is not installed; `tests/run.sh` installs it.
#![allow(clippy::disallowed_methods)] // a test measures wall-clock time

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::clip::{have, Clip};
use common::{temp_dir, tls_client, PeerCmd, TestPeer};
use lanrelay::{Config, Server};
use str0m::media::MediaKind;

const TOKEN: &str = "operator-secret-token-1234";

async fn start(dir: &Path) -> Server {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = Config::loopback(temp_dir("certs"));
    config.operator_token = Some(TOKEN.into());
    config.recordings = dir.to_path_buf();
    lanrelay::start(config).await.expect("server starts")
}

/// An HTTPS request; returns (status, body).
async fn request(server: &Server, method: &str, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(tls_client(server));
    let tcp = tokio::net::TcpStream::connect(server.https_addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = buf[(end + 4).min(buf.len())..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}

/// The listed files once each has its duration (finished), within 10 s.
async fn finished_files(server: &Server, count: usize) -> Vec<serde_json::Value> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = request(server, "GET", "/recordings", Some(TOKEN)).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let files = v["files"].as_array().unwrap().clone();
        if files.len() >= count && files.iter().all(|f| f["duration"].is_number()) {
            return files;
        }
        assert!(Instant::now() < end, "files not finished: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// ffprobe's codecs and duration of a file.
fn probe(path: &Path) -> (Vec<String>, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut codecs: Vec<String> = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap_or("").to_string())
        .collect();
    codecs.sort();
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (codecs, duration)
}

/// What ffmpeg says decoding every frame (nothing: no error).
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Video frames in a file.
fn video_frames(path: &Path) -> u64 {
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
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

struct Call {
    server: Server,
    dir: PathBuf,
    alice: TestPeer,
    bob: TestPeer,
}

/// Alice and Bob in room `room`, sending the clip, each seeing the other's video.
async fn call(room: &str) -> Option<Call> {
    if !have("ffmpeg") || !have("ffprobe") {
        eprintln!("SKIPPED: recording tests need ffmpeg and ffprobe (apt-get install ffmpeg; tests/run.sh does)");
        return None;
    }
    let dir = temp_dir("recordings");
    let clip = Arc::new(Clip::make(&dir).expect("the clip is made"));
    let rec = dir.join("out");
    let server = start(&rec).await;
    let alice = TestPeer::join_with_clip(&server, room, "alice", clip.clone()).await;
    let bob = TestPeer::join_with_clip(&server, room, "bob", clip).await;
    let wait = Duration::from_secs(15);
    for (p, other) in [(&bob, "alice"), (&alice, "bob")] {
        p.wait_for("the other's media", wait, |s| {
            s.frames.keys().any(|(_, k)| *k == MediaKind::Video) || s.corrupt > 30
        })
        .await;
        let _ = other;
    }
    Some(Call {
        server,
        dir: rec,
        alice,
        bob,
    })
}

/// Records for `secs`; returns the wall-clock time recorded. With `snapshot`, the
/// files as they are a second before the end are copied there (what a crash leaves).
async fn record(c: &Call, room: &str, secs: u64, snapshot: Option<&Path>) -> f64 {
    let path = format!("/api/rooms/{room}/recording");
    let started = Instant::now();
    let (status, body) = request(&c.server, "POST", &path, Some(TOKEN)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    tokio::time::sleep(Duration::from_secs(secs - 1)).await;
    if let Some(to) = snapshot {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(&c.dir).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = request(&c.server, "DELETE", &path, Some(TOKEN)).await;
    assert_eq!(status, 200);
    started.elapsed().as_secs_f64()
}

fn check_file(path: &Path, wall: f64) {
    let (codecs, duration) = probe(path);
    assert_eq!(codecs, vec!["opus", "vp8"], "{}", path.display());
    assert!(
        (duration - wall).abs() <= 0.5,
        "{}: {duration:.2} s recorded in {wall:.2} s of wall-clock time",
        path.display()
    );
    let errors = decode_errors(path);
    assert!(errors.is_empty(), "{}: ffmpeg: {errors}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_plays_with_its_codecs_and_length() {
    let Some(c) = call("rec").await else { return };
    // Nobody but the operator starts it.
    let (status, _) = request(&c.server, "POST", "/api/rooms/rec/recording", None).await;
    assert_eq!(status, 401);
    let (status, _) = request(&c.server, "POST", "/api/rooms/rec/recording", Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, _) = request(&c.server, "POST", "/api/rooms/nope/recording", Some(TOKEN)).await;
    assert_eq!(status, 404);

    let crash = c.dir.with_file_name("crash");
    let wall = record(&c, "rec", 5, Some(&crash)).await;
    for p in [&c.alice, &c.bob] {
        p.wait_for("recording on, then off", Duration::from_secs(5), |s| {
            s.recording.iter().map(|(on, _)| *on).collect::<Vec<_>>() == vec![true, false]
        })
        .await;
    }
    let files = finished_files(&c.server, 2).await;
    assert_eq!(files.len(), 2, "one file per participant: {files:?}");
    for f in &files {
        let name = f["name"].as_str().unwrap();
        assert!(
            name.starts_with("rec-alice-") || name.starts_with("rec-bob-"),
            "{name}"
        );
        check_file(&c.dir.join(name), wall);
        // Downloadable, byte for byte, by the operator only.
        let url = f["url"].as_str().unwrap();
        let (status, body) = request(&c.server, "GET", url, Some(TOKEN)).await;
        assert_eq!(status, 200);
        assert_eq!(body, std::fs::read(c.dir.join(name)).unwrap());
        let (status, _) = request(&c.server, "GET", url, None).await;
        assert_eq!(status, 401);
    }
    for bad in [
        "/recordings/..%2Fcerts",
        "/recordings/%2E%2E%2Fx.webm",
        "/recordings/x.webm",
    ] {
        let (status, _) = request(&c.server, "GET", bad, Some(TOKEN)).await;
        assert_eq!(status, 404, "{bad}");
    }
    // A file as a crash would leave it (never finished) plays up to its last second
    // or so: no decoding error, most of the 4 s of video there.
    for e in std::fs::read_dir(&crash).unwrap() {
        let path = e.unwrap().path();
        let errors = decode_errors(&path);
        assert!(errors.is_empty(), "{}: ffmpeg: {errors}", path.display());
        let frames = video_frames(&path);
        assert!(
            frames >= 2 * 30,
            "{}: {frames} video frames",
            path.display()
        );
    }
    let (_, metrics) = request(&c.server, "GET", "/metrics", Some(TOKEN)).await;
    let metrics = String::from_utf8_lossy(&metrics).to_string();
    assert!(
        metrics.contains("\nlanrelay_recordings_active 0\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("\nlanrelay_recording_bytes_total 0\n"));
    c.alice.leave().await;
    c.bob.leave().await;
    c.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_on_the_publishers_leg_still_decodes() {
    let Some(c) = call("lossy").await else { return };
    // One RTP datagram in 20 (5 %) that Alice sends is lost.
    c.alice.command(PeerCmd::SetLoss { up: 20, down: 0 });
    let wall = record(&c, "lossy", 5, None).await;
    let files = finished_files(&c.server, 2).await;
    let alice = files
        .iter()
        .map(|f| c.dir.join(f["name"].as_str().unwrap()))
        .find(|p| p.to_string_lossy().contains("lossy-alice-"))
        .expect("alice's file");
    check_file(&alice, wall);
    // Retransmissions repaired most of it: well over half the frames are there.
    let frames = video_frames(&alice);
    assert!(
        frames as f64 > wall * 30.0 * 0.5,
        "{frames} video frames in {wall:.1} s"
    );
    c.alice.leave().await;
    c.bob.leave().await;
    c.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_and_camera_off_keep_the_wall_clock_length() {
    let Some(c) = call("muted").await else { return };
    let alice = c.alice.command_handle();
    let pauses = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        alice(PeerCmd::Mute(true));
        alice(PeerCmd::CameraOff(true));
        tokio::time::sleep(Duration::from_secs(2)).await;
        alice(PeerCmd::Mute(false));
        alice(PeerCmd::CameraOff(false));
    });
    let wall = record(&c, "muted", 6, None).await;
    pauses.await.unwrap();
    let files = finished_files(&c.server, 2).await;
    for f in &files {
        check_file(&c.dir.join(f["name"].as_str().unwrap()), wall);
    }
    c.alice.leave().await;
    c.bob.leave().await;
    c.server.shutdown().await;
}
