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
//! 32 MiB a connection. Upstream (`UPSTREAM_*` below): 2 MiB a call, 8 MiB a connection.
//!
//! Control: the gateway writes route tables to stdin, one JSON object per line; EOF on stdin
//! (the gateway is gone) or SIGTERM stops accepting, sends GOAWAY, lets open calls finish for
//! the grace period (`--grace`, the gateway's APT_GRACE_SECONDS), then exits, dropping the
//! connections of calls still open (a caller that never reads does not hold the exit).
//! Events for the gateway go to stdout as JSON lines (`listening`, `unavailable`); logs go to
//! stderr as JSON lines like the gateway's own.

mod conn;
mod logs;
mod paths;
mod relay;
mod table;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Builder as ClientBuilder, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use conn::{Activity, StreamGuard};
use logs::{event, log, log_line};
use paths::MethodPath;
use relay::{CallLog, Relay, GRPC_UNAVAILABLE};
use table::{Table, TableMsg};

// Flow-control windows towards plugins and the control plane (loopback or the cluster network).
// What a caller that stops reading makes apt-router hold is capped by these: 8 MiB per upstream
// connection of that caller.
const UPSTREAM_STREAM_WINDOW: u32 = 2 << 20;
const UPSTREAM_CONN_WINDOW: u32 = 8 << 20;

struct State {
    table: RwLock<Arc<Table>>,
    upstream: ClientBuilder,
    connector: HttpConnector,
    backend: String,
    tokens: Vec<Vec<u8>>,
    internal_auth: HeaderValue,
    ids: AtomicU64,
}

impl State {
    /// The upstream connections of one caller connection: one HTTP/2 connection per endpoint it
    /// calls, opened on first use and closed with the caller's connection.
    ///
    /// Why not one shared connection per endpoint: a caller that stops reading a server stream
    /// makes apt-router stop reading that stream upstream (Relay), and the unread data stays
    /// charged to the upstream connection's flow-control window until it is read. On a
    /// connection shared by every caller, a few such streams (five unread DownloadModel streams:
    /// 5 x 8 MiB stream windows > the 32 MiB connection window) used the whole window, the
    /// backend could send nothing more on it, and every other caller's calls hung past their
    /// deadlines. Per caller connection, unread streams use up only that caller's own window,
    /// as they would if it called the backend directly.
    fn upstream_for_caller(&self) -> Client<HttpConnector, Incoming> {
        self.upstream.build(self.connector.clone())
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else { return false };
        let value = value.as_bytes();
        if value.len() < 7 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        let token = value[7..].trim_ascii();
        !token.is_empty() && self.tokens.iter().any(|t| constant_time_eq(t, token))
    }

    fn request_id(&self) -> String {
        // unique per process; the gateway's ids are 12 hex digits too
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let seed = (std::process::id() as u64) << 32 ^ now_nanos();
        format!("{:012x}", splitmix64(seed.wrapping_add(n)) & 0xffff_ffff_ffff)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// callers

/// One caller connection's service: what every call on it shares.
#[derive(Clone)]
pub struct Caller {
    state: Arc<State>,
    upstream: Client<HttpConnector, Incoming>,
    activity: Arc<Activity>,
}

impl Caller {
    fn new(state: Arc<State>) -> Caller {
        let upstream = state.upstream_for_caller();
        Caller { state, upstream, activity: Arc::default() }
    }
}

impl hyper::service::Service<Request<Incoming>> for Caller {
    type Response = Response<Relay>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Relay>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let caller = self.clone();
        Box::pin(async move { Ok(handle(caller, req).await) })
    }
}

// ---------------------------------------------------------------------------------------------
// forwarding

fn upstream_uri(endpoint: &str, uri: &Uri) -> Option<Uri> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Uri::builder().scheme("http").authority(endpoint).path_and_query(path).build().ok()
}

