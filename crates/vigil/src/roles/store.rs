//! The consumer's durable store: SQLite (embedded default) or PostgreSQL, both through sqlx
//! with embedded migrations (`crates/vigil/migrations/{sqlite,postgres}`).
//!
//! Writes are idempotent on the event id (`INSERT ... ON CONFLICT (id) DO NOTHING`), one
//! transaction per batch: when [`Store::insert`] returns, every event of the batch is durable
//! (committed), and only then does the consumer acknowledge it (HTTP 200 or Kafka commit).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::QueryBuilder;

use super::event::{Level, LogEvent, LogEventOut};

/// Rows per INSERT statement (SQLite allows 32766 bound values; 6 per row).
const ROWS_PER_STATEMENT: usize = 500;
/// Most rows one query returns.
pub const MAX_LIMIT: i64 = 1_000;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connecting or a statement failed (the server may be down; retry later).
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The migrations could not be applied.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be read back.
    #[error("a stored row has an unknown level `{0}`")]
    BadRow(String),
}

/// Filters of `GET /logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only this service.
    pub service: Option<String>,
    /// Only this level.
    pub level: Option<Level>,
    /// From this time (unix ms, inclusive).
    pub from_ms: Option<i64>,
    /// Before this time (unix ms, exclusive).
    pub to_ms: Option<i64>,
    /// At most this many rows (newest first).
    pub limit: i64,
}

/// `GET /logs/stats`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LogStats {
    /// Rows stored.
    pub total: i64,
    /// Rows per level.
    pub by_level: BTreeMap<String, i64>,
    /// Rows per service.
    pub by_service: BTreeMap<String, i64>,
}

/// A connected, migrated store.
#[derive(Clone)]
pub enum Store {
    /// Embedded file.
    Sqlite(SqlitePool),
    /// Server.
    Postgres(PgPool),
}

type Row = (String, i64, String, String, String, String);

