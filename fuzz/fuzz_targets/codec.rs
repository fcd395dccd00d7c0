//! Fuzz target: the wire decoder (`membership::codec::decode`) on arbitrary bytes.
//!
//! Each input is decoded twice: as it is (exercising the envelope checks), and behind a
//! valid envelope (so most executions reach the postcard body and the bound checks).
//! Whatever decodes must respect the decoder's bounds and survive a re-encode round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use membership::codec::{self, Message, Update, HEADER_LEN, MAGIC, WIRE_VERSION};

/// The cluster id of the seed corpus (`cargo run -p membership --example fuzz-corpus`).
fn cluster() -> u32 {
    codec::cluster_id("fuzz")
}
const MAX_LEN: usize = 65_000;

fn check(msg: &Message) {
    let ids: Vec<&str> = {
        let mut v: Vec<&str> = msg.sender().map(|s| s.id.as_str()).into_iter().collect();
        match msg {
            Message::Heartbeat { updates, .. } | Message::Gossip { updates, .. } => {
                for u in updates {
                    match u {
                        Update::Record(r) => v.push(&r.id),
                        Update::Accuse { subject, by, .. } => {
                            v.push(subject);
                            v.push(by);
                        }
                    }
                }
            }
            Message::Join { record, .. } => v.push(&record.id),
            Message::SyncRecords { records, .. } => v.extend(records.iter().map(|r| &*r.id)),
            Message::SyncDigest { ranges, .. } => assert!(ranges.len() <= codec::MAX_SLICES),
            Message::Probe { .. }
            | Message::ProbeAck { .. }
            | Message::LeaseRequest { .. }
            | Message::LeaseGrant { .. } => {}
        }
        v
    };
    for id in ids {
        assert!(codec::valid_id(id), "id {id:?} passed the decoder");
    }
    // Whatever decodes re-encodes to something that decodes to the same message.
    let again = codec::encode(cluster(), msg);
    let back = codec::decode(cluster(), usize::MAX, &again).expect("re-encoded message decodes");
    assert_eq!(&back, msg);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = codec::decode(cluster(), MAX_LEN, data) {
        check(&msg);
    }
    let mut framed = Vec::with_capacity(HEADER_LEN + data.len());
    framed.push(MAGIC);
    framed.push(WIRE_VERSION);
    framed.extend_from_slice(&cluster().to_le_bytes());
    framed.push(0);
    framed.extend_from_slice(data);
    if let Ok(msg) = codec::decode(cluster(), MAX_LEN, &framed) {
        check(&msg);
    }
});
