//! apt-router: the APT gateway's data plane.
//!
//! It listens on the gateway's public address and forwards each gRPC call as a raw HTTP/2
//! stream: headers, data frames and trailers pass through untouched, messages are never
//! decoded, so deadlines (`grpc-timeout`), metadata, compression and cancellation (stream
//! reset) propagate both ways by construction.
//!
//! * A call for a plugin service (or `apt.plugin.v1.Plugin/Describe` naming a plugin in
//!   `x-apt-plugin`) whose plugin has healthy endpoints, carrying a valid user or admin
//!   token, goes straight to one of those endpoints (round-robin) with the gateway's
//!   internal token in place of the caller's.
//! * A call whose `:path` is not `/<package>.<Service>/<Method>` is answered UNIMPLEMENTED here.
//! * Every other call goes to the control plane (the Python gateway on loopback), which
//!   serves the core commands, the registry and jobs, and answers every error case (no or
//!   wrong token, plugin not installed or unhealthy, unknown service) with its own messages.
//!
//! Isolation between callers: each caller connection gets its own upstream connections (see
//! `State::upstream_for_caller`), so a caller that stops reading its streams stalls only itself.
//!
//! Limits on each caller connection (`conn.rs`): 256 concurrent calls, 16 KiB of request
//! headers, 10 s to finish a TLS handshake, closed after 300 s without an open call, an HTTP/2
//! PING every 30 s that must be answered within 20 s, flow-control windows of 8 MiB a call and
//! 32 MiB a connection. Upstream (`upstream.rs`): 2 MiB a call, 8 MiB a connection.
//!
//! Control: the gateway writes route tables to stdin, one JSON object per line; EOF on stdin
//! (the gateway is gone) or SIGTERM stops accepting, sends GOAWAY, lets open calls finish for
//! the grace period (`--grace`, the gateway's APT_GRACE_SECONDS), then exits, dropping the
//! connections of calls still open (a caller that never reads does not hold the exit).
//! Events for the gateway go to stdout as JSON lines (`listening`, `unavailable`); logs go to
//! stderr as JSON lines like the gateway's own.

mod args;
mod conn;
mod control;
mod forward;
mod logs;
mod paths;
mod relay;
mod state;
mod table;
mod tls;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use forward::Caller;
use logs::{event, log};
use state::State;

fn main() {
    let args = args::parse_args();
    let state = Arc::new(State::from_env(args.backend.clone()));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(tls::acceptor(c, k).unwrap_or_else(|e| args::usage(&e))),
        _ => None,
    };
    // One worker by default. A call crosses three tasks here (the caller's connection, the call,
    // the plugin connection); with two workers they woke each other across threads (futex and
    // eventfd writes: ~5 extra syscalls and ~4 extra context switches a unary call, ~25% more
    // CPU a call), which on a machine whose cores the gateway and the plugins share cost more
    // than the second core gave back (issue 24 item 7: bench_gateway, 1 worker vs 2 in turn,
    // p50 1.29x vs 1.35x direct, p99 1.24x vs 1.38x, 256 MiB stream 0.83x vs 0.76x).
    let threads = std::env::var("APT_ROUTER_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(serve(args, state, tls));
    // Dropping the runtime would wait for the blocking thread that reads stdin (it returns only
    // when the gateway closes the pipe): calls are drained by now, so exit at once.
    log("INFO", "stopped");
    std::process::exit(0);
}

async fn serve(args: args::Args, state: Arc<State>, tls: Option<tokio_rustls::TlsAcceptor>) {
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            log("ERROR", &format!("cannot bind {}: {e}", args.listen));
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().map(|a: SocketAddr| a.port()).unwrap_or(0);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(control::read_tables(state.clone(), stop_tx));
    event(serde_json::json!({"event": "listening", "port": port}));

    let http = Arc::new(conn::server_builder());
    // every connection task holds a receiver: drain_tx.closed() resolves when the last one ends
    let (drain_tx, drain_rx) = watch::channel(false);
    let stopping = control::wait_stop(stop_rx);
    tokio::pin!(stopping);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    log("WARNING", &format!("accept failed: {e}"));
                    continue;
                }
            },
            _ = &mut stopping => break,
        };
        let _ = stream.set_nodelay(true);
        let caller = Caller::new(state.clone());
        tokio::spawn(conn::accept(http.clone(), stream, tls.clone(), caller, drain_rx.clone()));
    }
    drop(listener);
    drop(drain_rx);
    drain_tx.send_replace(true);
    tokio::select! {
        _ = drain_tx.closed() => {}
        _ = tokio::time::sleep(args.grace) => log("WARNING", "grace period over: dropping the calls still open"),
    }
}
