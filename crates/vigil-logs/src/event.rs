//! The log event: its wire shape, its validation, and a generator of realistic ones.
//!
//! Every event carries an `id`, assigned at the first hop that sees it (the gateway, or the
//! producer for events posted to it directly or generated). The id never changes after that,
//! so every retry downstream carries the same id and the store's `ON CONFLICT DO NOTHING`
//! turns at-least-once delivery into exactly-once rows.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Most events accepted in one request.
pub const MAX_BATCH: usize = 5_000;
const MAX_ID: usize = 128;
const MAX_SERVICE: usize = 128;
const MAX_HOST: usize = 255;
const MAX_MESSAGE: usize = 16 * 1024;

/// Earliest timestamp accepted: 1970-01-01T00:00:00Z (unix ms 0).
///
/// Why 1970 to 9999 and not a window around now: every value in that range prints as RFC 3339
/// with a four-digit year and parses back to the same milliseconds, so what is stored is what
/// was sent (before, ±9223372036854775807 were stored and shown as 1970-01-01). A window around
/// the receiver's clock would refuse back-filled or imported logs, and since every hop
/// (gateway, producer, consumer) validates with its own clock, an event accepted by one hop
/// could be refused by the next and stay queued forever.
pub const MIN_TIMESTAMP_MS: i64 = 0;
/// Latest timestamp accepted: 9999-12-31T23:59:59.999Z (see [`MIN_TIMESTAMP_MS`]).
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Severity, stored and returned upper-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// TRACE.
    Trace,
    /// DEBUG.
    Debug,
    /// INFO.
    Info,
    /// WARN.
    Warn,
    /// ERROR.
    Error,
    /// FATAL.
    Fatal,
}

impl Level {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }

    /// Parses a level name, case-insensitively (`warning` is `WARN`).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "TRACE" => Level::Trace,
            "DEBUG" => Level::Debug,
            "INFO" => Level::Info,
            "WARN" | "WARNING" => Level::Warn,
            "ERROR" => Level::Error,
            "FATAL" | "CRITICAL" => Level::Fatal,
            _ => return None,
        })
    }
}

/// A timestamp as clients may send it: RFC 3339 text or unix milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TimestampIn {
    /// Unix milliseconds.
    Millis(i64),
    /// RFC 3339, e.g. `2025-01-31T12:00:00.123Z`.
    Text(String),
}

/// An event as posted: only `service`, `level` and `message` are required.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEventIn {
    /// Idempotency key; assigned when absent.
    pub id: Option<String>,
    /// When it happened; now when absent.
    pub timestamp: Option<TimestampIn>,
    /// Emitting service.
    pub service: String,
    /// Severity.
    pub level: String,
    /// Text.
    pub message: String,
    /// Emitting host; the accepting member's default when absent.
    pub host: Option<String>,
}

/// A validated event with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Idempotency key.
    pub id: String,
    /// Unix milliseconds.
    pub timestamp_ms: i64,
    /// Emitting service.
    pub service: String,
    /// Severity.
    pub level: Level,
    /// Text.
    pub message: String,
    /// Emitting host.
    pub host: String,
}

/// The wire form of [`LogEvent`] (RFC 3339 timestamp).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogEventOut {
    /// Idempotency key.
    pub id: String,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// Emitting service.
    pub service: String,
    /// Severity.
    pub level: String,
    /// Text.
    pub message: String,
    /// Emitting host.
    pub host: String,
}

