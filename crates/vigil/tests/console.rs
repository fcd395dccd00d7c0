//! The web console in a real browser: Debian's chromium driven through chromium-driver's
//! WebDriver endpoint (plain HTTP and JSON, so reqwest is the whole client).
//!
//! Needs `VIGIL_TEST_CHROMEDRIVER` (the chromedriver binary; `scripts/test.sh` installs
//! `chromium` and `chromium-driver` and sets it) and optionally `VIGIL_TEST_CHROMIUM` (the
//! browser, default `/usr/bin/chromium`). Without them the tests say so and pass, as the
//! pipeline tests do without their servers. `VIGIL_TEST_SCREENSHOT=path` saves the console of
//! the `vigil up` test as a PNG (how `docs/img/console.png` is made).

mod harness;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use harness::{Cluster, Up};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// A headless chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver and a session, or `None` when the test environment has no browser.
    async fn start(test: &str) -> Option<Browser> {
        let Ok(driver_bin) = std::env::var("VIGIL_TEST_CHROMEDRIVER") else {
            eprintln!(
                "{test}: skipped, VIGIL_TEST_CHROMEDRIVER is not set (scripts/test.sh sets it)"
            );
            return None;
        };
        let chromium =
            std::env::var("VIGIL_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = harness::free_tcp_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {driver_bin}: {e}"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {base}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,900"]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Some(Browser {
            driver,
            base,
            session,
            http,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let r: Value = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"))
            .json()
            .await
            .unwrap();
        if r["value"]["error"].is_string() {
            panic!("webdriver {path}: {}", r["value"]);
        }
        r["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// `data-member-id` -> `data-status` of every member row on the page.
    async fn rows(&self) -> Vec<(String, String)> {
        let v = self
            .script(
                "return Array.from(document.querySelectorAll('tr[data-member-id]'))\
                 .map(r => [r.dataset.memberId, r.dataset.status]);",
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Waits until the page's rows satisfy `check`; returns how long it took.
    async fn wait_rows(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[(String, String)]) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let rows = self.rows().await;
            if check(&rows) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: not within {timeout:?}; the page shows {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, path: &str) {
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(path, bytes).unwrap();
        eprintln!("screenshot: {path}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

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
    // the gateway's page has the pipeline panel; a few posted events show up in it
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
