//! `vigil join`, `vigil leave`, `vigil force-leave`: the admin endpoints with the admin token
//! (`http.admin-token`), like `serf join` / `consul leave` / `consul force-leave`.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::Target;
use vigil::api::model::MemberDto;

/// The admin token, from the flag or the environment the members read it from.
#[derive(Debug, Clone, Args)]
pub struct Token {
    /// The admin token (http.admin-token of the members).
    #[arg(long, env = "VIGIL_HTTP_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Token {
    /// The token, or an error that names both ways to give it.
    pub fn require(&self) -> anyhow::Result<&str> {
        self.token.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "--token (or VIGIL_HTTP_ADMIN_TOKEN) is required: this is an admin endpoint"
            )
        })
    }
}

/// Flags of `vigil join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Gossip addresses (HOST:PORT) of members of the cluster to join.
    #[arg(required = true, value_name = "HOST:PORT")]
    pub addresses: Vec<String>,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    token: Token,
    /// How long to wait for the node to list a member at one of the addresses.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub wait: String,
}

/// Flags of `vigil leave`.
#[derive(Debug, Args)]
pub struct LeaveArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    token: Token,
}

/// Flags of `vigil force-leave`.
#[derive(Debug, Args)]
pub struct ForceLeaveArgs {
    /// The member's id.
    pub id: String,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    token: Token,
}

/// POSTs `body` to `path` with the token; the answer's JSON, or an error with the node's reason.
async fn post(target: &Target, token: &Token, path: &str, body: Value) -> anyhow::Result<Value> {
    let token = token.require()?;
    let base = target.url();
    let client = super::client(Duration::from_secs(5))?.build()?;
    let request = client.post(format!("{base}{path}")).json(&body);
    super::send_admin(request, &base, token)
        .await
        .with_context(|| format!("{base}{path}"))
}

/// Runs `vigil join`.
pub async fn join(args: JoinArgs) -> anyhow::Result<()> {
    let wait = vigil::config::duration::parse(&args.wait)
        .map_err(|e| anyhow::anyhow!("--wait {}: {e}", args.wait))?;
    let answer = post(
        &args.target,
        &args.token,
        "/cluster/join",
        json!({ "addresses": args.addresses }),
    )
    .await?;
    let contacted: Vec<String> = answer["contacted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let base = args.target.url();
    let deadline = Instant::now() + wait;
    loop {
        let members: Vec<MemberDto> = super::get_json(&base, "/cluster/members")
            .await
            .context("after the join")?;
        let reached: Vec<&MemberDto> = members
            .iter()
            .filter(|m| contacted.contains(&m.gossip_address))
            .collect();
        if let Some(m) = reached.first() {
            return super::emitln(&format!(
                "{base} joined through {} (member {}); it now lists {} members",
                m.gossip_address,
                m.node_id,
                members.len()
            ));
        }
        if Instant::now() >= deadline {
            bail!(
                "{base} contacted {} but no member answered within {wait:?}; check the \
                 address, the cluster name and the gossip key",
                contacted.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `vigil leave`.
pub async fn leave(args: LeaveArgs) -> anyhow::Result<()> {
    let answer = post(&args.target, &args.token, "/cluster/leave", json!({})).await?;
    super::emitln(&format!(
        "{} is leaving the cluster (it exits once the news has spread)",
        answer["nodeId"].as_str().unwrap_or("the node")
    ))
}

/// Runs `vigil force-leave`.
pub async fn force_leave(args: ForceLeaveArgs) -> anyhow::Result<()> {
    let path = format!("/cluster/members/{}/remove", args.id);
    post(&args.target, &args.token, &path, json!({})).await?;
    super::emitln(&format!(
        "{} removed; the removal spreads by gossip",
        args.id
    ))
}
