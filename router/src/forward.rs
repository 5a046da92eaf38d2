//! Forwarding one call: a routable plugin call with a valid token to one of the plugin's
//! endpoints, everything else to the control plane.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;

use crate::conn::{Activity, StreamGuard};
use crate::logs::log;
use crate::paths::MethodPath;
use crate::relay::{self, CallLog, Relay, GRPC_UNAVAILABLE};
use crate::state::State;
use crate::upstream::Upstreams;

/// One caller connection's service: what every call on it shares.
#[derive(Clone)]
pub struct Caller {
    state: Arc<State>,
    upstream: Arc<Upstreams>,
    pub activity: Arc<Activity>,
}

impl Caller {
    pub fn new(state: Arc<State>) -> Caller {
        let upstream = Arc::new(state.upstream_for_caller());
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
    match caller.upstream.call(&endpoint, req).await {
        Ok((resp, upstream_open)) => {
            let (parts, body) = resp.into_parts();
            log.code = relay::grpc_status(&parts.headers);
            Response::from_parts(parts, Relay::stream(body, Some(log), open, upstream_open))
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
    match caller.upstream.call(backend, req).await {
        Ok((resp, upstream_open)) => {
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, Relay::stream(body, None, open, upstream_open))
        }
        Err(err) => {
            let msg = format!("The gateway's control plane at {backend} is not answering ({err}); check the gateway's log.");
            log("ERROR", &msg);
            relay::unavailable_response(&msg, "", None, open)
        }
    }
}
