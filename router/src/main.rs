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
//! * Every other call goes to the control plane (the Python gateway on loopback), which
//!   serves the core commands, the registry and jobs, and answers every error case (no or
//!   wrong token, plugin not installed or unhealthy, unknown service) with its own messages.
//!
//! Control: the gateway writes route tables to stdin, one JSON object per line; EOF on stdin
//! (the gateway is gone) or SIGTERM stops accepting, drains open calls for the grace period
//! and exits. Events for the gateway go to stdout as JSON lines (`listening`, `unavailable`);
//! logs go to stderr as JSON lines like the gateway's own.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Deserialize;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

const DESCRIBE: &str = "/apt.plugin.v1.Plugin/Describe";
const PLUGIN_PREFIX: &str = "/apt.plugins.";
// Flow-control windows: large enough that a loopback stream is never window-bound.
const STREAM_WINDOW: u32 = 8 << 20;
const CONN_WINDOW: u32 = 32 << 20;
const MAX_FRAME: u32 = 1 << 20;
const MAX_HEADER_LIST: u32 = 64 << 10;
const GRPC_UNAVAILABLE: u32 = 14;

/// What the gateway sends on stdin: the catalogue's service names and the routable plugins.
#[derive(Deserialize, Default)]
struct TableMsg {
    /// full proto service name -> plugin
    services: HashMap<String, String>,
    /// every plugin in the catalogue (services map by package name as a fallback)
    plugins: Vec<String>,
    /// plugin -> healthy endpoints; plugins absent here go to the control plane
    endpoints: HashMap<String, Vec<String>>,
}

struct Route {
    endpoints: Vec<String>,
    /// set when a call to the endpoint broke: it gets no more calls until the next table
    down: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl Route {
    fn new(endpoints: Vec<String>) -> Route {
        let down = endpoints.iter().map(|_| AtomicBool::new(false)).collect();
        Route { endpoints, down, next: AtomicUsize::new(0) }
    }

    /// The next endpoint round-robin, skipping those marked down; None when all are.
    fn pick(&self) -> Option<&str> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find(|&i| !self.down[i].load(Ordering::Relaxed)).map(|i| &*self.endpoints[i])
    }

