//! The HTTP/1.1 accept loop: a header-read and an idle keep-alive timeout per connection, a cap
//! on open connections that keeps health checks answerable, and a graceful shutdown that waits
//! only for connections inside a request.
//!
//! # Timeouts
//! hyper 1.12 (the version in `Cargo.lock`) has one timer, `http1::Builder::header_read_timeout`:
//! it starts whenever hyper begins waiting for a request head (at accept, and again as soon as a
//! response is written on a kept-alive connection) and bytes that arrive do not reset it. It
//! covers the idle wait and the head together, so it cannot give a short header timeout and a
//! longer keep-alive. Each connection therefore tracks its own [`Phase`] and a watchdog closes it:
//! - a new connection must deliver a complete request head within `header_read_timeout`; one
//!   that sent part of a head is answered 408 (a JSON error) before it is closed, one that sent
//!   nothing is closed without an answer;
//! - after a response it may stay idle for `keep_alive_timeout`; the first byte of the next
//!   request starts `header_read_timeout` for the rest of that head;
//! - while its request body arrives, the body must be complete within `server.body_read_timeout`
//!   of the head: a slower body ends in an error the handler answers 408 (counted in
//!   `formbridge_http_body_timeouts_total`);
//! - inside a request (body read, response not yet written out) it is not watched here: the
//!   handler is bounded by `server.request_timeout`.
//!
//! hyper's own timer stays on as a backstop at `header_read_timeout + keep_alive_timeout` per
//! wait: bytes of a pipelined next request read before the previous response ended are not seen
//! as the start of a head, so such a wait is bounded by the sum.
//!
//! # The connection cap and health checks
//! At most `server.max_connections` connections are served. When a new one arrives at the cap,
//! the connection that has waited longest without sending a complete request — head and body —
//! (a slowloris, a slow body, or an idle kept-alive connection) is closed to make room. A reserve of slots for health checks
//! cannot work, as nothing tells a health check from an attacker before its head is read; with
//! eviction, a new connection is the last in line to be evicted, so an attacker must open
//! `max_connections` more connections in the time a health check takes to send its few bytes
//! before it could be pushed out. Connections whose request is complete (their handler runs, or
//! their answer is being written) are never evicted (their time is bounded by
//! `server.request_timeout`); when every slot is such a one, accepting pauses and new connections
//! wait in the listen backlog. Either case logs one warning per [`CAP_LOG_EVERY`] and counts
//! `formbridge_http_connection_cap_reached_total`.
//!
//! # Per client
//! One client address may hold at most `server.max_connections_per_client` of the slots; a new
//! connection over that is closed at once, before it takes a slot or evicts anyone, and counted
//! in `formbridge_http_client_cap_reached_total`. The address is the TCP peer's (an IPv6 peer
//! counts by its /64 prefix, which one host usually holds whole), never a forwarded header: a
//! header is the client's to write. Behind a reverse proxy every connection comes from the proxy,
//! so there the cap must be at least `server.max_connections` (which turns it off) and the proxy
//! should limit its own clients.
//!
//! # Shutdown
//! When `shutdown` resolves the listener is closed, connections waiting for a head (idle or
//! half-sent) are closed at once, and those inside a request finish it (keep-alive off) for at
//! most `server.shutdown_grace`; then the rest are dropped.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::head_limits;
use crate::settings::ServerSettings;

/// Shortest interval between two "connection cap reached" warnings.
pub const CAP_LOG_EVERY: Duration = Duration::from_secs(10);

/// Open files kept free beside the connection cap for the store, GHL calls and the listener.
const SPARE_FILES: u64 = 64;

