//! The consumer's durable store: SQLite (embedded default) or PostgreSQL, both through sqlx
//! with embedded migrations (`crates/vigil-logs/migrations/{sqlite,postgres}`).
//!
//! Writes are idempotent on the event id (`INSERT ... ON CONFLICT (id) DO NOTHING`), one
//! transaction per batch: when [`Store::insert`] returns, every event of the batch is durable
//! (committed), and only then does the consumer acknowledge it (HTTP 200 or Kafka commit).
//!
//! # A SQLite file that vanishes
//!
//! An open SQLite file that is deleted (`rm .vigil/data/consumer.sqlite*`) or replaced keeps
//! working for the connections that have it open: commits succeed into a file nobody will read
//! again, while any new connection creates an empty file without the schema. So the store
//! records the identity (device and inode) of its files when it opens them and checks them
//! after every commit ([`Store::verify`]): a commit into a file no longer at its path is an
//! error ([`StoreError::FileLost`]), and the batch is not acknowledged. The pool keeps its
//! connections for its whole life (none are closed when idle, none are opened later), so SQLite
//! never has a reason to delete or recreate the `-wal` and `-shm` files while the store is open,
//! and they are checked too.
//!
//! What to do next is the consumer's choice (it stays DOWN until restarted).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::QueryBuilder;

use crate::event::{Level, LogEvent, LogEventOut};

/// Connections of the SQLite pool, all opened at start and kept (see the module docs).
const SQLITE_CONNECTIONS: u32 = 4;
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
    /// The SQLite file (or its `-wal` or `-shm`) the store opened is no longer at its path:
    /// deleted or replaced while the store runs. What was just written went to a file nobody
    /// will read, so it must not be acknowledged.
    #[error("{path} was {what} while the store had it open: writes are not acknowledged")]
    FileLost {
        /// The file.
        path: PathBuf,
        /// `deleted` or `replaced by another file`.
        what: &'static str,
    },
    /// The store's file could not be examined.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
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
    /// Embedded file, and the identity of its files when it was opened.
    Sqlite(SqlitePool, Arc<SqliteFiles>),
    /// Server.
    Postgres(PgPool),
}

/// Device and inode: which file a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> std::io::Result<FileId> {
        let m = std::fs::metadata(path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// The files of an open SQLite store as they were when it opened them: the database, and its
/// `-wal` and `-shm` when they existed then.
#[derive(Debug)]
pub struct SqliteFiles {
    files: Vec<(PathBuf, FileId)>,
}

impl SqliteFiles {
    fn record(path: &Path) -> Result<SqliteFiles, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut files = vec![(path.to_path_buf(), FileId::of(path).map_err(io)?)];
        for suffix in ["-wal", "-shm"] {
            let side = sibling(path, suffix);
            if let Ok(id) = FileId::of(&side) {
                files.push((side, id));
            }
        }
        Ok(SqliteFiles { files })
    }

    /// Whether every file is still the one opened.
    fn check(&self) -> Result<(), StoreError> {
        for (path, id) in &self.files {
            let what = match FileId::of(path) {
                Ok(now) if now == *id => continue,
                Ok(_) => "replaced by another file",
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "deleted",
                Err(source) => {
                    return Err(StoreError::Io {
                        path: path.clone(),
                        source,
                    })
                }
            };
            return Err(StoreError::FileLost {
                path: path.clone(),
                what,
            });
        }
        Ok(())
    }
}

/// `path` with `suffix` appended to its file name (`a.sqlite` -> `a.sqlite-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
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
        // This connection creates the file; the pool's never do, so one opened after the file
        // vanished fails instead of creating an empty database there.
        let creator = sqlx::ConnectOptions::connect(&options).await?;
        sqlx::Connection::close(creator).await?;
        let options = options.create_if_missing(false);
        // Every connection opened now and kept: the last one closing would delete the -wal.
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_CONNECTIONS)
            .min_connections(SQLITE_CONNECTIONS)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        // The pool opens its minimum in the background; open them all now, before any loss.
        let mut held = Vec::new();
        for _ in 0..SQLITE_CONNECTIONS {
            held.push(pool.acquire().await?);
        }
        drop(held);
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let files = SqliteFiles::record(Path::new(path))?;
        Ok(Store::Sqlite(pool, Arc::new(files)))
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
            Store::Sqlite(..) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether the store still writes where it will be read: for SQLite, whether its files are
    /// still the ones it opened. A PostgreSQL server has no file to lose under us: a dropped
    /// table or database fails the next statement.
    pub fn verify(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_, files) => files.check(),
            Store::Postgres(_) => Ok(()),
        }
    }

    /// Closes the store's connections.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(pool, _) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
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
                inserted
            }};
        }
        if events.is_empty() {
            return Ok(0);
        }
        let inserted = match self {
            Store::Sqlite(pool, _) => insert_with!(pool),
            Store::Postgres(pool) => insert_with!(pool),
        };
        // Committed, but into the file at our path? Checked after the commit, so a file lost
        // at any moment before it is caught.
        self.verify()?;
        Ok(inserted)
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
            Store::Sqlite(pool, _) => query_with!(pool),
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
            Store::Sqlite(pool, _) => stats_with!(pool),
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

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("t.sqlite")
    }

    async fn temp_store(name: &str) -> Store {
        Store::sqlite(&temp_path(name).display().to_string())
            .await
            .unwrap()
    }

    fn remove_all(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(sibling(path, suffix));
        }
    }

    #[tokio::test]
    async fn a_write_into_a_deleted_or_replaced_file_is_an_error() {
        let path = temp_path("deleted");
        let store = Store::sqlite(&path.display().to_string()).await.unwrap();
        let batch = |from: usize| -> Vec<LogEvent> {
            (from..from + 10)
                .map(|i| event(&format!("e{i}"), i as i64, "a", Level::Info))
                .collect()
        };
        assert_eq!(store.insert(&batch(0)).await.unwrap(), 10);
        store.verify().unwrap();
        remove_all(&path);
        let err = store.insert(&batch(10)).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::FileLost {
                    what: "deleted",
                    ..
                }
            ),
            "{err}"
        );
        // No connection of the pool creates an empty file in its place.
        assert!(!path.exists());
        std::fs::write(&path, b"an operator's file").unwrap();
        let err = store.verify().unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::FileLost {
                    what: "replaced by another file",
                    ..
                }
            ),
            "{err}"
        );
        store.close().await;
        assert_eq!(std::fs::read(&path).unwrap(), b"an operator's file");
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
