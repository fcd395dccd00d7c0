//! `vigil up` starts the seed's four services, reports readiness, and stops cleanly.

mod harness;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_four_members_and_stops_them_on_a_signal() {
    let _guard = harness::exclusive().await;
    let dir = harness::scratch("up");
    let (http_offset, gossip_base) = harness::free_up_layout();
    let out = dir.join("up.out");
    let mut up = harness::spawn_up(&dir, &out, http_offset, gossip_base);
    let started = Instant::now();
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    while !read().contains("cluster ready: 4 HEALTHY") {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = up.kill();
            panic!("vigil up did not report a ready cluster:\n{}", read());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let coordinator = format!("http://127.0.0.1:{}/cluster/status", 8081 + http_offset);
    let status: serde_json::Value = reqwest::get(&coordinator)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["healthyNodes"], 4);
    assert_eq!(status["membership"]["producer"]["role"], "producer");
    assert!(dir.join(".vigil/logs/gateway.log").exists());
    // Secure by default: sealed gossip and an admin token from the OS's random source
    // (43 base64url characters), not one derived from the time and the pid.
    assert_eq!(status["insecure"], false, "{status}");
    let printed = read();
    let token = printed
        .split("Bearer ")
        .nth(1)
        .and_then(|t| t.split('\'').next())
        .unwrap_or_else(|| panic!("no admin token printed:\n{printed}"));
    assert!(
        token.len() == 43
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{token}"
    );
    assert!(printed.contains("gossip:   encrypted"), "{printed}");

    kill(Pid::from_raw(up.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let code = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            Instant::now() < deadline,
            "vigil up did not stop:\n{}",
            read()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, Some(0), "{}", read());
    assert!(read().contains("all members stopped"), "{}", read());
    for p in 8080..8084 {
        assert!(
            TcpListener::bind(("127.0.0.1", p + http_offset)).is_ok(),
            "port {} still bound",
            p + http_offset
        );
    }
}
