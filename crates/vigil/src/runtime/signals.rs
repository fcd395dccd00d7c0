//! The node's own health signals, all of them about this process, none about its host:
//!
//! | signal | read from |
//! |---|---|
//! | CPU | its threads' CPU time (`/proc/self/task/*/schedstat`) against the CPU it may use: the cgroup's quota (`cpu.max`, or v1 `cpu.cfs_quota_us`), else the cores it may run on |
//! | pressure | the most of: its threads' run-queue wait (same files) per wall second; its cgroup's throttled time (`cpu.stat`); its cgroup's CPU pressure (`cpu.pressure`, PSI "some") when it has a cgroup of its own |
//! | lag | how late the runtime's periodic tick ran ([`LAG_TICK`]), the worst of the interval |
//! | memory | resident memory (`/proc/self/status` VmRSS) against the cgroup's `memory.max` (v1 `memory.limit_in_bytes`), else the host's memory |
//! | errors | its service's failed answers (5xx, 429) per request, else failed datagrams |
//! | latency | its service's mean answer time over the interval |
//!
//! The host's PSI (`/proc/pressure/cpu`) and the host's CPU usage are left out on purpose:
//! every member on a host reads the same value, so they cannot tell members apart (see
//! `docs/experiments.md`, experiment 4). Lag, latency and pressure are held at their peak
//! and decay by [`DECAY`] per sample, so a member stalling in bursts does not flap between
//! samples. Files that do not exist (another OS, no cgroup controller) read as "no signal".

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use membership::{HealthSignals, Stats};

/// How often the runtime's lag probe ticks.
pub const LAG_TICK: Duration = Duration::from_millis(100);
/// Factor a held peak (lag, latency, pressure) keeps per sample.
pub const DECAY: f64 = 0.6;

/// Answers of this member's own service, counted by the HTTP layer (see `roles`).
#[derive(Debug, Default)]
pub struct ServiceLoad {
    requests: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

impl ServiceLoad {
    /// Records one answer.
    pub fn record(&self, took: Duration, failed: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn totals(&self) -> [u64; 3] {
        [
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.micros.load(Ordering::Relaxed),
        ]
    }
}

/// Where the cgroup files of this process are, if it has any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cgroup {
    /// The directory with `cpu.max`/`cpu.stat`/`cpu.pressure` (v2) or `cpu.cfs_*` (v1).
    pub cpu: Option<PathBuf>,
    /// The directory with `memory.max` (v2) or `memory.limit_in_bytes` (v1).
    pub memory: Option<PathBuf>,
    /// Whether the CPU directory is a cgroup of its own (not the root): only then is its
    /// `cpu.pressure` about this member rather than the host.
    pub own: bool,
    /// cgroup v2.
    pub v2: bool,
}

impl Cgroup {
    /// Finds this process's cgroup from `/proc/self/cgroup`, under `root` (`/sys/fs/cgroup`).
    pub fn find(proc_self_cgroup: &str, root: &Path) -> Cgroup {
        let mut g = Cgroup::default();
        for line in proc_self_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if id == "0" && controllers.is_empty() {
                if root.join("cgroup.controllers").exists() {
                    let dir = root.join(rel);
                    g = Cgroup {
                        cpu: Some(dir.clone()),
                        memory: Some(dir),
                        own: !rel.is_empty(),
                        v2: true,
                    };
                    return g;
                }
                continue;
            }
            let names: Vec<&str> = controllers.split(',').collect();
            if names.contains(&"cpu") {
                for candidate in [controllers, "cpu"] {
                    let dir = root.join(candidate).join(rel);
                    if dir.exists() {
                        g.cpu = Some(dir);
                        g.own = !rel.is_empty();
                        break;
                    }
                }
            }
            if names.contains(&"memory") {
                g.memory = Some(root.join("memory").join(rel));
            }
        }
        g
    }
}

/// CPU time and run-queue wait of every thread, nanoseconds, from `schedstat` contents.
pub fn parse_schedstat(s: &str) -> Option<(u64, u64)> {
    let mut it = s.split_whitespace();
    let run = it.next()?.parse().ok()?;
    let wait = it.next()?.parse().ok()?;
    Some((run, wait))
}

/// Cores a cgroup's quota allows: v2 `cpu.max` ("max 100000" = none, "50000 100000" = 0.5).
pub fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let quota: f64 = it.next()?.parse().ok()?;
    let period: f64 = it.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then_some(quota / period)
}

