//! CPU time and memory of a process from `/proc` (Linux): what the report divides by
//! forwarded packets and receivers.

use std::time::Duration;

use super::LoadError;

/// Linux reports utime/stime in clock ticks of USER_HZ, which is 100 on every
/// architecture Linux supports today.
const TICKS_PER_SECOND: u64 = 100;

/// A process to observe: a pid, or this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    Pid(u32),
    Myself,
}

impl Proc {
    fn path(&self, file: &str) -> String {
        match self {
            Proc::Pid(p) => format!("/proc/{p}/{file}"),
            Proc::Myself => format!("/proc/self/{file}"),
        }
    }

    /// CPU time of all its threads so far, in user space and in the kernel.
    pub fn cpu_time(&self) -> Result<CpuTime, LoadError> {
        let path = self.path("stat");
        let text = std::fs::read_to_string(&path).map_err(|e| LoadError::Proc(path.clone(), e))?;
        let (user, system) = parse_stat_cpu_ticks(&text).ok_or(LoadError::ProcFormat(path))?;
        let time = |ticks: u64| Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND);
        Ok(CpuTime {
            user: time(user),
            system: time(system),
        })
    }

    /// Resident memory (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> Result<u64, LoadError> {
        self.status_bytes("VmRSS:")
    }

    /// Private resident memory (RssAnon: heap, stacks, anonymous maps), in bytes: what
    /// a process holds for its work. VmRSS also counts the pages of its binary and
    /// libraries, which the first call faults in (about 3 MB of lanrelay's code) and
    /// which are shared and not per anything.
    pub fn private_bytes(&self) -> Result<u64, LoadError> {
        self.status_bytes("RssAnon:")
    }

    /// A `kB` field of `/proc/PID/status`, in bytes.
    fn status_bytes(&self, field: &str) -> Result<u64, LoadError> {
        let path = self.path("status");
        let text = std::fs::read_to_string(&path).map_err(|e| LoadError::Proc(path.clone(), e))?;
        parse_status_kb(&text, field)
            .map(|kb| kb * 1024)
            .ok_or(LoadError::ProcFormat(path))
    }

    /// Open file descriptors (entries of `/proc/PID/fd`): sockets, files, epoll and
    /// timers. A count that grows while the load stays the same is a leak.
    pub fn open_fds(&self) -> Result<u64, LoadError> {
        let path = self.path("fd");
        let dir = std::fs::read_dir(&path).map_err(|e| LoadError::Proc(path.clone(), e))?;
        Ok(dir.count() as u64)
    }

    /// Number of threads.
    pub fn threads(&self) -> Result<u64, LoadError> {
        let path = self.path("status");
        let text = std::fs::read_to_string(&path).map_err(|e| LoadError::Proc(path.clone(), e))?;
        text.lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or(LoadError::ProcFormat(path))
    }
}

/// CPU time spent in user space (utime) and in the kernel on the process's behalf
/// (stime: system calls, and on loopback the delivery of what it sends).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }
}

impl std::ops::Sub for CpuTime {
    type Output = CpuTime;
    fn sub(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// utime and stime (fields 14 and 15) from `/proc/PID/stat`. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime, stime))
}

fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A process's memory at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// VmRSS, bytes.
    pub rss: u64,
    /// RssAnon, bytes: see [`Proc::private_bytes`].
    pub private: u64,
}

impl Memory {
    pub fn of(p: Proc) -> Result<Self, LoadError> {
        Ok(Memory {
            rss: p.rss_bytes()?,
            private: p.private_bytes()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_status() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 3 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some((250, 75)));
        let status = "Name:\tlanrelay\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nRssAnon:\t    5120 kB\nThreads:\t4\n";
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(20480));
        assert_eq!(parse_status_kb(status, "RssAnon:"), Some(5120));
        assert!(Proc::Myself.cpu_time().is_ok());
        assert!(Proc::Myself.rss_bytes().unwrap() > 0);
        let private = Proc::Myself.private_bytes().unwrap();
        assert!(private > 0 && private < Proc::Myself.rss_bytes().unwrap());
        assert!(Proc::Myself.threads().unwrap() >= 1);
        // stdin, stdout, stderr at least (and the directory being read).
        assert!(Proc::Myself.open_fds().unwrap() >= 3);
    }
}
