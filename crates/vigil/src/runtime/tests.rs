//! The runtime glue over the in-memory twin, on tokio's paused clock: fast and free of
//! real-time flakiness.

use std::net::SocketAddr;
use std::time::Duration;

use membership::{Config, Identity, Metadata, Node, Status};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Handle, NodeInfo, NodeRuntime, Options};
use crate::transport::memory::MemoryNetwork;

struct TestNode {
    handle: Handle,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    addr: SocketAddr,
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7946))
}

fn start(net: &MemoryNetwork, i: u8, seeds: Vec<SocketAddr>) -> TestNode {
    let epoch = Instant::now();
    let identity = Identity {
        id: format!("n{i}"),
        addr: addr(i),
        generation: 1_000 + u64::from(i),
        meta: Metadata {
            role: "member".into(),
            ..Metadata::default()
        },
        cluster: "vigil".into(),
    };
    let info = NodeInfo {
        id: identity.id.clone(),
        cluster: "vigil".into(),
        generation: identity.generation,
        gossip_addr: addr(i),
        http_addr: None,
        seeds: seeds.clone(),
        insecure: false,
    };
    let node = Node::new(
        identity,
        Config::default(),
        seeds,
        epoch.elapsed(),
        u64::from(i),
    )
    .unwrap();
    let transport = net.bind(addr(i)).unwrap();
    let shutdown = CancellationToken::new();
    let options = Options::default();
    let (runtime, handle) =
        NodeRuntime::new(node, transport, epoch, info, options, shutdown.clone());
    let task = tokio::spawn(runtime.run());
    TestNode {
        handle,
        shutdown,
        task,
        addr: addr(i),
    }
}

fn network() -> MemoryNetwork {
    let net = MemoryNetwork::new(Config::default().max_datagram, 42);
    net.check_codec("vigil");
    net
}

async fn cluster(net: &MemoryNetwork, n: u8) -> Vec<TestNode> {
    let mut nodes = vec![start(net, 1, vec![])];
    for i in 2..=n {
        nodes.push(start(net, i, vec![addr(1)]));
    }
    nodes
}

