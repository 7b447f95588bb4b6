//! One client connection's life, and the timeouts that stop sockets which do nothing
//! from filling the connection cap (`--max-connections`) and locking everyone out.
//!
//! ```text
//! accepted ─▶ first byte within header_read_timeout, else closed
//!          ─▶ hyper-util auto builder (HTTP/1.1 or h2c)
//!          ─▶ HTTP/1: a request head must be complete within header_read_timeout of
//!             its first byte, else the socket is dropped (slowloris guard)
//!          ─▶ no byte read or written and no request in flight for keep_alive_timeout
//!             ─▶ graceful close (HTTP/1: closed between requests; h2: GOAWAY)
//!          ─▶ server shutdown ─▶ graceful close
//!          ─▶ a graceful close not done within its grace (e.g. a client that never
//!             reads its response, so the write never ends) ─▶ the socket is dropped
//! ```
//!
//! The first-byte wait is ours because the auto builder reads the first bytes to tell
//! HTTP/1 from the h2 preface before any of hyper's timers start: a silent socket
//! waited there forever. The head timer is ours too: hyper's `header_read_timeout`
//! starts when hyper *waits* for a head, i.e. also on an idle keep-alive connection,
//! so it closed every HTTP/1 connection idle for 10 s whatever the keep-alive timeout
//! said (and it armed and dropped a timer per request). Activity is counted on the
//! socket (bytes moved) and on the service (requests in flight), so a slow handler is
//! never mistaken for an idle client.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The address a request's connection came from (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// For the first byte, for each HTTP/1 request's headers, and the grace a
    /// connection gets to finish closing once it was asked to.
    pub header_read_timeout: Duration,
    /// An idle connection (nothing moving, nothing in flight) is closed after this.
    pub keep_alive_timeout: Duration,
}

/// What the client's first bytes said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Nothing in time, a closed or failed socket: nobody to answer, drop it.
    Silent,
    Http1,
    /// The h2 prior-knowledge preface (`PRI * HTTP/2.0…`).
    H2,
}

/// Waits for the client's first bytes and tells HTTP/1 from h2.
pub async fn first_bytes(stream: &TcpStream, limits: &ConnectionLimits) -> Opening {
    let mut probe = [0_u8; 3];
    match tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut probe)).await {
        Ok(Ok(0)) => Opening::Silent,
        Ok(Ok(read)) if read == probe.len() && probe == *b"PRI" => Opening::H2,
        Ok(Ok(_)) => Opening::Http1,
        Ok(Err(error)) => {
            tracing::debug!(%error, "connection failed before its first byte");
            Opening::Silent
        }
        Err(_) => {
            tracing::debug!("connection sent nothing within the header read timeout: closed");
            Opening::Silent
        }
    }
}

/// `head_since_ms` when no request head is being read.
const NO_HEAD: u64 = u64::MAX;

/// What a connection did last, shared by its socket wrapper, its service and its driver.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the last read or write that moved bytes.
    last_io_ms: AtomicU64,
    /// HTTP/1: milliseconds after `opened` of the first byte of the request head being
    /// read (bytes read with no request in flight), or [`NO_HEAD`].
    head_since_ms: AtomicU64,
    /// Whether request heads are timed (HTTP/1; h2 clients send frames between
    /// requests that are not request heads).
    times_heads: bool,
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new(opening: Opening) -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(NO_HEAD),
            times_heads: opening == Opening::Http1,
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Notes bytes moved now; returns now, in ms after `opened`.
    fn touch(&self) -> u64 {
        let millis = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_io_ms.store(millis, Ordering::Relaxed);
        millis
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    fn last_io(&self) -> Instant {
        self.at(self.last_io_ms.load(Ordering::Relaxed))
    }

    /// When the request head being read must be complete, if one is.
    fn head_deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let since = self.head_since_ms.load(Ordering::Relaxed);
        (since != NO_HEAD).then(|| self.at(since) + limits.header_read_timeout)
    }

    /// Counts a request in flight until the returned guard drops (when its response
    /// was handed to hyper). Its head is complete: hyper calls the service after it.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The socket, noting every read or write that moved bytes.
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let now = self.activity.touch();
            let activity = &self.activity;
            if activity.times_heads && activity.in_flight.load(Ordering::Relaxed) == 0 {
                // The first bytes of the next request: its head's clock starts (once).
                let _ = activity.head_since_ms.compare_exchange(
                    NO_HEAD,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        // hyper writes headers and body in one writev only if we say we can.
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How often a connection with a request in flight but nothing moving is looked at again.
const BUSY_RECHECK: Duration = Duration::from_secs(1);
/// Shortest pause between two looks, so tiny timeouts cannot make the driver spin.
const MIN_LOOK_AFTER: Duration = Duration::from_millis(10);

/// Runs `connection` to its end, closing it (`close`: hyper's graceful shutdown) when
/// idle or when `shutdown` fires; a close that does not finish in time drops the socket.
pub async fn drive<C, Err>(
    connection: C,
    close: fn(Pin<&mut C>),
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    shutdown: tokio_util::sync::CancellationToken,
    drain_timeout: Duration,
) where
    C: Future<Output = Result<(), Err>>,
    Err: std::fmt::Display,
{
    tokio::pin!(connection);
    // Set once the connection was asked to close: by when it must be gone.
    let mut closing_by: Option<Instant> = None;
    let mut next_check = next_look(&activity, &limits, Instant::now());
    loop {
        let wake_at = closing_by.unwrap_or(next_check);
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if closing_by.is_none() => {
                close(connection.as_mut());
                closing_by = Some(Instant::now() + drain_timeout);
            }
            () = tokio::time::sleep_until(wake_at) => {
                if closing_by.is_some() {
                    tracing::debug!("connection did not finish closing in time: dropped");
                    return;
                }
                let now = Instant::now();
                if activity.head_deadline(&limits).is_some_and(|deadline| now >= deadline) {
                    tracing::debug!("request head not complete within the header read timeout: dropped");
                    return;
                }
                let idle = activity.in_flight.load(Ordering::Relaxed) == 0;
                if idle && now >= activity.last_io() + limits.keep_alive_timeout {
                    tracing::debug!("connection idle for the keep-alive timeout: closing");
                    close(connection.as_mut());
                    closing_by = Some(now + limits.header_read_timeout);
                } else {
                    next_check = next_look(&activity, &limits, now);
                }
            }
        }
    }
}

/// When the driver looks at the connection next: at its keep-alive deadline (a second
/// from now while a request is in flight), its request head's deadline, and for HTTP/1
/// at least every half header timeout, since a head starts without waking the driver
/// (a head is thus cut off within 1.5 header timeouts of its first byte).
fn next_look(activity: &Activity, limits: &ConnectionLimits, now: Instant) -> Instant {
    let mut at = if activity.in_flight.load(Ordering::Relaxed) > 0 {
        now + BUSY_RECHECK
    } else {
        activity.last_io() + limits.keep_alive_timeout
    };
    if activity.times_heads {
        at = at.min(now + limits.header_read_timeout / 2);
        if let Some(deadline) = activity.head_deadline(limits) {
            at = at.min(deadline);
        }
    }
    at.max(now + MIN_LOOK_AFTER)
}
