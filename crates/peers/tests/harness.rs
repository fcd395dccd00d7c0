//! The harness itself: a 10-node cluster of each protocol converges on the virtual network
//! and a crash is detected by every live member. Correctness of the harness, not speed.

use std::time::Duration;

use peers::foca_peer::FocaPeer;
use peers::harness::{Cluster, Peer, Predicate, View};
use peers::vigil::VigilPeer;
use sim::network::NetworkConfig;

fn converges_and_detects<P: Peer>() {
    let mut c: Cluster<P> = Cluster::new(10, 7, NetworkConfig::default());
    for _ in 0..10 {
        c.add_node();
    }
    let t = c.track(Predicate::AllAlive { expected: 10 });
    assert!(c.wait_tracker(t, Duration::from_secs(30)), "cold join");
    let converged = c.tracker(t).all_s().unwrap();
    assert!(converged > 0.0 && converged < 30.0, "{converged}");
    for i in 0..10 {
        let p = c.slots[i].peer.as_ref().unwrap();
        assert_eq!(p.alive_count(), 10);
        for j in (0..10).filter(|&j| j != i) {
            assert_eq!(p.view(j, 1), View::Alive, "n{i} about n{j}");
        }
    }
    c.run_for(Duration::from_secs(5));
    c.crash(4);
    let t = c.track(Predicate::Gone {
        member: 4,
        generation: 1,
    });
    assert!(
        c.wait_tracker(t, c.now() + Duration::from_secs(60)),
        "crash not detected"
    );
    let detected = c.tracker(t).all_s().unwrap();
    assert!(detected > 0.5, "detected too early to be real: {detected}");
    for i in c.live_nodes() {
        let p = c.slots[i].peer.as_ref().unwrap();
        assert_eq!(p.view(4, 1), View::Down, "n{i} about n4");
        assert_eq!(p.alive_count(), 9);
    }
    assert_eq!(c.counters.false_positives, 0);
    assert!(c.counters.max_message_bytes > 0);
}

#[test]
fn foca_cluster_converges_and_detects_a_crash() {
    converges_and_detects::<FocaPeer>();
}

#[test]
fn vigil_cluster_converges_and_detects_a_crash() {
    converges_and_detects::<VigilPeer>();
}

#[test]
fn chitchat_cluster_converges_and_detects_crashes_on_paused_time() {
    let m = peers::chitchat_peer::measure(10, 7, None);
    assert!(m.convergence_s.is_some(), "{:?}", m.notes);
    assert_eq!(m.spread_samples, 5, "{:?}", m.notes);
    assert_eq!(m.detect_samples, 4, "{:?}", m.notes);
    assert!(m.detect_p99_s.unwrap() > 1.0);
    assert!(m.max_message_bytes > 0);
}
