//! Upstream connections (to plugins and the control plane): HTTP/2 driven with `h2` directly.
//!
//! Why not hyper's client: it hands a request to its connection task, which writes the HEADERS
//! frame, and a task of its own sends the request's DATA once the stream is open: two writes to
//! the plugin (and two wake-ups of it) for every unary call. Here the call's own task opens the
//! stream and queues the first DATA frame at once, so the connection writes both in one go.
//!
//! What hyper's client did besides is kept: flow-control windows (`STREAM_WINDOW`,
//! `CONN_WINDOW`), a PING every `conn::KEEPALIVE_INTERVAL` while calls are open that must be
//! answered within `conn::KEEPALIVE_TIMEOUT`, and connections closed after `IDLE_TIMEOUT`
//! without an open call.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::{self, SendRequest};
use h2::{Ping, PingPong, Reason, RecvStream, SendStream};
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::conn::{self, Activity, StreamGuard};
use crate::logs::log_line;

// Flow-control windows towards plugins and the control plane (loopback or the cluster network).
// What a caller that stops reading makes apt-router hold is capped by these: 8 MiB per upstream
// connection of that caller.
const STREAM_WINDOW: u32 = 2 << 20;
const CONN_WINDOW: u32 = 8 << 20;
/// response headers of one call, decoded (hyper's client had the same)
const MAX_HEADER_LIST: u32 = 16 << 10;
/// request bytes h2 may hold for one stream beyond what the plugin's window lets it send
const MAX_SEND_BUFFER: usize = 1 << 20;
/// streams opened before the plugin's SETTINGS say how many it takes
const INITIAL_MAX_STREAMS: usize = 100;
/// an upstream connection without an open call this long is closed
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The upstream connections of one caller connection: one HTTP/2 connection per endpoint it
/// calls, opened on first use and closed with the caller's connection (see `State`'s
/// `upstream_for_caller` for why they are not shared between callers).
#[derive(Default)]
pub struct Upstreams {
    conns: Mutex<HashMap<String, Conn>>,
}

struct Conn {
    send: SendRequest<Bytes>,
    /// the calls open on it: keep-alive PINGs and the idle timeout go by them
    activity: Arc<Activity>,
    /// dropped with the entry: tells the connection's task that no new call will come (h2
    /// does not wake a parked connection when its last `SendRequest` is dropped)
    _entry: oneshot::Sender<()>,
}

/// A call's upstream answer: the response head with its stream, and the call counted as open on
/// the upstream connection until the guard is dropped.
pub type Answer = (Response<RecvStream>, StreamGuard);

impl Upstreams {
    /// Forward `req` (its URI absolute: `http://<endpoint>/<path>`) to `endpoint` and wait for the
    /// response head. The caller's body is relayed to the plugin by this task as far as it has
    /// arrived, the rest (client streaming) by a task of its own. Err: why the endpoint could not
    /// take the call, for the caller's message.
    pub async fn call(&self, endpoint: &str, req: Request<Incoming>) -> Result<Answer, String> {
        let (mut send, activity) = self.ready(endpoint).await?;
        let (head, body) = req.into_parts();
        let eos = body.is_end_stream();
        let (response, stream) = send.send_request(Request::from_parts(head, ()), eos).map_err(|e| e.to_string())?;
        let open = activity.open();
        if !eos {
            let mut upload = Upload { body, stream, unconfirmed: true };
            // the frames that are here already go out with the HEADERS frame, in one write
            if poll_fn(|cx| Poll::Ready(Pin::new(&mut upload).poll(cx))).await.is_pending() {
                tokio::spawn(upload);
            }
        }
        let response = response.await.map_err(|e| e.to_string())?;
        Ok((response, open))
    }

