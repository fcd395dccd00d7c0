//! `vigil load`: sustained ingest through the gateway, then latency, throughput, errors, and
//! every member's health and availability as sampled during the run.
//!
//! Requests (`POST /api/logs`, `--batch` events each) start on a fixed schedule, not after the
//! previous answer (an open-loop load, so a slow server cannot slow the load down and hide its
//! own latency); at most `--concurrency` are in flight, a tick that finds none free is counted
//! as `skipped`. Every run uses its own service name (`load-<pid>-<ms>`), so `--verify` can
//! count exactly this run's rows afterwards: no loss, no duplicates.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use vigil::api::model::StatusDto;

/// Flags of `vigil load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The gateway to load (--addr, or VIGIL_ADDR) [default: http://127.0.0.1:8080, the
    /// gateway of `vigil up`].
    #[command(flatten)]
    pub target: super::Target,
    /// Events per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// How long, e.g. 30s or 2m.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Events per request.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Most requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// After the run, wait until every accepted event is stored (GET /api/logs/stats).
    #[arg(long)]
    pub verify: bool,
    /// Output format of the report.
    #[arg(long, short, value_enum, default_value_t = super::Output::Table)]
    pub output: super::Output,
}

/// The gateway of `vigil up`.
const DEFAULT_GATEWAY: &str = "http://127.0.0.1:8080";

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    accepted_requests: AtomicU64,
    accepted_events: AtomicU64,
    throttled: AtomicU64,
    unavailable: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
}

#[derive(Default, Clone)]
struct MemberSamples {
    role: String,
    samples: u64,
    healthy: u64,
    score_sum: u64,
    score_min: u8,
    statuses: BTreeMap<String, u64>,
}

