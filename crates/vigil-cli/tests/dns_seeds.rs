//! Seeds by DNS (issue 17): a seed name that resolves to many addresses (a Kubernetes
//! headless Service) joins every member behind it, and is re-resolved while the node runs.
//!
//! The names live in `/etc/hosts` (glibc answers every address of a name listed on several
//! lines), under a name unique to this run, removed again when the test ends (also on a
//! panic). Without write access to `/etc/hosts` the test prints SKIPPED and passes. Members
//! bind 127.0.0.2-5, all on one gossip port, as pods behind one Service would.

mod harness;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use harness::Cluster;

const HOSTS: &str = "/etc/hosts";

/// Lines this test added to `/etc/hosts`; removed on drop.
struct HostsEntries {
    tag: String,
}

impl HostsEntries {
    fn new(tag: String) -> Option<HostsEntries> {
        let text = std::fs::read_to_string(HOSTS).ok()?;
        // written in place (not renamed over): /etc/hosts is often a bind mount
        std::fs::write(HOSTS, &text).ok()?;
        Some(HostsEntries { tag })
    }

    fn add(&self, ip: &str, name: &str) {
        assert!(name.contains(&self.tag));
        let mut text = std::fs::read_to_string(HOSTS).unwrap();
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{ip} {name}\n"));
        std::fs::write(HOSTS, text).unwrap();
    }
}

impl Drop for HostsEntries {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(HOSTS) {
            let kept: String = text
                .lines()
                .filter(|l| !l.contains(&self.tag))
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write(HOSTS, kept);
        }
    }
}

/// A UDP port free on every address the members bind.
fn port_free_on(ips: &[&str]) -> u16 {
    loop {
        let port = harness::free_udp_port();
        if ips.iter().all(|ip| UdpSocket::bind((*ip, port)).is_ok()) {
            return port;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_name_with_many_addresses_joins_everyone_and_is_re_resolved() {
    let _guard = harness::exclusive().await;
    let tag = format!("vigil-dns-test-{}", std::process::id());
    let Some(hosts) = HostsEntries::new(tag.clone()) else {
        eprintln!("SKIPPED: {HOSTS} is not writable here");
        return;
    };
    let service = format!("members.{tag}.test");
    let later = format!("later.{tag}.test");
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
    let port = port_free_on(&ips);
    // the Service's two pods so far; `later` names nobody who answers yet
    hosts.add(ips[0], &service);
    hosts.add(ips[1], &service);
    hosts.add("127.0.0.9", &later);

    let mut cluster = Cluster::new(
        "dns-seeds",
        "cluster:\n  seeds:\n    rejoin-interval: 1000\n",
    );
    let start = |cluster: &mut Cluster, id: &str, ip: &str, seeds: &str| {
        let gossip: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", harness::free_tcp_port())
            .parse()
            .unwrap();
        // the harness's own seed flag is left out: the seeds come from the name
        cluster.seed = Some(gossip);
        let env = [("VIGIL_NODE_SEEDS".to_string(), seeds.to_string())];
        cluster.start_role_at(id, "member", &env, gossip, http);
    };
    let seeds = format!("{service}:{port}");
    // Both pods of the Service have the same seed list; the lowest address founds the
    // cluster (every member sorts a name's addresses, whatever order DNS gives them).
    start(&mut cluster, "pod-0", ips[0], &seeds);
    start(&mut cluster, "pod-1", ips[1], &seeds);
    // a third member knows only the Service's name
    start(&mut cluster, "pod-2", ips[2], &seeds);
    let three = ["pod-0", "pod-1", "pod-2"];
    cluster
        .wait_for(
            "three members joined through one seed name",
            Duration::from_secs(30),
            || cluster.all_see_healthy(&three, 3),
        )
        .await;
    for id in three {
        let s = cluster.status(id).await.unwrap();
        assert_eq!(s["totalNodes"], 3, "one cluster, not several: {s}");
    }

    // A member whose seed name resolves to nobody who answers (127.0.0.9) joins once the
    // name points at the cluster: the name is looked up again every
    // cluster.seeds.rejoin-interval, and the log says the addresses changed.
    start(&mut cluster, "late", ips[3], &format!("{later}:{port}"));
    cluster
        .wait_for(
            "the late member runs, alone",
            Duration::from_secs(20),
            || async {
                cluster
                    .status("late")
                    .await
                    .is_some_and(|s| s["totalNodes"] == 1)
            },
        )
        .await;
    hosts.add(ips[0], &later);
    let four = ["pod-0", "pod-1", "pod-2", "late"];
    cluster
        .wait_for(
            "the late member joined after its seed name changed",
            Duration::from_secs(30),
            || cluster.all_see_healthy(&four, 4),
        )
        .await;
    let log = cluster.node("late").log_text();
    assert!(log.contains("seed addresses changed"), "{log}");
}
