//! Which member owns a key: rendezvous (highest random weight) hashing over the live
//! members, recomputed on every membership change.
//!
//! ```text
//! cargo run -p vigil --example shard_owner -- n1 127.0.0.1:7001
//! cargo run -p vigil --example shard_owner -- n2 127.0.0.1:7002 127.0.0.1:7001
//! ```
//!
//! Every member computes the same owner for a key from the same live set, with no
//! coordination; when a member fails only the keys it owned move (to their next-highest
//! member), which is why rendezvous hashing is what services build on membership.
//! `VIGIL_GOSSIP_KEY` as in the `embed` example.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use vigil::{Builder, Config, Event, Status, Update};

/// The live member with the highest weight for `key`.
fn owner<'a>(key: &str, live: &'a BTreeSet<String>) -> Option<&'a str> {
    live.iter()
        .max_by_key(|member| {
            // a fixed hasher: every member must compute the same weights
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (member.as_str(), key).hash(&mut h);
            h.finish()
        })
        .map(String::as_str)
}

const KEYS: [&str; 6] = [
    "user:17", "user:42", "order:7", "order:99", "cart:3", "cart:8",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(id), Some(gossip)) = (args.next(), args.next()) else {
        eprintln!("usage: shard_owner <id> <gossip host:port> [seed host:port ...]");
        std::process::exit(2);
    };
    let seeds: Vec<String> = args.collect();
    let builder = Builder::new(Config::default())
        .id(&id)
        .gossip(&gossip)
        .seeds(&seeds)
        .without_http();
    let builder = match std::env::var("VIGIL_GOSSIP_KEY") {
        Ok(key) => builder
            .gossip_key(&key)
            .set("http.admin-endpoints", "false")?,
        Err(_) => builder.insecure(),
    };
    let node = builder.start().await?;

    let mut status: HashMap<String, Status> = HashMap::new();
    let mut updates = node.subscribe();
    loop {
        let update = tokio::select! {
            u = updates.recv() => u,
            _ = tokio::signal::ctrl_c() => break,
        };
        match update {
            Some(Update::Snapshot(view)) => {
                status = view.members.into_iter().map(|m| (m.id, m.status)).collect();
            }
            Some(Update::Change(change)) => match &change.event {
                Event::MemberRemoved(m) => {
                    status.remove(&m.id);
                }
                e => {
                    if let Some(m) = e.member() {
                        status.insert(m.id.clone(), m.status);
                    } else {
                        continue; // quorum and leader changes do not move keys
                    }
                }
            },
            Some(_) => continue,
            None => break,
        }
        let live: BTreeSet<String> = status
            .iter()
            .filter(|(_, s)| matches!(s, Status::Healthy | Status::Degraded))
            .map(|(id, _)| id.clone())
            .collect();
        let owners: BTreeMap<&str, &str> = KEYS
            .iter()
            .map(|k| (*k, owner(k, &live).unwrap_or("-")))
            .collect();
        println!("live {live:?}: owners {owners:?}");
    }
    node.leave().await?;
    Ok(())
}
