//! Choosing a member to send work to, from this node's view of the cluster.
//!
//! Healthy members of the wanted role come first, own zone before other zones (crossing
//! zones costs latency and shares fate with fewer failures); inside each group the order is
//! a weighted shuffle by health score, so a member scoring 90 gets about twice the traffic of
//! one scoring 45 and no single member takes everything. SUSPECT, FAILED, DEGRADED and LEFT
//! members are skipped, unless the caller asks for a last resort (the producer's delivery,
//! which retries and is idempotent, may try a DEGRADED or SUSPECT consumer rather than none).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vigil::membership::{ClusterView, Status};

use vigil::runtime::{Handle, Snapshot};

/// One member to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Member id.
    pub id: String,
    /// Its HTTP address (host:port).
    pub http: String,
    /// Its health score.
    pub score: u8,
    /// Its tier: 0 HEALTHY in this zone, 1 HEALTHY elsewhere, 2 DEGRADED, 3 SUSPECT.
    pub tier: u8,
}

/// Members of `role`, best first (see the module docs).
pub fn rank(
    view: &ClusterView,
    role: &str,
    own_zone: &str,
    last_resort: bool,
    rng: &mut impl Rng,
) -> Vec<Candidate> {
    let tier = |status: Status, same_zone: bool| -> Option<u8> {
        match (status, same_zone) {
            (Status::Healthy, true) => Some(0),
            (Status::Healthy, false) => Some(1),
            (Status::Degraded, _) if last_resort => Some(2),
            (Status::Suspect, _) if last_resort => Some(3),
            _ => None,
        }
    };
    let mut keyed: Vec<(u8, f64, Candidate)> = view
        .members
        .iter()
        .filter(|m| m.role == role)
        .filter_map(|m| {
            let t = tier(m.status, m.zone == own_zone)?;
            let http = m.http_addr.clone()?;
            // Efraimidis-Spirakis: sorting by u^(1/w) descending is a weighted shuffle.
            let weight = f64::from(m.health_score.max(1));
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            Some((
                t,
                u.powf(1.0 / weight),
                Candidate {
                    id: m.id.clone(),
                    http,
                    score: m.health_score,
                    tier: t,
                },
            ))
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    keyed.into_iter().map(|(_, _, c)| c).collect()
}

/// Whether `view` has a HEALTHY member of `role` with an HTTP address: one [`rank`] would
/// route to.
pub fn routable(view: &ClusterView, role: &str) -> bool {
    view.members
        .iter()
        .any(|m| m.role == role && m.status == Status::Healthy && m.http_addr.is_some())
}

/// The zone of this node, as its own view records it.
pub fn own_zone(view: &ClusterView) -> String {
    view.member(&view.self_id)
        .map(|m| m.zone.clone())
        .unwrap_or_default()
}

/// The latest snapshot of the node's view, refreshed in the background so request handlers
/// read it without a round trip to the runtime task.
#[derive(Clone)]
pub struct ViewWatch {
    rx: watch::Receiver<Option<Taken>>,
    tx: Arc<watch::Sender<Option<Taken>>>,
    handle: Handle,
    /// Held while [`ViewWatch::current_where`] asks the node, so that requests arriving
    /// together wait for one answer rather than each asking; holds when it last asked.
    asking: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

/// A snapshot and when it was taken.
type Taken = (Instant, Arc<Snapshot>);

/// [`ViewWatch::current_where`] asks the node at most this often.
const FRESH: Duration = Duration::from_millis(20);

impl ViewWatch {
    /// Starts refreshing every `every` until `stop`; returns the watch and the task.
    pub fn start(
        handle: Handle,
        every: Duration,
        stop: CancellationToken,
    ) -> (ViewWatch, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let tx = Arc::new(tx);
        let refresh_tx = tx.clone();
        let refresh_handle = handle.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match refresh_handle.snapshot().await {
                    Ok(s) => {
                        let _ = refresh_tx.send(Some((Instant::now(), Arc::new(s))));
                    }
                    Err(_) => return,
                }
            }
        });
        let watch = ViewWatch {
            rx,
            tx,
            handle,
            asking: Arc::new(tokio::sync::Mutex::new(None)),
        };
        (watch, task)
    }

    /// The latest snapshot, if one was taken yet.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.rx.borrow().as_ref().map(|(_, s)| s.clone())
    }

    /// Whether the node holds quorum. A copy that says so is believed only for as long as
    /// the node said its quorum would last (`quorumValidForMs` when the copy was taken): a
    /// copy up to a refresh period old must not accept writes the node would refuse now.
    /// Otherwise [`ViewWatch::current_where`] asks the node.
    pub async fn quorum(&self) -> bool {
        let valid =
            |at: Instant, s: &Snapshot| s.view.has_quorum && at.elapsed() < s.view.quorum_valid_for;
        if let Some((at, s)) = self.rx.borrow().clone() {
            if valid(at, &s) {
                return true;
            }
        }
        // A snapshot that says quorum when taken is good: its validity starts now.
        let holds = |s: &Snapshot| s.view.has_quorum;
        let s = self.current_where(|_| false).await;
        s.is_some_and(|s| holds(&s))
    }

    /// The latest copy if `good` holds for it; otherwise a snapshot taken now, unless this
    /// was asked less than `FRESH` (20 ms) ago (then the latest copy). The copy can be up to a
    /// refresh period old, and a request refused for what the node gained a moment ago (a
    /// lease granted, a producer turned HEALTHY since the last refresh) would be refused by
    /// the view of the past. Asking again only on the way to a refusal keeps the normal path
    /// free of a round trip to the runtime task, and `FRESH` bounds how often a node that
    /// really lacks it is asked, whatever the rate of refused requests.
    pub async fn current_where(&self, good: impl Fn(&Snapshot) -> bool) -> Option<Arc<Snapshot>> {
        if let Some(s) = self.current().filter(|s| good(s)) {
            return Some(s);
        }
        let mut asked = self.asking.lock().await;
        let latest = self.current();
        if latest.as_ref().is_some_and(|s| good(s)) || asked.is_some_and(|t| t.elapsed() < FRESH) {
            return latest;
        }
        match self.handle.snapshot().await {
            Ok(s) => {
                let s = Arc::new(s);
                *asked = Some(Instant::now());
                let _ = self.tx.send(Some((Instant::now(), s.clone())));
                Some(s)
            }
            Err(_) => latest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use vigil::membership::{HealthSignals, MemberView};

    fn member(id: &str, role: &str, zone: &str, status: Status, score: u8) -> MemberView {
        MemberView {
            id: id.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            generation: 1,
            incarnation: 0,
            status,
            health_score: score,
            phi: 0.0,
            last_heartbeat: None,
            role: role.into(),
            zone: zone.into(),
            rack: String::new(),
            http_addr: Some(format!("{id}:80")),
            voter: true,
            monitored: true,
            signals: HealthSignals::default(),
            tags: Default::default(),
        }
    }

    fn view(members: Vec<MemberView>) -> ClusterView {
        ClusterView {
            quorum_valid_for: std::time::Duration::ZERO,
            self_id: "gw".into(),
            has_quorum: true,
            leader: None,
            voters: members.len(),
            members,
        }
    }

    fn ids(c: &[Candidate]) -> Vec<&str> {
        c.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn unhealthy_members_are_skipped_and_own_zone_comes_first() {
        let v = view(vec![
            member("far", "producer", "b", Status::Healthy, 100),
            member("near", "producer", "a", Status::Healthy, 10),
            member("sick", "producer", "a", Status::Degraded, 100),
            member("sus", "producer", "a", Status::Suspect, 100),
            member("dead", "producer", "a", Status::Failed, 100),
            member("other", "consumer", "a", Status::Healthy, 100),
        ]);
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(
            ids(&rank(&v, "producer", "a", false, &mut rng)),
            ["near", "far"]
        );
        assert_eq!(
            ids(&rank(&v, "producer", "a", true, &mut rng)),
            ["near", "far", "sick", "sus"]
        );
    }

    #[test]
    fn traffic_follows_health_scores() {
        let v = view(vec![
            member("strong", "consumer", "a", Status::Healthy, 90),
            member("weak", "consumer", "a", Status::Healthy, 30),
        ]);
        let mut rng = SmallRng::seed_from_u64(2);
        let strong = (0..4000)
            .filter(|_| rank(&v, "consumer", "a", false, &mut rng)[0].id == "strong")
            .count();
        // Expected share 90 / (90 + 30) = 75 %.
        assert!(
            (2800..3200).contains(&strong),
            "strong first {strong} of 4000"
        );
    }
}
