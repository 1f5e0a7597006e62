//! What the soak reports: the line of each minute, the summary at the end, and the
//! verdict (which thresholds the run exceeded). Pure: it formats and judges what
//! `soak` measured.

use std::fmt::Write;

use super::config::Args;

/// One report line.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Minute {
    pub minute: u64,
    pub rss_mib: f64,
    pub fds: u64,
    pub server_cpu_pct: f64,
    pub generator_cpu_pct: f64,
    /// Sessions the server holds (participants and viewers, `/healthz`).
    pub sessions: u64,
    pub rooms: u64,
    pub joins: u64,
    pub failed_joins: u64,
    /// Leaves with a goodbye, by dropped sockets, by going silent.
    pub leaves: [u64; 3],
    pub tracks_added: u64,
    pub errors: u64,
    pub expected: u64,
    pub received: u64,
    pub loss_pct: f64,
    pub transit_p50_ms: f64,
    pub transit_p99_ms: f64,
    /// The machine's 1-minute load average at the minute's end (other work on the box
    /// competes for the same cores).
    pub load_average: f64,
    /// Steady packets that arrived damaged or out of sequence.
    pub bad: u64,
    /// The most m-lines in the server's last offer to a steady participant, and how
    /// many of them were stopped (tracks of guests who left).
    pub mlines: (usize, usize),
}

/// The verdict at the end.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub minutes: Vec<Minute>,
    /// With only the steady participants present: before the churn, after it.
    pub quiet_fds: (u64, u64),
    pub quiet_rss_mib: (f64, f64),
    pub quiet_sessions: (u64, u64),
    pub steady: u64,
    /// RSS at the end of the settling minutes and at the last minute.
    pub rss_settled_mib: f64,
    pub rss_last_mib: f64,
    pub expected: u64,
    pub received: u64,
    pub loss_pct: f64,
    pub joins: u64,
    pub leaves: u64,
    pub failures: Vec<String>,
}

/// What failed, in words; empty when the run passed.
pub fn verdict(args: &Args, s: &Summary) -> Vec<String> {
    let mut failures = Vec::new();
    let (fd0, fd1) = s.quiet_fds;
    if fd1 > fd0 + args.max_fd_growth {
        failures.push(format!(
            "open descriptors with only the steady core grew from {fd0} to {fd1} (more than {})",
            args.max_fd_growth
        ));
    }
    if s.quiet_sessions.1 > s.quiet_sessions.0 {
        failures.push(format!(
            "the server still holds {} sessions after the churn ended ({} before it)",
            s.quiet_sessions.1, s.quiet_sessions.0
        ));
    }
    if s.rss_settled_mib > 0.0
        && s.rss_last_mib > s.rss_settled_mib * (1.0 + args.max_rss_growth / 100.0)
    {
        failures.push(format!(
            "memory grew from {:.1} MiB (minute {}) to {:.1} MiB (more than {} %)",
            s.rss_settled_mib, args.settle_minutes, s.rss_last_mib, args.max_rss_growth
        ));
    }
    if s.loss_pct > args.max_loss {
        failures.push(format!(
            "the steady streams lost {:.3} % (more than {} %)",
            s.loss_pct, args.max_loss
        ));
    }
    failures
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

pub(crate) fn loss_pct(expected: u64, received: u64) -> f64 {
    if expected == 0 {
        return 0.0;
    }
    expected.saturating_sub(received) as f64 * 100.0 / expected as f64
}

/// The table's header (Markdown, so it pastes into docs/benchmarks.md).
pub fn header() -> String {
    "| min | RSS MiB | fds | srv CPU % | gen CPU % | sessions | rooms | joins (failed) | leaves bye/drop/vanish | tracks added | errors | steady pkts expected | received | loss % | transit p50 / p99 ms | bad | m-lines (stopped) | load avg |\n\
     |--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
        .to_string()
}

pub fn row(m: &Minute) -> String {
    format!(
        "| {} | {:.1} | {} | {:.0} | {:.0} | {} | {} | {} ({}) | {}/{}/{} | {} | {} | {} | {} | {:.3} | {:.2} / {:.1} | {} | {} ({}) | {:.1} |",
        m.minute,
        m.rss_mib,
        m.fds,
        m.server_cpu_pct,
        m.generator_cpu_pct,
        m.sessions,
        m.rooms,
        m.joins,
        m.failed_joins,
        m.leaves[0],
        m.leaves[1],
        m.leaves[2],
        m.tracks_added,
        m.errors,
        m.expected,
        m.received,
        m.loss_pct,
        m.transit_p50_ms,
        m.transit_p99_ms,
        m.bad,
        m.mlines.0,
        m.mlines.1,
        m.load_average,
    )
}

/// The closing summary: flat or growing, total loss, and what failed.
pub fn summary_text(s: &Summary) -> String {
    let mut out = String::new();
    let first = s.minutes.first();
    let _ = writeln!(
        out,
        "\nwith only the {} steady participants: {} -> {} open fds, {:.1} -> {:.1} MiB, {} -> {} sessions (before -> after the churn)",
        s.steady,
        s.quiet_fds.0,
        s.quiet_fds.1,
        s.quiet_rss_mib.0,
        s.quiet_rss_mib.1,
        s.quiet_sessions.0,
        s.quiet_sessions.1,
    );
    let _ = writeln!(
        out,
        "RSS: {:.1} MiB at minute 1, {:.1} at the end of the settling minutes, {:.1} at the last minute",
        first.map_or(0.0, |m| m.rss_mib),
        s.rss_settled_mib,
        s.rss_last_mib,
    );
    let _ = writeln!(
        out,
        "churn: {} joins, {} leaves; steady streams: {} of {} packets arrived, loss {:.4} %",
        s.joins, s.leaves, s.received, s.expected, s.loss_pct
    );
    if s.failures.is_empty() {
        let _ = writeln!(out, "soak: passed");
    } else {
        for f in &s.failures {
            let _ = writeln!(out, "soak: FAILED: {f}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn summary(fds: (u64, u64), sessions: (u64, u64), rss: (f64, f64), loss: f64) -> Summary {
        Summary {
            quiet_fds: fds,
            quiet_sessions: sessions,
            rss_settled_mib: rss.0,
            rss_last_mib: rss.1,
            loss_pct: loss,
            ..Default::default()
        }
    }

    #[test]
    fn the_verdict_names_each_leak() {
        let args = Args::try_parse_from(["lanrelay-load", "--scenario", "soak"]).unwrap();
        assert!(verdict(&args, &summary((40, 44), (40, 40), (30.0, 33.0), 0.01)).is_empty());
        let f = verdict(&args, &summary((40, 60), (40, 45), (30.0, 40.0), 2.0));
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f[0].contains("from 40 to 60"), "{}", f[0]);
        assert!(f[1].contains("45 sessions"), "{}", f[1]);
        assert!(f[2].contains("30.0 MiB"), "{}", f[2]);
        assert!(f[3].contains("2.000 %"), "{}", f[3]);
    }
}
