//! Callers' connections: the limits each one gets and the task that serves it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::rt::{Read, Write};
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::logs::{log, log_line};
use crate::forward::Caller;

// Flow-control windows offered to callers: large enough that an upload over a long link is not
// window-bound; they also cap what a caller can make apt-router hold for it (32 MiB a connection).
const STREAM_WINDOW: u32 = 8 << 20;
const CONN_WINDOW: u32 = 32 << 20;
pub const MAX_FRAME: u32 = 1 << 20;
/// streams open at once on one caller connection (SETTINGS_MAX_CONCURRENT_STREAMS)
const MAX_STREAMS: u32 = 256;
/// request headers of one call, decoded (SETTINGS_MAX_HEADER_LIST_SIZE); gRPC's own default is 8 KiB
const MAX_HEADER_LIST: u32 = 16 << 10;
/// to finish a TLS handshake after the TCP connect
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// a connection without an open call for this long is closed (GOAWAY; clients reconnect on their next call)
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// an idle connection that has not closed this long after its GOAWAY is dropped
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 PING every KEEPALIVE_INTERVAL; a peer that does not answer within KEEPALIVE_TIMEOUT is dropped
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

pub fn server_builder() -> http2::Builder<TokioExecutor> {
    let mut http = http2::Builder::new(TokioExecutor::new());
    http.timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_concurrent_streams(MAX_STREAMS)
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    http
}

/// The calls open on one connection (a caller's or an upstream one), and when that count last changed.
#[derive(Default)]
pub struct Activity {
    state: Mutex<(usize, Option<Instant>)>,
}

impl Activity {
    /// Count a call as open until the returned guard is dropped.
    pub fn open(self: &Arc<Self>) -> StreamGuard {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *s = (s.0 + 1, Some(Instant::now()));
        StreamGuard(self.clone())
    }

    pub fn open_calls(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    /// Resolves once the connection has had no open call for `limit` (counted from `born` when
    /// it never had one).
    pub async fn idle(&self, born: Instant, limit: Duration) {
        loop {
            let (open, changed) = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let wait = if open > 0 { limit } else { limit.saturating_sub(changed.unwrap_or(born).elapsed()) };
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

pub struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        *s = (s.0.saturating_sub(1), Some(Instant::now()));
    }
}

/// Serve one accepted connection (after its TLS handshake, if any) until it closes, it idles
/// out, or `drain` turns true (shutdown: GOAWAY, open calls may finish; the process exits when
/// the grace period is over, whatever is still open).
pub async fn accept(http: Arc<http2::Builder<TokioExecutor>>, stream: TcpStream, tls: Option<TlsAcceptor>,
                    caller: Caller, drain: watch::Receiver<bool>) {
    let Some(acceptor) = tls else {
        return serve(&http, TokioIo::new(stream), caller, drain).await;
    };
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => serve(&http, TokioIo::new(s), caller, drain).await,
        Ok(Err(e)) => log("WARNING", &format!("TLS handshake with {peer} failed: {e}")),
        Err(_) => log("WARNING", &format!("TLS handshake with {peer} took over {HANDSHAKE_TIMEOUT:?}: dropped")),
    }
}

async fn serve<I>(http: &http2::Builder<TokioExecutor>, io: I, caller: Caller, mut drain: watch::Receiver<bool>)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let born = Instant::now();
    let activity = caller.activity.clone();
    let conn = http.serve_connection(io, caller);
    tokio::pin!(conn);
    let mut closing = false;
    let mut hard_close: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(std::future::pending());
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            Ok(_) = drain.wait_for(|d| *d), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.idle(born, IDLE_TIMEOUT), if !closing => {
                log_line("DEBUG", "closing a connection idle for the idle timeout", Default::default());
                closing = true;
                conn.as_mut().graceful_shutdown();
                // a peer that never completed the HTTP/2 handshake or ignores GOAWAY
                hard_close = Box::pin(tokio::time::sleep(CLOSE_TIMEOUT));
            }
            _ = &mut hard_close => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_is_idle_only_without_open_calls() {
        let limit = Duration::from_millis(100);
        let a = Arc::new(Activity::default());
        let born = Instant::now();
        a.idle(born, limit).await;
        assert!(born.elapsed() >= limit);

        let call = a.open();
        let waited = tokio::time::timeout(3 * limit, a.idle(Instant::now(), limit)).await;
        assert!(waited.is_err(), "idle while a call was open");
        drop(call);
        let closed = Instant::now();
        a.idle(Instant::now(), limit).await;
        assert!(closed.elapsed() >= limit);
    }
}
