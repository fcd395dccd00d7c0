//! `vigil keys`: generate gossip keys and rotate the keyring of a running cluster.
//!
//! A change goes to every live member the asked node knows (its `/cluster/members`), one
//! HTTP call each, and the command prints one line per member. Rotation without downtime is
//! three commands, each run to completion on every member before the next:
//! `install NEW`, `use NEW`, `remove OLD`. A member that missed a step (it was down) is
//! named, and the command exits 1 so a script stops before the next step.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::api::model::MemberDto;
use crate::security::{secrets, Key};

/// `vigil keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random key (base64, 32 bytes) for security.gossip-keys.
    Generate,
    /// Print a new random admin token (32 bytes, base64url) for http.admin-token.
    Token,
    /// Show every member's keyring (primary first).
    List(Target),
    /// Make every member accept KEY (sealing still uses the current primary).
    Install(Change),
    /// Make every member seal with KEY (install it everywhere first).
    Use(Change),
    /// Make every member stop accepting KEY (not the primary).
    Remove(Change),
}

/// Which members to ask, and how to authenticate.
#[derive(Debug, Args)]
pub struct Target {
    /// Node to ask for the member list (and to change, with --only-this).
    #[arg(long, default_value = super::DEFAULT_ADDR, env = "VIGIL_ADDR")]
    pub addr: String,
    /// The admin token (http.admin-token of the members).
    #[arg(long, env = "VIGIL_HTTP_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Change only the node at --addr, not the whole cluster.
    #[arg(long)]
    pub only_this: bool,
}

/// A key and where to apply it.
#[derive(Debug, Args)]
pub struct Change {
    /// The key, base64.
    pub key: String,
    #[command(flatten)]
    target: Target,
}

/// Runs `vigil keys ...`.
pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    let (op, key, target) = match cmd {
        KeysCommand::Generate => {
            println!("{}", secrets::gossip_key()?.encode());
            return Ok(());
        }
        KeysCommand::Token => {
            println!("{}", secrets::admin_token()?);
            return Ok(());
        }
        KeysCommand::List(t) => ("list", None, t),
        KeysCommand::Install(c) => ("install", Some(c.key), c.target),
        KeysCommand::Use(c) => ("use", Some(c.key), c.target),
        KeysCommand::Remove(c) => ("remove", Some(c.key), c.target),
    };
    if let Some(k) = &key {
        Key::parse(k).map_err(|e| anyhow::anyhow!("KEY: {e}"))?;
    }
    let Some(token) = target.token.clone() else {
        bail!("--token (or VIGIL_HTTP_ADMIN_TOKEN) is required: keyring endpoints are admin-only");
    };
    let nodes = if target.only_this {
        vec![("(--addr)".to_string(), target.addr.clone())]
    } else {
        live_members(&target.addr).await?
    };
    let client = super::client(Duration::from_secs(5))?.build()?;
    let mut failed = Vec::new();
    for (id, addr) in &nodes {
        match call(&client, addr, op, key.as_deref(), &token).await {
            Ok(body) => {
                let keys = body["keys"].as_array().map_or(0, Vec::len);
                let primary = body["primary"].as_str().unwrap_or("-");
                if op == "list" {
                    let all: Vec<&str> = body["keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!(
                        "{id:<16} {addr:<22} primary {primary}  all [{}]",
                        all.join(", ")
                    );
                } else {
                    println!("{id:<16} {addr:<22} ok: {keys} key(s), primary {primary}");
                }
            }
            Err(e) => {
                println!("{id:<16} {addr:<22} FAILED: {e:#}");
                failed.push(id.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{op} failed on {} of {} members ({}); fix them before the next step",
            failed.len(),
            nodes.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Every member that is not FAILED or LEFT and has an HTTP address, as (id, base URL).
async fn live_members(addr: &str) -> anyhow::Result<Vec<(String, String)>> {
    let members: Vec<MemberDto> = super::get_json(addr, "/cluster/members").await?;
    let mut out: Vec<(String, String)> = members
        .into_iter()
        .filter(|m| !matches!(m.status.as_str(), "FAILED" | "LEFT"))
        .filter_map(|m| m.http_address.map(|a| (m.node_id, a)))
        .collect();
    out.sort();
    if out.is_empty() {
        bail!("{addr} lists no live member with an HTTP address");
    }
    Ok(out)
}

async fn call(
    client: &reqwest::Client,
    addr: &str,
    op: &str,
    key: Option<&str>,
    token: &str,
) -> anyhow::Result<Value> {
    let base = crate::tls::base_url(addr);
    let request = match key {
        None => client.get(format!("{base}/cluster/keys")),
        Some(k) => client
            .post(format!("{base}/cluster/keys/{op}"))
            .json(&serde_json::json!({ "key": k })),
    };
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{status}: {}",
            body["error"].as_str().unwrap_or("no detail")
        );
    }
    Ok(body)
}
