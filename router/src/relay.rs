//! Response bodies: an upstream stream relayed frame by frame, or a Trailers-Only error answer.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use h2::{Reason, RecvStream};
use http_body::{Body, Frame, SizeHint};

use crate::conn::StreamGuard;
use crate::logs::{event, log, log_line};
use crate::table::Table;

const GRPC_UNIMPLEMENTED: u32 = 12;
pub const GRPC_UNAVAILABLE: u32 = 14;

const CODE_NAMES: [&str; 17] = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

/// One routed call; its log line is written when the response stream ends or is dropped.
pub struct CallLog {
    pub table: Arc<Table>,
    pub method: String,
    pub plugin: String,
    pub endpoint: String,
    pub request_id: String,
    pub started: Instant,
    pub code: Option<u32>,
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

pub fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// bodies

/// The response body: the upstream stream, relayed frame by frame; an upstream that breaks
/// mid-stream (the plugin crashed) ends the call with UNAVAILABLE trailers instead of a reset.
///
/// It is polled only when the caller's stream has send capacity, one frame (at most MAX_FRAME)
/// at a time, and the upstream's flow-control window is released only as frames are taken, so
/// a caller that stops reading stops its upstream stream: nothing is buffered beyond the windows.
pub struct Relay {
    inner: Option<RecvStream>,
    /// the upstream's DATA frames are over: its trailers (or the end) come next
    data_done: bool,
    log: Option<CallLog>,
    /// counts the call as open on the caller's connection until the body is done or dropped
    _open: StreamGuard,
    /// and on the upstream connection (its keep-alive and idle timeout)
    _upstream_open: Option<StreamGuard>,
}

impl Relay {
    pub fn stream(inner: RecvStream, log: Option<CallLog>, open: StreamGuard, upstream_open: StreamGuard) -> Relay {
        Relay { inner: Some(inner), data_done: false, log, _open: open, _upstream_open: Some(upstream_open) }
    }

    fn trailers_only(log: Option<CallLog>, open: StreamGuard) -> Relay {
        Relay { inner: None, data_done: true, log, _open: open, _upstream_open: None }
    }