/// Throttled time in microseconds from `cpu.stat` (v2 `throttled_usec`, v1 `throttled_time` ns).
pub fn parse_throttled_us(s: &str) -> Option<u64> {
    let mut v1 = None;
    for line in s.lines() {
        let mut it = line.split_whitespace();
        match (it.next(), it.next().and_then(|v| v.parse::<u64>().ok())) {
            (Some("throttled_usec"), Some(v)) => return Some(v),
            (Some("throttled_time"), Some(v)) => v1 = Some(v / 1000),
            _ => {}
        }
    }
    v1
}

/// Total stall time in microseconds of the "some" line of a PSI file.
pub fn parse_psi_some_total_us(s: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.starts_with("some"))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("total="))?
        .parse()
        .ok()
}

/// A memory limit in bytes ("max", or v1's near-`i64::MAX` "unlimited", = none).
pub fn parse_memory_limit(s: &str) -> Option<u64> {
    let v: u64 = s.trim().parse().ok()?;
    (v < 1 << 60).then_some(v)
}

/// A `kB` field (`VmRSS:`, `MemTotal:`) of `/proc/self/status` or `/proc/meminfo`, in bytes.
pub fn parse_kb_field(s: &str, field: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// One sample's raw readings, before peaks are held.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Raw {
    /// CPU time used, seconds per wall second (1.0 = one core).
    pub cpu_cores: f64,
    /// Cores it may use.
    pub allowed_cores: f64,
    /// Share of the interval spent waiting for a CPU (the most of run queue, throttling, PSI).
    pub pressure: f64,
    /// Worst lag of the interval.
    pub lag: Duration,
    /// Resident bytes and the limit.
    pub rss: u64,
    /// Memory limit in bytes.
    pub mem_limit: u64,
    /// Service requests, failures and mean answer time over the interval.
    pub requests: u64,
    /// Failed service answers in the interval.
    pub failed: u64,
    /// Mean service answer time in the interval (zero when there were no requests).
    pub latency: Duration,
    /// Failed and all datagrams in the interval.
    pub datagrams: (u64, u64),
}

/// Turns raw readings into signals, holding peaks (pure: the sampler's arithmetic).
#[derive(Debug, Clone, Default)]
pub struct Shaper {
    lag_ms: f64,
    latency_ms: f64,
    pressure: f64,
}

impl Shaper {
    /// The signals for this sample.
    pub fn shape(&mut self, raw: &Raw) -> HealthSignals {
        self.lag_ms = (raw.lag.as_secs_f64() * 1000.0).max(self.lag_ms * DECAY);
        self.pressure = raw.pressure.max(self.pressure * DECAY);
        let latency = if raw.requests > 0 {
            raw.latency.as_secs_f64() * 1000.0
        } else {
            0.0
        };
        self.latency_ms = latency.max(self.latency_ms * DECAY);
        let service_err = if raw.requests > 0 {
            error_pct(raw.failed, raw.requests)
        } else {
            0
        };
        let cpu = if raw.allowed_cores > 0.0 {
            raw.cpu_cores / raw.allowed_cores * 100.0
        } else {
            0.0
        };
        let mem = if raw.mem_limit > 0 {
            raw.rss as f64 / raw.mem_limit as f64 * 100.0
        } else {
            0.0
        };
        HealthSignals {
            cpu_pct: pct(cpu),
            mem_pct: pct(mem),
            error_pct: service_err.max(error_pct(raw.datagrams.0, raw.datagrams.1)),
            pressure_pct: pct(self.pressure * 100.0),
            lag_ms: self.lag_ms.round().clamp(0.0, f64::from(u16::MAX)) as u16,
            latency_ms: self.latency_ms.round().clamp(0.0, f64::from(u16::MAX)) as u16,
        }
    }
}

/// Counters read at the previous sample.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    run_ns: u64,
    wait_ns: u64,
    throttled_us: u64,
    psi_us: u64,
    service: [u64; 3],
    datagrams: (u64, u64),
}

/// Measures this process every interval.
pub struct SignalSampler {
    cgroup: Cgroup,
    host_cores: f64,
    host_memory: u64,
    last: Option<(Instant, Totals)>,
    worst_lag: Duration,
    shaper: Shaper,
}

impl Default for SignalSampler {
    fn default() -> Self {
        Self::new()
    }
}