async fn handle(caller: Caller, mut req: Request<Incoming>) -> Response<Relay> {
    let open = caller.activity.open();
    let state = &caller.state;
    let table = state.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let plugin = match MethodPath::parse(req.uri().path()) {
        Some(path) => table.plugin_for(&path, req.headers()),
        None => return relay::unimplemented_response(req.uri().path(), open),
    };
    let target = plugin.and_then(|p| table.routes.get(&p).and_then(|r| r.pick()).map(|e| (p, e.to_owned())));
    let Some((plugin, endpoint)) = target.filter(|_| state.authorized(req.headers())) else {
        return to_backend(&caller, req, open).await;
    };
    let request_id = match req.headers().get("x-request-id").and_then(|v| v.to_str().ok()) {
        Some(id) => id.to_owned(),
        None => {
            let id = state.request_id();
            req.headers_mut().insert("x-request-id", HeaderValue::from_str(&id).expect("hex id"));
            id
        }
    };
    let mut log = CallLog {
        table: table.clone(),
        method: req.uri().path().to_owned(),
        plugin: plugin.clone(),
        endpoint: endpoint.clone(),
        request_id: request_id.clone(),
        started: Instant::now(),
        code: None,
    };
    let Some(uri) = upstream_uri(&endpoint, req.uri()) else {
        let msg = format!("Plugin '{plugin}' has an endpoint that is not host:port; reinstall it.");
        return relay::unavailable_response(&msg, &request_id, Some(log), open);
    };
    *req.uri_mut() = uri;
    req.headers_mut().insert(http::header::AUTHORIZATION, state.internal_auth.clone());
    match caller.upstream.request(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            log.code = relay::grpc_status(&parts.headers);
            Response::from_parts(parts, Relay::stream(body, Some(log), open))
        }
        Err(err) => {
            let msg = relay::broken_message(&plugin, &err);
            relay::report_unavailable(&table, &plugin, &endpoint, &err);
            log.code = Some(GRPC_UNAVAILABLE);
            relay::unavailable_response(&msg, &request_id, Some(log), open)
        }
    }
}

/// Everything that is not a routable plugin call: to the Python gateway, untouched.
async fn to_backend(caller: &Caller, mut req: Request<Incoming>, open: StreamGuard) -> Response<Relay> {
    let backend = &caller.state.backend;
    let Some(uri) = upstream_uri(backend, req.uri()) else {
        return relay::unavailable_response("The gateway's control-plane address is not host:port.", "", None, open);
    };
    *req.uri_mut() = uri;
    match caller.upstream.request(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, Relay::stream(body, None, open))
        }
        Err(err) => {
            let msg = format!("The gateway's control plane at {backend} is not answering ({err}); check the gateway's log.");
            log("ERROR", &msg);
            relay::unavailable_response(&msg, "", None, open)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// control: stdin tables, shutdown

async fn read_tables(state: Arc<State>, stop: watch::Sender<bool>) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.trim().is_empty() => continue,
            Ok(Some(line)) => match serde_json::from_str::<TableMsg>(&line) {
                Ok(msg) => {
                    let version = msg.version;
                    let table = Table::from_msg(msg);
                    let routed = table.routes.len();
                    *state.table.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(table);
                    log_line("DEBUG", &format!("route table updated: {routed} routable plugin(s)"), Default::default());
                    // the gateway waits for this before an install or uninstall returns
                    event(serde_json::json!({"event": "table", "version": version}));
                }
                Err(err) => log("ERROR", &format!("ignored a route table that is not valid JSON: {err}")),
            },
            Ok(None) | Err(_) => {
                log("INFO", "the gateway closed the control pipe: shutting down");
                let _ = stop.send(true);
                return;
            }
        }
    }
}

