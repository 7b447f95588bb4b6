//! The live view's HTTP side: the page and its scripts (all served from the binary: no
//! network needed), the event stream, and the reports of finished parts.
//!
//! Safe by default: it binds to loopback unless told otherwise, and then only answers
//! requests that name a loopback host (a web page elsewhere cannot reach it through DNS
//! rebinding). Bound beyond loopback, every request for the page, the stream or a report
//! must carry the token printed at start. Everything is read-only (`GET` only). It runs on
//! a thread and runtime of its own, so serving pages never takes a generator thread.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::{Stream, StreamExt, stream};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_stream::wrappers::BroadcastStream;

use crate::assets;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;

use crate::hub::{CHANNEL_CAPACITY, Hub, Subscription};

/// Pages that may watch at once; more get 503 (each costs a task and a channel reader).
pub const MAX_PAGES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("--live {addr}: cannot listen: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--live: cannot start the live view's thread: {0}")]
    Thread(std::io::Error),
}

#[derive(Clone)]
struct App {
    hub: Arc<Hub>,
    /// Required on every request but the scripts' when bound beyond loopback.
    token: Option<Arc<str>>,
    loopback: bool,
    closing: watch::Receiver<bool>,
}

/// The running live view; [`LiveServer::close`] ends every stream and stops it.
pub struct LiveServer {
    pub hub: Arc<Hub>,
    addr: SocketAddr,
    token: Option<String>,
    closing: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveServer {
    /// Binds `addr` now (so a taken port is a clear error before the run) and serves
    /// `hub` on a thread of its own.
    pub fn start(addr: SocketAddr, hub: Arc<Hub>) -> Result<Self, LiveError> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| LiveError::Listen { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| LiveError::Listen { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| LiveError::Listen { addr, source })?;
        let loopback = addr.ip().is_loopback();
        let token = (!loopback).then(new_token);
        let (closing, closed) = watch::channel(false);
        let app = App {
            hub: hub.clone(),
            token: token.as_deref().map(Arc::from),
            loopback,
            closing: closed.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("aimate-live".into())
            .spawn(move || serve(listener, app, closed))
            .map_err(LiveError::Thread)?;
        Ok(Self {
            hub,
            addr,
            token,
            closing,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's address, with the token when one is needed.
    pub fn url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() {
            "HOST".to_owned()
        } else {
            self.addr.ip().to_string()
        };
        let host = if self.addr.is_ipv6() && !self.addr.ip().is_unspecified() {
            format!("[{host}]")
        } else {
            host
        };
        match &self.token {
            Some(token) => format!("http://{host}:{}/?token={token}", self.addr.port()),
            None => format!("http://{host}:{}/", self.addr.port()),
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Ends every page's stream (after the frames already published) and stops serving.
    pub fn close(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        let _ = self.closing.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.shut();
    }
}

/// 32 random bytes, hex.
fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Longest the server waits for pages to take their last frames once the run is over.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

fn serve(listener: std::net::TcpListener, app: App, closed: watch::Receiver<bool>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        let connections = accept(listener, app, closed.clone());
        // Streams end themselves once the run is over; a page that stopped reading
        // cannot hold the run's exit: it gets the grace, then is cut.
        let mut deadline = closed;
        let grace = async move {
            let _ = deadline.wait_for(|closing| *closing).await;
            tokio::time::sleep(CLOSE_GRACE).await;
        };
        tokio::select! {
            () = connections => {}
            () = grace => {}
        }
    });
    runtime.shutdown_timeout(Duration::ZERO);
}

/// How far one connection's event stream has got.
#[derive(Default)]
struct Reading {
    streaming: AtomicBool,
    /// The first frame id the stream takes from the channel (after its snapshot).
    from: AtomicU64,
    /// The id of the last frame written to the connection.
    sent: AtomicU64,
}

impl Reading {
    /// Frames published since the stream began that it has not written yet.
    fn behind(&self, next_id: u64) -> u64 {
        if !self.streaming.load(Ordering::Relaxed) {
            return 0;
        }
        let written = self.sent.load(Ordering::Relaxed).saturating_add(1);
        next_id.saturating_sub(written.max(self.from.load(Ordering::Relaxed)))
    }
}

/// How often each connection checks that its page keeps up.
const STALL_CHECK: Duration = Duration::from_millis(500);

/// Accepts pages until the view closes; each connection is served on its own task and
/// cut when its page falls further behind than the channel holds (a page that stopped
/// reading: its writes block, so its stream never gets to learn it lagged).
async fn accept(listener: tokio::net::TcpListener, app: App, mut closed: watch::Receiver<bool>) {
    let router = router(app.clone());
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors, say: try again shortly, not in a spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = closed.wait_for(|closing| *closing) => break,
        };
        let reading = Arc::new(Reading::default());
        let service = TowerToHyperService::new(router.clone().layer(Extension(reading.clone())));
        let hub = app.hub.clone();
        tasks.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service);
            let stalled = async {
                loop {
                    tokio::time::sleep(STALL_CHECK).await;
                    if reading.behind(hub.next_id()) > CHANNEL_CAPACITY as u64 {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = connection => {}
                () = stalled => {}
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    // Open streams end on their own after the run's last frame.
    while tasks.join_next().await.is_some() {}
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/assets/{name}", get(asset))
        .route("/events", get(events))
        .route("/report/{part}/", get(report_index))
        .route("/report/{part}/{file}", get(report_file))
        .with_state(app)
}

#[derive(Deserialize)]
struct Access {
    token: Option<String>,
}

/// Why a request is refused, if it is: a host that is not loopback's on a loopback
/// server, a missing or wrong token on any other.
fn refused(app: &App, headers: &HeaderMap, access: &Access) -> Option<Response> {
    if app.loopback && !names_loopback(headers.get(header::HOST)) {
        return Some(problem(
            StatusCode::FORBIDDEN,
            "the live view answers only requests for a loopback host (localhost, 127.0.0.1, [::1])",
        ));
    }
    if let Some(expected) = &app.token {
        let given = access.token.as_deref().unwrap_or("");
        if !same(given.as_bytes(), expected.as_bytes()) {
            return Some(problem(
                StatusCode::UNAUTHORIZED,
                "the live view needs the token printed when the run started: open the URL with ?token=…",
            ));
        }
    }
    None
}

/// Compares in time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn names_loopback(host: Option<&HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn problem(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Headers every answer of ours carries: nothing cached, nothing sniffed, not framed.
fn hardened(mut response: Response, csp: bool) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if csp {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
            ),
        );
    }
    response
}

async fn page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(access): Query<Access>,
) -> Response {
    if let Some(refusal) = refused(&app, &headers, &access) {
        return refusal;
    }
    let response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        assets::INDEX_HTML,
    )
        .into_response();
    hardened(response, true)
}

