//! The load generator's flags.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// lanrelay-load: simulated WebRTC participants (str0m) that join a running SFU through
/// its real signaling and UDP, send paced synthetic VP8 video and Opus-sized audio,
/// check every packet they receive, and report forwarded packets/s, server CPU time
/// per forwarded packet, server memory per receiver, transit time, loss and time to
/// connect.
#[derive(Debug, Clone, Parser)]
#[command(name = "lanrelay-load", version, about, long_about = None)]
pub struct Args {
    /// What to measure: one publisher to N viewers, N independent 1:1 calls, M
    /// rooms where all K participants publish and receive each other, or a soak:
    /// rooms with churn for --minutes, one report line a minute.
    #[arg(long, value_enum, default_value = "one-to-many")]
    pub scenario: Scenario,

    /// one-to-many: the numbers of viewers to sweep, e.g. 10,50,100,200.
    #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
    pub viewers: Vec<usize>,

    /// pairs: the numbers of 1:1 calls to sweep.
    #[arg(long, value_delimiter = ',', default_value = "5,10,20")]
    pub pairs: Vec<usize>,

    /// rooms: the numbers of rooms to sweep (each with --room-size participants).
    #[arg(long, value_delimiter = ',', default_value = "2,4")]
    pub rooms: Vec<usize>,

    /// rooms: participants per room.
    #[arg(long, default_value_t = 4)]
    pub room_size: usize,

    /// soak: how long, in minutes.
    #[arg(long, default_value_t = 30)]
    pub minutes: u64,

    /// soak: seconds per report line (a "minute"; shorter only to try the soak out).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..))]
    pub minute_secs: u64,

    /// soak: rooms.
    #[arg(long, default_value_t = 20)]
    pub soak_rooms: usize,

    /// soak: participants per room that publish and receive for the whole run; loss
    /// and transit are measured on their streams.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..))]
    pub steady: u64,

    /// soak: most guests per room at once (participants that publish and receive,
    /// join and leave, and may add a second video track mid-call).
    #[arg(long, default_value_t = 2)]
    pub guests: usize,

    /// soak: most viewers (receive-only) per room at once.
    #[arg(long, default_value_t = 3)]
    pub soak_viewers: usize,

    /// soak: churn events (a guest or viewer joining, a track added) per room per
    /// minute, on average; each guest and viewer leaves again after a while.
    #[arg(long, default_value_t = 2.0)]
    pub churn: f64,

    /// soak: seed of the churn (the same seed, the same sequence of events).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// soak: fail when the server's open file descriptors with only the steady
    /// participants present grew by more than this from the start to the end.
    #[arg(long, default_value_t = 8)]
    pub max_fd_growth: u64,

    /// soak: fail when the server's memory (RSS) at the last minute exceeds that at
    /// the end of minute --settle-minutes by more than this, percent.
    #[arg(long, default_value_t = 20.0)]
    pub max_rss_growth: f64,

    /// soak: minutes the server may take to reach its working-set size before its
    /// memory must stay flat.
    #[arg(long, default_value_t = 5)]
    pub settle_minutes: u64,

    /// soak: fail when the steady streams lost more than this, percent.
    #[arg(long, default_value_t = 0.5)]
    pub max_loss: f64,

    /// Servers to load, one after the other for each step: lanrelay, janus, or both.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "lanrelay")]
    pub target: Vec<Target>,

    /// Runs every step this many times, the targets alternating within each round
    /// (lanrelay, janus, lanrelay, janus, ...). The ratio table then gives each
    /// target's median and the range of the per-round ratios: on a shared machine
    /// one run of each proves little.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,

    /// Start this lanrelay binary for each step on 127.0.0.1 with ephemeral ports.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["server_url", "server_pid"])]
    pub spawn: Option<PathBuf>,

