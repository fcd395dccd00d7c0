//! The HTTP API's accept loop: what `axum::serve` does, plus the bounds a server on a hostile
//! network needs.
//!
//! - **Header read timeout** (`http.header-read-timeout`): a connection that has not sent a
//!   whole request head within it is closed, whether it sent nothing, half a head (slowloris)
//!   or sits idle between keep-alive requests. Over TLS the handshake gets the same time.
//!   hyper's own timer does it (`http1::Builder::header_read_timeout`); `axum::serve` sets no
//!   timer, so it had none, and its version sniffing would wait for the first bytes forever.
//! - **Connection cap** (`http.max-connections`): at most this many connections are open at
//!   once. One more is accepted, answered 503 (plain HTTP) and closed at once, rather than left
//!   in the kernel's backlog: the backlog keeps moving, the client learns at once, and the cap
//!   frees itself within a header read timeout when the open ones are slow clients. The daemon
//!   keeps the cap below the open-file limit ([`crate::runtime::open_files`]), so `accept`
//!   does not fail with "Too many open files".
//! - **Accept errors** are logged at most every 10 s (with a count) and followed by a 100 ms
//!   pause, so the loop never spins on one.
//!
//! HTTP/1.1 only: what the CLI, the roles and the tests speak (TLS offers `http/1.1` by ALPN).
//! A slow body or a stuck handler is bounded per request by `http.request-timeout` (408, see
//! [`super`]).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Bounds on the connections of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `http.header-read-timeout`: longest wait for a whole request head (and a TLS handshake).
    pub header_read_timeout: Duration,
    /// `http.max-connections` (after the daemon fitted it under the open-file limit).
    pub max_connections: usize,
}

/// Pause after an accept error that is not about one connection (e.g. `EMFILE`).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Most one warning per this long for each kind of trouble.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` is cancelled, then lets the open connections finish
/// their requests (idle ones close at once). Over TLS when `tls` is given.
///
/// Every connection task belongs to this future: dropping it aborts them.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> io::Result<()> {
    let tls = tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let refusal = refusal(limits.max_connections);
    let drain = CancellationToken::new();
    let mut connections = JoinSet::new();
    let mut refused = Throttle::default();
    let mut failed = Throttle::default();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if let Some(times) = failed.note() {
                    warn!(error = %e, times, "HTTP accept failed; pausing 100 ms");
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                }
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if tls.is_none() {
                // Best effort: a fresh socket's send buffer takes it, or the client gets a reset.
                let _ = stream.try_write(&refusal);
            }
            drop(stream);
            if let Some(times) = refused.note() {
                warn!(
                    max = limits.max_connections,
                    times,
                    "too many open HTTP connections: new ones are refused (http.max-connections)"
                );
            }
            continue;
        };
        connections.spawn(connection(
            stream,
            tls.clone(),
            http.clone(),
            app.clone(),
            limits.header_read_timeout,
            drain.clone(),
            permit,
        ));
    }
    drain.cancel();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// The answer to a connection over the cap.
fn refusal(max: usize) -> Vec<u8> {
    let body = format!(
        "{{\"error\":\"too many open connections: this server allows {max} (http.max-connections)\"}}"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Errors about the one connection being accepted (it is gone), not about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection, holding its place under the cap until it closes.
async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    http: http1::Builder,
    app: Router,
    handshake_timeout: Duration,
    drain: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        return drive(&http, stream, app, drain).await;
    };
    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => drive(&http, stream, app, drain).await,
        Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
        Err(_) => debug!("no TLS handshake within http.header-read-timeout"),
    }
}

/// Serves requests on one connection until it closes, or `drain` asks it to finish.
async fn drive<S>(http: &http1::Builder, stream: S, app: Router, drain: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = drain.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        // A header read timeout, a client that went away, a malformed request: routine.
        debug!(error = %e, "HTTP connection closed");
    }
}

/// Counts occurrences and says when to log them: the first at once, then at most one line
/// every [`WARN_EVERY`] with the count since the last line.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    since: u64,
}

impl Throttle {
    /// One more; `Some(count)` when a line should be logged now.
    fn note(&mut self) -> Option<u64> {
        self.since += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn warnings_are_throttled_with_a_count() {
        let mut t = Throttle::default();
        assert_eq!(t.note(), Some(1));
        assert_eq!(t.note(), None);
        assert_eq!(t.note(), None);
        tokio::time::advance(WARN_EVERY).await;
        assert_eq!(t.note(), Some(3));
    }

    #[test]
    fn the_refusal_is_a_whole_http_response() {
        let r = String::from_utf8(refusal(7)).unwrap();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(body.contains("http.max-connections"), "{body}");
    }
}
