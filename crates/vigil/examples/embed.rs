//! Joins a cluster from a Rust program and prints every membership change.
//!
//! ```text
//! # a first member founds the cluster, two more join through it (one terminal each)
//! cargo run -p vigil --example embed -- n1 127.0.0.1:7001
//! cargo run -p vigil --example embed -- n2 127.0.0.1:7002 127.0.0.1:7001
//! cargo run -p vigil --example embed -- n3 127.0.0.1:7003 127.0.0.1:7001
//! ```
//!
//! Gossip is sealed with `VIGIL_GOSSIP_KEY` (`vigil keys generate`) when it is set; without
//! it the example runs insecure, which is only for a trusted network. Ctrl-C leaves the
//! cluster gracefully.

use vigil::{Builder, Config, Update};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(id), Some(gossip)) = (args.next(), args.next()) else {
        eprintln!("usage: embed <id> <gossip host:port> [seed host:port ...]");
        std::process::exit(2);
    };
    let seeds: Vec<String> = args.collect();
    let mut builder = Builder::new(Config::default())
        .id(&id)
        .gossip(&gossip)
        .seeds(&seeds)
        .without_http();
    builder = match std::env::var("VIGIL_GOSSIP_KEY") {
        Ok(key) => builder
            .gossip_key(&key)
            .set("http.admin-endpoints", "false")?,
        Err(_) => builder.insecure(),
    };
    let node = builder.start().await?;
    println!(
        "started {} (generation {}) on {}",
        node.id(),
        node.generation(),
        node.gossip_addr()
    );

    let mut updates = node.subscribe();
    loop {
        let update = tokio::select! {
            u = updates.recv() => u,
            _ = tokio::signal::ctrl_c() => break,
        };
        match update {
            Some(Update::Snapshot(view)) => {
                let ids: Vec<String> = view
                    .members
                    .iter()
                    .map(|m| format!("{} {}", m.id, m.status))
                    .collect();
                println!("view: {}", ids.join(", "));
            }
            Some(Update::Change(change)) => {
                let who = change.event.member().map(|m| m.id.as_str()).unwrap_or("-");
                println!("{} {who} {:?}", change.event.name(), change.event);
            }
            Some(Update::Lagged { missed }) => {
                println!("missed {missed} changes; a snapshot follows")
            }
            Some(_) => {}
            None => break,
        }
    }
    node.leave().await?;
    Ok(())
}