/// The scripts and styles: the same for everyone, no run data, so no token.
async fn asset(Path(name): Path<String>) -> Response {
    match assets::named(&name) {
        Some((content_type, body)) => hardened(
            ([(header::CONTENT_TYPE, content_type)], body).into_response(),
            true,
        ),
        None => problem(StatusCode::NOT_FOUND, "no such asset"),
    }
}

async fn events(
    State(app): State<App>,
    Extension(reading): Extension<Arc<Reading>>,
    headers: HeaderMap,
    Query(access): Query<Access>,
) -> Response {
    if let Some(refusal) = refused(&app, &headers, &access) {
        return refusal;
    }
    if app.hub.clients() >= MAX_PAGES {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many pages are watching this run; close one",
        );
    }
    let stream = frames(&app.hub, app.closing.clone(), reading);
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)));
    hardened(sse.into_response(), false)
}

/// The stored frames, then the new ones until the run closes the view or this page
/// falls behind (then the stream ends and the browser reconnects from the store).
fn frames(
    hub: &Hub,
    mut closing: watch::Receiver<bool>,
    reading: Arc<Reading>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + use<> {
    let Subscription {
        snapshot,
        receiver,
        from,
    } = hub.subscribe();
    reading.from.store(from, Ordering::Relaxed);
    reading.streaming.store(true, Ordering::Relaxed);
    let live = BroadcastStream::new(receiver)
        .take_while(|frame| std::future::ready(frame.is_ok()))
        .filter_map(|frame| std::future::ready(frame.ok()));
    let closed = async move {
        let _ = closing.wait_for(|closing| *closing).await;
    };
    // The stream ends after the run's last frame (or, failing that, when the view
    // closes); the page then knows the run is over and stops reconnecting.
    let frames = stream::iter(snapshot).chain(live.take_until(closed));
    let frames = stream::unfold((Box::pin(frames), false), |(mut frames, over)| async move {
        if over {
            return None;
        }
        let frame = frames.next().await?;
        let last = frame.last;
        Some((frame, (frames, last)))
    });
    // Reconnect after a second when the stream breaks while the run goes on.
    let hello = SseEvent::default()
        .retry(Duration::from_secs(1))
        .comment("aimate live");
    stream::once(std::future::ready(hello))
        .chain(frames.map(move |frame| {
            reading.sent.store(frame.id, Ordering::Relaxed);
            SseEvent::default()
                .id(frame.id.to_string())
                .event(frame.event)
                .data(frame.data.as_str())
        }))
        .map(Ok)
}

async fn report_index(
    state: State<App>,
    headers: HeaderMap,
    Path(part): Path<usize>,
    access: Query<Access>,
) -> Response {
    report_file(
        state,
        headers,
        Path((part, "index.html".to_owned())),
        access,
    )
    .await
}

/// A finished part's report file: a plain name in that part's report directory only.
async fn report_file(
    State(app): State<App>,
    headers: HeaderMap,
    Path((part, file)): Path<(usize, String)>,
    Query(access): Query<Access>,
) -> Response {
    if let Some(refusal) = refused(&app, &headers, &access) {
        return refusal;
    }
    let plain = !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    let Some(dir) = app.hub.report_dir(part).filter(|_| plain) else {
        return problem(StatusCode::NOT_FOUND, "no such report (yet)");
    };
    let path: PathBuf = dir.join(&file);
    match tokio::fs::read(&path).await {
        Ok(body) => {
            let content_type = match path.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("json") => "application/json",
                Some("xml") => "application/xml",
                Some("md") => "text/markdown; charset=utf-8",
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                _ => "application/octet-stream",
            };
            // The report is our own page; it runs without the live page's policy.
            hardened(
                ([(header::CONTENT_TYPE, content_type)], body).into_response(),
                false,
            )
        }
        Err(_) => problem(StatusCode::NOT_FOUND, "no such report file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_loopback() {
        let ok = |h: &str| {
            names_loopback(Some(
                &HeaderValue::from_str(h).unwrap_or(HeaderValue::from_static("")),
            ))
        };
        for host in [
            "localhost:5665",
            "127.0.0.1:5665",
            "127.9.9.9",
            "[::1]:5665",
            "LOCALHOST",
        ] {
            assert!(ok(host), "{host}");
        }
        for host in [
            "evil.example:5665",
            "10.0.0.1:5665",
            "localhost.evil.example",
            "[::2]:80",
            "",
        ] {
            assert!(!ok(host), "{host}");
        }
        assert!(!names_loopback(None));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd") && !same(b"ab", b"abc") && !same(b"", b"a"));
        let token = new_token();
        assert_eq!(token.len(), 64);
        assert_ne!(token, new_token());
    }
}
