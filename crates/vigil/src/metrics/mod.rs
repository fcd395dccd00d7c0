//! Prometheus metrics (prometheus-client), with the seed's names first.
//!
//! Counters come from the core's [`Stats`] (copied as deltas at every scrape), gauges from a
//! [`ClusterView`] taken at scrape time, histograms and the event counter from [`Event`]s as
//! the runtime sees them. Every metric is declared once, with its name and help, in
//! [`Metrics`] (see `declare`); the build, HTTP, pipeline and process metrics are in
//! [`extra`].

mod declare;
pub mod extra;

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use membership::{ClusterView, Event, Stats};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use declare::{metric, metric_from, metric_set, unregistered};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberLabels {
    member: String,
}

/// One upstream of the gateway: `role` producer (writes) or consumer (reads).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    role: &'static str,
    member: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    role: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    handler: String,
    outcome: &'static str,
}

/// The reasons of `cluster_gossip_rejected`, each present at 0 from the start so that
/// `rate()` works on the first drop.
const REJECTED_REASONS: [&str; 5] = [
    "rate_limited",
    "unsealed",
    "bad_seal",
    "replayed",
    "member_rate_limited",
];

metric_set! {
    /// Every metric of one node.
    pub struct Metrics {
        heartbeats_sent: Counter = metric("cluster_heartbeats_sent", "Heartbeats sent")
            => stats.heartbeats_sent,
        heartbeats_received: Counter = metric("cluster_heartbeats_received", "Heartbeats received")
            => stats.heartbeats_received,
        failures_detected: Counter = metric(
            "cluster_failures_detected",
            "Node failures detected (members this node saw turn FAILED)",
        ) => stats.failures_detected,
        messages_sent: Counter = metric("cluster_gossip_messages_sent", "Datagrams sent, all kinds")
            => stats.messages_sent,
        messages_received: Counter = metric(
            "cluster_gossip_messages_received",
            "Datagrams received and decoded, all kinds",
        ) => stats.messages_received,
        bytes_sent: Counter = metric("cluster_gossip_sent_bytes", "Bytes of datagrams sent")
            => stats.bytes_sent,
        bytes_received: Counter = metric("cluster_gossip_received_bytes", "Bytes of datagrams received")
            => stats.bytes_received,
        decode_errors: Counter = metric(
            "cluster_gossip_decode_errors",
            "Datagrams dropped because they did not decode",
        ) => stats.decode_errors,
        rejected: Family<ReasonLabels, Counter> = metric(
            "cluster_gossip_rejected",
            "Datagrams dropped before the core by reason: rate_limited (per-source limit), \
             unsealed (no seal while keys are on), bad_seal (wrong key, other cluster, altered), \
             replayed (a sealed datagram seen before, too old for the replay window, or of an \
             earlier start of its sender), member_rate_limited (per-member limit after the seal)",
        ),
        members_refused: Counter = metric(
            "cluster_members_refused",
            "Records of unknown members refused because the table is full (cluster.limits.max-members)",
        ) => stats.members_refused,
        answers_withheld: Counter = metric(
            "cluster_answers_withheld",
            "Datagrams not sent because they would have given a sender not known as a member \
             more bytes than it sent",
        ) => stats.answers_withheld,
        records_oversize: Counter = metric(
            "cluster_records_oversize",
            "Records refused because their metadata exceeds cluster.limits.max-metadata-bytes",
        ) => stats.records_oversize,
        future_generations: Counter = metric(
            "cluster_future_generations",
            "Datagrams and records refused because they claim a generation more than an hour past this node's clock (forged, or a host whose clock is far ahead)",
        ) => stats.future_generations,
        stale_lives: Counter = metric(
            "cluster_stale_lives",
            "Records refused because they describe a life of a member whose tombstone was already collected (replays, stale gossip)",
        ) => stats.stale_lives,
        stale_heartbeats: Counter = metric(
            "cluster_stale_heartbeats",
            "Heartbeats ignored as replays, reordered or of an older life of the sender",
        ) => stats.stale_heartbeats,
        self_announcements: Counter = metric(
            "cluster_self_announcements",
            "Times this node raised its incarnation because none of its observers was vouched for on its side of a suspected partition",
        ) => stats.announcements,
        witness_accusations: Counter = metric(
            "cluster_witness_accusations",
            "Suspects this node accused as a stand-in for observers it could not hear from, after its probe went unanswered",
        ) => stats.witness_accusations,
        syncs_started: Counter = metric(
            "cluster_anti_entropy_syncs",
            "Anti-entropy exchanges started by this node",
        ) => stats.syncs_started,
        last_stats: Mutex<Stats> = unregistered(Mutex::default()),
        healthy_nodes: Gauge = metric(
            "cluster_healthy_nodes",
            "Members currently HEALTHY in this node's view",
        ),
        nodes: Family<StatusLabels, Gauge> = metric(
            "cluster_nodes",
            "Members in this node's view by status",
        ),
        has_quorum: Gauge = metric(
            "cluster_has_quorum",
            "1 when this node reaches a quorum of voters, else 0",
        ),
        voters: Gauge = metric("cluster_voters", "Voters in this node's view"),
        is_leader: Gauge = metric(
            "cluster_is_leader",
            "1 when this node is the leader it recognizes, else 0",
        ),
        member_phi: Family<MemberLabels, Gauge<f64, AtomicU64>> = metric(
            "cluster_member_phi",
            "Phi-accrual suspicion level of each member this node watches directly (absent for itself and for members others watch)",
        ),
        member_health: Family<MemberLabels, Gauge> = metric(
            "cluster_member_health_score",
            "Health score 0-100 of each member as seen here",
        ),
        events: Family<EventLabels, Counter> = metric(
            "cluster_membership_events",
            "Membership events seen by this node, by kind",
        ),
        failure_detection: Histogram = metric_from(
            "cluster_failure_detection_seconds",
            "Silence of a member, as watched by this node, when this node saw it turn FAILED",
            Histogram::new([0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0]),
        ),
        propagation: Histogram = metric_from(
            "cluster_gossip_propagation_seconds",
            "Time from a member's start (its generation, wall clock) to this node learning of it; needs synchronized clocks",
            Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0]),
        ),
        handler_events: Family<HandlerLabels, Counter> = metric(
            "cluster_event_handler_events",
            "Events given to each node.event-handlers command (handler = its index) by outcome: \
             ok, failed (non-zero exit or could not start), timeout (killed after \
             node.event-handler-timeout), dropped (the handler fell too far behind)",
        ),
        _build_info: () = extra::register_build_info,
        /// HTTP requests, counted by the API's middleware.
        pub http: extra::HttpMetrics = extra::HttpMetrics::register,
        pipeline: extra::PipelineMetrics = extra::PipelineMetrics::register,
        process: extra::ProcessMetrics = extra::ProcessMetrics::register,
        signal_updates: Counter = metric(
            "cluster_signal_updates",
            "Changes of this node's own health signals published to the cluster (at most one per node.signals-interval)",
        ),
        signal_update_bytes: Counter = metric(
            "cluster_signal_update_bytes",
            "Encoded metadata bytes of those changes: each one is gossiped to every member a bounded number of times",
        ),
        routed: Family<RouteLabels, Counter> = metric(
            "gateway_routed_requests",
            "Requests the gateway sent to each member (every attempt; role producer for writes, consumer for reads)",
        ),
        ejections: Family<RouteLabels, Counter> = metric(
            "gateway_ejections",
            "Times the gateway's outlier detection ejected each member",
        ),
        ejected: Family<RouteLabels, Gauge> = metric(
            "gateway_ejected",
            "1 while the gateway's outlier detection keeps a member out of rotation",
        ),
        route_weight: Family<RouteLabels, Gauge<f64, AtomicU64>> = metric(
            "gateway_route_weight",
            "Each member's routing weight at the gateway (health squared over peak-EWMA latency, normalized to sum 1)",
        ),
        retries: Family<RetryLabels, Counter> = metric(
            "gateway_retries",
            "Second and later attempts of a request: taken (within the retry budget) or refused",
        ),
        // Declared last, it takes the registry every metric above was registered in.
        registry: Registry = std::mem::take,
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let metrics = Self::declare(&mut Registry::default());
        for reason in REJECTED_REASONS {
            let _ = metrics.rejected.get_or_create(&ReasonLabels { reason });
        }
        metrics
    }

    /// Counts `n` events of handler number `handler` that ended in `outcome`.
    pub fn handler_events(&self, handler: usize, outcome: &'static str, n: u64) {
        self.handler_events
            .get_or_create(&HandlerLabels {
                handler: handler.to_string(),
                outcome,
            })
            .inc_by(n);
    }

    /// Records one event; `own_generation` and `wall_now_ms` date join propagation.
    pub fn on_event(&self, event: &Event, own_generation: u64, wall_now_ms: u64) {
        let kind = event.kind();
        self.events
            .get_or_create(&EventLabels { event: kind.into() })
            .inc();
        match event {
            Event::MemberFailed {
                silent_for: Some(silent),
                ..
            } => {
                self.failure_detection.observe(silent.as_secs_f64());
            }
            // Only members that started after this node: for older ones the delay is this
            // node's own late start, not propagation.
            Event::MemberJoined { generation, .. } | Event::MemberRejoined { generation, .. }
                if *generation > own_generation && wall_now_ms >= *generation =>
            {
                self.propagation
                    .observe(Duration::from_millis(wall_now_ms - generation).as_secs_f64());
            }
            _ => {}
        }
    }

    /// Counts one published change of this node's health signals, `bytes` of metadata.
    pub fn signals_published(&self, bytes: u64) {
        self.signal_updates.inc();
        self.signal_update_bytes.inc_by(bytes);
    }

    /// Counts one attempt the gateway sent to `member`, a `role` (producer or consumer).
    pub fn routed(&self, role: &'static str, member: &str) {
        self.routed
            .get_or_create(&RouteLabels {
                role,
                member: member.to_string(),
            })
            .inc();
    }

    /// Counts one retry to a `role`, `taken` or refused by the retry budget.
    pub fn retry(&self, role: &'static str, taken: bool) {
        let reason = if taken { "taken" } else { "refused_by_budget" };
        self.retries
            .get_or_create(&RetryLabels { role, reason })
            .inc();
    }

    /// Copies the state of the gateway's balancer for `role`: ejections so far, who is
    /// ejected, the weights. The balancer never forgets a member, so rows are only updated.
    pub fn balancer(&self, role: &'static str, members: &[(String, u64, bool, f64)]) {
        for (member, ejections, ejected, weight) in members {
            let l = RouteLabels {
                role,
                member: member.clone(),
            };
            let c = self.ejections.get_or_create(&l);
            let seen = c.get();
            if *ejections > seen {
                c.inc_by(ejections - seen);
            }
            self.ejected.get_or_create(&l).set(i64::from(*ejected));
            self.route_weight.get_or_create(&l).set(*weight);
        }
    }

    /// Counts a datagram dropped before the core (see `cluster_gossip_rejected`).
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Copies counters and gauges from a fresh view and the core's counters.
    pub fn observe(&self, view: &ClusterView, stats: &Stats) {
        let mut last = self.last_stats.lock().unwrap_or_else(|p| p.into_inner());
        self.follow_stats(stats, &last);
        *last = stats.clone();
        drop(last);

        self.healthy_nodes.set(view.healthy() as i64);
        for (status, count) in view.count_by_status() {
            self.nodes
                .get_or_create(&StatusLabels {
                    status: status.as_str().into(),
                })
                .set(count as i64);
        }
        self.has_quorum.set(i64::from(view.has_quorum));
        self.voters.set(view.voters as i64);
        self.is_leader.set(i64::from(
            view.leader.as_deref() == Some(view.self_id.as_str()),
        ));
        // Members come and go: start from empty so that evicted ones disappear.
        self.member_phi.clear();
        self.member_health.clear();
        for m in &view.members {
            let labels = MemberLabels {
                member: m.id.clone(),
            };
            // Phi is this node's detector's, so only for members it watches (as in
            // `/cluster/status`'s `phiScore`): others' would be a stale or made-up 0.
            if m.monitored {
                let phi = if m.phi.is_finite() { m.phi } else { f64::MAX };
                self.member_phi.get_or_create(&labels).set(phi);
            }
            self.member_health
                .get_or_create(&labels)
                .set(i64::from(m.health_score));
        }
    }

    /// Samples the role's pipeline from its health details (see [`extra::PipelineMetrics`]).
    pub fn observe_pipeline(&self, details: &serde_json::Value) {
        self.pipeline.observe(details);
    }

    /// Samples the process from `/proc/self`.
    pub fn observe_process(&self) {
        self.process.observe();
    }

    /// The Prometheus text format (0.0.4), which `promtool check metrics` reads.
    pub fn encode(&self) -> String {
        let mut open_metrics = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry);
        to_classic_text(&open_metrics)
    }
}