/// Why a posted event was refused; names the event's index and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A field is missing, too long, or malformed.
    #[error("event {index}: field `{field}`: {reason}")]
    Field {
        /// Position in the posted array.
        index: usize,
        /// Field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The array is empty or too long.
    #[error("a batch holds 1 to {MAX_BATCH} events, got {0}")]
    BatchSize(usize),
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh random id (UUID v4).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Parses RFC 3339 into unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Formats unix milliseconds as RFC 3339 (UTC); out-of-range values print as the epoch.
pub fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

fn check_len(
    index: usize,
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), EventError> {
    let bad = |reason: String| EventError::Field {
        index,
        field,
        reason,
    };
    if required && value.trim().is_empty() {
        return Err(bad("must not be empty".into()));
    }
    if value.len() > max {
        return Err(bad(format!("longer than {max} bytes")));
    }
    Ok(())
}

impl LogEventIn {
    /// Validates and completes one event (id, timestamp and host when absent).
    pub fn into_event(
        self,
        index: usize,
        now_ms: i64,
        default_host: &str,
    ) -> Result<LogEvent, EventError> {
        let id = match self.id {
            Some(id) => {
                check_len(index, "id", &id, MAX_ID, true)?;
                id.trim().to_string()
            }
            None => new_id(),
        };
        check_len(index, "service", &self.service, MAX_SERVICE, true)?;
        check_len(index, "message", &self.message, MAX_MESSAGE, false)?;
        let level = Level::parse(&self.level).ok_or_else(|| EventError::Field {
            index,
            field: "level",
            reason: format!(
                "`{}` is not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL",
                self.level
            ),
        })?;
        let bad_timestamp = |reason: String| EventError::Field {
            index,
            field: "timestamp",
            reason,
        };
        let timestamp_ms = match self.timestamp {
            None => now_ms,
            Some(TimestampIn::Millis(ms)) => ms,
            Some(TimestampIn::Text(s)) => parse_rfc3339_ms(&s).ok_or_else(|| {
                bad_timestamp(format!("`{s}` is neither RFC 3339 nor unix milliseconds"))
            })?,
        };
        if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&timestamp_ms) {
            return Err(bad_timestamp(format!(
                "{timestamp_ms} (unix ms) is outside 1970-01-01T00:00:00Z..=9999-12-31T23:59:59.999Z \
                 ({MIN_TIMESTAMP_MS}..={MAX_TIMESTAMP_MS})"
            )));
        }
        let host = match self.host {
            Some(h) if !h.trim().is_empty() => {
                check_len(index, "host", &h, MAX_HOST, true)?;
                h.trim().to_string()
            }
            _ => default_host.to_string(),
        };
        Ok(LogEvent {
            id,
            timestamp_ms,
            service: self.service.trim().to_string(),
            level,
            message: self.message,
            host,
        })
    }
}

/// Validates a posted batch: all events are good, or the whole batch is refused.
pub fn validate_batch(
    events: Vec<LogEventIn>,
    default_host: &str,
) -> Result<Vec<LogEvent>, EventError> {
    if events.is_empty() || events.len() > MAX_BATCH {
        return Err(EventError::BatchSize(events.len()));
    }
    let now = now_ms();
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| e.into_event(i, now, default_host))
        .collect()
}

impl LogEvent {
    /// The wire form.
    pub fn to_out(&self) -> LogEventOut {
        LogEventOut {
            id: self.id.clone(),
            timestamp: format_ms(self.timestamp_ms),
            service: self.service.clone(),
            level: self.level.as_str().into(),
            message: self.message.clone(),
            host: self.host.clone(),
        }
    }
}

const SERVICES: [&str; 6] = [
    "auth-service",
    "payment-service",
    "order-service",
    "inventory-service",
    "user-service",
    "notification-service",
];

/// Makes plausible application log lines (the seed's producer emits such traffic).
pub struct Generator {
    rng: SmallRng,
    host: String,
}

impl Generator {
    /// A generator whose seed is logged by the caller, so a run can be replayed.
    pub fn new(seed: u64, host: &str) -> Generator {
        Generator {
            rng: SmallRng::seed_from_u64(seed),
            host: host.to_string(),
        }
    }