/// Longest pause after a failed accept (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The connection limits of `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub body_read_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl ServerLimits {
    pub fn from_settings(server: &ServerSettings) -> Self {
        Self {
            header_read_timeout: server.header_read_timeout,
            keep_alive_timeout: server.keep_alive_timeout,
            max_connections: server.max_connections,
            max_connections_per_client: server.max_connections_per_client,
            body_read_timeout: server.body_read_timeout,
            shutdown_grace: server.shutdown_grace,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then shuts down gracefully (see the
/// module doc). Accept errors never end it: it backs off and tries again.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    warn_if_files_limit_is_low(limits.max_connections);
    let registry = Arc::new(Registry::new(limits.max_connections));
    let stop = Stop::default();
    let mut backoff = AcceptBackoff::default();
    let mut cap_log = Throttled::new(CAP_LOG_EVERY);
    let mut client_cap_log = Throttled::new(CAP_LOG_EVERY);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => {
                backoff.succeeded();
                (stream, peer)
            }
            Err(e) => {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = backoff.failed(&e) => continue,
                }
            }
        };
        let Some(client) = ClientSlot::claim(
            &registry.clients,
            peer.ip(),
            limits.max_connections_per_client,
        ) else {
            refuse_over_client_cap(stream, peer, &limits, &mut client_cap_log);
            continue;
        };
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = registry.admit(limits.max_connections, &mut cap_log) => permit,
        };
        let conn = registry.insert(limits);
        let router = router.clone();
        let stop = stop.clone();
        let registry = registry.clone();
        tokio::spawn(async move {
            let outcome = run_connection(stream, peer, router, conn.clone(), limits, &stop).await;
            outcome.record();
            registry.remove(conn.id);
            drop(permit);
            drop(client);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    stop.stopping.cancel();
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, registry.slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "shutdown grace expired with requests still in flight");
        stop.abort.cancel();
    }
}

/// Signals from the accept loop to every connection.
#[derive(Clone, Default)]
struct Stop {
    /// Shutting down: close when not inside a request, else finish it without keep-alive.
    stopping: CancellationToken,
    /// The grace is over: close now.
    abort: CancellationToken,
}

// ---------------------------------------------------------------------------------------------
// One connection

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head since `since` (accept, or the end of the last response);
    /// closed at `deadline` unless a complete head arrives first.
    AwaitingHead {
        since: Instant,
        deadline: Instant,
        wait: Wait,
    },
    /// A request head was read and its body is still arriving; `since` is when the wait for
    /// this request began (as in `AwaitingHead`). Evictable like a wait for a head.
    ReadingBody { since: Instant },
    /// The request was read whole (or its handler answered without reading the rest) and its
    /// response is not yet written out.
    InRequest,
}

/// Which timeout a wait for a head is under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// A new connection that has sent nothing yet: `header_read_timeout`, then closed without
    /// an answer (nothing was asked).
    Fresh,
    /// A request whose first byte has arrived: `header_read_timeout`, then answered 408.
    Head,
    /// A kept-alive connection with nothing received since its last response:
    /// `keep_alive_timeout`.
    Idle,
}

/// The shared state of one connection: its phase, a wake-up for its watchdog, and eviction.
struct Connection {
    id: u64,
    limits: ServerLimits,
    phase: Mutex<Phase>,
    /// Notified when the deadline may have moved earlier or the connection became idle.
    changed: Notify,
    /// Cancelled to close the connection at the cap.
    evict: CancellationToken,
    /// Notified when this connection can be evicted again (the registry's wake-up).
    evictable: Arc<Notify>,
}

impl Connection {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes arrived: a head has begun. On an idle kept-alive connection this starts the
    /// header-read timeout.
    fn on_bytes_read(&self) {
        let mut phase = self.phase();
        match *phase {
            Phase::AwaitingHead {
                since,
                deadline,
                wait: Wait::Idle,
            } => {
                *phase = Phase::AwaitingHead {
                    since,
                    deadline: deadline.min(Instant::now() + self.limits.header_read_timeout),
                    wait: Wait::Head,
                };
                drop(phase);
                self.changed.notify_one();
            }
            Phase::AwaitingHead {
                since,
                deadline,
                wait: Wait::Fresh,
            } => {
                *phase = Phase::AwaitingHead {
                    since,
                    deadline,
                    wait: Wait::Head,
                };
            }
            _ => {}
        }
    }

