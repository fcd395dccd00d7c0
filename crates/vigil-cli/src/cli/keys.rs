//! `vigil keys`: generate gossip keys and rotate the keyring of a running cluster.
//!
//! A change goes to every live member the asked node knows (its `/cluster/members`), one
//! HTTP call each, and the command prints one line per member. Rotation without downtime is
//! three commands, each run to completion on every member before the next:
//! `install NEW`, `use NEW`, `remove OLD`. A member that missed a step (it was down) is
//! named, and the command exits 1 so a script stops before the next step.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::Value;

use vigil::api::model::MemberDto;
use vigil::security::{secrets, Key};

/// `vigil keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random key (base64, 32 bytes) for security.gossip-keys.
    Generate,
    /// Print a new random admin token (32 bytes, base64url) for http.admin-token.
    Token,
    /// Show every member's keyring (primary first).
    List(ListArgs),
    /// Make every member accept KEY (sealing still uses the current primary).
    Install(Change),
    /// Make every member seal with KEY (install it everywhere first).
    Use(Change),
    /// Make every member stop accepting KEY (not the primary).
    Remove(Change),
}

/// Which members to ask, and how to authenticate.
#[derive(Debug, Args)]
pub struct Scope {
    /// The node asked for the member list (and the one changed, with --only-this).
    #[command(flatten)]
    pub node: super::Target,
    #[command(flatten)]
    token: super::admin::Token,
    /// Change only the node at --addr, not the whole cluster.
    #[arg(long)]
    pub only_this: bool,
}

/// Flags of `vigil keys list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: Scope,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = super::Output::Table)]
    pub output: super::Output,
}

/// A key and where to apply it.
#[derive(Debug, Args)]
pub struct Change {
    /// The key, base64.
    pub key: String,
    #[command(flatten)]
    target: Scope,
}

/// Runs `vigil keys ...`.
pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    let (op, key, target) = match cmd {
        KeysCommand::Generate => {
            return super::emitln(&secrets::gossip_key()?.encode());
        }
        KeysCommand::Token => {
            return super::emitln(&secrets::admin_token()?);
        }
        KeysCommand::List(l) => return list(l).await,
        KeysCommand::Install(c) => ("install", Some(c.key), c.target),
        KeysCommand::Use(c) => ("use", Some(c.key), c.target),
        KeysCommand::Remove(c) => ("remove", Some(c.key), c.target),
    };
    if let Some(k) = &key {
        Key::parse(k).map_err(|e| anyhow::anyhow!("KEY: {e}"))?;
    }
    let token = target.token.require()?.to_string();
    let nodes = targets(&target).await?;
    let client = super::client(Duration::from_secs(5))?.build()?;
    let mut failed = Vec::new();
    for (id, addr) in &nodes {
        match call(&client, addr, op, key.as_deref(), &token).await {
            Ok(body) => {
                let keys = body["keys"].as_array().map_or(0, Vec::len);
                let primary = body["primary"].as_str().unwrap_or("-");
                super::emitln(&format!(
                    "{id:<16} {addr:<22} ok: {keys} key(s), primary {primary}"
                ))?;
            }
            Err(e) => {
                super::emitln(&format!("{id:<16} {addr:<22} FAILED: {e:#}"))?;
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

/// Runs `vigil keys list`: every live member's keyring, as lines or one JSON object by id.
async fn list(args: ListArgs) -> anyhow::Result<()> {
    let token = args.target.token.require()?.to_string();
    let nodes = targets(&args.target).await?;
    let client = super::client(Duration::from_secs(5))?.build()?;
    let mut failed = Vec::new();
    let mut all = serde_json::Map::new();
    for (id, addr) in &nodes {
        let answer = call(&client, addr, "list", None, &token).await;
        let entry = match &answer {
            Ok(body) => {
                serde_json::json!({ "address": addr, "primary": body["primary"], "keys": body["keys"] })
            }
            Err(e) => serde_json::json!({ "address": addr, "error": format!("{e:#}") }),
        };
        all.insert(id.clone(), entry);
        if args.output == super::Output::Json {
            if answer.is_err() {
                failed.push(id.clone());
            }
            continue;
        }
        match answer {
            Ok(body) => {
                let primary = body["primary"].as_str().unwrap_or("-");
                let keys: Vec<&str> = body["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                super::emitln(&format!(
                    "{id:<16} {addr:<22} primary {primary}  all [{}]",
                    keys.join(", ")
                ))?;
            }
            Err(e) => {
                super::emitln(&format!("{id:<16} {addr:<22} FAILED: {e:#}"))?;
                failed.push(id.clone());
            }
        }
    }
    if args.output == super::Output::Json {
        super::emit_json(&all)?;
    }
    if !failed.is_empty() {
        bail!(
            "list failed on {} of {} members ({})",
            failed.len(),
            nodes.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The nodes a keyring command talks to, as (id, base URL).
async fn targets(scope: &Scope) -> anyhow::Result<Vec<(String, String)>> {
    let addr = scope.node.url();
    if scope.only_this {
        Ok(vec![("(--addr)".to_string(), addr)])
    } else {
        live_members(&addr).await
    }
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
    let base = vigil::tls::base_url(addr);
    let request = match key {
        None => client.get(format!("{base}/cluster/keys")),
        Some(k) => client
            .post(format!("{base}/cluster/keys/{op}"))
            .json(&serde_json::json!({ "key": k })),
    };
    super::send_admin(request, &base, token).await
}
