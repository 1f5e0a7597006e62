//! The soak: rooms with churn for a long time, to see that the server neither leaks nor
//! degrades. Each room has a steady core of participants who publish and receive for
//! the whole run (their streams never stop, so their loss means something), and, driven
//! by a seeded RNG, guests who join and leave (with a goodbye, by dropping their
//! sockets, or by going silent), guests who add a second video track mid-call (a
//! renegotiation they start; every join and leave also makes the server renegotiate
//! with the others), and viewers who come and go.
//!
//! Every minute one line: the server's memory, open file descriptors and CPU, the
//! sessions it holds, the joins and leaves of the minute, and the steady streams' loss
//! and transit. At the end the server is brought back to the steady core alone and its
//! descriptors and sessions are compared with the start; its memory at the last minute
//! with the end of the settling minutes. Any threshold exceeded fails the run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::client::{request, tls_any_cert};
use super::config::Args;
use super::lanrelay::join_controlled;
use super::peer::{Control, Leave, Outcome, Phase, Shared, Snapshot, Spec};
use super::probe::{delivery, percentile, Probe, Window};
use super::procfs::{CpuTime, Proc};
use super::run::{publish, tcp_addr};
use super::rxtime::wall_ns;
pub use super::soak_report::{header, row, summary_text, verdict, Minute, Summary};
use super::soak_report::{loss_pct, mib};
use super::spawn::lanrelay_target;
use super::LoadError;
use lanrelay_peer::payload::Stamp;

/// Packets sent this close to a minute's end are counted in the next minute (they may
/// still be on their way when the minute's snapshot is taken).
const IN_FLIGHT_NS: u64 = 1_000_000_000;
/// How long a vanished participant keeps its sockets open, silent: longer than the
/// server's timeouts (no media for 15 s, a WebSocket that reads nothing for 10 s).
const VANISH_HOLD: Duration = Duration::from_secs(30);
/// A guest stays this long (uniformly), a viewer that long.
const GUEST_STAY_SECS: (f64, f64) = (20.0, 120.0);
const VIEWER_STAY_SECS: (f64, f64) = (10.0, 90.0);
/// How often the controller looks at its schedule.
const TICK: Duration = Duration::from_millis(200);

/// A small seeded generator (SplitMix64): the same seed gives the same churn.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn between(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Exponentially distributed with this mean (the gaps of a Poisson process).
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// What happens next in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    GuestJoins,
    ViewerJoins,
    /// The guest at this index of the room's guests adds a video track.
    AddVideo(usize),
}

/// Picks a room's next event from its state: who is there, who shares already.
/// `None` when the room is full and nobody can add a track.
pub fn pick(
    rng: &mut Rng,
    guests_sharing: &[bool],
    viewers: usize,
    max_guests: usize,
    max_viewers: usize,
) -> Option<Event> {
    let guest_room = guests_sharing.len() < max_guests;
    let viewer_room = viewers < max_viewers;
    let not_sharing: Vec<usize> = (0..guests_sharing.len())
        .filter(|&i| !guests_sharing[i])
        .collect();
    let r = rng.unit();
    // The event drawn first, then the others in turn if the room has no place for it.
    let wanted = if r < 0.4 {
        [Event::GuestJoins, Event::ViewerJoins, Event::AddVideo(0)]
    } else if r < 0.8 {
        [Event::ViewerJoins, Event::GuestJoins, Event::AddVideo(0)]
    } else {
        [Event::AddVideo(0), Event::GuestJoins, Event::ViewerJoins]
    };
    wanted.into_iter().find_map(|e| match e {
        Event::GuestJoins if guest_room => Some(e),
        Event::ViewerJoins if viewer_room => Some(e),
        Event::AddVideo(_) if !not_sharing.is_empty() => Some(Event::AddVideo(
            not_sharing[rng.next_u64() as usize % not_sharing.len()],
        )),
        _ => None,
    })
}

