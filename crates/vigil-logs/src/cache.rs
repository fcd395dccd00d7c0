//! The gateway's cache: Redis when `services.redis.url` is set, else in-process.
//!
//! The cache is an optimisation, never a dependency: when Redis is down every call misses
//! (reads go to the consumers) after a short timeout, the transition is logged once, health
//! reports it, and the first successful call after it returns logs the recovery. The
//! connection manager of the `redis` crate reconnects by itself; a manager that could not be
//! created at all (Redis down at start) is retried at most once a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{info, warn};

/// How long a cache call may take before it counts as a miss.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// Most entries of the in-process cache.
const LOCAL_MAX: usize = 4_096;

/// A string cache with per-entry time to live.
pub enum Cache {
    /// In-process map.
    Local(Mutex<HashMap<String, (Instant, String)>>),
    /// Redis.
    Redis(RedisCache),
}

/// Redis backend state.
pub struct RedisCache {
    client: redis::Client,
    url: String,
    shared: Arc<RedisShared>,
}

/// What the background connect task fills in.
struct RedisShared {
    manager: Mutex<Option<ConnectionManager>>,
    connecting: AtomicBool,
    last_attempt: Mutex<Option<Instant>>,
    up: AtomicBool,
    url: String,
}

impl Cache {
    /// In-process cache.
    pub fn local() -> Cache {
        Cache::Local(Mutex::new(HashMap::new()))
    }

    /// Redis cache; fails only on a malformed URL (a down server is not an error).
    pub fn redis(url: &str) -> Result<Cache, redis::RedisError> {
        let cache = RedisCache {
            client: redis::Client::open(url)?,
            url: url.to_string(),
            shared: Arc::new(RedisShared {
                manager: Mutex::new(None),
                connecting: AtomicBool::new(false),
                last_attempt: Mutex::new(None),
                up: AtomicBool::new(true),
                url: url.to_string(),
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            cache.connect_in_background();
        }
        Ok(Cache::Redis(cache))
    }

    /// The cached value, if fresh.
    pub async fn get(&self, key: &str) -> Option<String> {
        match self {
            Cache::Local(map) => {
                let map = map.lock().unwrap_or_else(|p| p.into_inner());
                map.get(key)
                    .filter(|(until, _)| *until > Instant::now())
                    .map(|(_, v)| v.clone())
            }
            Cache::Redis(r) => {
                let mut cmd = redis::cmd("GET");
                cmd.arg(key);
                r.run::<Option<String>>(cmd).await.flatten()
            }
        }
    }

    /// Stores `value` for `ttl`.
    pub async fn put(&self, key: &str, value: &str, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        match self {
            Cache::Local(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if map.len() >= LOCAL_MAX {
                    map.retain(|_, (until, _)| *until > now);
                    if map.len() >= LOCAL_MAX {
                        map.clear();
                    }
                }
                map.insert(key.to_string(), (now + ttl, value.to_string()));
            }
            Cache::Redis(r) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64);
                let _ = r.run::<()>(cmd).await;
            }
        }
    }

    /// For the health endpoint.
    pub fn health(&self) -> Value {
        match self {
            Cache::Local(_) => json!({ "backend": "in-process", "status": "UP" }),
            Cache::Redis(r) => {
                let up = r.shared.up.load(Ordering::Relaxed)
                    && r.shared
                        .manager
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .is_some();
                json!({
                    "backend": "redis",
                    "url": r.url,
                    "status": if up { "UP" } else { "DOWN" },
                    "note": if up { "caching" } else { "Redis unreachable: serving without the cache" },
                })
            }
        }
    }
}

impl RedisCache {
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        let manager = self
            .shared
            .manager
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(mut conn) = manager else {
            self.connect_in_background();
            return None;
        };
        match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => {
                self.shared.mark(true, "");
                Some(v)
            }
            Ok(Err(e)) => {
                self.shared.mark(false, &e.to_string());
                None
            }
            Err(_) => {
                self.shared.mark(false, "command timed out");
                None
            }
        }
    }

    /// Starts one connection attempt unless one runs or one started less than a second ago.
    fn connect_in_background(&self) {
        {
            let mut last = self
                .shared
                .last_attempt
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            if self.shared.connecting.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(Instant::now());
        }
        let shared = self.shared.clone();
        let client = self.client.clone();
        // Ends by itself within the connection timeout; holds nothing a shutdown waits for.
        drop(tokio::spawn(async move {
            let config = ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_connection_timeout(REDIS_TIMEOUT * 2)
                .set_response_timeout(REDIS_TIMEOUT);
            match tokio::time::timeout(
                REDIS_TIMEOUT * 4,
                ConnectionManager::new_with_config(client, config),
            )
            .await
            {
                Ok(Ok(m)) => {
                    *shared.manager.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
                    shared.mark(true, "");
                }
                Ok(Err(e)) => shared.mark(false, &e.to_string()),
                Err(_) => shared.mark(false, "connect timed out"),
            }
            shared.connecting.store(false, Ordering::Release);
        }));
    }
}

impl RedisShared {
    fn mark(&self, up: bool, why: &str) {
        let was = self.up.swap(up, Ordering::Relaxed);
        match (was, up) {
            (true, false) => {
                warn!(url = %self.url, error = why, "Redis unreachable: serving without the cache")
            }
            (false, true) => info!(url = %self.url, "Redis reachable again: caching resumed"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn local_entries_expire() {
        let c = Cache::local();
        c.put("k", "v", Duration::from_secs(2)).await;
        assert_eq!(c.get("k").await.as_deref(), Some("v"));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(c.get("k").await, None);
    }

    #[tokio::test]
    async fn an_unreachable_redis_misses_and_says_so() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let c = Cache::redis("redis://127.0.0.1:1").unwrap();
        let started = std::time::Instant::now();
        c.put("k", "v", Duration::from_secs(2)).await;
        assert_eq!(c.get("k").await, None);
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "a miss never waits"
        );
        assert_eq!(c.health()["status"], "DOWN");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(c.health()["status"], "DOWN");
    }
}
