//! The report: one row per target and step, printed as a table and written as JSON,
//! plus Janus/lanrelay ratios when both ran.

use std::fmt::Write;

use serde::Serialize;

use super::config::{Scenario, Target};

/// One measured step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub target: Target,
    pub scenario: Scenario,
    /// The rooms were recorded while measured (`--record`).
    pub recorded: bool,
    /// The swept number: viewers, pairs or rooms.
    pub step: usize,
    pub publishers: usize,
    /// PeerConnections that receive media.
    pub receivers: usize,
    /// Participants that reached "receiving every expected stream" at some point
    /// (of all started), before or during the window.
    pub connected: usize,
    /// Receivers that got media from every publisher they expect during the last
    /// 2 s of the counting window (a stalled receiver is not counted).
    pub receiving: usize,
    pub participants: usize,
    pub failed_joins: usize,
    /// Packets the receivers got per second (the forwarded packets that arrived).
    pub forwarded_pps: f64,
    /// The server's own count (lanrelay `/healthz` forwardedPackets delta), per second.
    pub server_forwarded_pps: Option<f64>,
    /// Payload bit rate into all receivers, Mbit/s.
    pub forwarded_mbps: f64,
    /// Server CPU (user + system) over the window, percent of one core.
    pub server_cpu_pct: f64,
    /// Server CPU time per packet the receivers got, microseconds.
    pub server_cpu_us_per_packet: f64,
    /// The part of it spent in the kernel (system calls; on loopback this includes
    /// delivering each datagram to the receiving socket).
    pub server_sys_us_per_packet: f64,
    pub server_rss_before_mib: f64,
    /// (RSS with everyone connected − RSS before joining) / receivers, KiB.
    pub server_rss_per_receiver_kib: f64,
    /// Transit from the publisher's stamp to the kernel's arrival timestamp at the
    /// receiver's socket, microseconds.
    pub transit_p50_us: f64,
    pub transit_p90_us: f64,
    pub transit_p99_us: f64,
    pub transit_max_us: f64,
    /// Audio packets alone (small, every 20 ms).
    pub audio_transit_p99_us: f64,
    /// Transit to the moment the generator read the packet (adds its own queueing:
    /// grows when the generator, not the server, is the bottleneck).
    pub read_transit_p50_us: f64,
    pub read_transit_p99_us: f64,
    /// Lost packets, percent of expected: per receiver and per stream of each
    /// publisher it expects, the packets the publisher sent in the counting window
    /// (the measuring window less `loss_allowance_ms` at each end) that never arrived.
    /// A receiver that stalls or gets nothing loses everything sent meanwhile.
    pub loss_pct: f64,
    pub expected_packets: u64,
    pub lost_packets: u64,
    /// Packets sent this close to either end of the window are not counted (in
    /// flight at the close); the receivers' read-transit p99, at least 100 ms.
    pub loss_allowance_ms: f64,
    /// Packets that arrived more than once (counted once).
    pub duplicates: u64,
    /// Intact packets that none of the receiver's publishers sent.
    pub unexpected: u64,
    /// Missing packet numbers between packets that did arrive, per stream (the old
    /// loss measure; blind to stalls, includes simulcast layer switches).
    pub gaps: u64,
    pub corrupt: u64,
    pub seq_breaks: u64,
    pub reordered: u64,
    /// From join to receiving every expected video stream.
    pub connect_p50_ms: f64,
    pub connect_max_ms: f64,
    /// The generator's own CPU, percent of one core, and of the cores it may use.
    pub generator_cpu_pct: f64,
    pub generator_threads: usize,
    /// The generator used ≥ 90 % of its threads: figures above this are its limit.
    pub generator_saturated: bool,
    pub send_drops: u64,
    /// RTP packets the publishers wrote during the window.
    pub sent_packets: u64,
    /// The machine's 1-minute load average when the window closed (other work on the
    /// box competes for the same cores and shows here).
    pub load_average: f64,
    pub errors: Vec<String>,
}

/// Janus ÷ lanrelay for one step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ratio {
    pub step: usize,
    pub cpu_per_packet: f64,
    pub rss_per_receiver: f64,
    pub transit_p99: f64,
}

/// Ratios for every step both targets ran.
pub fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for l in rows.iter().filter(|r| r.target == Target::Lanrelay) {
        let Some(j) = rows
            .iter()
            .find(|r| r.target == Target::Janus && r.step == l.step && r.scenario == l.scenario)
        else {
            continue;
        };
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        out.push(Ratio {
            step: l.step,
            cpu_per_packet: div(j.server_cpu_us_per_packet, l.server_cpu_us_per_packet),
            rss_per_receiver: div(j.server_rss_per_receiver_kib, l.server_rss_per_receiver_kib),
            transit_p99: div(j.transit_p99_us, l.transit_p99_us),
        });
    }
    out
}

/// The human table (Markdown, so it pastes into the README).
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| target | scenario | N | pub | recv | conn | rcv'ing | fwd pkt/s | server pkt/s | Mbit/s | srv CPU % | µs/pkt (kernel) | KiB/recv | transit p50 / p99 / max ms | loss % | bad | connect p50 / max ms | gen CPU % |"
    );
    let _ = writeln!(
        s,
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for r in rows {
        let scenario = match r.scenario {
            Scenario::OneToMany => "1→N",
            Scenario::Pairs => "pairs",
            Scenario::Rooms => "rooms",
            Scenario::Soak => "soak",
        };
        let target = match (r.target, r.recorded) {
            (Target::Lanrelay, false) => "lanrelay",
            (Target::Lanrelay, true) => "lanrelay + recording",
            (Target::Janus, _) => "janus",
        };
        let _ = writeln!(
            s,
            "| {target} | {scenario} | {} | {} | {} | {}/{} | {}/{} | {:.0} | {} | {:.1} | {:.0} | {:.2} ({:.1}) | {:.0} | {:.3} / {:.3} / {:.1} | {:.3} | {} | {:.0} / {:.0} | {:.0}{} |",
            r.step,
            r.publishers,
            r.receivers,
            r.connected,
            r.participants,
            r.receiving,
            r.receivers,
            r.forwarded_pps,
            r.server_forwarded_pps
                .map_or("–".to_string(), |v| format!("{v:.0}")),
            r.forwarded_mbps,
            r.server_cpu_pct,
            r.server_cpu_us_per_packet,
            r.server_sys_us_per_packet,
            r.server_rss_per_receiver_kib,
            r.transit_p50_us / 1000.0,
            r.transit_p99_us / 1000.0,
            r.transit_max_us / 1000.0,
            r.loss_pct,
            r.corrupt + r.seq_breaks,
            r.connect_p50_ms,
            r.connect_max_ms,
            r.generator_cpu_pct,
            if r.generator_saturated { " (sat.)" } else { "" },
        );
    }
    let ratios = ratios(rows);
    if !ratios.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| N | Janus ÷ lanrelay: CPU µs/pkt | memory/receiver | transit p99 |"
        );
        let _ = writeln!(s, "|--:|--:|--:|--:|");
        for r in &ratios {
            let _ = writeln!(
                s,
                "| {} | {:.2}x | {:.2}x | {:.2}x |",
                r.step, r.cpu_per_packet, r.rss_per_receiver, r.transit_p99
            );
        }
    }
    for r in rows.iter().filter(|r| !r.errors.is_empty()) {
        let _ = writeln!(
            s,
            "\n{:?} N={}: {} error(s), first: {}",
            r.target,
            r.step,
            r.errors.len(),
            r.errors[0]
        );
    }
    s
}