async fn wait_stop(mut stop: watch::Receiver<bool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => log("INFO", "SIGTERM: draining"),
        _ = stop.wait_for(|s| *s) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// setup

struct Args {
    listen: String,
    backend: String,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    grace: Duration,
}

fn usage(err: &str) -> ! {
    eprintln!(
        "apt-router: {err}\n\nusage: apt-router --listen HOST:PORT --backend HOST:PORT [--tls-cert PEM --tls-key PEM] \
         [--grace SECONDS]\nenv: APT_TOKEN, APT_ADMIN_TOKEN (accepted from callers), APT_INTERNAL_TOKEN (sent to plugins),\n     APT_LOG_LEVEL (default INFO), APT_ROUTER_THREADS (default 2)\n\
         Started by the gateway (APT_ROUTER=native); route tables arrive on stdin as JSON lines."
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args { listen: String::new(), backend: String::new(), tls_cert: None, tls_key: None,
                          grace: Duration::from_secs(10) };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--listen" => args.listen = value(),
            "--backend" => args.backend = value(),
            "--tls-cert" => args.tls_cert = Some(value()),
            "--tls-key" => args.tls_key = Some(value()),
            "--grace" => {
                let v = value();
                let secs: f64 = v.parse().unwrap_or_else(|_| usage(&format!("--grace {v:?} is not a number")));
                args.grace = Duration::from_secs_f64(secs.max(0.0));
            }
            "-h" | "--help" => usage("the gateway's data plane"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if args.listen.is_empty() || args.backend.is_empty() {
        usage("--listen and --backend are required");
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        usage("--tls-cert and --tls-key go together");
    }
    args
}

fn tls_acceptor(cert: &str, key: &str) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the TLS certificate {cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read the TLS key {key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("the TLS certificate and key do not make a server config: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn build_state(backend: String) -> State {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let internal = env("APT_INTERNAL_TOKEN");
    if internal.is_empty() {
        usage("APT_INTERNAL_TOKEN is not set: plugins accept calls carrying the gateway's internal token only");
    }
    let tokens: Vec<Vec<u8>> = [env("APT_TOKEN"), env("APT_ADMIN_TOKEN")]
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(String::into_bytes)
        .collect();
    if tokens.is_empty() {
        usage("neither APT_TOKEN nor APT_ADMIN_TOKEN is set: every plugin call needs a token");
    }
    let internal_auth = HeaderValue::from_str(&format!("Bearer {internal}"))
        .unwrap_or_else(|_| usage("APT_INTERNAL_TOKEN has characters a header cannot carry"));
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let mut upstream = Client::builder(TokioExecutor::new());
    upstream
        .http2_only(true)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(300))
        .http2_initial_stream_window_size(UPSTREAM_STREAM_WINDOW)
        .http2_initial_connection_window_size(UPSTREAM_CONN_WINDOW)
        .http2_max_frame_size(conn::MAX_FRAME)
        .http2_keep_alive_interval(conn::KEEPALIVE_INTERVAL)
        .http2_keep_alive_timeout(conn::KEEPALIVE_TIMEOUT);
    State { table: RwLock::new(Arc::new(Table::default())), upstream, connector, backend, tokens, internal_auth,
            ids: AtomicU64::new(0) }
}

fn main() {
    let args = parse_args();
    let state = Arc::new(build_state(args.backend.clone()));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(tls_acceptor(c, k).unwrap_or_else(|e| usage(&e))),
        _ => None,
    };
    // two workers: the gateway's own process and the plugins share the machine's cores
    let threads = std::env::var("APT_ROUTER_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
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

async fn serve(args: Args, state: Arc<State>, tls: Option<tokio_rustls::TlsAcceptor>) {
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            log("ERROR", &format!("cannot bind {}: {e}", args.listen));
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().map(|a: SocketAddr| a.port()).unwrap_or(0);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(read_tables(state.clone(), stop_tx));
    event(serde_json::json!({"event": "listening", "port": port}));

    let http = Arc::new(conn::server_builder());
    // every connection task holds a receiver: drain_tx.closed() resolves when the last one ends
    let (drain_tx, drain_rx) = watch::channel(false);
    let stopping = wait_stop(stop_rx);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_as_bearer_tokens() {
        let state = State {
            table: RwLock::new(Arc::new(Table::default())),
            upstream: Client::builder(TokioExecutor::new()),
            connector: HttpConnector::new(),
            backend: "127.0.0.1:1".into(),
            tokens: vec![b"user".to_vec(), b"admin".to_vec()],
            internal_auth: HeaderValue::from_static("Bearer internal"),
            ids: AtomicU64::new(0),
        };
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        assert!(state.authorized(&with("Bearer user")));
        assert!(state.authorized(&with("bearer admin")));
        assert!(!state.authorized(&with("Bearer wrong")));
        assert!(!state.authorized(&with("Bearer ")));
        assert!(!state.authorized(&with("user")));
        assert!(!state.authorized(&with("Bearer internal")));
        assert!(!state.authorized(&HeaderMap::new()));
        assert_ne!(state.request_id(), state.request_id());
        assert_eq!(state.request_id().len(), 12);
    }
}