fn read(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

impl SignalSampler {
    /// A sampler for this process; the first sample has no CPU or pressure reading yet.
    pub fn new() -> Self {
        let cgroup = read("/proc/self/cgroup")
            .map(|s| Cgroup::find(&s, Path::new("/sys/fs/cgroup")))
            .unwrap_or_default();
        SignalSampler {
            cgroup,
            host_cores: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
            host_memory: read("/proc/meminfo")
                .and_then(|s| parse_kb_field(&s, "MemTotal:"))
                .unwrap_or(0),
            last: None,
            worst_lag: Duration::ZERO,
            shaper: Shaper::default(),
        }
    }

    /// Notes how late one lag-probe tick ran.
    pub fn note_lag(&mut self, late: Duration) {
        self.worst_lag = self.worst_lag.max(late);
    }

    fn allowed_cores(&self) -> f64 {
        let quota = self.cgroup.cpu.as_ref().and_then(|dir| {
            if self.cgroup.v2 {
                read(dir.join("cpu.max")).and_then(|s| parse_cpu_max(&s))
            } else {
                let q: f64 = read(dir.join("cpu.cfs_quota_us"))?.trim().parse().ok()?;
                let p: f64 = read(dir.join("cpu.cfs_period_us"))?.trim().parse().ok()?;
                (q > 0.0 && p > 0.0).then_some(q / p)
            }
        });
        // available_parallelism already honours the affinity mask (taskset) and, on recent
        // std, the cgroup quota; the quota read here covers cgroup v1 and older std.
        quota.map_or(self.host_cores, |q| q.min(self.host_cores))
    }

    fn totals(&self, service: &ServiceLoad, stats: &Stats, send_errors: u64) -> Totals {
        let (mut run_ns, mut wait_ns) = (0, 0);
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for t in dir.flatten() {
                if let Some((r, w)) =
                    read(t.path().join("schedstat")).and_then(|s| parse_schedstat(&s))
                {
                    run_ns += r;
                    wait_ns += w;
                }
            }
        }
        let cpu_dir = self.cgroup.cpu.as_ref();
        let throttled_us = cpu_dir
            .and_then(|d| read(d.join("cpu.stat")))
            .and_then(|s| parse_throttled_us(&s))
            .unwrap_or(0);
        let psi_us = cpu_dir
            .filter(|_| self.cgroup.own)
            .and_then(|d| read(d.join("cpu.pressure")))
            .and_then(|s| parse_psi_some_total_us(&s))
            .unwrap_or(0);
        let failed = stats.decode_errors + send_errors;
        let all = stats.messages_received + stats.decode_errors + stats.messages_sent + send_errors;
        Totals {
            run_ns,
            wait_ns,
            throttled_us,
            psi_us,
            service: service.totals(),
            datagrams: (failed, all),
        }
    }

    fn memory(&self) -> (u64, u64) {
        let rss = read("/proc/self/status")
            .and_then(|s| parse_kb_field(&s, "VmRSS:"))
            .unwrap_or(0);
        let limit = self
            .cgroup
            .memory
            .as_ref()
            .and_then(|d| {
                let file = if self.cgroup.v2 {
                    "memory.max"
                } else {
                    "memory.limit_in_bytes"
                };
                read(d.join(file)).and_then(|s| parse_memory_limit(&s))
            })
            .map_or(self.host_memory, |l| {
                if self.host_memory > 0 {
                    l.min(self.host_memory)
                } else {
                    l
                }
            });
        (rss, limit)
    }

    /// Takes one sample. `send_errors` counts datagrams the transport refused.
    pub fn sample(
        &mut self,
        service: &ServiceLoad,
        stats: &Stats,
        send_errors: u64,
    ) -> HealthSignals {
        let now = Instant::now();
        let t = self.totals(service, stats, send_errors);
        let (rss, mem_limit) = self.memory();
        let mut raw = Raw {
            allowed_cores: self.allowed_cores(),
            lag: std::mem::take(&mut self.worst_lag),
            rss,
            mem_limit,
            ..Raw::default()
        };
        if let Some((at, before)) = self.last {
            let wall = now.duration_since(at).as_secs_f64().max(1e-3);
            let ns = |a: u64, b: u64| a.saturating_sub(b) as f64 / 1e9;
            raw.cpu_cores = ns(t.run_ns, before.run_ns) / wall;
            let waited = ns(t.wait_ns, before.wait_ns) / wall;
            let throttled = ns(t.throttled_us * 1000, before.throttled_us * 1000) / wall;
            let psi = ns(t.psi_us * 1000, before.psi_us * 1000) / wall;
            raw.pressure = waited.max(throttled).max(psi).min(1.0);
            let d = |i: usize| t.service[i].saturating_sub(before.service[i]);
            raw.requests = d(0);
            raw.failed = d(1);
            if let Some(mean) = d(2).checked_div(raw.requests) {
                raw.latency = Duration::from_micros(mean);
            }
            raw.datagrams = (
                t.datagrams.0.saturating_sub(before.datagrams.0),
                t.datagrams.1.saturating_sub(before.datagrams.1),
            );
        }
        self.last = Some((now, t));
        self.shaper.shape(&raw)
    }
}

