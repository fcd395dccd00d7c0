-- One row per log event; the id is the idempotency key (redelivery inserts nothing).
CREATE TABLE IF NOT EXISTS logs (
    id      TEXT PRIMARY KEY NOT NULL,
    ts_ms   INTEGER NOT NULL,
    service TEXT NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL,
    host    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_ts ON logs (ts_ms);
CREATE INDEX IF NOT EXISTS logs_service_ts ON logs (service, ts_ms);
CREATE INDEX IF NOT EXISTS logs_level_ts ON logs (level, ts_ms);