    /// One event, timestamped now.
    pub fn next_event(&mut self) -> LogEvent {
        let r = &mut self.rng;
        let service = SERVICES[r.random_range(0..SERVICES.len())];
        let roll = r.random_range(0..100);
        let level = match roll {
            0..=9 => Level::Debug,
            10..=79 => Level::Info,
            80..=91 => Level::Warn,
            92..=98 => Level::Error,
            _ => Level::Fatal,
        };
        let user = r.random_range(1000..99_999);
        let ms = r.random_range(2..900);
        let message = match level {
            Level::Debug | Level::Trace => format!("cache lookup for user {user} took {ms} ms"),
            Level::Info => match r.random_range(0..3) {
                0 => format!("GET /api/v1/users/{user} 200 in {ms} ms"),
                1 => format!("order {user}-{ms} created for user {user}"),
                _ => format!("session started for user {user}"),
            },
            Level::Warn => format!("slow query on orders: {ms} ms (threshold 250 ms)"),
            Level::Error => {
                format!("payment for order {user} declined: upstream timeout after {ms} ms")
            }
            Level::Fatal => "database connection pool exhausted".to_string(),
        };
        LogEvent {
            id: new_id(),
            timestamp_ms: now_ms(),
            service: service.into(),
            level,
            message,
            host: self.host.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(level: &str) -> LogEventIn {
        LogEventIn {
            id: None,
            timestamp: None,
            service: "svc".into(),
            level: level.into(),
            message: "m".into(),
            host: None,
        }
    }

    #[test]
    fn a_missing_id_is_assigned_and_a_given_one_is_kept() {
        let a = input("info").into_event(0, 5, "h").unwrap();
        assert_eq!(a.id.len(), 36);
        assert_eq!(
            (a.level, a.timestamp_ms, a.host.as_str()),
            (Level::Info, 5, "h")
        );
        let mut given = input("warning");
        given.id = Some("abc".into());
        let b = given.into_event(0, 5, "h").unwrap();
        assert_eq!((b.id.as_str(), b.level), ("abc", Level::Warn));
    }

    #[test]
    fn a_bad_event_names_its_index_and_field() {
        let e = validate_batch(vec![input("INFO"), input("loud")], "h").unwrap_err();
        assert!(
            matches!(
                e,
                EventError::Field {
                    index: 1,
                    field: "level",
                    ..
                }
            ),
            "{e}"
        );
        let mut empty = input("INFO");
        empty.service = " ".into();
        assert!(validate_batch(vec![empty], "h").is_err());
        assert_eq!(validate_batch(vec![], "h"), Err(EventError::BatchSize(0)));
    }

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let ms = 1_700_000_000_123;
        assert_eq!(parse_rfc3339_ms(&format_ms(ms)), Some(ms));
        let mut e = input("INFO");
        e.timestamp = Some(TimestampIn::Text("not a time".into()));
        assert!(e.into_event(0, 0, "h").is_err());
    }

    #[test]
    fn a_timestamp_out_of_range_is_refused_naming_the_field() {
        for ts in [
            TimestampIn::Millis(i64::MAX),
            TimestampIn::Millis(i64::MIN + 1),
            TimestampIn::Millis(-1),
            TimestampIn::Millis(MAX_TIMESTAMP_MS + 1),
            TimestampIn::Text("0001-01-01T00:00:00Z".into()),
        ] {
            let mut e = input("INFO");
            e.timestamp = Some(ts.clone());
            let err = validate_batch(vec![input("INFO"), e], "h").unwrap_err();
            assert!(
                matches!(
                    err,
                    EventError::Field {
                        index: 1,
                        field: "timestamp",
                        ..
                    }
                ),
                "{ts:?}: {err}"
            );
        }
        for ms in [MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS] {
            let mut e = input("INFO");
            e.timestamp = Some(TimestampIn::Millis(ms));
            let event = e.into_event(0, 0, "h").unwrap();
            assert_eq!(parse_rfc3339_ms(&event.to_out().timestamp), Some(ms));
        }
    }

    #[test]
    fn posted_json_parses_with_numbers_or_text_timestamps() {
        let v: Vec<LogEventIn> = serde_json::from_str(
            r#"[{"service":"a","level":"INFO","message":"x","timestamp":5},
                {"service":"a","level":"INFO","message":"x","timestamp":"2025-01-01T00:00:00Z"}]"#,
        )
        .unwrap();
        let events = validate_batch(v, "h").unwrap();
        assert_eq!(events[0].timestamp_ms, 5);
        assert_eq!(events[1].timestamp_ms, 1_735_689_600_000);
    }

    #[test]
    fn the_generator_is_reproducible_from_its_seed() {
        let mut a = Generator::new(7, "h");
        let mut b = Generator::new(7, "h");
        for _ in 0..20 {
            let (x, y) = (a.next_event(), b.next_event());
            assert_eq!(
                (x.service, x.level, x.message),
                (y.service, y.level, y.message)
            );
        }
    }
}