fn pct(v: f64) -> u8 {
    if v.is_finite() {
        v.round().clamp(0.0, 100.0) as u8
    } else {
        0
    }
}

/// Percent of failures in an interval; 0 when nothing happened.
pub fn error_pct(failed: u64, all: u64) -> u8 {
    if all == 0 {
        0
    } else {
        pct(failed as f64 / all as f64 * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_share_is_a_percentage() {
        assert_eq!(error_pct(0, 0), 0);
        assert_eq!(error_pct(1, 4), 25);
        assert_eq!(error_pct(9, 3), 100);
    }

    #[test]
    fn a_sample_is_in_range() {
        let mut s = SignalSampler::new();
        let load = ServiceLoad::default();
        let sig = s.sample(&load, &Stats::default(), 0);
        assert!(sig.cpu_pct <= 100 && sig.mem_pct <= 100 && sig.error_pct == 0);
        s.note_lag(Duration::from_millis(300));
        let sig = s.sample(&load, &Stats::default(), 0);
        assert_eq!(sig.lag_ms, 300);
    }

    #[test]
    fn cgroup_files_parse() {
        assert_eq!(
            parse_schedstat("352254507 414822960 114\n"),
            Some((352254507, 414822960))
        );
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        let v2 = "usage_usec 10\nnr_periods 5\nnr_throttled 2\nthrottled_usec 1234\n";
        assert_eq!(parse_throttled_us(v2), Some(1234));
        let v1 = "nr_periods 5\nnr_throttled 2\nthrottled_time 7000000\n";
        assert_eq!(parse_throttled_us(v1), Some(7000));
        let psi = "some avg10=6.05 avg60=6.05 avg300=7.05 total=10591710284\n\
                   full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_psi_some_total_us(psi), Some(10591710284));
        assert_eq!(parse_memory_limit("max\n"), None);
        assert_eq!(parse_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_memory_limit("536870912\n"), Some(536870912));
        let status = "Name:\tvigil\nVmRSS:\t   20480 kB\n";
        assert_eq!(parse_kb_field(status, "VmRSS:"), Some(20480 * 1024));
    }

    #[test]
    fn cgroup_v1_and_root_are_told_apart() {
        let root = Path::new("/nonexistent-cgroup-root");
        let v1 = "4:memory:/box\n2:cpu,cpuacct:/\n0::/\n";
        let g = Cgroup::find(v1, root);
        assert_eq!(g.memory, Some(root.join("memory/box")));
        assert!(!g.v2 && !g.own);
    }

    #[test]
    fn peaks_are_held_and_decay() {
        let mut s = Shaper::default();
        let stalled = Raw {
            lag: Duration::from_millis(1000),
            pressure: 0.9,
            requests: 4,
            latency: Duration::from_millis(800),
            ..Raw::default()
        };
        let first = s.shape(&stalled);
        assert_eq!(
            (first.lag_ms, first.latency_ms, first.pressure_pct),
            (1000, 800, 90)
        );
        let quiet = Raw::default();
        let next = s.shape(&quiet);
        assert_eq!(
            (next.lag_ms, next.latency_ms, next.pressure_pct),
            (600, 480, 54)
        );
        let mut last = next;
        for _ in 0..8 {
            last = s.shape(&quiet);
        }
        assert!(last.lag_ms < 50 && last.pressure_pct < 10, "{last:?}");
    }

    #[test]
    fn cpu_is_against_the_allowance_and_memory_against_the_limit() {
        let mut s = Shaper::default();
        let sig = s.shape(&Raw {
            cpu_cores: 0.45,
            allowed_cores: 0.5,
            rss: 256,
            mem_limit: 1024,
            requests: 10,
            failed: 1,
            ..Raw::default()
        });
        assert_eq!((sig.cpu_pct, sig.mem_pct, sig.error_pct), (90, 25, 10));
    }
}
