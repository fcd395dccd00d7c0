use super::*;
use membership::codec::{self, Message};

fn ring(keys: &[&Key], encrypt: bool) -> Keyring {
    Keyring::new(
        keys.iter().map(|k| (*k).clone()).collect(),
        "prod",
        encrypt,
        true,
    )
    .unwrap()
}

const STAMP: Stamp = Stamp {
    sender: 0x1122_3344_5566_7788,
    boot: 1_700_000_000_000,
    counter: 5,
};

fn datagram() -> Vec<u8> {
    let msg = Message::ProbeAck {
        from: codec::Sender {
            id: "node-a".into(),
            generation: 7,
            incarnation: 1,
            summary: Some(membership::codec::Summary(42)),
        },
        nonce: 3,
    };
    codec::encode(codec::cluster_id("prod"), &msg)
}

#[test]
fn sealed_datagrams_open_to_what_the_core_sent_in_both_modes() {
    let k = Key::generate();
    for encrypt in [true, false] {
        let r = ring(&[&k], encrypt);
        let plain = datagram();
        let sealed = r.seal(&plain, STAMP);
        assert_eq!(sealed.len(), plain.len() + OVERHEAD);
        let opened = r.open(&sealed).unwrap();
        assert_eq!(opened.datagram, plain);
        assert_eq!(opened.stamp, Some(STAMP));
        // what the core decodes after opening is the original message
        let id = codec::cluster_id("prod");
        assert!(codec::decode(id, 1400, &opened.datagram).is_ok());
        // the body is readable in a capture only without encryption
        let body = &plain[codec::HEADER_LEN..];
        let visible = sealed.windows(body.len()).any(|w| w == body);
        assert_eq!(visible, !encrypt, "encrypt={encrypt}");
    }
}

#[test]
fn two_seals_of_one_datagram_differ() {
    let r = ring(&[&Key::generate()], true);
    assert_ne!(r.seal(&datagram(), STAMP), r.seal(&datagram(), STAMP));
}

#[test]
fn a_wrong_key_another_cluster_or_any_flipped_bit_is_refused() {
    let k = Key::generate();
    for encrypt in [true, false] {
        let r = ring(&[&k], encrypt);
        let sealed = r.seal(&datagram(), STAMP);
        assert_eq!(
            ring(&[&Key::generate()], encrypt).open(&sealed),
            Err(OpenError::BadTag)
        );
        let other = Keyring::new(vec![k.clone()], "staging", encrypt, true).unwrap();
        assert_eq!(other.open(&sealed), Err(OpenError::BadTag));
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    r.open(&bad).is_err(),
                    "byte {i} bit {bit} encrypt={encrypt}"
                );
            }
        }
        for len in 0..sealed.len() {
            assert!(r.open(&sealed[..len]).is_err(), "truncated to {len}");
        }
    }
}

#[test]
fn unsealed_datagrams_pass_only_without_verify_incoming() {
    let k = Key::generate();
    assert_eq!(
        ring(&[&k], true).open(&datagram()),
        Err(OpenError::Unsealed)
    );
    let lenient = Keyring::new(vec![k], "prod", true, false).unwrap();
    assert_eq!(
        lenient.open(&datagram()).unwrap(),
        Opened {
            datagram: datagram(),
            stamp: None
        }
    );
}

#[test]
fn rotation_install_use_remove_never_leaves_a_gap() {
    let old = Key::generate();
    let new = Key::generate();
    let mut a = ring(&[&old], true);
    let mut b = ring(&[&old], true);
    // 1. install everywhere: both still seal with `old`, both open either
    a.install(new.clone()).unwrap();
    b.install(new.clone()).unwrap();
    assert!(b.open(&a.seal(&datagram(), STAMP)).is_ok());
    // 2. switch one node first: the other can already open what it sends
    a.use_key(&new).unwrap();
    assert!(b.open(&a.seal(&datagram(), STAMP)).is_ok());
    assert!(a.open(&b.seal(&datagram(), STAMP)).is_ok());
    b.use_key(&new).unwrap();
    // 3. remove the old key everywhere
    assert_eq!(a.remove(&new), Err(KeyError::RemovePrimary));
    a.remove(&old).unwrap();
    b.remove(&old).unwrap();
    assert!(b.open(&a.seal(&datagram(), STAMP)).is_ok());
    assert_eq!(
        ring(&[&old], true).open(&a.seal(&datagram(), STAMP)),
        Err(OpenError::BadTag)
    );
    assert_eq!(a.remove(&old), Err(KeyError::Unknown));
    assert_eq!(a.keys(), &[new]);
}

#[test]
fn keys_parse_from_base64_and_say_why_not() {
    let k = Key::generate();
    assert_eq!(Key::parse(&k.encode()).unwrap(), k);
    assert!(matches!(
        Key::parse("not base64!"),
        Err(KeyError::NotBase64(_))
    ));
    assert_eq!(Key::parse("AAAA"), Err(KeyError::WrongLength(3)));
    assert_eq!(format!("{k:?}"), "Key(..)", "keys never reach logs");
}

#[test]
fn the_ring_is_bounded() {
    let mut r = ring(&[&Key::generate()], true);
    for _ in 1..MAX_KEYS {
        r.install(Key::generate()).unwrap();
    }
    assert_eq!(r.install(Key::generate()), Err(KeyError::Full));
}

#[test]
fn the_stamp_is_authenticated_in_both_modes_and_hidden_when_encrypting() {
    let k = Key::generate();
    for encrypt in [true, false] {
        let r = ring(&[&k], encrypt);
        let sealed = r.seal(&datagram(), STAMP);
        // bytes 31..55 carry the stamp: changing any of them (another counter, to pass a
        // replay off as new) breaks the seal
        for i in 31..55 {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(r.open(&bad), Err(OpenError::BadTag), "byte {i}");
        }
        let counter = STAMP.counter.to_le_bytes();
        let visible = sealed.windows(8).any(|w| w == counter);
        assert_eq!(visible, !encrypt, "encrypt={encrypt}");
    }
}