    /// The endpoint's connection, ready for a new stream: the open one, or a new one when there
    /// is none or it broke (the plugin restarted, sent GOAWAY or idled out).
    async fn ready(&self, endpoint: &str) -> Result<(SendRequest<Bytes>, Arc<Activity>), String> {
        let open = self.lock().get(endpoint).map(|c| (c.send.clone(), c.activity.clone()));
        if let Some((mut send, activity)) = open {
            if poll_fn(|cx| send.poll_ready(cx)).await.is_ok() {
                return Ok((send, activity));
            }
            let mut conns = self.lock();
            if conns.get(endpoint).is_some_and(|c| Arc::ptr_eq(&c.activity, &activity)) {
                conns.remove(endpoint);
            }
        }
        let (send, activity, entry) = connect(endpoint).await?;
        let mut conns = self.lock();
        // two calls that found no connection both opened one: the first in the table serves both
        if let Some(c) = conns.get(endpoint) {
            return Ok((c.send.clone(), c.activity.clone()));
        }
        conns.insert(endpoint.to_owned(), Conn { send: send.clone(), activity: activity.clone(), _entry: entry });
        Ok((send, activity))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Conn>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn connect(endpoint: &str) -> Result<(SendRequest<Bytes>, Arc<Activity>, oneshot::Sender<()>), String> {
    let tcp = TcpStream::connect(endpoint).await.map_err(|e| format!("cannot connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (send, mut connection) = client::Builder::new()
        .initial_max_send_streams(INITIAL_MAX_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(conn::MAX_FRAME)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .enable_push(false)
        .handshake::<_, Bytes>(tcp)
        .await
        .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
    let activity = Arc::new(Activity::default());
    let (entry, dropped) = oneshot::channel();
    let ping = connection.ping_pong().expect("a new connection's PingPong");
    tokio::spawn(drive(connection, ping, activity.clone(), dropped, endpoint.to_owned()));
    Ok((send, activity, entry))
}

/// Run one upstream connection until it closes, idles out, or misses a keep-alive PING.
async fn drive(mut connection: client::Connection<TcpStream, Bytes>, ping: PingPong, activity: Arc<Activity>,
               mut dropped: oneshot::Receiver<()>, endpoint: String) {
    let born = Instant::now();
    let idle = activity.idle(born, IDLE_TIMEOUT);
    let keepalive = keep_alive(ping, &activity);
    tokio::pin!(idle, keepalive);
    let mut no_new_calls = false;
    let why = loop {
        tokio::select! {
            done = &mut connection => match done {
                Ok(()) => return,
                Err(e) => break format!("the upstream connection to {endpoint} ended: {e}"),
            },
            // h2 closes the connection (GOAWAY) once its streams are done
            _ = &mut dropped, if !no_new_calls => no_new_calls = true,
            _ = &mut idle => return,
            missed = &mut keepalive => break format!("{endpoint} {missed}: connection dropped"),
        }
    };
    log_line("DEBUG", &why, Default::default());
}

/// Resolves when a PING sent while calls are open is not answered in time (hyper's client
/// keep-alive, as the caller side has it too).
async fn keep_alive(mut ping: PingPong, activity: &Activity) -> String {
    loop {
        tokio::time::sleep(conn::KEEPALIVE_INTERVAL).await;
        if activity.open_calls() == 0 {
            continue;
        }
        if let Err(e) = ping.send_ping(Ping::opaque()) {
            return format!("could not be sent a keep-alive PING ({e})");
        }
        match tokio::time::timeout(conn::KEEPALIVE_TIMEOUT, poll_fn(|cx| ping.poll_pong(cx))).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return format!("broke off a keep-alive PING ({e})"),
            Err(_) => return format!("did not answer a keep-alive PING within {:?}", conn::KEEPALIVE_TIMEOUT),
        }
    }
}

/// The caller's request body, relayed to the upstream stream frame by frame.
///
/// Bounded like hyper's client: a frame is taken from the caller only once the upstream stream
/// has send capacity, so h2 holds at most one frame beyond the plugin's window, and the caller's
/// window is released only as frames are taken. The one exception is the first frame, sent
/// with the HEADERS before the stream has capacity (it is not open until the connection writes
/// them): that too is at most one frame.
struct Upload {
    body: Incoming,
    stream: SendStream<Bytes>,
    /// no data frame has been sent yet without first waiting for capacity
    unconfirmed: bool,
}

impl Future for Upload {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            if !this.unconfirmed {
                this.stream.reserve_capacity(1);
                if this.stream.capacity() == 0 {
                    loop {
                        match ready!(this.stream.poll_capacity(cx)) {
                            Some(Ok(0)) => {}
                            Some(Ok(_)) => break,
                            // the plugin reset the stream or the connection broke: the response says which
                            Some(Err(_)) | None => return Poll::Ready(()),
                        }
                    }
                } else if this.stream.poll_reset(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.unconfirmed &= data.is_empty();
                        let eos = this.body.is_end_stream();
                        if this.stream.send_data(data, eos).is_err() || eos {
                            return Poll::Ready(());
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.stream.reserve_capacity(0);
                            let _ = this.stream.send_trailers(trailers);
                            return Poll::Ready(());
                        }
                    }
                },
                // the caller reset its stream (cancelled, or its deadline passed): so does the plugin's
                Some(Err(_)) => {
                    this.stream.send_reset(Reason::CANCEL);
                    return Poll::Ready(());
                }
                None => {
                    let _ = this.stream.send_data(Bytes::new(), true);
                    return Poll::Ready(());
                }
            }
        }
    }
}
