//! The multi-host fault lab: every node in its own network namespace with its own address
//! on a private bridge, faults applied by `integration-tests/lab/netns-lab.sh`, default
//! detection settings. Scenarios: split brain {2}|{3}, a one-way partition, an isolated and
//! an unplugged host, 20 % loss, delay, a rolling restart, kill/freeze/thaw; and 50 hosts
//! converging (about 5 s with setup and teardown).
//!
//! Needs root, iproute2 and nftables (python3 for delay); without them every test prints
//! `SKIPPED ...` and passes. The labs run one at a time. `MEASURED:` lines carry the numbers
//! reported in `docs/lab.md`: `cargo test -p vigil-cli --test lab -- --nocapture`.

#[path = "harness/browser.rs"]
mod browser;
#[path = "lab/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use harness::{all_converged, has_quorum, leader, status_of, views, Lab, Snapshot};

/// Lets the detectors learn the heartbeat rhythm before a fault (not a correctness wait).
const WARM_UP: Duration = Duration::from_secs(3);

fn started(test: &str, n: usize) -> Option<Lab> {
    started_as(test, n, |_| Vec::new())
}

/// [`started`], with `extra_for(i)` as the extra `vigil node` arguments of host `i`.
fn started_as(test: &str, n: usize, extra_for: impl Fn(usize) -> Vec<String>) -> Option<Lab> {
    let mut lab = Lab::new(test, n)?;
    let took = lab.start_all_with(extra_for, Duration::from_secs(30));
    eprintln!("MEASURED: {test}: {n} hosts, last start -> converged in {took:.2?}");
    std::thread::sleep(WARM_UP);
    Some(lab)
}

fn view(snap: &Snapshot, i: usize) -> Option<&serde_json::Value> {
    snap[i - 1].as_ref()
}

/// Whether every host in `hosts` answers and `pred` holds for its view.
fn all(snap: &Snapshot, hosts: &[usize], pred: impl Fn(&serde_json::Value) -> bool) -> bool {
    hosts.iter().all(|&i| view(snap, i).is_some_and(&pred))
}

fn generation(snap: &Snapshot, observer: usize, member: usize) -> u64 {
    view(snap, observer).expect("answers")["membership"][Lab::id(member)]["generation"]
        .as_u64()
        .unwrap_or(0)
}

/// Leaders named by nodes that hold quorum.
fn quorum_leaders(snap: &Snapshot) -> BTreeSet<String> {
    snap.iter()
        .flatten()
        .filter(|v| has_quorum(v))
        .filter_map(|v| leader(v).map(str::to_string))
        .collect()
}

/// Checks, sample by sample, that the nodes holding quorum never name different leaders
/// at one sampling instant (each [`Snapshot`] is one pass over every node), and counts how
/// many nodes named themselves leader at once.
#[derive(Default)]
struct OneLeader {
    samples: usize,
    violations: Vec<String>,
    /// Most nodes naming themselves leader in one sample, and where that was first seen.
    most_self_leaders: usize,
    most_self_leaders_at: String,
}