impl Store {
    /// Opens (creating it if needed) a SQLite file and applies the migrations.
    pub async fn sqlite(path: &str) -> Result<Store, StoreError> {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit that returned survives even a power cut, not only a kill -9.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Store::Sqlite(pool))
    }

    /// Connects to PostgreSQL and applies the migrations.
    pub async fn postgres(url: &str) -> Result<Store, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Store::Postgres(pool))
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Stores a batch in one transaction; returns how many rows were new (the rest were
    /// already there: redeliveries).
    pub async fn insert(&self, events: &[LogEvent]) -> Result<u64, StoreError> {
        macro_rules! insert_with {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await?;
                let mut inserted = 0;
                for chunk in events.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::new(
                        "INSERT INTO logs (id, ts_ms, service, level, message, host) ",
                    );
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(e.id.as_str())
                            .push_bind(e.timestamp_ms)
                            .push_bind(e.service.as_str())
                            .push_bind(e.level.as_str())
                            .push_bind(e.message.as_str())
                            .push_bind(e.host.as_str());
                    });
                    qb.push(" ON CONFLICT (id) DO NOTHING");
                    inserted += qb.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(inserted)
            }};
        }
        if events.is_empty() {
            return Ok(0);
        }
        match self {
            Store::Sqlite(pool) => insert_with!(pool),
            Store::Postgres(pool) => insert_with!(pool),
        }
    }

    /// Events matching `q`, newest first.
    pub async fn query(&self, q: &LogQuery) -> Result<Vec<LogEventOut>, StoreError> {
        macro_rules! query_with {
            ($pool:expr) => {{
                let mut qb = QueryBuilder::new(
                    "SELECT id, ts_ms, service, level, message, host FROM logs WHERE 1=1",
                );
                if let Some(s) = &q.service {
                    qb.push(" AND service = ").push_bind(s.clone());
                }
                if let Some(l) = q.level {
                    qb.push(" AND level = ").push_bind(l.as_str());
                }
                if let Some(f) = q.from_ms {
                    qb.push(" AND ts_ms >= ").push_bind(f);
                }
                if let Some(t) = q.to_ms {
                    qb.push(" AND ts_ms < ").push_bind(t);
                }
                qb.push(" ORDER BY ts_ms DESC, id LIMIT ")
                    .push_bind(q.limit.clamp(1, MAX_LIMIT));
                let rows: Vec<Row> = qb.build_query_as().fetch_all($pool).await?;
                rows
            }};
        }
        let rows = match self {
            Store::Sqlite(pool) => query_with!(pool),
            Store::Postgres(pool) => query_with!(pool),
        };
        rows.into_iter()
            .map(|(id, ts, service, level, message, host)| {
                let level = Level::parse(&level).ok_or(StoreError::BadRow(level))?;
                Ok(LogEvent {
                    id,
                    timestamp_ms: ts,
                    service,
                    level,
                    message,
                    host,
                }
                .to_out())
            })
            .collect()
    }

    /// Totals by level and by service.
    pub async fn stats(&self) -> Result<LogStats, StoreError> {
        macro_rules! stats_with {
            ($pool:expr) => {{
                let total: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM logs")
                    .fetch_one($pool)
                    .await?;
                let by_level: Vec<(String, i64)> =
                    sqlx::query_as("SELECT level, COUNT(*) FROM logs GROUP BY level")
                        .fetch_all($pool)
                        .await?;
                let by_service: Vec<(String, i64)> =
                    sqlx::query_as("SELECT service, COUNT(*) FROM logs GROUP BY service")
                        .fetch_all($pool)
                        .await?;
                LogStats {
                    total: total.0,
                    by_level: by_level.into_iter().collect(),
                    by_service: by_service.into_iter().collect(),
                }
            }};
        }
        Ok(match self {
            Store::Sqlite(pool) => stats_with!(pool),
            Store::Postgres(pool) => stats_with!(pool),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, ts: i64, service: &str, level: Level) -> LogEvent {
        LogEvent {
            id: id.into(),
            timestamp_ms: ts,
            service: service.into(),
            level,
            message: format!("message {id}"),
            host: "h".into(),
        }
    }

    async fn temp_store(name: &str) -> Store {
        let dir = std::env::temp_dir().join(format!("vigil-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Store::sqlite(&dir.join("t.sqlite").display().to_string())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_redelivered_batch_adds_no_rows() {
        let store = temp_store("redeliver").await;
        let batch: Vec<LogEvent> = (0..1200)
            .map(|i| event(&format!("e{i}"), i, "a", Level::Info))
            .collect();
        assert_eq!(store.insert(&batch).await.unwrap(), 1200);
        assert_eq!(store.insert(&batch[100..700]).await.unwrap(), 0);
        assert_eq!(store.stats().await.unwrap().total, 1200);
    }

    #[tokio::test]
    async fn queries_filter_and_stats_count() {
        let store = temp_store("query").await;
        store
            .insert(&[
                event("1", 10, "a", Level::Info),
                event("2", 20, "a", Level::Error),
                event("3", 30, "b", Level::Error),
            ])
            .await
            .unwrap();
        let q = |service: Option<&str>, level, from_ms, to_ms| LogQuery {
            service: service.map(String::from),
            level,
            from_ms,
            to_ms,
            limit: 100,
        };
        let ids = |v: Vec<LogEventOut>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.query(&q(None, None, None, None)).await.unwrap()),
            ["3", "2", "1"]
        );
        assert_eq!(
            ids(store.query(&q(Some("a"), None, None, None)).await.unwrap()),
            ["2", "1"]
        );
        assert_eq!(
            ids(store
                .query(&q(None, Some(Level::Error), None, None))
                .await
                .unwrap()),
            ["3", "2"]
        );
        assert_eq!(
            ids(store
                .query(&q(None, None, Some(20), Some(30)))
                .await
                .unwrap()),
            ["2"]
        );
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.total, 3);
        assert_eq!(stats.by_level["ERROR"], 2);
        assert_eq!(stats.by_service["b"], 1);
    }
}