    /// A complete request head was read; `body_done` when it has no body to wait for.
    fn on_request(&self, body_done: bool) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::AwaitingHead { since, .. } if !body_done => Phase::ReadingBody { since },
            _ => Phase::InRequest,
        };
    }

    /// The request body was read to its end (or given up on).
    fn on_body_done(&self) {
        let mut phase = self.phase();
        if let Phase::ReadingBody { .. } = *phase {
            *phase = Phase::InRequest;
        }
    }

    /// The response was written out (or abandoned): the connection idles until the next head.
    fn on_response_done(&self) {
        let now = Instant::now();
        *self.phase() = Phase::AwaitingHead {
            since: now,
            deadline: now + self.limits.keep_alive_timeout,
            wait: Wait::Idle,
        };
        self.changed.notify_one();
        self.evictable.notify_one();
    }

    fn deadline(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::AwaitingHead { deadline, .. } => Some(deadline),
            Phase::ReadingBody { .. } | Phase::InRequest => None,
        }
    }

    /// Since when it has waited for a head, if it is waiting for one.
    fn waiting_since(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::AwaitingHead { since, .. } => Some(since),
            Phase::ReadingBody { .. } | Phase::InRequest => None,
        }
    }

    /// Since when it has waited for a complete request (head and body), if it is: the order
    /// of eviction at the cap.
    fn incomplete_since(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::AwaitingHead { since, .. } | Phase::ReadingBody { since } => Some(since),
            Phase::InRequest => None,
        }
    }

    /// The timeout that has run out at `now`, if any.
    fn expired(&self, now: Instant) -> Option<Wait> {
        match *self.phase() {
            Phase::AwaitingHead { deadline, wait, .. } if deadline <= now => Some(wait),
            _ => None,
        }
    }
}

/// Why the server ended a connection (a client closing it, or an error, is `Finished`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Finished,
    HeaderTimeout,
    IdleTimeout,
    Evicted,
    Shutdown,
    GraceExpired,
}

impl Outcome {
    fn record(self) {
        let reason = match self {
            Outcome::Finished => return,
            Outcome::HeaderTimeout => "header_timeout",
            Outcome::IdleTimeout => "idle_timeout",
            Outcome::Evicted => "evicted",
            Outcome::Shutdown => "shutdown",
            Outcome::GraceExpired => "grace_expired",
        };
        // Per connection, so at debug: a slowloris must not flood the log.
        tracing::debug!(reason, "connection closed by the server");
        metrics::counter!(crate::metrics::HTTP_CONNECTIONS_CLOSED, "reason" => reason).increment(1);
    }
}

async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    conn: Arc<Connection>,
    limits: ServerLimits,
    stop: &Stop,
) -> Outcome {
    // Small JSON answers: send them at once.
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Watched {
        stream,
        conn: conn.clone(),
    });
    let tracked = conn.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let body_done = hyper::body::Body::is_end_stream(request.body());
        tracked.on_request(body_done);
        let done = ResponseDone(tracked.clone());
        let router = router.clone();
        let conn = tracked.clone();
        let body_read_timeout = limits.body_read_timeout;
        let over_limits = head_limits::check(&request).err();
        async move {
            if let Some(refusal) = over_limits {
                let response = refusal.into_response();
                return Ok(response.map(|inner| TrackedBody { inner, _done: done }));
            }
            let mut request = request.map(|inner| {
                Body::new(TimedBody {
                    inner,
                    deadline: Box::pin(tokio::time::sleep(body_read_timeout)),
                    timeout: body_read_timeout,
                    conn,
                    ended: body_done,
                })
            });
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let response = router.oneshot(request).await?;
            Ok::<_, std::convert::Infallible>(
                response.map(|inner| TrackedBody { inner, _done: done }),
            )
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(head_limits::PARSER_BUFFER_BYTES)
        .header_read_timeout(limits.header_read_timeout + limits.keep_alive_timeout);
    let mut http = builder.serve_connection(io, service);
    let mut draining = false;
    loop {
        let changed = conn.changed.notified();
        let deadline = conn.deadline();
        let watchdog = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = &mut http => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return Outcome::Finished;
            }
            () = watchdog => match conn.expired(Instant::now()) {
                Some(Wait::Fresh) => return Outcome::HeaderTimeout,
                Some(Wait::Head) => {
                    let stream = http.into_parts().io.into_inner().stream;
                    answer_header_timeout(stream, limits.header_read_timeout).await;
                    return Outcome::HeaderTimeout;
                }
                Some(Wait::Idle) => return Outcome::IdleTimeout,
                None => {}
            },
            // The deadline may have moved: compute it again. (While draining, hyper closes the
            // connection itself once the response is flushed.)
            () = changed => {}
            () = conn.evict.cancelled() => return Outcome::Evicted,
            () = stop.stopping.cancelled(), if !draining => {
                if conn.waiting_since().is_some() {
                    return Outcome::Shutdown;
                }
                draining = true;
                Pin::new(&mut http).graceful_shutdown();
            }
            () = stop.abort.cancelled() => return Outcome::GraceExpired,
        }
    }
}

