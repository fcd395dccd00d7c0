//! Member ids from the network: anything but a printable name ([`codec::ID_RULE`]) is
//! refused at decode, so it never reaches the table (issue 14: mutated messages made
//! members named "", "." and control characters).

use super::tests::{addr, gossip_from, Capture, Pump};
use super::*;
use crate::codec::{encode, Message, Update};

fn record(id: &str) -> MemberRecord {
    MemberRecord {
        id: id.into(),
        addr: addr(9),
        generation: 1,
        incarnation: 0,
        liveness: Liveness::Alive,
        meta_version: 1,
        meta: Default::default(),
        voter: false,
        joining: false,
    }
}

#[test]
fn records_with_bad_ids_are_refused_at_decode_and_never_enter_the_table() {
    let mut p = Pump::new(2, Config::default());
    p.run_for(Duration::from_millis(2000));
    let before: Vec<MemberRecord> = p.nodes[0].records().cloned().collect();
    let errors = p.nodes[0].stats().decode_errors;
    let bad = [
        "", ".", "..", "\u{1}", "n\n1", "n 1", "../n1", "-n1", "n\u{7f}",
    ];
    let now = p.now;
    let mut cap = Capture::default();
    for id in bad {
        let join = encode(
            codec::cluster_id("test"),
            &Message::Join {
                record: record(id),
                padding: Vec::new(),
            },
        );
        let gossip = gossip_from("n1", vec![Update::Record(record(id))]);
        let from_bad = gossip_from(id, Vec::new());
        for d in [join, gossip, from_bad] {
            assert!(
                matches!(
                    p.nodes[0].handle_datagram(now, addr(1), &d, &mut cap),
                    Err(DecodeError::Bounds(_))
                ),
                "{id:?} accepted"
            );
        }
    }
    assert_eq!(
        p.nodes[0].stats().decode_errors,
        errors + 3 * bad.len() as u64
    );
    let after: Vec<MemberRecord> = p.nodes[0].records().cloned().collect();
    assert_eq!(after, before);
    assert!(cap.sends.is_empty() && cap.events.is_empty());
    // a valid id of the same shape goes in
    p.nodes[0]
        .handle_datagram(
            now,
            addr(1),
            &gossip_from("n1", vec![Update::Record(record("n9"))]),
            &mut cap,
        )
        .unwrap();
    assert!(p.nodes[0].record("n9").is_some());
}