/// How a guest or viewer leaves: mostly with a goodbye, often by dropping its
/// sockets, sometimes by going silent.
pub fn pick_leave(rng: &mut Rng) -> Leave {
    let r = rng.unit();
    if r < 0.6 {
        Leave::Goodbye
    } else if r < 0.85 {
        Leave::Drop
    } else {
        Leave::Vanish(VANISH_HOLD)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Guest,
    Viewer,
}

/// A guest or viewer that is (or is being) in a room.
struct Churner {
    id: u64,
    kind: Kind,
    control: mpsc::UnboundedSender<Control>,
    leave_at: Instant,
    sharing: bool,
}

/// A participant of a room's steady core.
struct Steady {
    room: usize,
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<Outcome>,
    /// The last two snapshots' received stamps and send logs: packets sent at the end
    /// of one minute may arrive in the next.
    received: [Vec<Stamp>; 2],
    sent: [Vec<Stamp>; 2],
    error: Option<String>,
}

/// Counters of one minute (reset after each line).
#[derive(Debug, Default, Clone, Copy)]
struct Churn {
    joins: u64,
    failed_joins: u64,
    goodbyes: u64,
    drops: u64,
    vanishes: u64,
    tracks_added: u64,
    /// Guests and viewers that ended with an error the run did not cause.
    errors: u64,
}

/// Runs the soak, printing a line a minute; the summary's `failures` name every
/// threshold exceeded.
pub async fn soak(args: &Args) -> Result<Summary, LoadError> {
    let (_spawned, base, pid) = lanrelay_target(args, &[])?;
    // Media over ICE-TCP goes to the HTTPS address.
    let tcp = if args.tcp { tcp_addr(&base) } else { None };
    let server = Proc::Pid(pid);
    let tls = tls_any_cert();
    let health = || {
        let (base, tls) = (base.clone(), tls.clone());
        async move {
            let r = request(&format!("{base}/healthz"), None, &tls).await.ok()?;
            let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            Some((v["participants"].as_u64()?, v["rooms"].as_u64()?))
        }
    };
    if health().await.is_none() {
        return Err(LoadError::Http(format!("no /healthz answer from {base}")));
    }
    let (phase, phase_rx) = watch::channel(Phase::Connect);
    let shared = Shared {
        phase: phase_rx,
        ready: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    };
    let tag = std::process::id();
    let room_name = |r: usize| format!("soak-{tag}-{r}");
    let steady_per_room = args.steady as usize;

    // The steady core: everyone publishes and receives everyone else of the core.
    eprintln!(
        "soak: {} rooms, {} steady participants each, joining",
        args.soak_rooms, steady_per_room
    );
    let sem = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut joins = JoinSet::new();
    for room in 0..args.soak_rooms {
        for k in 0..steady_per_room {
            let spec = Spec {
                name: format!("s{k}"),
                room: room_name(room),
                member: format!("s{k}"),
                receives: true,
                publish: Some(publish(args)),
                expect_video: steady_per_room - 1,
                bind_ip: args.bind,
                twcc: !args.no_twcc,
                tcp,
            };
            let (tx, rx) = mpsc::unbounded_channel();
            let (base, tls, name, shared, sem) = (
                base.clone(),
                tls.clone(),
                room_name(room),
                shared.clone(),
                sem.clone(),
            );
            joins.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let task = join_controlled(&base, &tls, &name, spec, shared, Some(rx)).await;
                (room, tx, task)
            });
        }
    }
    let mut steady: Vec<Steady> = Vec::new();
    while let Some(r) = joins.join_next().await {
        let (room, control, task) = r.map_err(|e| LoadError::Signaling(e.to_string()))?;
        steady.push(Steady {
            room,
            control,
            task: task?,
            received: Default::default(),
            sent: Default::default(),
            error: None,
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30 + steady.len() as u64 / 10);
    while shared.ready.load(Ordering::Relaxed) < steady.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = shared.ready.load(Ordering::Relaxed);
    if ready < steady.len() {
        return Err(LoadError::Media(format!(
            "only {ready} of {} steady participants receive everyone",
            steady.len()
        )));
    }
    let _ = phase.send(Phase::Measure);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet_start = (
        server.open_fds()?,
        server.rss_bytes()?,
        health().await.map_or(0, |h| h.0),
    );
    eprintln!(
        "soak: steady core connected ({} participants): {} fds, {:.1} MiB; churn for {} minutes",
        steady.len(),
        quiet_start.0,
        mib(quiet_start.1),
        args.minutes
    );

    // Minute 0 starts now: the first snapshots only reset the probes.
    for s in &mut steady {
        let _ = take_snapshot(s).await;
    }
    let start_ns = wall_ns();
    let mut minute_start_ns = start_ns;
    let start = Instant::now();
    let mut rng = Rng::new(args.seed);
    let mean_gap = 60.0 / args.churn.max(0.01);
    let mut next_event: Vec<Instant> = (0..args.soak_rooms)
        .map(|_| start + Duration::from_secs_f64(rng.exp(mean_gap)))
        .collect();
    let mut rooms: Vec<Vec<Churner>> = (0..args.soak_rooms).map(|_| Vec::new()).collect();
    let mut tasks: JoinSet<(usize, u64, Result<Outcome, String>)> = JoinSet::new();
    let joined = Arc::new(AtomicU64::new(0));
    let mut churn = Churn::default();
    let mut next_id = 0u64;
    let mut first_error: Option<String> = None;
    let mut minutes: Vec<Minute> = Vec::new();
    let (mut cpu0, mut gen0) = (server.cpu_time()?, Proc::Myself.cpu_time()?);
    let mut t_cpu = Instant::now();
    let minute = Duration::from_secs(args.minute_secs);
    let publish = publish(args);
    println!("{}", header());

    for m in 1..=args.minutes {
        let minute_end = start + minute * m as u32;
        while Instant::now() < minute_end {
            let now = Instant::now();
            for (r, members) in rooms.iter_mut().enumerate() {
                // Those whose time is up leave.
                let mut i = 0;
                while i < members.len() {
                    if members[i].leave_at > now {
                        i += 1;
                        continue;
                    }
                    let c = members.swap_remove(i);
                    let how = pick_leave(&mut rng);
                    match how {
                        Leave::Goodbye => churn.goodbyes += 1,
                        Leave::Drop => churn.drops += 1,
                        Leave::Vanish(_) => churn.vanishes += 1,
                    }
                    let _ = c.control.send(Control::Leave(how));
                }
                if next_event[r] > now {
                    continue;
                }
                next_event[r] = now + Duration::from_secs_f64(rng.exp(mean_gap));
                let sharing: Vec<bool> = members
                    .iter()
                    .filter(|c| c.kind == Kind::Guest)
                    .map(|c| c.sharing)
                    .collect();
                let viewers = members.iter().filter(|c| c.kind == Kind::Viewer).count();
                let event = pick(&mut rng, &sharing, viewers, args.guests, args.soak_viewers);
                let kind = match event {
                    None => continue,
                    Some(Event::AddVideo(i)) => {
                        if let Some(g) = members.iter_mut().filter(|c| c.kind == Kind::Guest).nth(i)
                        {
                            g.sharing = true;
                            churn.tracks_added += 1;
                            let _ = g.control.send(Control::AddVideo);
                        }
                        continue;
                    }
                    Some(Event::GuestJoins) => Kind::Guest,
                    Some(Event::ViewerJoins) => Kind::Viewer,
                };
                next_id += 1;
                let id = next_id;
                let (stay, name) = match kind {
                    Kind::Guest => (GUEST_STAY_SECS, format!("g{id}")),
                    Kind::Viewer => (VIEWER_STAY_SECS, format!("v{id}")),
                };
                let spec = Spec {
                    name: name.clone(),
                    room: room_name(r),
                    member: name,
                    receives: true,
                    publish: (kind == Kind::Guest).then_some(publish),
                    expect_video: 0,
                    bind_ip: args.bind,
                    twcc: !args.no_twcc,
                    tcp,
                };
                let (tx, rx) = mpsc::unbounded_channel();
                members.push(Churner {
                    id,
                    kind,
                    control: tx,
                    leave_at: now + Duration::from_secs_f64(rng.between(stay)),
                    sharing: false,
                });
                let (base, tls, name, shared, joined) = (
                    base.clone(),
                    tls.clone(),
                    room_name(r),
                    shared.clone(),
                    joined.clone(),
                );
                tasks.spawn(async move {
                    match join_controlled(&base, &tls, &name, spec, shared, Some(rx)).await {
                        Ok(task) => {
                            joined.fetch_add(1, Ordering::Relaxed);
                            let outcome = task.await.map_err(|e| e.to_string());
                            (r, id, outcome)
                        }
                        Err(e) => (r, id, Err(format!("join: {e}"))),
                    }
                });
            }
            // Those that ended: a failed join leaves its room's list at once.
            while let Some(done) = tasks.try_join_next() {
                let Ok((r, id, result)) = done else { continue };
                let error = match result {
                    Ok(o) => o.error.map(|e| format!("{}: {e}", o.name)),
                    Err(e) => {
                        if e.starts_with("join") {
                            churn.failed_joins += 1;
                        }
                        Some(e)
                    }
                };
                if let Some(e) = error {
                    churn.errors += 1;
                    first_error.get_or_insert(e);
                }
                rooms[r].retain(|c| c.id != id);
            }
            tokio::time::sleep(TICK.min(minute_end.saturating_duration_since(Instant::now())))
                .await;
        }

        // The minute's line.
        let end_ns = wall_ns();
        let mut transit: Vec<u32> = Vec::new();
        let mut bad = 0;
        let mut mlines = (0, 0);
        for s in &mut steady {
            let snap = take_snapshot(s).await;
            mlines = mlines.max(snap.mlines);
            if let (Some(e), None) = (snap.error, &s.error) {
                eprintln!(
                    "soak: minute {m}: a steady participant of room {} failed: {e}",
                    s.room
                );
                s.error = Some(e);
            }
            transit.extend_from_slice(&snap.probe.transit_ns);
            bad += snap.probe.corrupt + snap.probe.seq_breaks;
            s.received.swap(0, 1);
            s.received[1] = snap.probe.stamps;
            s.sent.swap(0, 1);
            s.sent[1] = snap.sent_log;
        }
        transit.sort_unstable();
        let window = Window {
            from_ns: minute_start_ns.saturating_sub(IN_FLIGHT_NS).max(start_ns),
            to_ns: end_ns - IN_FLIGHT_NS,
        };
        minute_start_ns = end_ns;
        let (expected, received) = steady_delivery(&steady, window);
        let (cpu1, gen1) = (server.cpu_time()?, Proc::Myself.cpu_time()?);
        let secs = t_cpu.elapsed().as_secs_f64();
        t_cpu = Instant::now();
        let pct = |a: CpuTime, b: CpuTime| (b - a).total().as_secs_f64() / secs * 100.0;
        let (sessions, open_rooms) = health().await.unwrap_or((0, 0));
        churn.joins = joined.swap(0, Ordering::Relaxed);
        let line = Minute {
            minute: m,
            rss_mib: mib(server.rss_bytes()?),
            fds: server.open_fds()?,
            server_cpu_pct: pct(cpu0, cpu1),
            generator_cpu_pct: pct(gen0, gen1),
            sessions,
            rooms: open_rooms,
            joins: churn.joins,
            failed_joins: churn.failed_joins,
            leaves: [churn.goodbyes, churn.drops, churn.vanishes],
            tracks_added: churn.tracks_added,
            errors: churn.errors,
            expected,
            received,
            loss_pct: loss_pct(expected, received),
            transit_p50_ms: percentile(&transit, 50.0) as f64 / 1e6,
            transit_p99_ms: percentile(&transit, 99.0) as f64 / 1e6,
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
                .unwrap_or(f64::NAN),
            bad,
            mlines,
        };
        (cpu0, gen0) = (cpu1, gen1);
        churn = Churn::default();
        println!("{}", row(&line));
        minutes.push(line);
    }

    // Back to the steady core alone: every guest and viewer leaves (those told to
    // vanish hold their sockets a while longer), then the server must be where it
    // started.
    eprintln!("soak: churn stopped; waiting for the server to hold only the steady core");
    for c in rooms.iter().flatten() {
        let _ = c.control.send(Control::Leave(Leave::Goodbye));
    }
    let deadline = Instant::now() + VANISH_HOLD + Duration::from_secs(30);
    while !tasks.is_empty() && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_secs(1), tasks.join_next()).await;
    }
    tasks.abort_all();
    let mut sessions_end = 0;
    while Instant::now() < deadline + Duration::from_secs(30) {
        sessions_end = health().await.map_or(0, |h| h.0);
        if sessions_end <= quiet_start.2 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Let closed connections finish closing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet_end = (server.open_fds()?, server.rss_bytes()?, sessions_end);
    let _ = phase.send(Phase::Stop);
    for s in steady.iter_mut() {
        if let Ok(Ok(o)) = tokio::time::timeout(Duration::from_secs(10), &mut s.task).await {
            // Its own account of why it stopped beats "its task ended".
            if let Some(e) = o.error {
                s.error = Some(format!("{}: {e}", o.name));
            }
        }
    }

    let settled = minutes
        .iter()
        .find(|m| m.minute == args.settle_minutes.clamp(1, args.minutes.max(1)))
        .map_or(0.0, |m| m.rss_mib);
    let last = minutes.last().map_or(0.0, |m| m.rss_mib);
    let expected = minutes.iter().map(|m| m.expected).sum();
    let received = minutes.iter().map(|m| m.received).sum();
    let mut summary = Summary {
        quiet_fds: (quiet_start.0, quiet_end.0),
        quiet_rss_mib: (mib(quiet_start.1), mib(quiet_end.1)),
        quiet_sessions: (quiet_start.2, quiet_end.2),
        steady: steady.len() as u64,
        rss_settled_mib: settled,
        rss_last_mib: last,
        expected,
        received,
        loss_pct: loss_pct(expected, received),
        joins: minutes.iter().map(|m| m.joins).sum(),
        leaves: minutes.iter().map(|m| m.leaves.iter().sum::<u64>()).sum(),
        minutes,
        failures: Vec::new(),
    };
    summary.failures = verdict(args, &summary);
    for s in steady.iter().filter(|s| s.error.is_some()) {
        summary.failures.push(format!(
            "a steady participant of room {} failed: {}",
            s.room,
            s.error.as_deref().unwrap_or_default()
        ));
    }
    if let Some(e) = first_error {
        eprintln!("soak: first guest/viewer error: {e}");
    }
    Ok(summary)
}

