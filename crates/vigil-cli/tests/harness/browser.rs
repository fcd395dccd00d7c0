//! A headless chromium driven through chromium-driver's WebDriver endpoint (plain HTTP and
//! JSON, so reqwest is the whole client), shared by the console tests and the lab.
//!
//! Needs `VIGIL_TEST_CHROMEDRIVER` (the chromedriver binary; `scripts/test.sh` installs
//! `chromium` and `chromium-driver` and sets it) and optionally `VIGIL_TEST_CHROMIUM` (the
//! browser, default `/usr/bin/chromium`); without them [`Browser::start`] says so and gives
//! `None`, and the test passes without a browser, as the pipeline tests do without servers.

#![allow(dead_code)] // each test file uses a part

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// A headless chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver and a session, or `None` when the test environment has no browser.
    pub async fn start(test: &str) -> Option<Browser> {
        let Ok(driver_bin) = std::env::var("VIGIL_TEST_CHROMEDRIVER") else {
            eprintln!(
                "{test}: skipped, VIGIL_TEST_CHROMEDRIVER is not set (scripts/test.sh sets it)"
            );
            return None;
        };
        let chromium =
            std::env::var("VIGIL_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
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

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
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

    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// `data-member-id` -> `data-status` of every member row on the page.
    pub async fn rows(&self) -> Vec<(String, String)> {
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
    pub async fn wait_rows(
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

    pub async fn screenshot(&self, path: &str) {
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