/// prometheus-client writes OpenMetrics, where a counter family `x` has samples `x_total`.
/// The classic text format names the family `x_total` too, and has no `# EOF` or `# UNIT`.
fn to_classic_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_metric_names_are_exported() {
        let m = Metrics::new();
        m.observe(
            &ClusterView {
                quorum_valid_for: std::time::Duration::ZERO,
                self_id: "a".into(),
                has_quorum: true,
                leader: Some("a".into()),
                voters: 1,
                members: vec![],
            },
            &Stats {
                heartbeats_sent: 3,
                ..Default::default()
            },
        );
        m.on_event(
            &Event::MemberFailed {
                id: "b".into(),
                generation: 1,
                silent_for: Some(Duration::from_secs(4)),
                decided_here: true,
            },
            1,
            2,
        );
        let text = m.encode();
        assert!(
            text.contains("# TYPE cluster_heartbeats_sent_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        for name in [
            "cluster_heartbeats_sent_total 3",
            "cluster_heartbeats_received_total",
            "cluster_failures_detected_total",
            "cluster_healthy_nodes 0",
            "cluster_has_quorum 1",
            "cluster_nodes{status=\"FAILED\"} 0",
            "cluster_failure_detection_seconds_bucket{le=\"5.0\"} 1",
            "cluster_membership_events_total{event=\"member_failed\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }

    #[test]
    fn counters_follow_the_core_without_double_counting() {
        let m = Metrics::new();
        let view = ClusterView {
            quorum_valid_for: std::time::Duration::ZERO,
            self_id: "a".into(),
            has_quorum: false,
            leader: None,
            voters: 0,
            members: vec![],
        };
        m.observe(
            &view,
            &Stats {
                heartbeats_received: 5,
                ..Default::default()
            },
        );
        m.observe(
            &view,
            &Stats {
                heartbeats_received: 7,
                witness_accusations: 2,
                ..Default::default()
            },
        );
        let text = m.encode();
        assert!(text.contains("cluster_heartbeats_received_total 7"));
        assert!(text.contains("cluster_witness_accusations_total 2"));
    }

    #[test]
    fn every_declared_metric_is_in_the_registry_the_node_exports() {
        let m = Metrics::new();
        m.observe_pipeline(&serde_json::json!({"refusedFull": 2, "refusedNoQuorum": 1}));
        m.observe_pipeline(&serde_json::json!({"refusedFull": 5, "refusedNoQuorum": 1}));
        m.observe(
            &ClusterView {
                quorum_valid_for: Duration::ZERO,
                self_id: "a".into(),
                has_quorum: false,
                leader: None,
                voters: 0,
                members: vec![],
            },
            &Stats {
                announcements: 4,
                ..Default::default()
            },
        );
        let text = m.encode();
        for line in [
            // the first declared, one from each part, and the last
            "# TYPE cluster_heartbeats_sent_total counter",
            "cluster_gossip_rejected_total{reason=\"bad_seal\"} 0",
            "cluster_self_announcements_total 4",
            "# TYPE vigil_build_info gauge",
            "# TYPE vigil_http_requests_total counter",
            "vigil_pipeline_refused_total{status=\"429\",reason=\"queue_full\"} 5",
            "vigil_pipeline_refused_total{status=\"503\",reason=\"no_quorum\"} 1",
            "# TYPE process_cpu_seconds_total counter",
            "# TYPE gateway_retries_total counter",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
