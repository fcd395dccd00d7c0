//! The web console in a real browser: Debian's chromium through chromium-driver
//! (`harness/browser.rs`; without a driver the tests say so and pass).
//! `VIGIL_TEST_SCREENSHOT=path` saves the console of the `vigil up` test as a PNG (how
//! `docs/img/console.png` is made).

mod harness;

#[path = "harness/browser.rs"]
mod browser;

use std::time::{Duration, Instant};

use browser::Browser;
use harness::{Cluster, Up};
use nix::sys::signal::Signal;

fn all_healthy(rows: &[(String, String)], n: usize) -> bool {
    rows.len() == n && rows.iter().all(|(_, s)| s == "HEALTHY")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_of_vigil_up_shows_four_healthy_members() {
    let Some(browser) = Browser::start("console vigil up").await else {
        return;
    };
    let _guard = harness::exclusive().await;
    let up = Up::start("console-up");
    up.wait_ready(Duration::from_secs(120)).await;
    browser.open(&up.url("gateway", "/")).await;
    let took = browser
        .wait_rows("4 members HEALTHY", Duration::from_secs(30), |r| {
            all_healthy(r, 4)
        })
        .await;
    let ids: Vec<String> = browser.rows().await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["consumer", "coordinator", "gateway", "producer"]);
    eprintln!("MEASURED: console shows 4 HEALTHY {took:.2?} after opening");
    // the gateway's page has the pipeline panel; a write and a read through the gateway put
    // their routing in it (share of writes by producer, of reads by consumer)
    let event = serde_json::json!([{"service": "console", "level": "INFO", "message": "m"}]);
    assert_eq!(
        up.post_code("gateway", "/api/logs", &event).await,
        Some(202)
    );
    assert_eq!(up.get_code("gateway", "/api/logs").await, Some(200));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = browser
            .script("return document.getElementById('pipeline').textContent")
            .await;
        let text = text.as_str().unwrap_or_default();
        if text.contains("share of writes") && text.contains("share of reads") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no routing tables in the pipeline panel: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser
        .wait_rows("still 4", Duration::from_secs(5), |r| all_healthy(r, 4))
        .await;
    if let Ok(path) = std::env::var("VIGIL_TEST_SCREENSHOT") {
        // let the sparklines and the event list fill a little
        tokio::time::sleep(Duration::from_secs(8)).await;
        browser.screenshot(&path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_turns_failed_on_the_open_page_without_a_reload() {
    let Some(browser) = Browser::start("console kill -9").await else {
        return;
    };
    let _guard = harness::exclusive().await;
    let mut cluster = Cluster::new("console-kill", "");
    for id in ["n1", "n2", "n3"] {
        cluster.start(id);
    }
    cluster
        .wait_for("3 HEALTHY everywhere", Duration::from_secs(30), || {
            cluster.all_see_healthy(&["n1", "n2", "n3"], 3)
        })
        .await;
    browser.open(&cluster.node("n1").url("/ui")).await;
    browser
        .wait_rows("3 members HEALTHY", Duration::from_secs(20), |r| {
            all_healthy(r, 3)
        })
        .await;
    // the event stream is connected before the kill, so the page is live, not reloaded
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser
        .script("return document.getElementById('stream').textContent")
        .await
        != "events: live"
    {
        assert!(
            Instant::now() < deadline,
            "the event stream never connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.script("window.__marker = 'same page';").await;

    let killed = Instant::now();
    cluster.node("n3").signal(Signal::SIGKILL);
    let on_page = browser
        .wait_rows("n3 FAILED on the page", Duration::from_secs(10), |r| {
            r.iter().any(|(id, s)| id == "n3" && s == "FAILED")
        })
        .await;
    assert_eq!(
        browser.script("return window.__marker || null").await,
        "same page",
        "the page was reloaded"
    );
    // and the timeline got the event from the stream
    let events = browser
        .script(
            "return Array.from(document.querySelectorAll('#events li[data-event=\"member-failed\"]'))\
             .map(li => li.textContent).join('\\n')",
        )
        .await;
    assert!(
        events.as_str().unwrap().contains("n3"),
        "no member-failed event for n3 in the timeline: {events}"
    );
    eprintln!(
        "MEASURED: kill -9 -> FAILED on the open console after {on_page:.2?} ({:.2?} to now)",
        killed.elapsed()
    );
}