/// Accepted requests' latencies in microseconds: an HDR histogram (three significant digits,
/// 1 µs to an hour) keeps a long run's memory flat, where a list of every latency grew with it.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Runs `vigil load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let duration = vigil::config::duration::parse(&args.duration)
        .map_err(|e| anyhow::anyhow!("--duration {}: {e}", args.duration))?;
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    anyhow::ensure!(
        (1..=vigil_logs::event::MAX_BATCH).contains(&args.batch),
        "--batch must be 1-{}",
        vigil_logs::event::MAX_BATCH
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let json_out = args.output == super::Output::Json;
    let base = args.target.url_or(DEFAULT_GATEWAY);
    let client = super::client(Duration::from_secs(10))?
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let service = format!(
        "load-{}-{}",
        std::process::id(),
        vigil_logs::event::now_ms()
    );
    let before = if args.verify {
        Some(stored_for(&client, &base, &service).await.unwrap_or(0))
    } else {
        None
    };

    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(latency_histogram()));
    let samples = Arc::new(Mutex::new(BTreeMap::<String, MemberSamples>::new()));
    let sample_failures = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(Semaphore::new(args.concurrency));
    // What the failed requests were, by kind ("Connection refused (os error 111)", "HTTP 500").
    let error_kinds = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));

    let bar = if json_out || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(duration.as_secs().max(1));
        b.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };

    let sampler = {
        let client = client.clone();
        let base = base.clone();
        let samples = samples.clone();
        let failures = sample_failures.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                match fetch_status(&client, &base).await {
                    Some(s) => {
                        let mut all = samples.lock().unwrap_or_else(|p| p.into_inner());
                        for (id, m) in s.membership {
                            let e = all.entry(id).or_insert_with(|| MemberSamples {
                                score_min: u8::MAX,
                                ..MemberSamples::default()
                            });
                            e.role = m.role.clone();
                            e.samples += 1;
                            e.healthy += u64::from(m.status == "HEALTHY");
                            e.score_sum += u64::from(m.health_score);
                            e.score_min = e.score_min.min(m.health_score);
                            *e.statuses.entry(m.status).or_default() += 1;
                        }
                    }
                    None => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    let requests_per_sec = f64::from(args.rate) / args.batch as f64;
    let period = Duration::from_secs_f64(1.0 / requests_per_sec);
    let start = Instant::now();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = Vec::new();
    let mut last_bar = Instant::now();
    let mut seq: u64 = 0;
    while start.elapsed() < duration {
        tick.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let body: Vec<Value> = (0..args.batch)
            .map(|i| {
                seq += 1;
                let level = ["INFO", "INFO", "INFO", "WARN", "ERROR"][i % 5];
                json!({
                    "service": service,
                    "level": level,
                    "message": format!("load test event {seq}"),
                })
            })
            .collect();
        let client = client.clone();
        let url = format!("{base}/api/logs");
        let task_counters = counters.clone();
        let latencies = latencies.clone();
        let error_kinds = error_kinds.clone();
        let n = args.batch as u64;
        counters.sent.fetch_add(1, Ordering::Relaxed);
        requests.push(tokio::spawn(async move {
            let counters = task_counters;
            let t0 = Instant::now();
            let outcome = client.post(&url).json(&body).send().await;
            let micros = t0.elapsed().as_micros() as u64;
            drop(permit);
            let outcome = outcome.map(|r| r.status().as_u16());
            let kind = match &outcome {
                Ok(code) => format!("HTTP {code}"),
                Err(e) if e.is_timeout() => "timeout".to_string(),
                Err(e) => super::root_cause(e),
            };
            match outcome {
                Ok(202) => {
                    counters.accepted_requests.fetch_add(1, Ordering::Relaxed);
                    counters.accepted_events.fetch_add(n, Ordering::Relaxed);
                    latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .saturating_record(micros.max(1));
                }
                Ok(429) => {
                    counters.throttled.fetch_add(1, Ordering::Relaxed);
                }
                Ok(503) => {
                    counters.unavailable.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    *error_kinds
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(kind)
                        .or_default() += 1;
                }
            }
        }));
        if last_bar.elapsed() >= Duration::from_millis(250) {
            last_bar = Instant::now();
            bar.set_position(start.elapsed().as_secs());
            bar.set_message(format!(
                "{} events accepted, {} refused, {} errors",
                counters.accepted_events.load(Ordering::Relaxed),
                counters.throttled.load(Ordering::Relaxed)
                    + counters.unavailable.load(Ordering::Relaxed),
                counters.errors.load(Ordering::Relaxed)
            ));
            requests.retain(|r| !r.is_finished());
        }
    }
    for r in requests {
        let _ = r.await;
    }
    let elapsed = start.elapsed();
    sampler.abort();
    bar.finish_and_clear();

    let lat = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ms = |us: u64| us as f64 / 1000.0;
    let c = &counters;
    let accepted_events = c.accepted_events.load(Ordering::Relaxed);

    let verify = match before {
        Some(before) => {
            Some(verify_stored(&client, &base, &service, before, accepted_events).await)
        }
        None => None,
    };

    let members = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let report = json!({
        "addr": base,
        "rate": args.rate,
        "batch": args.batch,
        "durationSecs": elapsed.as_secs_f64(),
        "requests": {
            "sent": c.sent.load(Ordering::Relaxed),
            "accepted": c.accepted_requests.load(Ordering::Relaxed),
            "throttled429": c.throttled.load(Ordering::Relaxed),
            "unavailable503": c.unavailable.load(Ordering::Relaxed),
            "errors": c.errors.load(Ordering::Relaxed),
            "skippedClientSaturated": c.skipped.load(Ordering::Relaxed),
        },
        "errorsByKind": error_kinds.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        "eventsAccepted": accepted_events,
        "throughputEventsPerSec": accepted_events as f64 / elapsed.as_secs_f64().max(1e-9),
        "latencyMs": {
            "p50": ms(lat.value_at_quantile(0.50)),
            "p99": ms(lat.value_at_quantile(0.99)),
            "max": ms(lat.max()),
        },
        "statusSampleFailures": sample_failures.load(Ordering::Relaxed),
        "members": members.iter().map(|(id, m)| (id.clone(), json!({
            "role": m.role,
            "samples": m.samples,
            "availabilityPct": 100.0 * m.healthy as f64 / m.samples.max(1) as f64,
            "healthScoreMin": m.score_min,
            "healthScoreAvg": m.score_sum as f64 / m.samples.max(1) as f64,
            "statuses": m.statuses,
        }))).collect::<serde_json::Map<String, Value>>(),
        "verify": verify.as_ref().map(|(stored, secs)| json!({
            "service": service,
            "stored": stored,
            "expected": accepted_events,
            "secondsToStore": secs,
        })),
    });
    if json_out {
        super::emit_json(&report)?;
    } else {
        super::emit(&render_report(&report, &members, &service, verify))?;
    }
    if accepted_events == 0 {
        anyhow::bail!("{}", nothing_accepted(&report));
    }
    Ok(())
}

/// Why a run that got nothing accepted failed, from the report's counters and error kinds.
fn nothing_accepted(r: &Value) -> String {
    let q = &r["requests"];
    let mut reasons: Vec<String> = r["errorsByKind"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(kind, n)| format!("{n}× {kind}"))
        .collect();
    for (key, what) in [
        ("throttled429", "429 throttled"),
        ("unavailable503", "503 unavailable"),
    ] {
        if let Some(n) = q[key].as_u64().filter(|n| *n > 0) {
            reasons.push(format!("{n}× {what}"));
        }
    }
    if reasons.is_empty() {
        reasons.push("no request completed".into());
    }
    format!(
        "no event was accepted by {} ({}); is a gateway running there? (--addr or VIGIL_ADDR)",
        r["addr"].as_str().unwrap_or("?"),
        reasons.join(", ")
    )
}

fn render_report(
    r: &Value,
    members: &BTreeMap<String, MemberSamples>,
    service: &str,
    verify: Option<(u64, f64)>,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let q = &r["requests"];
    let _ = writeln!(
        out,
        "vigil load: {:.1} s at {} events/s ({} per request) against {}",
        r["durationSecs"].as_f64().unwrap_or(0.0),
        r["rate"],
        r["batch"],
        r["addr"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "  requests:   {} sent, {} accepted (202), {} throttled (429), {} unavailable (503), {} errors, {} skipped (client saturated)",
        q["sent"], q["accepted"], q["throttled429"], q["unavailable503"], q["errors"], q["skippedClientSaturated"]
    );
    let _ = writeln!(
        out,
        "  throughput: {} events accepted, {:.1} events/s",
        r["eventsAccepted"],
        r["throughputEventsPerSec"].as_f64().unwrap_or(0.0)
    );
    let l = &r["latencyMs"];
    let _ = writeln!(
        out,
        "  latency:    p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        l["p50"].as_f64().unwrap_or(0.0),
        l["p99"].as_f64().unwrap_or(0.0),
        l["max"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(
        out,
        "  members (sampled every second through /api/cluster/status; {} failed samples):",
        r["statusSampleFailures"]
    );
    let _ = writeln!(
        out,
        "    {:<14} {:<12} {:>8} {:>13} {:>10}  statuses seen",
        "member", "role", "samples", "availability", "score min/avg"
    );
    for (id, m) in members {
        let statuses: Vec<String> = m.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        let _ = writeln!(
            out,
            "    {:<14} {:<12} {:>8} {:>12.1}% {:>6}/{:<6.1}  {}",
            id,
            m.role,
            m.samples,
            100.0 * m.healthy as f64 / m.samples.max(1) as f64,
            m.score_min,
            m.score_sum as f64 / m.samples.max(1) as f64,
            statuses.join(" ")
        );
    }
    if let Some((stored, secs)) = verify {
        let expected = r["eventsAccepted"].as_u64().unwrap_or(0);
        let verdict = match stored.cmp(&expected) {
            std::cmp::Ordering::Equal => "nothing lost, nothing doubled",
            std::cmp::Ordering::Less => "MISSING ROWS",
            std::cmp::Ordering::Greater => "DUPLICATE ROWS",
        };
        let _ = writeln!(out, "  verify:     {stored} of {expected} accepted events stored for service {service} after {secs:.1} s: {verdict}");
    }
    out
}

async fn fetch_status(client: &reqwest::Client, base: &str) -> Option<StatusDto> {
    let r = client
        .get(format!("{base}/api/cluster/status"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

async fn stored_for(client: &reqwest::Client, base: &str, service: &str) -> anyhow::Result<u64> {
    let url = format!("{base}/api/logs/stats");
    let v: Value = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?
        .json()
        .await?;
    Ok(v["byService"][service].as_u64().unwrap_or(0))
}

/// Waits (up to 60 s) until the rows of this run stop short of or reach `expected`.
async fn verify_stored(
    client: &reqwest::Client,
    base: &str,
    service: &str,
    before: u64,
    expected: u64,
) -> (u64, f64) {
    let start = Instant::now();
    let mut stored = 0;
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(n) = stored_for(client, base, service).await {
            stored = n.saturating_sub(before);
            if stored >= expected {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // One more look after the cache TTL, so late duplicates would show.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    if let Ok(n) = stored_for(client, base, service).await {
        stored = n.saturating_sub(before);
    }
    (stored, start.elapsed().as_secs_f64())
}