    fn mark_down(&self, endpoint: &str) {
        if let Some(i) = self.endpoints.iter().position(|e| e == endpoint) {
            self.down[i].store(true, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct Table {
    services: HashMap<String, String>,
    plugins: HashSet<String>,
    routes: HashMap<String, Route>,
}

impl Table {
    fn from_msg(msg: TableMsg) -> Table {
        let routes = msg
            .endpoints
            .into_iter()
            .filter(|(_, eps)| !eps.is_empty())
            .map(|(name, endpoints)| (name, Route::new(endpoints)))
            .collect();
        Table { services: msg.services, plugins: msg.plugins.into_iter().collect(), routes }
    }

    /// The plugin a call is for, as the gateway's own router decides it.
    fn plugin_for(&self, path: &str, headers: &HeaderMap) -> Option<String> {
        if path == DESCRIBE {
            return headers.get("x-apt-plugin").and_then(|v| v.to_str().ok()).map(str::to_owned);
        }
        if !path.starts_with(PLUGIN_PREFIX) {
            return None;
        }
        let service = &path[1..path.rfind('/')?];
        if let Some(p) = self.services.get(service) {
            return Some(p.clone());
        }
        // apt.plugins.<pkg>.v1.X: a service not listed in plugin.yaml still maps by package
        let pkg = service.split('.').nth(2)?.replace('_', "-");
        self.plugins.contains(&pkg).then_some(pkg)
    }
}

struct State {
    table: RwLock<Arc<Table>>,
    client: Client<HttpConnector, Incoming>,
    backend: String,
    tokens: Vec<Vec<u8>>,
    internal_auth: HeaderValue,
    ids: AtomicU64,
}

impl State {
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
// logs and events

fn timestamp() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn level_rank(level: &str) -> u8 {
    match level {
        "DEBUG" => 10,
        "INFO" => 20,
        "WARNING" | "WARN" => 30,
        "ERROR" => 40,
        _ => 50,
    }
}

/// APT_LOG_LEVEL, as the gateway reads it (default INFO).
fn min_level() -> u8 {
    static MIN: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *MIN.get_or_init(|| level_rank(&std::env::var("APT_LOG_LEVEL").unwrap_or_else(|_| "INFO".into()).to_uppercase()))
}

fn log_line(level: &str, msg: &str, fields: serde_json::Map<String, serde_json::Value>) {
    if level_rank(level) < min_level() {
        return;
    }
    let mut line = serde_json::Map::new();
    line.insert("ts".into(), timestamp().into());
    line.insert("level".into(), level.into());
    line.insert("service".into(), "gateway".into());
    line.insert("logger".into(), "apt-router".into());
    line.insert("msg".into(), msg.into());
    line.extend(fields);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", serde_json::Value::Object(line));
}

fn log(level: &str, msg: &str) {
    log_line(level, msg, serde_json::Map::new());
}

fn event(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

const CODE_NAMES: [&str; 17] = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

/// One routed call; its log line is written when the response stream ends or is dropped.
struct CallLog {
    table: Arc<Table>,
    method: String,
    plugin: String,
    endpoint: String,
    request_id: String,
    started: Instant,
    code: Option<u32>,
}

impl Drop for CallLog {
    fn drop(&mut self) {
        // a response dropped before its trailers: the caller went away (or its deadline passed)
        let name = match self.code {
            Some(c) => CODE_NAMES.get(c as usize).copied().unwrap_or("UNKNOWN"),
            None => "CANCELLED",
        };
        let mut f = serde_json::Map::new();
        f.insert("request_id".into(), self.request_id.clone().into());
        f.insert("method".into(), self.method.clone().into());
        f.insert("code".into(), name.into());
        f.insert("plugin".into(), self.plugin.clone().into());
        f.insert("endpoint".into(), self.endpoint.clone().into());
        let ms = (self.started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
        f.insert("duration_ms".into(), ms.into());
        log_line("INFO", &format!("{} {}", self.method, name), f);
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// bodies

/// The response body: the upstream stream, relayed frame by frame; an upstream that breaks
/// mid-stream (the plugin crashed) ends the call with UNAVAILABLE trailers instead of a reset.
struct Relay {
    inner: Option<Incoming>,
    log: Option<CallLog>,
}

impl Relay {
    fn stream(inner: Incoming, log: Option<CallLog>) -> Relay {
        Relay { inner: Some(inner), log }
    }

    fn trailers_only(log: Option<CallLog>) -> Relay {
        Relay { inner: None, log }
    }
}

impl Body for Relay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(t), Some(log)) = (frame.trailers_ref(), this.log.as_mut()) {
                    log.code = grpc_status(t);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(err))) => {
                this.inner = None;
                let (msg, trailers) = match this.log.as_mut() {
                    Some(log) => {
                        log.code = Some(GRPC_UNAVAILABLE);
                        let msg = broken_message(&log.plugin, &log.endpoint, &err);
                        report_unavailable(&log.table, &log.plugin, &log.endpoint, &err);
                        let trailers = unavailable_headers(&msg, &log.request_id);
                        (msg, trailers)
                    }
                    None => {
                        let msg = format!("The gateway's control plane broke off the call ({err}).");
                        let trailers = unavailable_headers(&msg, "");
                        (msg, trailers)
                    }
                };
                log("WARNING", &msg);
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().map_or(true, |b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

fn broken_message(plugin: &str, endpoint: &str, err: &dyn std::fmt::Display) -> String {
    format!(
        "Plugin '{plugin}' at {endpoint} stopped answering ({err}). It is marked unhealthy; \
         see 'apt-model plugin list' and its log."
    )
}

fn report_unavailable(table: &Table, plugin: &str, endpoint: &str, err: &dyn std::fmt::Display) {
    // no more calls to it from this table; the gateway marks it unhealthy and sends a new one
    if let Some(route) = table.routes.get(plugin) {
        route.mark_down(endpoint);
    }
    event(serde_json::json!({"event": "unavailable", "plugin": plugin, "endpoint": endpoint,
                             "error": err.to_string()}));
}

/// grpc-message is percent-encoded (gRPC over HTTP/2 spec): printable ASCII except '%' as is.
fn percent_encode(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for b in msg.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn unavailable_headers(msg: &str, request_id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", HeaderValue::from(GRPC_UNAVAILABLE));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(msg)) {
        h.insert("grpc-message", v);
    }
    h.insert("apt-error-reason", HeaderValue::from_static("UNAVAILABLE"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
    h
}

/// A Trailers-Only response (the status in the headers): the call failed before any reply.
fn unavailable_response(msg: &str, request_id: &str, log: Option<CallLog>) -> Response<Relay> {
    let mut resp = Response::new(Relay::trailers_only(log));
    let headers = resp.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.extend(unavailable_headers(msg, request_id));
    resp
}

// ---------------------------------------------------------------------------------------------
// forwarding

fn upstream_uri(endpoint: &str, uri: &Uri) -> Option<Uri> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Uri::builder().scheme("http").authority(endpoint).path_and_query(path).build().ok()
}

async fn handle(state: Arc<State>, mut req: Request<Incoming>) -> Result<Response<Relay>, Infallible> {
    let table = state.table.read().expect("route table lock").clone();
    let target = table
        .plugin_for(req.uri().path(), req.headers())
        .and_then(|p| table.routes.get(&p).and_then(|r| r.pick()).map(|e| (p, e.to_owned())));
    let Some((plugin, endpoint)) = target.filter(|_| state.authorized(req.headers())) else {
        return Ok(to_backend(&state, req).await);
    };
    let request_id = match req.headers().get("x-request-id").and_then(|v| v.to_str().ok()) {
        Some(id) => id.to_owned(),
        None => {
            let id = state.request_id();
            req.headers_mut().insert("x-request-id", HeaderValue::from_str(&id).expect("hex id"));
            id
        }
    };
    let log = CallLog {
        table: table.clone(),
        method: req.uri().path().to_owned(),
        plugin: plugin.clone(),
        endpoint: endpoint.clone(),
        request_id: request_id.clone(),
        started: Instant::now(),
        code: None,
    };
    let Some(uri) = upstream_uri(&endpoint, req.uri()) else {
        let msg = format!("Plugin '{plugin}' has an endpoint that is not host:port: {endpoint:?}.");
        return Ok(unavailable_response(&msg, &request_id, Some(log)));
    };
    *req.uri_mut() = uri;
    req.headers_mut().insert(http::header::AUTHORIZATION, state.internal_auth.clone());
    match state.client.request(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let mut log = log;
            log.code = grpc_status(&parts.headers);
            Ok(Response::from_parts(parts, Relay::stream(body, Some(log))))
        }
        Err(err) => {
            let msg = broken_message(&plugin, &endpoint, &err);
            report_unavailable(&table, &plugin, &endpoint, &err);
            let mut log = log;
            log.code = Some(GRPC_UNAVAILABLE);
            Ok(unavailable_response(&msg, &request_id, Some(log)))
        }
    }
}

/// Everything that is not a routable plugin call: to the Python gateway, untouched.
async fn to_backend(state: &State, mut req: Request<Incoming>) -> Response<Relay> {
    let Some(uri) = upstream_uri(&state.backend, req.uri()) else {
        return unavailable_response("The gateway's control-plane address is not host:port.", "", None);
    };
    *req.uri_mut() = uri;
    match state.client.request(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, Relay::stream(body, None))
        }
        Err(err) => {
            let msg = format!(
                "The gateway's control plane at {} is not answering ({err}); check the gateway's log.",
                state.backend
            );
            log("ERROR", &msg);
            unavailable_response(&msg, "", None)
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
                    let table = Table::from_msg(msg);
                    let routed = table.routes.len();
                    *state.table.write().expect("route table lock") = Arc::new(table);
                    log_line("DEBUG", &format!("route table updated: {routed} routable plugin(s)"), Default::default());
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
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(300))
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONN_WINDOW)
        .http2_max_frame_size(MAX_FRAME)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(20))
        .build(connector);
    State { table: RwLock::new(Arc::new(Table::default())), client, backend, tokens, internal_auth,
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

    let mut http = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http.timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_concurrent_streams(None);
    let http = Arc::new(http);
    let graceful = GracefulShutdown::new();
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
        let state = state.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            match tls {
                None => {
                    let _ = watcher.watch(http.serve_connection(TokioIo::new(stream), svc)).await;
                }
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => {
                        let _ = watcher.watch(http.serve_connection(TokioIo::new(s), svc)).await;
                    }
                    Err(e) => log("WARNING", &format!("TLS handshake failed: {e}")),
                },
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(args.grace) => log("WARNING", "grace period over: closing open calls"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::from_msg(TableMsg {
            services: HashMap::from([("apt.plugins.echo.v1.Echo".to_owned(), "echo".to_owned())]),
            plugins: vec!["echo".into(), "model-pruning".into()],
            endpoints: HashMap::from([
                ("echo".to_owned(), vec!["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()]),
                ("model-pruning".to_owned(), vec![]),
            ]),
        })
    }

    #[test]
    fn services_map_to_plugins_as_the_gateway_maps_them() {
        let t = table();
        let none = HeaderMap::new();
        assert_eq!(t.plugin_for("/apt.plugins.echo.v1.Echo/Echo", &none).as_deref(), Some("echo"));
        // not listed in plugin.yaml: by package name, '_' -> '-'
        assert_eq!(t.plugin_for("/apt.plugins.model_pruning.v1.Pruning/StartPrune", &none).as_deref(),
                   Some("model-pruning"));
        assert_eq!(t.plugin_for("/apt.plugins.nope.v1.X/Y", &none), None);
        assert_eq!(t.plugin_for("/apt.gateway.v1.Core/Info", &none), None);
        let mut h = HeaderMap::new();
        assert_eq!(t.plugin_for(DESCRIBE, &h), None);
        h.insert("x-apt-plugin", HeaderValue::from_static("echo"));
        assert_eq!(t.plugin_for(DESCRIBE, &h).as_deref(), Some("echo"));
        // a plugin without healthy endpoints has no route: its calls go to the control plane
        assert!(!t.routes.contains_key("model-pruning"));
    }

    #[test]
    fn round_robin_skips_endpoints_marked_down() {
        let t = table();
        let r = &t.routes["echo"];
        let picks: Vec<_> = (0..4).map(|_| r.pick().unwrap().to_owned()).collect();
        assert_eq!(picks, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]);
        r.mark_down("127.0.0.1:1");
        assert!((0..4).all(|_| r.pick() == Some("127.0.0.1:2")));
        r.mark_down("127.0.0.1:2");
        assert_eq!(r.pick(), None);
    }

    #[test]
    fn tokens_are_checked_as_bearer_tokens() {
        let state = State {
            table: RwLock::new(Arc::new(Table::default())),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
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

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("plain text: ok"), "plain text: ok");
        assert_eq!(percent_encode("100% — done\n"), "100%25 %E2%80%94 done%0A");
    }

    #[test]
    fn timestamps_are_utc_iso8601_with_milliseconds() {
        let ts = timestamp();
        assert_eq!(ts.len(), "2026-11-26T07:33:57.035Z".len());
        assert!(ts.starts_with("20") && ts.ends_with('Z') && &ts[10..11] == "T");
    }
}
