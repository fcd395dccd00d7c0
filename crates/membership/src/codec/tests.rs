use proptest::prelude::*;

use super::*;
use crate::member::{HealthSignals, Liveness, Metadata};

fn liveness() -> impl Strategy<Value = Liveness> {
    prop_oneof![
        Just(Liveness::Alive),
        Just(Liveness::Suspect),
        Just(Liveness::Failed),
        Just(Liveness::Left),
        Just(Liveness::Removed),
    ]
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

fn record() -> impl Strategy<Value = MemberRecord> {
    (
        "[a-z0-9-]{1,24}",
        addr(),
        any::<u64>(),
        any::<u64>(),
        liveness(),
        any::<u64>(),
        (
            "[a-z]{0,10}",
            "[a-z0-9-]{0,10}",
            "[a-z0-9]{0,4}",
            proptest::option::of("[0-9.:]{0,21}"),
        ),
        any::<(u8, u8, u8)>(),
        proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{0,16}", 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(
                id,
                addr,
                generation,
                incarnation,
                liveness,
                meta_version,
                (role, zone, rack, http_addr),
                s,
                tags,
                voter,
            )| {
                MemberRecord {
                    id,
                    addr,
                    generation,
                    incarnation,
                    liveness,
                    meta_version,
                    meta: Metadata {
                        role,
                        zone,
                        rack,
                        http_addr,
                        signals: HealthSignals {
                            cpu_pct: s.0,
                            mem_pct: s.1,
                            error_pct: s.2,
                        },
                        tags,
                    },
                    voter,
                }
            },
        )
}

fn sender() -> impl Strategy<Value = Sender> {
    ("[a-z0-9-]{1,24}", any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(id, generation, incarnation, summary)| Sender {
            id,
            generation,
            incarnation,
            summary,
        },
    )
}

fn update() -> impl Strategy<Value = Update> {
    prop_oneof![
        record().prop_map(Update::Record),
        (
            "[a-z0-9]{1,12}",
            any::<u64>(),
            any::<u64>(),
            "[a-z0-9]{1,12}"
        )
            .prop_map(|(subject, generation, incarnation, by)| {
                Update::Accuse {
                    subject,
                    generation,
                    incarnation,
                    by,
                }
            }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let updates = || proptest::collection::vec(update(), 0..6);
    prop_oneof![
        (sender(), any::<u64>(), updates()).prop_map(|(from, seq, updates)| Message::Heartbeat {
            from,
            seq,
            updates
        }),
        (sender(), updates()).prop_map(|(from, updates)| Message::Gossip { from, updates }),
        record().prop_map(|record| Message::Join { record }),
        (
            sender(),
            proptest::collection::vec(any::<u32>(), 0..64),
            any::<bool>()
        )
            .prop_map(|(from, ranges, reply)| Message::SyncDigest {
                from,
                ranges,
                reply
            }),
        (sender(), proptest::collection::vec(record(), 0..5))
            .prop_map(|(from, records)| Message::SyncRecords { from, records }),
        (sender(), addr()).prop_map(|(from, reply_to)| Message::Probe { from, reply_to }),
        sender().prop_map(|from| Message::ProbeAck { from }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in message()) {
        let bytes = encode(7, &msg);
        prop_assert_eq!(decode(7, usize::MAX, &bytes).unwrap(), msg);
    }

    #[test]
    fn update_len_is_exact(u in update()) {
        let direct = postcard::to_allocvec(&u).unwrap().len();
        prop_assert_eq!(update_len(&u), direct);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode(7, 1400, &bytes);
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..1400)) {
        let mut bytes = vec![MAGIC, WIRE_VERSION];
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&body);
        let _ = decode(7, usize::MAX, &bytes);
    }

    #[test]
    fn truncated_messages_are_rejected_not_panicking(msg in message(), cut in 0usize..64) {
        let bytes = encode(7, &msg);
        let cut = cut.min(bytes.len());
        let _ = decode(7, usize::MAX, &bytes[..bytes.len() - cut]);
    }
}

#[test]
fn foreign_cluster_and_bad_headers_are_named() {
    let msg = Message::ProbeAck {
        from: Sender {
            id: "a".into(),
            generation: 1,
            incarnation: 0,
            summary: 0,
        },
    };
    let bytes = encode(cluster_id("blue"), &msg);
    assert!(matches!(
        decode(cluster_id("green"), 1400, &bytes),
        Err(DecodeError::ForeignCluster(_))
    ));
    assert_eq!(decode(1, 1400, &[1, 2]), Err(DecodeError::TooShort(2)));
    assert_eq!(
        decode(1, 1400, &[0, 1, 0, 0, 0, 0, 0]),
        Err(DecodeError::BadMagic(0))
    );
    assert_eq!(
        decode(1, 1400, &[MAGIC, 9, 0, 0, 0, 0, 0]),
        Err(DecodeError::UnsupportedVersion(9))
    );
    assert_eq!(decode(1, 4, &[0; 5]), Err(DecodeError::TooLarge(5)));
}
