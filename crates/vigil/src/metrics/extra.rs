//! The metrics beside membership: what this binary is (`vigil_build_info`), its HTTP
//! requests (by route and status, with latency), the log pipeline of its role, and the
//! process itself (prometheus-client has no process collector: read from `/proc/self`).
//!
//! HTTP requests are counted by a middleware ([`HttpMetrics::track`]); pipeline and process
//! values are sampled at scrape time. Counters fed from totals kept elsewhere (the producer's
//! and consumer's own counters, the process's CPU time) go up by the difference since the
//! last scrape, so they stay counters however often Prometheus asks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;

use super::declare::{metric, metric_from, metric_set, unregistered, Declare};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
    profile: String,
    features: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    status: &'static str,
    reason: &'static str,
}

/// A counter that follows a running total kept elsewhere.
struct Follower {
    counter: Counter,
    last: AtomicU64,
}

impl Follower {
    /// A follower whose counter is registered as `name` with `help`.
    fn declare(name: &'static str, help: &'static str) -> impl Declare<Follower> {
        move |registry: &mut Registry| Follower {
            counter: metric(name, help)(registry),
            last: AtomicU64::new(0),
        }
    }

    fn follow(&self, total: u64) {
        let before = self.last.swap(total, Ordering::Relaxed);
        // a total that went down (a restarted service) starts over from it
        self.counter.inc_by(total.saturating_sub(before));
    }
}

/// Registers `vigil_build_info`.
pub fn register_build_info(registry: &mut Registry) {
    let info = Family::<BuildLabels, Gauge>::default();
    registry.register(
        "vigil_build_info",
        "Always 1; the labels say which build runs: version, git commit, cargo profile, features",
        info.clone(),
    );
    info.get_or_create(&BuildLabels {
        version: crate::build_info::VERSION.into(),
        commit: crate::build_info::COMMIT.into(),
        profile: crate::build_info::PROFILE.into(),
        features: crate::build_info::features().join(","),
    })
    .set(1);
}

metric_set! {
    /// HTTP requests answered by this node, by route template (not the raw path: a member id
    /// in the path must not make a series per member) and status.
    pub struct HttpMetrics {
        requests: Family<RequestLabels, Counter> = metric(
            "vigil_http_requests",
            "HTTP requests answered, by method, route template (unmatched = no route) and status",
        ),
        duration: Family<RouteLabels, Histogram> = metric_from(
            "vigil_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            Family::<RouteLabels, Histogram>::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
        ),
    }
}

impl HttpMetrics {
    /// Registers the HTTP metrics.
    pub fn register(registry: &mut Registry) -> Self {
        Self::declare(registry)
    }

    /// Counts one answered request.
    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.into(),
                route: route.into(),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                method: method.into(),
                route: route.into(),
            })
            .observe(seconds);
    }

    /// The middleware: times the request and counts its answer.
    pub async fn track(
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        req: Request,
        next: Next,
    ) -> Response {
        let started = Instant::now();
        let method = req.method().as_str().to_string();
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", |p| p.as_str())
            .to_string();
        let response = next.run(req).await;
        metrics.http.record(
            &method,
            &route,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        response
    }
}

const QUEUE_FULL: RefusalLabels = RefusalLabels {
    status: "429",
    reason: "queue_full",
};

const NO_QUORUM: RefusalLabels = RefusalLabels {
    status: "503",
    reason: "no_quorum",
};

metric_set! {
    /// The log pipeline as this member's role sees it (zero on members without one).
    pub struct PipelineMetrics {
        queue_depth: Gauge = metric(
            "vigil_pipeline_queue_depth",
            "Events in the producer's queue, not yet handed on",
        ),
        queue_capacity: Gauge = metric(
            "vigil_pipeline_queue_capacity",
            "Events the producer's queue holds before it answers 429 (services.producer.queue-capacity)",
        ),
        accepted: Follower = Follower::declare(
            "vigil_pipeline_events_accepted",
            "Events the producer accepted into its queue",
        ),
        delivered: Follower = Follower::declare(
            "vigil_pipeline_events_delivered",
            "Events the producer handed on durably (stored, or acknowledged by Kafka)",
        ),
        refused: Family<RefusalLabels, Counter> = metric(
            "vigil_pipeline_refused",
            "POST /logs refused by the producer: 429 queue_full (backpressure), 503 no_quorum",
        ),
        refused_last: Mutex<(u64, u64)> = unregistered(Mutex::new((0, 0))),
        stored: Follower = Follower::declare(
            "vigil_pipeline_events_stored",
            "Events the consumer stored (new rows; duplicates not counted)",
        ),
        duplicates: Follower = Follower::declare(
            "vigil_pipeline_events_duplicate",
            "Events the consumer received again and ignored (already stored: retries, redeliveries)",
        ),
    }
}