/// Polls (on the paused clock) until `check` holds for every node's view.
async fn eventually(
    nodes: &[&TestNode],
    within: Duration,
    check: impl Fn(&membership::ClusterView) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let mut all = true;
        for n in nodes {
            let s = n.handle.snapshot().await.unwrap();
            all &= check(&s.view);
        }
        if all {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(start_paused = true)]
async fn three_runtimes_converge_over_the_memory_twin() {
    let net = network();
    let nodes = cluster(&net, 3).await;
    let all: Vec<&TestNode> = nodes.iter().collect();
    assert!(
        eventually(&all, Duration::from_secs(10), |v| v.healthy() == 3
            && v.has_quorum)
        .await
    );
    assert_eq!(net.stats().codec_failures, 0);
    assert!(net.stats().delivered > 0);
    let s = nodes[1].handle.snapshot().await.unwrap();
    assert!(s.joined && !s.leaving);
}

#[tokio::test(start_paused = true)]
async fn an_isolated_runtime_is_failed_by_the_others() {
    let net = network();
    let nodes = cluster(&net, 4).await;
    let all: Vec<&TestNode> = nodes.iter().collect();
    assert!(eventually(&all, Duration::from_secs(10), |v| v.healthy() == 4).await);
    net.isolate(nodes[3].addr);
    let rest: Vec<&TestNode> = nodes[..3].iter().collect();
    let failed =
        |v: &membership::ClusterView| v.member("n4").is_none_or(|m| m.status == Status::Failed);
    assert!(eventually(&rest, Duration::from_secs(20), failed).await);
}

#[tokio::test(start_paused = true)]
async fn a_leave_spreads_and_the_runtime_stops_after_lingering() {
    let net = network();
    let nodes = cluster(&net, 3).await;
    let all: Vec<&TestNode> = nodes.iter().collect();
    assert!(eventually(&all, Duration::from_secs(10), |v| v.healthy() == 3).await);
    let leaving = &nodes[2];
    leaving.shutdown.cancel();
    let rest: Vec<&TestNode> = nodes[..2].iter().collect();
    let left =
        |v: &membership::ClusterView| v.member("n3").is_some_and(|m| m.status == Status::Left);
    assert!(eventually(&rest, Duration::from_secs(2), left).await);
    let TestNode { task, .. } = nodes.into_iter().nth(2).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops after the linger")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn force_remove_is_refused_for_self_and_unknown_members() {
    let net = network();
    let nodes = cluster(&net, 1).await;
    let h = &nodes[0].handle;
    assert!(matches!(
        h.force_remove("n1".into()).await.unwrap(),
        Err(membership::CommandError::IsSelf)
    ));
    assert!(matches!(
        h.force_remove("zz".into()).await.unwrap(),
        Err(membership::CommandError::UnknownMember(_))
    ));
}

/// The next update that is a change, skipping others, within `within` (paused clock).
async fn next_change(
    sub: &mut crate::Subscription,
    within: Duration,
    wanted: impl Fn(&crate::Change) -> bool,
) -> crate::Change {
    let deadline = Instant::now() + within;
    loop {
        let update = tokio::time::timeout_at(deadline, sub.recv())
            .await
            .expect("no such change in time")
            .expect("the subscription ended");
        if let crate::Update::Change(c) = update {
            if wanted(&c) {
                return c;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_sees_the_view_then_joins_then_the_failure_of_an_isolated_member() {
    let net = network();
    let first = start(&net, 1, vec![]);
    let mut sub =
        crate::Subscription::new(first.handle.clone(), crate::subscription::Start::Snapshot);
    match sub.recv().await {
        Some(crate::Update::Snapshot(view)) => assert_eq!(view.self_id, "n1"),
        other => panic!("expected the view first, got {other:?}"),
    }
    let others = [start(&net, 2, vec![addr(1)]), start(&net, 3, vec![addr(1)])];
    for id in ["n2", "n3"] {
        let c = next_change(&mut sub, Duration::from_secs(10), |c| {
            c.event.name() == "member-joined" && c.event.member().is_some_and(|m| m.id == id)
        })
        .await;
        assert_eq!(c.event.member().unwrap().status, Status::Healthy);
    }
    net.isolate(others[1].addr);
    let failed = next_change(&mut sub, Duration::from_secs(30), |c| {
        c.event.name() == "member-failed"
    })
    .await;
    let m = failed.event.member().unwrap();
    assert_eq!(
        (m.id.as_str(), m.status, m.generation),
        ("n3", Status::Failed, 1003)
    );
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_falls_behind_is_told_and_gets_a_fresh_snapshot() {
    use crate::event::{Event, Member};
    let net = network();
    let node = start(&net, 1, vec![]);
    let mut sub =
        crate::Subscription::new(node.handle.clone(), crate::subscription::Start::Snapshot);
    assert!(matches!(sub.recv().await, Some(crate::Update::Snapshot(_))));
    let bus = &node.handle.bus;
    let overflow = super::bus::CAPACITY as u64 + 100;
    for k in 0..overflow {
        let m = Member::new(format!("x{k}"), Status::Healthy, 1);
        bus.publish(Event::MemberJoined(m), std::time::SystemTime::now());
    }
    match sub.recv().await {
        Some(crate::Update::Lagged { missed }) => assert!(missed >= 100, "missed {missed}"),
        other => panic!("expected a lag notice, got {other:?}"),
    }
    let snapshot = match sub.recv().await {
        Some(crate::Update::Snapshot(view)) => view,
        other => panic!("expected a fresh snapshot after the lag, got {other:?}"),
    };
    assert!(snapshot.last_change >= overflow);
    // what the snapshot includes is not delivered again; what follows it is
    let m = Member::new("after", Status::Healthy, 1);
    let after = bus.publish(Event::MemberJoined(m), std::time::SystemTime::now());
    match sub.recv().await {
        Some(crate::Update::Change(c)) => assert_eq!(c.id, after.id),
        other => panic!("expected the change after the snapshot, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_resumed_subscription_replays_what_was_missed_or_starts_with_a_snapshot() {
    use crate::event::{Event, Member};
    use crate::subscription::Start;
    let net = network();
    let node = start(&net, 1, vec![]);
    let bus = &node.handle.bus;
    let publish = |name: &str| {
        let m = Member::new(name, Status::Healthy, 1);
        bus.publish(Event::MemberJoined(m), std::time::SystemTime::now())
    };
    let seen = publish("a");
    let missed = [publish("b"), publish("c")];
    let mut resumed = crate::Subscription::new(node.handle.clone(), Start::After(seen.id));
    for m in &missed {
        match resumed.recv().await {
            Some(crate::Update::Change(c)) => assert_eq!(c.id, m.id),
            other => panic!("expected change {}, got {other:?}", m.id),
        }
    }
    for k in 0..super::bus::RECENT {
        publish(&format!("y{k}"));
    }
    let mut too_old = crate::Subscription::new(node.handle.clone(), Start::After(seen.id));
    match too_old.recv().await {
        Some(crate::Update::Snapshot(view)) => assert_eq!(view.last_change, bus.last_id()),
        other => panic!("expected a snapshot for an id out of the window, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_only_seed_is_itself_founds_the_cluster_and_counts_as_joined() {
    let net = network();
    // the first pod behind a headless Service on a cold start: the name resolves to itself
    let first = start(&net, 1, vec![addr(1)]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let joined = loop {
        let s = first.handle.snapshot().await.unwrap();
        if s.joined || Instant::now() >= deadline {
            break s.joined && s.view.has_quorum;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(joined, "a founder must become ready (joined, with quorum)");
    // and a re-resolved seed list brings the next one in
    let second = start(&net, 2, vec![addr(9)]);
    second
        .handle
        .set_seeds(vec![addr(1), addr(2)])
        .await
        .unwrap();
    assert!(
        eventually(&[&first, &second], Duration::from_secs(10), |v| v
            .members
            .len()
            == 2
            && v.members.iter().all(|m| m.status == Status::Healthy))
        .await
    );
}