/// Longest a 408 for a late head may take to write (a slowloris need not read it).
const TIMEOUT_ANSWER_WRITE: Duration = Duration::from_secs(1);

/// Answers a request whose head did not arrive whole within `timeout` with a JSON 408 on its
/// connection's `stream` (hyper never saw a request, so it has nothing to answer), then closes.
async fn answer_header_timeout(mut stream: TcpStream, timeout: Duration) {
    use tokio::io::AsyncWriteExt;
    let body = format!(
        r#"{{"error":"header_timeout","detail":"the request head did not arrive whole within {} (server.header_read_timeout); send the whole head at once"}}"#,
        humantime::format_duration(timeout)
    );
    let answer = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(TIMEOUT_ANSWER_WRITE, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// The TCP stream, reporting received bytes to its [`Connection`].
struct Watched {
    stream: TcpStream,
    conn: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.on_bytes_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The request body was not received whole within `server.body_read_timeout` of its head.
/// Handlers find it as the source of the body's read error and answer 408.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {} of its head (server.body_read_timeout)", humantime::format_duration(*.0))]
pub struct BodyReadTimeout(pub Duration);

impl BodyReadTimeout {
    /// The timeout behind a body read error, if that is what it was.
    pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<BodyReadTimeout> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(timeout) = e.downcast_ref::<BodyReadTimeout>() {
                return Some(*timeout);
            }
            current = e.source();
        }
        None
    }
}

/// A request body that must arrive whole within `server.body_read_timeout` of the head, and
/// reports its end to its [`Connection`] (after which the connection is no longer evictable).
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    conn: Arc<Connection>,
    /// The body ended (read whole, failed, or timed out): nothing more is watched.
    ended: bool,
}

impl TimedBody {
    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            self.conn.on_body_done();
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Pin::new(&mut this.inner)
                .poll_frame(cx)
                .map_err(axum::Error::new);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.end();
            metrics::counter!(crate::metrics::HTTP_BODY_TIMEOUTS).increment(1);
            return Poll::Ready(Some(Err(axum::Error::new(BodyReadTimeout(this.timeout)))));
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.end(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.end(),
            _ => {}
        }
        polled.map_err(axum::Error::new)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Marks the response written out when hyper drops its body.
struct ResponseDone(Arc<Connection>);

impl Drop for ResponseDone {
    fn drop(&mut self) {
        self.0.on_response_done();
    }
}

/// A response body that reports its end (hyper drops a body once it is written out).
struct TrackedBody {
    inner: Body,
    _done: ResponseDone,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------
// The cap

/// The open connections, and one semaphore permit per connection slot.
struct Registry {
    slots: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    /// Notified when a connection starts waiting for a head, so a full accept loop can evict it.
    evictable: Arc<Notify>,
    /// Open connections per client address.
    clients: Arc<Mutex<HashMap<ClientKey, usize>>>,
}

impl Registry {
    fn new(max_connections: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_connections)),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            evictable: Arc::new(Notify::new()),
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn insert(&self, limits: ServerLimits) -> Arc<Connection> {
        let now = Instant::now();
        let conn = Arc::new(Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            limits,
            phase: Mutex::new(Phase::AwaitingHead {
                since: now,
                deadline: now + limits.header_read_timeout,
                wait: Wait::Fresh,
            }),
            changed: Notify::new(),
            evict: CancellationToken::new(),
            evictable: self.evictable.clone(),
        });
        let mut open = self.open();
        open.insert(conn.id, conn.clone());
        metrics::gauge!(crate::metrics::HTTP_CONNECTIONS).set(open.len() as f64);
        conn
    }

    fn remove(&self, id: u64) {
        let mut open = self.open();
        open.remove(&id);
        metrics::gauge!(crate::metrics::HTTP_CONNECTIONS).set(open.len() as f64);
    }