    /// An extra flag for the server --spawn starts, e.g. `--server-arg=--workers=1`;
    /// repeat for several.
    #[arg(
        long,
        value_name = "ARG",
        allow_hyphen_values = true,
        requires = "spawn"
    )]
    pub server_arg: Vec<String>,

    /// Pin the server --spawn starts to these cores (`taskset -c LIST`, e.g. `1`), so
    /// it has them to itself when the generator runs elsewhere (`taskset -c 0
    /// lanrelay-load ...`)
    #[arg(long, value_name = "LIST", requires = "spawn")]
    pub server_cpus: Option<String>,

    /// Attach to a running lanrelay at this URL (https://HOST:PORT); it needs a
    /// --room-capacity large enough for the scenario.
    #[arg(long, value_name = "URL", requires = "server_pid")]
    pub server_url: Option<String>,

    /// one-to-many: viewers join through these nodes of a cluster (round robin)
    /// instead of --server-url, which the publisher joins; repeat for several.
    #[arg(long, value_name = "URL", requires = "server_url")]
    pub viewer_url: Vec<String>,

    /// The running lanrelay's process id, to read its CPU time and memory.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// Janus's HTTP API, e.g. http://127.0.0.1:8088/janus (see benches/janus-compare.sh).
    #[arg(long, value_name = "URL")]
    pub janus_url: Option<String>,

    /// Janus's process id.
    #[arg(long, value_name = "PID")]
    pub janus_pid: Option<u32>,

    /// Seconds of measurement per step (after everyone receives media and a warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,

    /// Seconds between everyone receiving media and the start of measurement.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,

    /// Video bitrate of each publisher, kbit/s.
    #[arg(long, default_value_t = 2500)]
    pub video_kbps: u32,

    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,

    /// A keyframe every this many seconds (and whenever the server asks).
    #[arg(long, default_value_t = 3)]
    pub keyframe_secs: u32,

    /// Publishers send three simulcast layers (rids h, m, l at all, 1/4 and 1/16 of
    /// --video-kbps) on their video m-line.
    #[arg(long)]
    pub simulcast: bool,

    /// Participants do not negotiate transport-wide congestion control (the
    /// transport-cc header extension and its feedback), to see what it costs.
    #[arg(long)]
    pub no_twcc: bool,

    /// Send no audio.
    #[arg(long)]
    pub no_audio: bool,

    /// lanrelay: record every room of each step while it is measured (the spawned
    /// server gets an operator token and a temporary recordings folder, removed
    /// after the step; the rooms are recorded through `POST
    /// /api/rooms/ROOM/recording` once everyone has joined), to see what recording
    /// costs the forwarding.
    #[arg(long, requires = "spawn")]
    pub record: bool,

    /// lanrelay: carry every participant's media over TCP (ICE-TCP to the HTTPS
    /// port, RFC 4571 framing) instead of UDP, to compare the two. Transit is then
    /// measured at the read (TCP gives no kernel arrival time).
    #[arg(long)]
    pub tcp: bool,

    /// Address the participants' UDP sockets bind to (Janus ignores loopback, so use
    /// the namespace's veth address there).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Address the participants bind to when loading Janus (default: --bind). Janus
    /// gathers no loopback candidates, so benches/janus-compare.sh passes the
    /// address of the veth in its namespace.
    #[arg(long)]
    pub janus_bind: Option<IpAddr>,

    /// Worker threads of the generator's runtime (all participants share them).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Participants joining at once.
    #[arg(long, default_value_t = 16)]
    pub connect_concurrency: usize,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    #[default]
    OneToMany,
    Pairs,
    Rooms,
    Soak,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    #[default]
    Lanrelay,
    Janus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        let a = Args::try_parse_from([
            "lanrelay-load",
            "--viewers",
            "10,50",
            "--target",
            "lanrelay,janus",
            "--spawn",
            "target/release/lanrelay",
        ])
        .unwrap();
        assert_eq!(a.viewers, vec![10, 50]);
        assert_eq!(a.target, vec![Target::Lanrelay, Target::Janus]);
        assert!(Args::try_parse_from(["lanrelay-load", "--server-url", "https://x:1"]).is_err());
        let a = Args::try_parse_from(["lanrelay-load", "--scenario", "soak", "--minutes", "3"])
            .unwrap();
        assert_eq!(
            (a.scenario, a.minutes, a.soak_rooms),
            (Scenario::Soak, 3, 20)
        );
        assert!(Args::try_parse_from(["lanrelay-load", "--steady", "1"]).is_err());
    }
}
