//! The report: one row per target and step, printed as a table and written as JSON,
//! plus Janus/lanrelay ratios when both ran.

use std::fmt::Write;

use serde::Serialize;

use super::config::{Scenario, Target};

/// One measured step.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub target: Target,
    pub scenario: Scenario,
    /// The rooms were recorded while measured (`--record`).
    pub recorded: bool,
    /// The swept number: viewers, pairs or rooms.
    pub step: usize,
    /// Which run of the step this is (`--rounds`), from 0.
    pub round: usize,
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
    /// (private memory with everyone connected − before joining) / receivers, KiB;
    /// private: RssAnon, without the shared pages of code (see `Proc::private_bytes`).
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

/// Janus ÷ lanrelay for one step: the ratio of the two targets' medians over the
/// rounds (`--rounds`; with one round, of the two runs).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ratio {
    pub step: usize,
    /// Rounds in which both targets ran.
    pub rounds: usize,
    /// Server CPU per packet, median over the rounds, µs.
    pub lanrelay_cpu_us: f64,
    pub janus_cpu_us: f64,
    pub cpu_per_packet: f64,
    /// The lowest and highest ratio of a single round (each round's two runs were
    /// next to each other in time).
    pub cpu_per_packet_min: f64,
    pub cpu_per_packet_max: f64,
    pub rss_per_receiver: f64,
    pub transit_p99: f64,
}

/// Ratios for every step both targets ran.
pub fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mut out: Vec<Ratio> = Vec::new();
    for first in rows.iter().filter(|r| r.target == Target::Lanrelay) {
        if out.iter().any(|r| r.step == first.step) {
            continue;
        }
        let of = |target: Target| -> Vec<&Row> {
            rows.iter()
                .filter(|r| {
                    r.target == target && r.step == first.step && r.scenario == first.scenario
                })
                .collect()
        };
        let (lanrelay, janus) = (of(Target::Lanrelay), of(Target::Janus));
        if janus.is_empty() {
            continue;
        }
        let each = |rows: &[&Row], f: fn(&Row) -> f64| median(rows.iter().map(|r| f(r)).collect());
        let per_round: Vec<f64> = lanrelay
            .iter()
            .filter_map(|l| {
                let j = janus.iter().find(|j| j.round == l.round)?;
                Some(div(j.server_cpu_us_per_packet, l.server_cpu_us_per_packet))
            })
            .collect();
        let (l_cpu, j_cpu) = (
            each(&lanrelay, |r| r.server_cpu_us_per_packet),
            each(&janus, |r| r.server_cpu_us_per_packet),
        );
        out.push(Ratio {
            step: first.step,
            rounds: per_round.len(),
            lanrelay_cpu_us: l_cpu,
            janus_cpu_us: j_cpu,
            cpu_per_packet: div(j_cpu, l_cpu),
            cpu_per_packet_min: per_round.iter().copied().fold(f64::INFINITY, f64::min),
            cpu_per_packet_max: per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            rss_per_receiver: div(
                each(&janus, |r| r.server_rss_per_receiver_kib),
                each(&lanrelay, |r| r.server_rss_per_receiver_kib),
            ),
            transit_p99: div(
                each(&janus, |r| r.transit_p99_us),
                each(&lanrelay, |r| r.transit_p99_us),
            ),
        });
    }
    out
}

/// The middle value (the mean of the two middle ones for an even count); NaN for none.
fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
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
    let rounds = rows.iter().any(|r| r.round > 0);
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
        let target = if rounds {
            format!("{target} #{}", r.round + 1)
        } else {
            target.to_string()
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
    if ratios.iter().any(|r| r.rounds > 1) {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| N | rounds | lanrelay µs/pkt (median) | Janus µs/pkt (median) | Janus ÷ lanrelay: CPU (rounds' range) | memory/receiver | transit p99 |"
        );
        let _ = writeln!(s, "|--:|--:|--:|--:|--:|--:|--:|");
        for r in &ratios {
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {:.2} | {:.2}x ({:.2}–{:.2}) | {:.2}x | {:.2}x |",
                r.step,
                r.rounds,
                r.lanrelay_cpu_us,
                r.janus_cpu_us,
                r.cpu_per_packet,
                r.cpu_per_packet_min,
                r.cpu_per_packet_max,
                r.rss_per_receiver,
                r.transit_p99
            );
        }
    } else if !ratios.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: Target, round: usize, cpu: f64) -> Row {
        Row {
            target,
            scenario: Scenario::OneToMany,
            step: 100,
            round,
            server_cpu_us_per_packet: cpu,
            server_rss_per_receiver_kib: 300.0,
            transit_p99_us: 1000.0,
            ..Row::default()
        }
    }

    #[test]
    fn ratio_of_medians_with_the_rounds_range() {
        let rows = [
            row(Target::Lanrelay, 0, 6.0),
            row(Target::Janus, 0, 12.0),
            row(Target::Lanrelay, 1, 9.0),
            row(Target::Janus, 1, 11.0),
            row(Target::Lanrelay, 2, 5.0),
            row(Target::Janus, 2, 13.0),
        ];
        let r = ratios(&rows);
        assert_eq!(r.len(), 1);
        let r = &r[0];
        assert_eq!((r.step, r.rounds), (100, 3));
        assert_eq!((r.lanrelay_cpu_us, r.janus_cpu_us), (6.0, 12.0));
        assert!((r.cpu_per_packet - 2.0).abs() < 1e-9);
        assert!((r.cpu_per_packet_min - 11.0 / 9.0).abs() < 1e-9);
        assert!((r.cpu_per_packet_max - 13.0 / 5.0).abs() < 1e-9);
        let t = table(&rows);
        assert!(
            t.contains("| 100 | 3 | 6.00 | 12.00 | 2.00x (1.22–2.60) |"),
            "{t}"
        );
        assert!(t.contains("| janus #3 |"), "{t}");
    }

    #[test]
    fn one_round_keeps_the_plain_table() {
        let rows = [row(Target::Lanrelay, 0, 5.0), row(Target::Janus, 0, 10.0)];
        let t = table(&rows);
        assert!(t.contains("| 100 | 2.00x | 1.00x | 1.00x |"), "{t}");
        assert!(t.contains("| lanrelay | 1→N |"), "{t}");
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
