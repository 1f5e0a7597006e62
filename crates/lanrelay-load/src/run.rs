//! Runs the sweep: for each target and step, join everyone, wait until every receiver
//! gets media, warm up, measure for the window (server CPU and memory from /proc, the
//! receivers' probes, lanrelay's own forwarded count), then everyone leaves.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::client::{request, request_as, tls_any_cert};
use super::config::{Args, Scenario, Target};
use super::janus::Janus;
use super::lanrelay;
use super::peer::{Outcome, Phase, Publish, Shared, Spec};
use super::probe::{delivery, percentile, Delivery, Window};
use super::procfs::{Memory, Proc};
use super::report::Row;
use super::rxtime::wall_ns;
use super::spawn::lanrelay_target;
use super::LoadError;
use lanrelay_peer::payload::Stamp;

/// The least in-flight allowance at each end of the counting window (see
/// [`Window`]); more when the receivers' read-transit p99 is longer.
const MIN_ALLOWANCE_NS: u64 = 100_000_000;

/// One room of a step: who publishes and who receives.
#[derive(Debug, Clone)]
struct RoomPlan {
    name: String,
    /// (participant name, publishes, receives)
    members: Vec<(String, bool, bool)>,
}

/// The server's HTTPS address, where its ICE-TCP candidate listens too, from
/// `https://IP:PORT`.
pub(crate) fn tcp_addr(base: &str) -> Option<std::net::SocketAddr> {
    base.trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// The rooms of one step of the sweep.
fn plan(scenario: Scenario, step: usize, room_size: usize, tag: &str) -> Vec<RoomPlan> {
    let room = |i: usize, members: Vec<(String, bool, bool)>| RoomPlan {
        name: format!("load-{tag}-{i}"),
        members,
    };
    match scenario {
        Scenario::OneToMany => {
            let mut m = vec![("pub".to_string(), true, false)];
            m.extend((0..step).map(|v| (format!("viewer{v}"), false, true)));
            vec![room(0, m)]
        }
        Scenario::Pairs => (0..step)
            .map(|i| room(i, vec![("a".into(), true, true), ("b".into(), true, true)]))
            .collect(),
        Scenario::Rooms | Scenario::Soak => (0..step)
            .map(|i| {
                room(
                    i,
                    (0..room_size)
                        .map(|k| (format!("p{k}"), true, true))
                        .collect(),
                )
            })
            .collect(),
    }
}

/// Runs every step for every target; returns the rows in order.
pub async fn run(args: &Args) -> Result<Vec<Row>, LoadError> {
    let steps = match args.scenario {
        Scenario::OneToMany => args.viewers.clone(),
        Scenario::Pairs => args.pairs.clone(),
        Scenario::Rooms => args.rooms.clone(),
        Scenario::Soak => {
            return Err(LoadError::Usage(
                "the soak runs through soak::soak, not the sweep".into(),
            ))
        }
    };
    let mut rows = Vec::new();
    let rounds = args.rounds as usize;
    for (i, &step) in steps.iter().enumerate() {
        for (round, &target) in (0..rounds).flat_map(|r| args.target.iter().map(move |t| (r, t))) {
            let of = match rounds {
                1 => String::new(),
                _ => format!(" (round {} of {rounds})", round + 1),
            };
            eprintln!("== {target:?} {:?} N={step}{of}", args.scenario);
            // Each run gets its own index (room numbers, recording folders).
            let index = i * rounds + round;
            let mut row = match target {
                Target::Lanrelay => run_lanrelay(args, step, index).await?,
                Target::Janus => run_janus(args, step, index).await?,
            };
            row.round = round;
            eprintln!(
                "   {:.0} pkt/s, {:.2} µs/pkt, transit p50/p90/p99 {:.3}/{:.3}/{:.3} ms (audio p99 {:.3}; to read p50/p99 {:.3}/{:.3}), loss {:.3} % ({} of {} sent; {} gaps, {} dup), {}/{} connected, {}/{} receiving at the end, {} send drops, sent {}",
                row.forwarded_pps,
                row.server_cpu_us_per_packet,
                row.transit_p50_us / 1000.0,
                row.transit_p90_us / 1000.0,
                row.transit_p99_us / 1000.0,
                row.audio_transit_p99_us / 1000.0,
                row.read_transit_p50_us / 1000.0,
                row.read_transit_p99_us / 1000.0,
                row.loss_pct,
                row.lost_packets,
                row.expected_packets,
                row.gaps,
                row.duplicates,
                row.connected,
                row.participants,
                row.receiving,
                row.receivers,
                row.send_drops,
                row.sent_packets,
            );
            rows.push(row);
            // Let the server settle (and Janus tear down) between steps.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    Ok(rows)
}

/// What each publisher sends, from the flags.
pub fn publish(args: &Args) -> Publish {
    Publish {
        video_kbps: args.video_kbps,
        fps: args.fps,
        keyframe_secs: args.keyframe_secs,
        audio: !args.no_audio,
        simulcast: args.simulcast,
    }
}

/// The measuring machinery shared by both targets.
struct Step {
    phase: watch::Sender<Phase>,
    shared: Shared,
    tasks: Vec<JoinHandle<Outcome>>,
    errors: Vec<String>,
    participants: usize,
    publishers: usize,
    receivers: usize,
}

impl Step {
    fn new() -> Step {
        let (phase, rx) = watch::channel(Phase::Connect);
        Step {
            phase,
            shared: Shared {
                phase: rx,
                ready: Arc::new(AtomicUsize::new(0)),
            },
            tasks: Vec::new(),
            errors: Vec::new(),
            participants: 0,
            publishers: 0,
            receivers: 0,
        }
    }
}

async fn run_lanrelay(args: &Args, step: usize, index: usize) -> Result<Row, LoadError> {
    // --record: an operator token to start the recordings with, a folder for them.
    let record = args.record.then(|| {
        let dir = std::env::temp_dir().join(format!(
            "lanrelay-load-recordings-{}-{index}",
            std::process::id()
        ));
        // A loopback server of this run only: the token need not be secret.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        (format!("load-{}-{nanos}", std::process::id()), dir)
    });
    let extra: Vec<String> = match &record {
        Some((token, dir)) => vec![
            "--operator-token".into(),
            token.clone(),
            "--recordings".into(),
            dir.display().to_string(),
        ],
        None => Vec::new(),
    };
    let result = run_lanrelay_on(args, step, index, &extra, record.as_ref()).await;
    if let Some((_, dir)) = &record {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn run_lanrelay_on(
    args: &Args,
    step: usize,
    index: usize,
    extra: &[String],
    record: Option<&(String, std::path::PathBuf)>,
) -> Result<Row, LoadError> {
    let (_spawned, base, pid) = lanrelay_target(args, extra)?;
    // Media over ICE-TCP goes to the HTTPS address.
    let tcp = if args.tcp { tcp_addr(&base) } else { None };
    let server = Proc::Pid(pid);
    let tls = tls_any_cert();
    let health = |base: String, tls: Arc<rustls::ClientConfig>| async move {
        let r = request(&format!("{base}/healthz"), None, &tls).await.ok()?;
        serde_json::from_str::<serde_json::Value>(&r.body).ok()
    };
    if health(base.clone(), tls.clone()).await.is_none() {
        return Err(LoadError::Http(format!("no /healthz answer from {base}")));
    }
    let before = Memory::of(server)?;
    let mut st = Step::new();
    let tag = format!("{}-{}", std::process::id(), index);
    let rooms = plan(args.scenario, step, args.room_size, &tag);
    let sem = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut next_viewer_url = args.viewer_url.iter().cycle();
    // Publishers first, so every receiver's connect time includes a keyframe request.
    for pass_publishers in [true, false] {
        let mut joins = JoinSet::new();
        for room in &rooms {
            let size = room.members.iter().filter(|m| m.1).count();
            for (name, publishes, receives) in &room.members {
                if *publishes != pass_publishers {
                    continue;
                }
                st.participants += 1;
                st.publishers += usize::from(*publishes);
                st.receivers += usize::from(*receives);
                let spec = Spec {
                    name: name.clone(),
                    room: room.name.clone(),
                    member: name.clone(),
                    receives: *receives,
                    publish: publishes.then(|| publish(args)),
                    expect_video: if *receives {
                        size - usize::from(*publishes)
                    } else {
                        0
                    },
                    bind_ip: args.bind,
                    twcc: !args.no_twcc,
                    tcp,
                };
                let node = match (publishes, next_viewer_url.next()) {
                    (false, Some(url)) => url.trim_end_matches('/').to_string(),
                    _ => base.clone(),
                };
                let (base, tls, room_name, shared, sem) = (
                    node,
                    tls.clone(),
                    room.name.clone(),
                    st.shared.clone(),
                    sem.clone(),
                );
                joins.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    lanrelay::join(&base, &tls, &room_name, spec, shared).await
                });
            }
        }
        while let Some(r) = joins.join_next().await {
            match r {
                Ok(Ok(task)) => st.tasks.push(task),
                Ok(Err(e)) => st.errors.push(e.to_string()),
                Err(e) => st.errors.push(e.to_string()),
            }
        }
    }
    if let Some((token, _)) = record {
        for room in &rooms {
            let url = format!("{base}/api/rooms/{}/recording", room.name);
            let r = request_as(&url, Some(""), Some(token), &tls).await?;
            if r.status != 200 {
                return Err(LoadError::Http(format!(
                    "recording {} refused: {} {}",
                    room.name, r.status, r.body
                )));
            }
        }
        eprintln!("   recording {} room(s)", rooms.len());
    }
    let (mut row, _) = measure(args, &mut st, server, before, || {
        health(base.clone(), tls.clone())
    })
    .await?;
    if let Some((token, dir)) = record {
        // What the recorder made of it: bytes written, frames it let go.
        let metrics = request_as(&format!("{base}/metrics"), None, Some(token), &tls)
            .await
            .map(|r| r.body)
            .unwrap_or_default();
        let value = |name: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        eprintln!(
            "   recorded {:.1} MB into {}, {} frames not recorded, {} recordings stopped",
            value("lanrelay_recording_bytes_total ") / 1e6,
            dir.display(),
            value("lanrelay_recording_frames_dropped_total "),
            value("lanrelay_recording_failures_total "),
        );
        row.recorded = true;
    }
    row.target = Target::Lanrelay;
    row.step = step;
    row.scenario = args.scenario;
    Ok(row)
}

async fn run_janus(args: &Args, step: usize, index: usize) -> Result<Row, LoadError> {
    let (Some(url), Some(pid)) = (&args.janus_url, args.janus_pid) else {
        return Err(LoadError::Usage(
            "janus needs --janus-url URL --janus-pid PID (see benches/janus-compare.sh)".into(),
        ));
    };
    let server = Proc::Pid(pid);
    let tls = tls_any_cert();
    let janus = Janus::connect(url, tls.clone()).await?;
    let before = Memory::of(server)?;
    let mut st = Step::new();
    let rooms = plan(args.scenario, step, args.room_size, "janus");
    // Room numbers unique per process and step.
    let room_base = (std::process::id() as u64 % 10_000) * 100_000 + index as u64 * 1000;
    let mut feeds: Vec<Vec<(String, u64)>> = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        let number = room_base + i as u64;
        let publishers = room.members.iter().filter(|m| m.1).count();
        janus.create_room(number, publishers.max(1)).await?;
        let mut room_feeds = Vec::new();
        for (name, publishes, _) in &room.members {
            if !publishes {
                continue;
            }
            st.participants += 1;
            st.publishers += 1;
            let spec = Spec {
                name: format!("{name}-pub"),
                room: number.to_string(),
                member: name.clone(),
                receives: false,
                publish: Some(publish(args)),
                expect_video: 0,
                bind_ip: args.janus_bind.unwrap_or(args.bind),
                twcc: !args.no_twcc,
                tcp: None,
            };
            match janus.publish(number, spec, st.shared.clone()).await {
                Ok((feed, task)) => {
                    room_feeds.push((name.clone(), feed));
                    st.tasks.push(task);
                }
                Err(e) => st.errors.push(e.to_string()),
            }
        }
        feeds.push(room_feeds);
    }
    // Janus lets subscribers join a feed only once its media is up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while st.shared.ready.load(Ordering::Relaxed) < st.tasks.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let janus = Arc::new(janus);
    let sem = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut joins = JoinSet::new();
    for (i, room) in rooms.iter().enumerate() {
        let number = room_base + i as u64;
        for (name, _, receives) in &room.members {
            if !receives {
                continue;
            }
            let others: Vec<u64> = feeds[i]
                .iter()
                .filter(|(n, _)| n != name)
                .map(|(_, f)| *f)
                .collect();
            st.participants += 1;
            st.receivers += 1;
            let spec = Spec {
                name: format!("{name}-sub"),
                room: number.to_string(),
                member: name.clone(),
                receives: true,
                publish: None,
                expect_video: others.len(),
                bind_ip: args.janus_bind.unwrap_or(args.bind),
                twcc: !args.no_twcc,
                tcp: None,
            };
            let (janus, shared, sem) = (janus.clone(), st.shared.clone(), sem.clone());
            joins.spawn(async move {
                let _permit = sem.acquire_owned().await;
                janus.subscribe(number, &others, spec, shared).await
            });
        }
    }
    while let Some(r) = joins.join_next().await {
        match r {
            Ok(Ok(task)) => st.tasks.push(task),
            Ok(Err(e)) => st.errors.push(e.to_string()),
            Err(e) => st.errors.push(e.to_string()),
        }
    }
    let (mut row, _) = measure(args, &mut st, server, before, || async { None }).await?;
    row.target = Target::Janus;
    row.server_forwarded_pps = None;
    row.step = step;
    row.scenario = args.scenario;
    if let Ok(j) = Arc::try_unwrap(janus) {
        j.close().await;
    }
    Ok(row)
}

/// Waits for everyone to receive, warms up, measures the window, stops everyone and
/// builds the row. `health` returns lanrelay's `/healthz` JSON (None for Janus).
async fn measure<F, Fut>(
    args: &Args,
    st: &mut Step,
    server: Proc,
    before: Memory,
    health: F,
) -> Result<(Row, Vec<Outcome>), LoadError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<serde_json::Value>>,
{
    let started = st.tasks.len();
    let deadline =
        Instant::now() + Duration::from_secs(30) + Duration::from_millis(50) * started as u32;
    while st.shared.ready.load(Ordering::Relaxed) < started && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let connected = Memory::of(server)?;
    let me = Proc::Myself;
    let forwarded =
        |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v["forwardedPackets"].as_u64());
    let h0 = forwarded(&health().await);
    let (cpu0, gen0, t0) = (server.cpu_time()?, me.cpu_time()?, Instant::now());
    let open_ns = wall_ns();
    let _ = st.phase.send(Phase::Measure);
    eprintln!("   measuring for {} s", args.duration);
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let (cpu1, gen1, t1) = (server.cpu_time()?, me.cpu_time()?, Instant::now());
    let h1 = forwarded(&health().await);
    let close_ns = wall_ns();
    let _ = st.phase.send(Phase::Stop);
    let ready = st.shared.ready.load(Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for t in st.tasks.drain(..) {
        match tokio::time::timeout(Duration::from_secs(10), t).await {
            Ok(Ok(o)) => outcomes.push(o),
            Ok(Err(e)) => st.errors.push(e.to_string()),
            Err(_) => st.errors.push("a participant did not stop".into()),
        }
    }
    let window = (t1 - t0).as_secs_f64();
    let mut transit: Vec<u32> = Vec::new();
    let mut audio_transit: Vec<u32> = Vec::new();
    let mut read_transit: Vec<u32> = Vec::new();
    let (mut packets, mut bytes, mut corrupt, mut breaks, mut reordered, mut drops) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut gaps = 0u64;
    let mut connect_ms: Vec<u32> = Vec::new();
    for o in &outcomes {
        transit.extend_from_slice(&o.probe.transit_ns);
        audio_transit.extend_from_slice(&o.probe.audio_transit_ns);
        read_transit.extend_from_slice(&o.probe.read_transit_ns);
        packets += o.probe.packets;
        bytes += o.probe.bytes;
        corrupt += o.probe.corrupt;
        breaks += o.probe.seq_breaks;
        reordered += o.probe.reordered;
        drops += o.send_drops;
        gaps += o.probe.gaps();
        if let (Some(j), Some(r)) = (o.joined_at, o.ready_at) {
            connect_ms.push(r.saturating_duration_since(j).as_millis() as u32);
        }
        if let Some(e) = &o.error {
            st.errors.push(format!("{}: {e}", o.name));
        }
    }
    transit.sort_unstable();
    audio_transit.sort_unstable();
    read_transit.sort_unstable();
    connect_ms.sort_unstable();
    // Loss against what the publishers sent. Packets sent within the allowance of the
    // window's ends count neither way: at the close they may still be in flight (or
    // queued for the generator to read), at the opening not every participant has
    // seen the window open yet.
    let allowance_ns = (percentile(&read_transit, 99.0) as u64)
        .max(MIN_ALLOWANCE_NS)
        .min(close_ns.saturating_sub(open_ns) / 4);
    let counted = Window::narrowed(open_ns, close_ns, allowance_ns);
    let mut total = Delivery::default();
    let mut receiving = 0;
    for r in outcomes.iter().filter(|o| o.receives) {
        let from: Vec<&[Stamp]> = outcomes
            .iter()
            .filter(|p| p.room == r.room && p.member != r.member && !p.sent_log.is_empty())
            .map(|p| &p.sent_log[..])
            .collect();
        let d = delivery(&r.probe, &from, counted);
        total.expected += d.expected;
        total.received += d.received;
        total.duplicates += d.duplicates;
        total.unexpected += d.unexpected;
        receiving += usize::from(d.receiving);
    }
    let server_time = cpu1 - cpu0;
    let (server_cpu, server_sys) = (
        server_time.total().as_secs_f64(),
        server_time.system.as_secs_f64(),
    );
    let gen_cpu = (gen1 - gen0).total().as_secs_f64();
    let threads = args.threads.max(1);
    let gen_pct = gen_cpu / window * 100.0;
    let row = Row {
        target: Target::Lanrelay,
        scenario: args.scenario,
        recorded: false,
        step: 0,
        round: 0,
        publishers: st.publishers,
        receivers: st.receivers,
        connected: ready,
        participants: st.participants,
        failed_joins: st.participants - started,
        forwarded_pps: packets as f64 / window,
        server_forwarded_pps: match (h0, h1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / window),
            _ => None,
        },
        forwarded_mbps: bytes as f64 * 8.0 / window / 1e6,
        server_cpu_pct: server_cpu / window * 100.0,
        server_cpu_us_per_packet: if packets > 0 {
            server_cpu * 1e6 / packets as f64
        } else {
            f64::NAN
        },
        server_sys_us_per_packet: if packets > 0 {
            server_sys * 1e6 / packets as f64
        } else {
            f64::NAN
        },
        server_rss_before_mib: before.rss as f64 / (1 << 20) as f64,
        server_rss_per_receiver_kib: connected.private.saturating_sub(before.private) as f64
            / 1024.0
            / st.receivers.max(1) as f64,
        transit_p50_us: percentile(&transit, 50.0) as f64 / 1000.0,
        transit_p90_us: percentile(&transit, 90.0) as f64 / 1000.0,
        transit_p99_us: percentile(&transit, 99.0) as f64 / 1000.0,
        transit_max_us: transit.last().copied().unwrap_or(0) as f64 / 1000.0,
        audio_transit_p99_us: percentile(&audio_transit, 99.0) as f64 / 1000.0,
        read_transit_p50_us: percentile(&read_transit, 50.0) as f64 / 1000.0,
        read_transit_p99_us: percentile(&read_transit, 99.0) as f64 / 1000.0,
        loss_pct: if total.expected > 0 {
            total.lost() as f64 * 100.0 / total.expected as f64
        } else {
            0.0
        },
        expected_packets: total.expected,
        lost_packets: total.lost(),
        loss_allowance_ms: allowance_ns as f64 / 1e6,
        duplicates: total.duplicates,
        unexpected: total.unexpected,
        gaps,
        receiving,
        corrupt,
        seq_breaks: breaks,
        reordered,
        connect_p50_ms: percentile(&connect_ms, 50.0) as f64,
        connect_max_ms: connect_ms.last().copied().unwrap_or(0) as f64,
        generator_cpu_pct: gen_pct,
        generator_threads: threads,
        generator_saturated: gen_pct >= 90.0 * threads as f64,
        send_drops: drops,
        sent_packets: outcomes.iter().map(|o| o.sent_packets).sum(),
        load_average: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(f64::NAN),
        errors: std::mem::take(&mut st.errors),
    };
    Ok((row, outcomes))
}

/// Where the JSON report goes, with what was run.
pub fn write_json(path: &PathBuf, args: &Args, rows: &[Row]) -> Result<(), LoadError> {
    let report = serde_json::json!({
        "generator": "lanrelay-load",
        "version": env!("CARGO_PKG_VERSION"),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "scenario": args.scenario,
        "durationSecs": args.duration,
        "rounds": args.rounds,
        "videoKbps": args.video_kbps,
        "fps": args.fps,
        "audio": !args.no_audio,
        "generatorThreads": args.threads,
        "rows": rows,
        "ratios": super::report::ratios(rows),
    });
    let text =
        serde_json::to_string_pretty(&report).map_err(|e| LoadError::Usage(e.to_string()))?;
    std::fs::write(path, text).map_err(LoadError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let p = plan(Scenario::OneToMany, 3, 0, "t");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].members.len(), 4);
        assert_eq!(p[0].members.iter().filter(|m| m.1).count(), 1);
        let p = plan(Scenario::Pairs, 5, 0, "t");
        assert_eq!(p.len(), 5);
        assert!(p.iter().all(|r| r.members.len() == 2));
        let p = plan(Scenario::Rooms, 2, 6, "t");
        assert_eq!(p.iter().map(|r| r.members.len()).sum::<usize>(), 12);
        assert_ne!(p[0].name, p[1].name);
    }
}