impl OneLeader {
    fn sample(&mut self, phase: &str, t: Duration, snap: &Snapshot) {
        self.samples += 1;
        let holders: Vec<(String, Option<&str>)> = snap
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.as_ref().map(|v| (Lab::id(k + 1), v)))
            .filter(|(_, v)| has_quorum(v))
            .map(|(id, v)| (id, leader(v)))
            .collect();
        let named: BTreeSet<&str> = holders.iter().filter_map(|(_, l)| *l).collect();
        if named.len() > 1 {
            let who: Vec<String> = holders
                .iter()
                .map(|(id, l)| format!("{id} names {}", l.unwrap_or("no leader")))
                .collect();
            self.violations.push(format!(
                "{phase} +{t:.2?}: quorum holders name {} leaders: {}",
                named.len(),
                who.join(", ")
            ));
        }
        let selves: Vec<String> = snap
            .iter()
            .enumerate()
            .filter_map(|(k, v)| {
                let id = Lab::id(k + 1);
                (leader(v.as_ref()?) == Some(id.as_str())).then_some(id)
            })
            .collect();
        if selves.len() > self.most_self_leaders {
            self.most_self_leaders = selves.len();
            self.most_self_leaders_at = format!("{phase} +{t:.2?} ({})", selves.join(", "));
        }
    }

    /// Prints the counts, then fails the test if any sample named two leaders.
    fn report(&self, test: &str) {
        eprintln!(
            "MEASURED: {test}: one-leader check over {} samples: {} with quorum holders naming \
             different leaders; most nodes naming themselves leader at once: {}{}",
            self.samples,
            self.violations.len(),
            self.most_self_leaders,
            if self.most_self_leaders > 0 {
                format!(" (first at {})", self.most_self_leaders_at)
            } else {
                String::new()
            }
        );
        assert!(
            self.violations.is_empty(),
            "{test}: quorum holders named different leaders in {} of {} samples; first ones:\n{}",
            self.violations.len(),
            self.samples,
            self.violations
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Whether no node lists any member FAILED.
/// Opens the console of each host in `expect` in chromium (outside the lab, through
/// [`Lab::forward_http`]) and waits until it shows quorum as expected: the no-quorum banner
/// exactly where there is none.
fn consoles_show_quorum(lab: &Lab, expect: &[(usize, bool)]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(browser) = rt.block_on(browser::Browser::start("lab console")) else {
        return;
    };
    for &(i, quorum) in expect {
        let port = lab.forward_http(i);
        rt.block_on(async {
            browser.open(&format!("http://127.0.0.1:{port}/ui")).await;
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let seen = browser
                    .script(
                        "return [document.body.dataset.hasQuorum || null, \
                         !document.getElementById('no-quorum').hidden]",
                    )
                    .await;
                let want = serde_json::json!([quorum.to_string(), !quorum]);
                if seen == want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "n{i}'s console: [hasQuorum, banner shown] = {seen}, want {want}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        eprintln!(
            "lab console: n{i} shows quorum {quorum} (banner {})",
            !quorum
        );
    }
}

fn nobody_failed(snap: &Snapshot) -> Result<(), String> {
    for (k, v) in snap.iter().enumerate() {
        if let Some(v) = v {
            for (id, r) in v["membership"].as_object().into_iter().flatten() {
                if r["status"] == "FAILED" {
                    return Err(format!("n{} lists {id} FAILED", k + 1));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn split_brain_fences_the_minority_and_heals_into_one_view() {
    // Hosts 1-4 run the producer service, so writes can be tried on both sides; host 5 (in
    // the majority) the consumer, because a producer answers 202 only once the write is
    // stored.
    let store = std::env::temp_dir().join(format!("vigil-lab-{}-n5.sqlite", std::process::id()));
    let Some(lab) = started_as("split-brain", 5, |i| {
        if i == 5 {
            vec![
                "--role".into(),
                "consumer".into(),
                "--set".into(),
                format!("services.consumer.sqlite-path={}", store.display()),
            ]
        } else {
            vec!["--role".into(), "producer".into()]
        }
    }) else {
        return;
    };
    let event = r#"[{"service":"lab","level":"INFO","message":"split brain"}]"#;
    assert_eq!(
        lab.post(1, "/logs", event),
        Some(202),
        "a write before the cut"
    );
    let (minority, majority): ([usize; 2], [usize; 3]) = ([1, 2], [3, 4, 5]);
    let old_gen = generation(&lab.statuses(), 3, 1);

    let cut = Instant::now();
    lab.partition(&[&minority[..], &majority[..]]);
    // Sampled at every poll while split and for 10 s after the heal.
    let mut one_leader = OneLeader::default();
    let mut fenced = None;
    let mut failed = None;
    // When two quorum leaders were seen (the same condition `one_leader` asserts).
    let mut two_leaders: Option<(Duration, Duration)> = None;
    lab.wait_until(
        "minority fenced, majority convicts it",
        Duration::from_secs(30),
        |s| {
            one_leader.sample("split", cut.elapsed(), s);
            if quorum_leaders(s).len() > 1 {
                let t = cut.elapsed();
                two_leaders = Some((two_leaders.map_or(t, |(a, _)| a), t));
            }
            if fenced.is_none() && all(s, &minority, |v| !has_quorum(v) && leader(v).is_none()) {
                fenced = Some(cut.elapsed());
            }
            let convicted = all(s, &majority, |v| {
                has_quorum(v)
                    && minority
                        .iter()
                        .all(|&m| status_of(v, &Lab::id(m)) == "FAILED")
            });
            if failed.is_none() && convicted {
                failed = Some(cut.elapsed());
            }
            fenced.is_some() && failed.is_some()
        },
    );
    // The minority is read-only, the majority takes writes (each producer reads its node's
    // view at most a second late: wait for the answer with a deadline).
    let deadline = Instant::now() + Duration::from_secs(10);
    let expect = |i: usize| if minority.contains(&i) { 503 } else { 202 };
    loop {
        one_leader.sample("split", cut.elapsed(), &lab.statuses());
        let answers: Vec<Option<u16>> = (1..=4).map(|i| lab.post(i, "/logs", event)).collect();
        if (1..=4).all(|i| answers[i - 1] == Some(expect(i))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes not refused by exactly the minority {minority:?}: answers n1..n4 {answers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Settled: for 5 s the minority stays fenced and the majority names one leader, n3.
    lab.watch(Duration::from_secs(5), |_, s| {
        one_leader.sample("split", cut.elapsed(), s);
        assert!(
            all(s, &minority, |v| !has_quorum(v) && leader(v).is_none()),
            "minority regained quorum or a leader\n{}",
            views(s)
        );
        assert!(
            all(s, &majority, |v| has_quorum(v) && leader(v) == Some("n3")),
            "majority lost quorum or disagrees on the leader\n{}",
            views(s)
        );
    });

    consoles_show_quorum(&lab, &[(1, false), (3, true)]);

    lab.heal();
    let healed = Instant::now();
    let took = lab.wait_until("one view after heal", Duration::from_secs(30), |s| {
        one_leader.sample("after heal", healed.elapsed(), s);
        all_converged(s, 5)
    });
    lab.watch(
        Duration::from_secs(10).saturating_sub(healed.elapsed()),
        |_, s| one_leader.sample("after heal", healed.elapsed(), s),
    );
    let s = lab.statuses();
    assert!(generation(&s, 3, 1) > old_gen, "n1 came back in a new life");
    eprintln!(
        "MEASURED: split brain {{1,2}}|{{3,4,5}}: minority fenced (no quorum, no leader) after {:.2?}; \
         majority marks both FAILED after {:.2?}; two quorum leaders seen {}; \
         heal -> one view of 5 HEALTHY, leader {:?}: {took:.2?}",
        fenced.unwrap(),
        failed.unwrap(),
        two_leaders.map_or("never".into(), |(a, b)| format!("from {a:.2?} to {b:.2?}")),
        leader(s[0].as_ref().unwrap()),
    );
    let _ = std::fs::remove_file(&store);
    one_leader.report("split brain");
}

#[test]
fn a_one_way_partition_keeps_one_leader_and_heals() {
    let Some(lab) = started("one-way", 5) else {
        return;
    };
    // n5 hears everyone, nobody hears n5.
    let cut = Instant::now();
    lab.oneway(&[5], &[1, 2, 3, 4]);
    let others = [1, 2, 3, 4];
    let (mut failed, mut fenced) = (None, None);
    lab.wait_until(
        "the others mark the mute n5 FAILED and n5 loses quorum",
        Duration::from_secs(30),
        |s| {
            let t = cut.elapsed();
            assert!(
                all(s, &others, |v| has_quorum(v) && leader(v) == Some("n1")),
                "the connected side lost quorum or its leader at {t:.1?}\n{}",
                views(s)
            );
            assert!(
                quorum_leaders(s).len() <= 1,
                "two leaders at {t:.1?}\n{}",
                views(s)
            );
            if failed.is_none() && all(s, &others, |v| status_of(v, "n5") == "FAILED") {
                failed = Some(t);
            }
            if fenced.is_none() && all(s, &[5], |v| !has_quorum(v) && leader(v).is_none()) {
                fenced = Some(t);
            }
            failed.is_some() && fenced.is_some()
        },
    );
    let (failed, fenced) = (failed.unwrap(), fenced.unwrap());
    lab.heal();
    let took = lab.wait_until("one view after heal", Duration::from_secs(30), |s| {
        all_converged(s, 5)
    });
    eprintln!(
        "MEASURED: one-way partition (n5 -> others dropped): the others mark n5 FAILED after \
         {failed:.2?}, keeping quorum and leader n1 throughout; n5 (hearing everyone) reports no \
         quorum after {fenced:.2?}; heal -> one view: {took:.2?}"
    );
}

fn isolated_host(test: &str, unplug: bool) {
    let Some(lab) = started(test, 5) else {
        return;
    };
    let others = [1, 2, 4, 5];
    let old_gen = generation(&lab.statuses(), 1, 3);
    let cut = Instant::now();
    if unplug {
        lab.unplug(3);
    } else {
        lab.isolate(3);
    }
    let mut fenced = None;
    let mut failed = None;
    lab.wait_until(
        "n3 loses quorum, the others mark it FAILED",
        Duration::from_secs(30),
        |s| {
            assert!(
                all(s, &others, has_quorum),
                "the connected side lost quorum\n{}",
                views(s)
            );
            if fenced.is_none() && all(s, &[3], |v| !has_quorum(v) && leader(v).is_none()) {
                fenced = Some(cut.elapsed());
            }
            if failed.is_none() && all(s, &others, |v| status_of(v, "n3") == "FAILED") {
                failed = Some(cut.elapsed());
            }
            fenced.is_some() && failed.is_some()
        },
    );
    lab.heal();
    let took = lab.wait_until("n3 rejoins", Duration::from_secs(30), |s| {
        all_converged(s, 5)
    });
    assert!(generation(&lab.statuses(), 1, 3) > old_gen);
    eprintln!(
        "MEASURED: {test}: n3 loses quorum after {:.2?}; the 4 others mark it FAILED after {:.2?}, \
         keeping quorum; heal -> n3 HEALTHY everywhere (new generation): {took:.2?}",
        fenced.unwrap(),
        failed.unwrap()
    );
}

#[test]
fn an_isolated_host_loses_quorum_and_rejoins_after_heal() {
    isolated_host("isolated", false);
}

#[test]
fn an_unplugged_host_loses_quorum_and_rejoins_after_replug() {
    isolated_host("unplugged", true);
}

#[test]
fn twenty_percent_loss_on_one_host_fails_nobody() {
    let Some(lab) = started("loss", 5) else {
        return;
    };
    lab.loss(2, 20);
    let mut suspect_samples = 0;
    let samples = lab.watch(Duration::from_secs(60), |t, s| {
        if let Err(e) = nobody_failed(s) {
            panic!("false FAILED after {t:.1?} of 20 % loss: {e}\n{}", views(s));
        }
        assert!(
            s.iter().flatten().all(has_quorum) && s.iter().all(Option::is_some),
            "quorum lost at {t:.1?}\n{}",
            views(s)
        );
        if s.iter().flatten().any(|v| status_of(v, "n2") == "SUSPECT") {
            suspect_samples += 1;
        }
    });
    lab.clear_netem(2);
    eprintln!(
        "MEASURED: 20 % loss on n2 for 60 s: 0 FAILED, quorum everywhere in {samples} samples; \
         samples where someone saw n2 SUSPECT: {suspect_samples}"
    );
}

#[test]
fn a_delayed_host_is_not_failed() {
    let Some(lab) = started("delay", 5) else {
        return;
    };
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED a_delayed_host_is_not_failed: no python3 for the delay helper");
        return;
    }
    lab.delay(2, 200, 50);
    let samples = lab.watch(Duration::from_secs(20), |t, s| {
        if let Err(e) = nobody_failed(s) {
            panic!(
                "false FAILED after {t:.1?} of 200 ms delay: {e}\n{}",
                views(s)
            );
        }
        assert!(
            s.iter().flatten().all(has_quorum),
            "quorum lost\n{}",
            views(s)
        );
    });
    lab.clear_netem(2);
    eprintln!("MEASURED: 200 ms ± 50 ms delay on n2 for 20 s: 0 FAILED in {samples} samples");
}

#[test]
fn a_rolling_restart_never_loses_quorum() {
    let Some(mut lab) = started("rolling", 5) else {
        return;
    };
    let mut times = Vec::new();
    let mut samples = 0;
    for i in 1..=5 {
        let old_gen = generation(&lab.statuses(), if i == 1 { 2 } else { 1 }, i);
        let begun = Instant::now();
        lab.stop(i, Duration::from_secs(10));
        lab.start(i, &[]);
        let others: Vec<usize> = (1..=5).filter(|&h| h != i).collect();
        let id = Lab::id(i);
        lab.wait_until(
            &format!("n{i} back HEALTHY everywhere with a new generation"),
            Duration::from_secs(30),
            |s| {
                samples += 1;
                assert!(
                    all(s, &others, has_quorum),
                    "quorum lost while restarting n{i}\n{}",
                    views(s)
                );
                // back with its seat too, as an orchestrator waiting on readiness should
                all_converged(s, 5)
                    && (1..=5).all(|h| view(s, h).is_some_and(|v| v["voters"] == 5))
                    && others.iter().all(|&o| {
                        view(s, o).is_some_and(|v| {
                            v["membership"][&id]["generation"]
                                .as_u64()
                                .is_some_and(|g| g > old_gen)
                        })
                    })
            },
        );
        times.push(begun.elapsed());
    }
    let times: Vec<String> = times.iter().map(|t| format!("{t:.2?}")).collect();
    eprintln!(
        "MEASURED: rolling restart (SIGTERM, start again) of n1..n5: quorum on every other node \
         in all {samples} samples; stop -> back HEALTHY everywhere, new generation: {}",
        times.join(", ")
    );
}

#[test]
fn kill_freeze_and_thaw() {
    let Some(mut lab) = started("kill-freeze", 5) else {
        return;
    };
    // Freeze n4 long enough to be convicted; after the thaw it comes back in a new life.
    let old_gen = generation(&lab.statuses(), 1, 4);
    lab.freeze(4);
    let observers = [1, 2, 3, 5];
    let detected = lab.wait_until("frozen n4 FAILED", Duration::from_secs(15), |s| {
        all(s, &observers, |v| status_of(v, "n4") == "FAILED")
    });
    lab.thaw(4);
    let back = lab.wait_until("thawed n4 back", Duration::from_secs(30), |s| {
        all_converged(s, 5)
    });
    assert!(generation(&lab.statuses(), 1, 4) > old_gen);

    // kill -9 n5, then restart it.
    let old_gen = generation(&lab.statuses(), 1, 5);
    lab.kill(5);
    let observers = [1, 2, 3, 4];
    let killed = lab.wait_until("killed n5 FAILED", Duration::from_secs(15), |s| {
        all(s, &observers, |v| {
            status_of(v, "n5") == "FAILED" && has_quorum(v)
        })
    });
    lab.start(5, &[]);
    let rejoined = lab.wait_until("restarted n5 HEALTHY", Duration::from_secs(30), |s| {
        all_converged(s, 5)
    });
    assert!(generation(&lab.statuses(), 1, 5) > old_gen);
    eprintln!(
        "MEASURED: freeze n4 -> FAILED on all others {detected:.2?}; thaw -> HEALTHY everywhere \
         (new generation) {back:.2?}; kill -9 n5 -> FAILED on all others {killed:.2?}; \
         restart -> HEALTHY everywhere {rejoined:.2?}"
    );
}

#[test]
fn fifty_hosts_converge() {
    let n = 50;
    let Some(mut lab) = Lab::new("fifty", n) else {
        return;
    };
    let t = Instant::now();
    let took = lab.start_all(&[], Duration::from_secs(120));
    eprintln!(
        "MEASURED: {n} hosts: started and converged (every node sees {n} HEALTHY, quorum, one \
         leader) {:.2?} after the first start, {took:.2?} after the last",
        t.elapsed()
    );
}