impl PipelineMetrics {
    /// Registers the pipeline metrics (both refusals present at 0 from the start).
    pub fn register(registry: &mut Registry) -> Self {
        let pipeline = Self::declare(registry);
        for labels in [QUEUE_FULL, NO_QUORUM] {
            let _ = pipeline.refused.get_or_create(&labels);
        }
        pipeline
    }

    /// Copies the values of a role's health details (`/actuator/health`'s component).
    pub fn observe(&self, details: &Value) {
        let n = |key: &str| details[key].as_u64();
        if let Some(q) = n("queued") {
            self.queue_depth.set(q as i64);
        }
        if let Some(c) = n("capacity") {
            self.queue_capacity.set(c as i64);
        }
        if let Some(a) = n("accepted") {
            self.accepted.follow(a);
        }
        if let Some(d) = n("delivered") {
            self.delivered.follow(d);
        }
        if let (Some(full), Some(quorum)) = (n("refusedFull"), n("refusedNoQuorum")) {
            let mut last = self.refused_last.lock().unwrap_or_else(|p| p.into_inner());
            let refused = |labels: &RefusalLabels, n: u64| {
                self.refused.get_or_create(labels).inc_by(n);
            };
            refused(&QUEUE_FULL, full.saturating_sub(last.0));
            refused(&NO_QUORUM, quorum.saturating_sub(last.1));
            *last = (full, quorum);
        }
        if let Some(s) = n("stored") {
            self.stored.follow(s);
        }
        if let Some(d) = n("duplicatesIgnored") {
            self.duplicates.follow(d);
        }
    }
}

metric_set! {
    /// The process, from `/proc/self` (Linux; elsewhere the values stay 0), with the names
    /// the official Prometheus clients use.
    pub struct ProcessMetrics {
        cpu: Counter<f64, AtomicU64> = metric(
            "process_cpu_seconds",
            "User and system CPU time spent, seconds",
        ),
        cpu_last: Mutex<f64> = unregistered(Mutex::new(0.0)),
        resident: Gauge = metric("process_resident_memory_bytes", "Resident memory size, bytes"),
        virtual_memory: Gauge = metric("process_virtual_memory_bytes", "Virtual memory size, bytes"),
        open_fds: Gauge = metric("process_open_fds", "Open file descriptors"),
        max_fds: Gauge = metric("process_max_fds", "Limit of open file descriptors"),
        threads: Gauge = metric("process_threads", "OS threads"),
        start_time: Gauge<f64, AtomicU64> = metric(
            "process_start_time_seconds",
            "Start of the process since the unix epoch, seconds",
        ),
    }
}

impl ProcessMetrics {
    /// Registers the process metrics.
    pub fn register(registry: &mut Registry) -> Self {
        Self::declare(registry)
    }

    /// Reads `/proc/self` now.
    pub fn observe(&self) {
        let Some(stat) = ProcStat::read() else { return };
        let mut last = self.cpu_last.lock().unwrap_or_else(|p| p.into_inner());
        if stat.cpu_seconds > *last {
            self.cpu.inc_by(stat.cpu_seconds - *last);
            *last = stat.cpu_seconds;
        }
        drop(last);
        self.resident.set(stat.rss_bytes as i64);
        self.virtual_memory.set(stat.vsize_bytes as i64);
        self.threads.set(stat.threads as i64);
        self.start_time.set(stat.start_time_seconds);
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            self.max_fds.set(i64::try_from(soft).unwrap_or(i64::MAX));
        }
    }
}

/// The fields of `/proc/self/stat` the process metrics need.
struct ProcStat {
    cpu_seconds: f64,
    rss_bytes: u64,
    vsize_bytes: u64,
    threads: u64,
    start_time_seconds: f64,
}

impl ProcStat {
    fn read() -> Option<ProcStat> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces; fields count from after ')'.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
        // field numbers of proc(5), minus 3 (pid, comm, and 1-based)
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let ticks = 100.0; // USER_HZ: 100 on every Linux ABI Rust supports
        let page = 4096; // the resident set is in pages; 4 KiB on x86-64 and most arm64
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })?;
        Some(ProcStat {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            threads: field(20)?,
            start_time_seconds: boot as f64 + field(22)? as f64 / ticks,
            vsize_bytes: field(23)?,
            rss_bytes: field(24)? * page,
        })
    }
}