/// Asks a steady participant for its snapshot (an empty one if it does not answer).
async fn take_snapshot(s: &mut Steady) -> Snapshot {
    let (tx, rx) = oneshot::channel();
    if s.control.send(Control::Snapshot(tx)).is_err() {
        return Snapshot {
            error: Some("its task ended".into()),
            ..Default::default()
        };
    }
    match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(snap)) => snap,
        _ => Snapshot {
            error: Some("no snapshot within 5 s".into()),
            ..Default::default()
        },
    }
}

/// Expected and received packets of the steady streams in `window`, over every steady
/// receiver and the other steady publishers of its room.
fn steady_delivery(steady: &[Steady], window: Window) -> (u64, u64) {
    let mut by_room: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, s) in steady.iter().enumerate() {
        by_room.entry(s.room).or_default().push(i);
    }
    let logs: Vec<Vec<Stamp>> = steady.iter().map(|s| s.sent.concat()).collect();
    let (mut expected, mut received) = (0, 0);
    for (i, s) in steady.iter().enumerate() {
        let mut probe = Probe::default();
        probe.stamps = s.received.concat();
        let from: Vec<&[Stamp]> = by_room[&s.room]
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| &logs[j][..])
            .collect();
        let d = delivery(&probe, &from, window);
        expected += d.expected;
        received += d.received;
    }
    (expected, received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rng_is_seeded_and_uniform() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, {
            let mut r = Rng::new(8);
            (0..5).map(|_| r.next_u64()).collect::<Vec<_>>()
        });
        let mut r = Rng::new(1);
        let n = 20_000;
        let mean = (0..n).map(|_| r.exp(30.0)).sum::<f64>() / n as f64;
        assert!((28.0..32.0).contains(&mean), "{mean}");
        assert!((0..n).all(|_| (0.0..1.0).contains(&r.unit())));
    }

    #[test]
    fn events_respect_the_room_limits() {
        let mut r = Rng::new(3);
        for _ in 0..1000 {
            // Full of guests and viewers, one guest not sharing: only a track added.
            assert_eq!(
                pick(&mut r, &[true, false], 3, 2, 3),
                Some(Event::AddVideo(1))
            );
            // Everything taken.
            assert_eq!(pick(&mut r, &[true, true], 3, 2, 3), None);
            // Room for a viewer only.
            let e = pick(&mut r, &[true, true], 1, 2, 3);
            assert_eq!(e, Some(Event::ViewerJoins));
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            seen.insert(format!("{:?}", pick(&mut r, &[false], 0, 2, 3)));
            seen.insert(format!("{:?}", pick_leave(&mut r)));
        }
        for e in ["Some(GuestJoins)", "Some(ViewerJoins)", "Some(AddVideo(0))"] {
            assert!(seen.contains(e), "{e} never picked: {seen:?}");
        }
        assert!(seen.contains("Goodbye") && seen.contains("Drop"));
        assert!(seen.iter().any(|s| s.starts_with("Vanish")));
    }
}
