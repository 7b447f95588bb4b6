//! The accept loop: hyper-util's auto (HTTP/1.1 + h2c) connection builder, because
//! `axum::serve` has no header-read timeout (slowloris), no connection cap and an
//! unbounded graceful drain. Each connection's own timeouts are in [`crate::connection`].
//!
//! ```text
//! shutdown signal ─▶ stop accepting ─▶ ask every connection to finish its request
//!                                     ─▶ wait up to `drain_timeout` ─▶ return
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceExt};

use crate::connection::{self, Activity, ConnectionLimits, Opening, PeerAddr, Tracked};

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub drain_timeout: Duration,
}

/// What the drain achieved, for the shutdown log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every connection finished its in-flight request.
    Complete,
    /// The drain timeout passed with connections still open; they were dropped.
    TimedOut,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Drain
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Request heads are timed by `connection::drive` (hyper's timer also closed
        // idle keep-alive connections, and cost a timer per request).
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let limits = ConnectionLimits {
        header_read_timeout: options.header_read_timeout,
        keep_alive_timeout: options.keep_alive_timeout,
    };
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let connection_slots = Arc::new(Semaphore::new(options.max_connections));
    tokio::pin!(shutdown);

    loop {
        // Waiting for a slot before accepting leaves excess connections in the kernel
        // backlog instead of accepting sockets we cannot serve.
        let slot = tokio::select! {
            slot = connection_slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small JSON responses: send them now rather than wait for Nagle.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let closing = closing.clone();
        let drain_timeout = options.drain_timeout;
        connections.spawn(async move {
            let _slot = slot;
            let opening = connection::first_bytes(&stream, &limits).await;
            if opening == Opening::Silent {
                return;
            }
            let activity = Activity::new(opening);
            let counted = activity.clone();
            // hyper hands us its own body type; the app takes axum's, and the peer.
            let app = app.map_request(move |request: Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(PeerAddr(peer));
                request
            });
            // The guard lives as long as the request's future: until hyper has the response.
            let app = app.map_future(move |response| {
                let in_flight = counted.request();
                async move {
                    let response = response.await;
                    drop(in_flight);
                    response
                }
            });
            let io = TokioIo::new(Tracked::new(stream, activity.clone()));
            let connection =
                builder.serve_connection_with_upgrades(io, TowerToHyperService::new(app));
            connection::drive(
                connection,
                |connection| connection.graceful_shutdown(),
                activity,
                limits,
                closing,
                drain_timeout,
            )
            .await;
        });
    }

    drop(listener);
    closing.cancel();
    connections.close();
    tokio::select! {
        () = connections.wait() => Drain::Complete,
        () = tokio::time::sleep(options.drain_timeout) => Drain::TimedOut,
    }
}
