//! Secure by default: a member does not start unprotected unless the operator says so.
//!
//! Without gossip keys anyone who can send a datagram to the gossip port can join, forge
//! members and their generations, and become leader; without an admin token the admin
//! endpoints either do nothing or, worse, are one mistake from being open. So a member
//! needs keys (`security.gossip-keys` or a `security.keyring-file`) and, while
//! `http.admin-endpoints` is on, an `http.admin-token`, or the explicit
//! `security.insecure: true` (`--insecure`), which is then logged as a warning and shown
//! in `/cluster/status`.

use std::fmt;

use super::{keys::env_var, Error, Settings, MIN_ADMIN_TOKEN_LEN};

/// One way a member is unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    /// Neither `security.gossip-keys` nor a keyring file.
    NoGossipKeys,
    /// Admin endpoints on, no `http.admin-token`: they stay disabled.
    NoAdminToken,
    /// An admin token shorter than [`MIN_ADMIN_TOKEN_LEN`].
    WeakAdminToken,
}

impl Weakness {
    /// What is missing and how to provide it, for the refusal.
    pub fn fix(self) -> String {
        match self {
            Weakness::NoGossipKeys => format!(
                "no gossip keys: set security.gossip-keys ({}) to a key made by `vigil keys \
                 generate`, the same on every member, or point security.keyring-file at a file \
                 holding one",
                env_var("security.gossip-keys")
            ),
            Weakness::NoAdminToken => format!(
                "no admin token while the admin endpoints are on: set http.admin-token ({}) to \
                 a secret made by `vigil keys token`, or turn them off with \
                 http.admin-endpoints: false",
                env_var("http.admin-token")
            ),
            Weakness::WeakAdminToken => format!(
                "http.admin-token is shorter than {MIN_ADMIN_TOKEN_LEN} characters: make one \
                 with `vigil keys token`"
            ),
        }
    }
}

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Weakness::NoGossipKeys => {
                "gossip is neither authenticated nor encrypted: anyone on the network can join, \
                 forge members and take over the cluster"
            }
            Weakness::NoAdminToken => "no admin token: the admin endpoints are disabled",
            Weakness::WeakAdminToken => "the admin token is short enough to guess",
        })
    }
}

/// Whether this member may start, given whether it holds a keyring (from the keys or the
/// keyring file). `Ok` holds what it starts without, by the operator's choice
/// (`security.insecure`); empty = protected.
pub fn require_protection(s: &Settings, has_keyring: bool) -> Result<Vec<Weakness>, Error> {
    let mut weak = Vec::new();
    if !has_keyring {
        weak.push(Weakness::NoGossipKeys);
    }
    match &s.admin_token {
        None if s.admin_endpoints => weak.push(Weakness::NoAdminToken),
        Some(t) if t.chars().count() < MIN_ADMIN_TOKEN_LEN => weak.push(Weakness::WeakAdminToken),
        _ => {}
    }
    if weak.is_empty() || s.security.insecure {
        Ok(weak)
    } else {
        Err(Error::Unprotected {
            missing: weak.iter().map(|w| w.fix()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected() -> Settings {
        let mut s = Settings::default();
        s.set("http.admin-token", "0123456789abcdef0123456789abcdef")
            .unwrap();
        s
    }

    #[test]
    fn a_member_without_keys_is_refused_and_told_how_to_fix_it() {
        let e = require_protection(&protected(), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vigil keys generate")
                && e.contains("VIGIL_SECURITY_GOSSIP_KEYS")
                && e.contains("--insecure"),
            "{e}"
        );
        assert!(!e.contains("admin token"), "{e}");
    }

    #[test]
    fn a_member_without_an_admin_token_is_refused_while_admin_endpoints_are_on() {
        let e = require_protection(&Settings::default(), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("VIGIL_HTTP_ADMIN_TOKEN") && e.contains("vigil keys token"),
            "{e}"
        );
        let mut off = Settings::default();
        off.set("http.admin-endpoints", "false").unwrap();
        assert_eq!(require_protection(&off, true), Ok(vec![]));
    }

    #[test]
    fn both_missing_are_named_at_once() {
        let e = require_protection(&Settings::default(), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no gossip keys") && e.contains("no admin token"),
            "{e}"
        );
    }

    #[test]
    fn insecure_in_so_many_words_lets_it_start() {
        let mut s = Settings::default();
        s.set("security.insecure", "true").unwrap();
        assert_eq!(
            require_protection(&s, false),
            Ok(vec![Weakness::NoGossipKeys, Weakness::NoAdminToken])
        );
        s.set("http.admin-token", "short").unwrap();
        assert_eq!(
            require_protection(&s, true),
            Ok(vec![Weakness::WeakAdminToken])
        );
        assert_eq!(require_protection(&protected(), true), Ok(vec![]));
    }
}