    /// The upstream stream broke: end the call with UNAVAILABLE trailers.
    fn broken(&mut self, err: h2::Error) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.inner = None;
        let (msg, trailers) = match self.log.as_mut() {
            Some(log) => {
                log.code = Some(GRPC_UNAVAILABLE);
                let msg = broken_message(&log.plugin, &err);
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

impl Body for Relay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        if !this.data_done {
            match ready!(inner.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = inner.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                // a reset that only stops the stream (as hyper's client read it): the body ends here
                Some(Err(err)) if matches!(err.reason(), Some(Reason::NO_ERROR | Reason::CANCEL)) => {
                    this.inner = None;
                    return Poll::Ready(None);
                }
                Some(Err(err)) => return this.broken(err),
                None => this.data_done = true,
            }
        }
        match ready!(inner.poll_trailers(cx)) {
            Ok(Some(trailers)) => {
                if let Some(log) = this.log.as_mut() {
                    log.code = grpc_status(&trailers);
                }
                this.inner = None;
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Ok(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Err(err) => this.broken(err),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) if !b.is_end_stream() => SizeHint::default(),
            _ => SizeHint::with_exact(0),
        }
    }
}

/// What a caller reads: no endpoint (an internal address, for admins only; the log line of the
/// `unavailable` event has it).
pub fn broken_message(plugin: &str, err: &dyn std::fmt::Display) -> String {
    format!(
        "Plugin '{plugin}' stopped answering ({err}). It is marked unhealthy; \
         see 'apt-model plugin list' and its log."
    )
}

pub fn report_unavailable(table: &Table, plugin: &str, endpoint: &str, err: &dyn std::fmt::Display) {
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

fn error_headers(code: u32, reason: &'static str, msg: &str, request_id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(msg)) {
        h.insert("grpc-message", v);
    }
    h.insert("apt-error-reason", HeaderValue::from_static(reason));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&status_details(code, msg, reason, request_id)) {
        h.insert("grpc-status-details-bin", v);
    }
    h
}

/// The `google.rpc.Status` the gateway's own errors carry too: `ErrorInfo` (reason, domain
/// "apt-platform") and `RequestInfo` (the request id), base64 as every `-bin` header is.
fn status_details(code: u32, msg: &str, reason: &str, request_id: &str) -> String {
    use prost::Message;
    let pack = |type_name: &str, value: Vec<u8>| rpc::Any {
        type_url: format!("type.googleapis.com/{type_name}"),
        value,
    };
    let info = rpc::ErrorInfo { reason: reason.to_owned(), domain: "apt-platform".to_owned(), ..Default::default() };
    let mut details = vec![pack("google.rpc.ErrorInfo", info.encode_to_vec())];
    if !request_id.is_empty() {
        let req = rpc::RequestInfo { request_id: request_id.to_owned(), ..Default::default() };
        details.push(pack("google.rpc.RequestInfo", req.encode_to_vec()));
    }
    let status = rpc::Status { code: code as i32, message: msg.to_owned(), details };
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.encode_to_vec())
}

/// The few `google.rpc` messages apt-router writes (googleapis' status.proto and
/// error_details.proto, the fields it sets).
mod rpc {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(message, repeated, tag = "3")]
        pub details: Vec<Any>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ErrorInfo {
        #[prost(string, tag = "1")]
        pub reason: String,
        #[prost(string, tag = "2")]
        pub domain: String,
        #[prost(map = "string, string", tag = "3")]
        pub metadata: HashMap<String, String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RequestInfo {
        #[prost(string, tag = "1")]
        pub request_id: String,
        #[prost(string, tag = "2")]
        pub serving_data: String,
    }
}

fn unavailable_headers(msg: &str, request_id: &str) -> HeaderMap {
    error_headers(GRPC_UNAVAILABLE, "UNAVAILABLE", msg, request_id)
}

/// A Trailers-Only response (the status in the headers): the call failed before any reply.
fn trailers_only(headers: HeaderMap, log: Option<CallLog>, open: StreamGuard) -> Response<Relay> {
    let mut resp = Response::new(Relay::trailers_only(log, open));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    resp.headers_mut().extend(headers);
    resp
}

pub fn unavailable_response(msg: &str, request_id: &str, log: Option<CallLog>, open: StreamGuard) -> Response<Relay> {
    trailers_only(unavailable_headers(msg, request_id), log, open)
}

/// The answer to a `:path` that is not `/<package>.<Service>/<Method>`.
pub fn unimplemented_response(path: &str, open: StreamGuard) -> Response<Relay> {
    let shown: String = path.chars().take(200).collect();
    let msg = format!(
        "{shown:?} is not a gRPC method path (/<package>.<Service>/<Method>); check the method name the client calls."
    );
    trailers_only(error_headers(GRPC_UNIMPLEMENTED, "UNIMPLEMENTED", &msg, ""), None, open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("plain text: ok"), "plain text: ok");
        assert_eq!(percent_encode("100% — done\n"), "100%25 %E2%80%94 done%0A");
    }

    #[test]
    fn error_details_decode_as_google_rpc_status() {
        use prost::Message;
        let h = error_headers(GRPC_UNAVAILABLE, "UNAVAILABLE", "plugin x stopped", "req-1");
        let raw = h.get("grpc-status-details-bin").unwrap().to_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw).unwrap();
        let status = rpc::Status::decode(bytes.as_slice()).unwrap();
        assert_eq!((status.code, status.message.as_str()), (14, "plugin x stopped"));
        assert_eq!(status.details[0].type_url, "type.googleapis.com/google.rpc.ErrorInfo");
        let info = rpc::ErrorInfo::decode(status.details[0].value.as_slice()).unwrap();
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("UNAVAILABLE", "apt-platform"));
        let req = rpc::RequestInfo::decode(status.details[1].value.as_slice()).unwrap();
        assert_eq!(req.request_id, "req-1");
        // no request id (a malformed path is refused before one is read): no RequestInfo
        let h = error_headers(GRPC_UNIMPLEMENTED, "UNIMPLEMENTED", "bad path", "");
        let raw = h.get("grpc-status-details-bin").unwrap().to_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw).unwrap();
        assert_eq!(rpc::Status::decode(bytes.as_slice()).unwrap().details.len(), 1);
    }
}