    /// A slot for one more connection: a free one, else one freed by evicting the connection
    /// that has waited longest for a request head, else the first to end.
    async fn admit(&self, max_connections: usize, log: &mut Throttled) -> OwnedSemaphorePermit {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return permit;
        }
        metrics::counter!(crate::metrics::HTTP_CONNECTION_CAP_REACHED).increment(1);
        let mut evicted = false;
        loop {
            let evictable = self.evictable.notified();
            evicted |= self.evict_longest_waiting();
            tokio::select! {
                permit = self.slots.clone().acquire_owned() => {
                    if let Some(suppressed) = log.ready() {
                        let action = if evicted {
                            "closed the connection that waited longest for a complete request"
                        } else {
                            "every connection is inside a request; new connections wait"
                        };
                        tracing::warn!(max_connections, since_last_warning = suppressed, "connection cap reached (server.max_connections): {action}");
                    }
                    if let Ok(permit) = permit {
                        return permit;
                    }
                    // The semaphore is never closed; should it be, wait for the shutdown.
                    std::future::pending::<()>().await;
                }
                () = evictable => {}
            }
        }
    }

    /// Evicts the connection waiting longest for a complete request (head and body), unless an
    /// evicted one is still closing. Whether one was evicted now.
    fn evict_longest_waiting(&self) -> bool {
        let open = self.open();
        if open.values().any(|c| c.evict.is_cancelled()) {
            return false;
        }
        let victim = open
            .values()
            .filter_map(|c| c.incomplete_since().map(|since| (since, c)))
            .min_by_key(|(since, c)| (*since, c.id));
        match victim {
            Some((_, conn)) => {
                conn.evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// Whose connections count together against `server.max_connections_per_client`: an IPv4
/// address, or the /64 prefix of an IPv6 one (an IPv4-mapped IPv6 address counts as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(prefix.into()))
            }
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// One connection counted against its client's share; given back when dropped.
struct ClientSlot {
    clients: Arc<Mutex<HashMap<ClientKey, usize>>>,
    key: ClientKey,
}

impl ClientSlot {
    /// A slot for one more connection of `ip`, unless it already holds `max`.
    fn claim(
        clients: &Arc<Mutex<HashMap<ClientKey, usize>>>,
        ip: IpAddr,
        max: usize,
    ) -> Option<Self> {
        let key = ClientKey::of(ip);
        let mut map = clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = map.entry(key).or_insert(0);
        if *open >= max {
            return None;
        }
        *open += 1;
        Some(Self {
            clients: clients.clone(),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(open) = map.get_mut(&self.key) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Closes a connection over its client's share at once (no slot taken, nobody evicted).
fn refuse_over_client_cap(
    stream: TcpStream,
    peer: SocketAddr,
    limits: &ServerLimits,
    log: &mut Throttled,
) {
    drop(stream);
    metrics::counter!(crate::metrics::HTTP_CLIENT_CAP_REACHED).increment(1);
    if let Some(suppressed) = log.ready() {
        tracing::warn!(
            client = %ClientKey::of(peer.ip()),
            max_connections_per_client = limits.max_connections_per_client,
            since_last_warning = suppressed,
            "a client is at its connection cap (server.max_connections_per_client): its new connections are closed at once"
        );
    }
}

/// Lets an event through at most once per interval, counting the ones held back.
struct Throttled {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(number held back since the last one)` when this event may be logged.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + self.every) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

// ---------------------------------------------------------------------------------------------
// Accept errors

/// Backs off after failed accepts (EMFILE would otherwise spin), logging once per episode.
#[derive(Default)]
struct AcceptBackoff {
    failures: u64,
    delay: Duration,
}

impl AcceptBackoff {
    async fn failed(&mut self, error: &io::Error) {
        metrics::counter!(crate::metrics::HTTP_ACCEPT_ERRORS).increment(1);
        if self.failures == 0 {
            tracing::warn!(%error, "cannot accept connections; pausing and retrying until it works again (with EMFILE raise `ulimit -n` or lower server.max_connections)");
            self.delay = Duration::from_millis(10);
        }
        self.failures += 1;
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(MAX_ACCEPT_BACKOFF);
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failed_accepts = self.failures,
                "accepting connections again"
            );
            self.failures = 0;
        }
    }
}

/// Warns when the cap leaves too little room under the soft open-files limit (Linux).
fn warn_if_files_limit_is_low(max_connections: usize) {
    let Some(limit) = open_files_limit() else {
        return;
    };
    if (max_connections as u64).saturating_add(SPARE_FILES) > limit {
        tracing::warn!(
            max_connections,
            open_files_limit = limit,
            "server.max_connections leaves fewer than {SPARE_FILES} of the open-files limit (ulimit -n) for the store and GHL; connections may fail with EMFILE before the cap is reached"
        );
    }
}

/// The soft `Max open files` of this process, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits() -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 4,
            max_connections_per_client: 4,
            body_read_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_byte_after_a_response_starts_the_header_timeout() {
        let registry = Registry::new(4);
        let conn = registry.insert(limits());
        let accepted = Instant::now();
        assert_eq!(conn.deadline(), Some(accepted + Duration::from_secs(10)));
        conn.on_request(true);
        assert_eq!(conn.deadline(), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        conn.on_response_done();
        let idle_from = Instant::now();
        assert_eq!(conn.deadline(), Some(idle_from + Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(20)).await;
        conn.on_bytes_read();
        assert_eq!(
            conn.deadline(),
            Some(Instant::now() + Duration::from_secs(10))
        );
        // More bytes of the same head do not extend it.
        tokio::time::advance(Duration::from_secs(5)).await;
        conn.on_bytes_read();
        assert_eq!(
            conn.expired(Instant::now() + Duration::from_secs(5)),
            Some(Wait::Head)
        );
        assert_eq!(conn.waiting_since(), Some(idle_from));
    }

    #[tokio::test(start_paused = true)]
    async fn eviction_takes_the_longest_waiting_connection_not_one_in_a_request() {
        let registry = Registry::new(3);
        let busy = registry.insert(limits());
        busy.on_request(true);
        tokio::time::advance(Duration::from_secs(1)).await;
        let older = registry.insert(limits());
        tokio::time::advance(Duration::from_secs(1)).await;
        let newer = registry.insert(limits());
        assert!(registry.evict_longest_waiting());
        assert!(older.evict.is_cancelled());
        assert!(!newer.evict.is_cancelled() && !busy.evict.is_cancelled());
        // Nothing more is evicted while the evicted one is still closing.
        assert!(!registry.evict_longest_waiting());
        registry.remove(older.id);
        assert!(registry.evict_longest_waiting());
        assert!(newer.evict.is_cancelled());
        registry.remove(newer.id);
        assert!(
            !registry.evict_longest_waiting(),
            "a connection in a request is never evicted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_evictable_until_its_body_is_whole() {
        let registry = Registry::new(2);
        let reading = registry.insert(limits());
        reading.on_request(false);
        assert_eq!(
            reading.deadline(),
            None,
            "the body timeout is the body's own"
        );
        assert_eq!(reading.waiting_since(), None, "shutdown lets it finish");
        tokio::time::advance(Duration::from_secs(1)).await;
        let newer = registry.insert(limits());
        assert!(registry.evict_longest_waiting());
        assert!(reading.evict.is_cancelled() && !newer.evict.is_cancelled());
        registry.remove(reading.id);
        newer.on_request(false);
        newer.on_body_done();
        assert!(!registry.evict_longest_waiting(), "its request is whole");
    }

    #[test]
    fn clients_count_by_address_and_ipv6_by_its_64_prefix() {
        let clients = Arc::new(Mutex::new(HashMap::new()));
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let first = ClientSlot::claim(&clients, v6("2001:db8::1"), 2).unwrap();
        let _second = ClientSlot::claim(&clients, v6("2001:db8::ffff:2"), 2).unwrap();
        assert!(ClientSlot::claim(&clients, v6("2001:db8::3"), 2).is_none());
        assert!(ClientSlot::claim(&clients, v6("2001:db8:0:1::1"), 2).is_some());
        assert_eq!(
            ClientKey::of(v6("::ffff:10.0.0.1")),
            ClientKey::of(v6("10.0.0.1"))
        );
        drop(first);
        assert!(ClientSlot::claim(&clients, v6("2001:db8::3"), 2).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_log_counts_what_it_held_back() {
        let mut log = Throttled::new(Duration::from_secs(10));
        assert_eq!(log.ready(), Some(0));
        assert_eq!(log.ready(), None);
        assert_eq!(log.ready(), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(log.ready(), Some(2));
    }
}
