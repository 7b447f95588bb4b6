//! A TCP proxy with toxics: accepts on its listen address, connects each client to the
//! upstream, and runs the two directions of every connection through [`crate::link`].
//!
//! ```text
//! client ──▶ listen ─┬─ upstream link:   client → toxics → server
//!                    └─ downstream link: server → toxics → client
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::link::{self, Shared};
use crate::toxic::{Stream, Toxic, ToxicError};
use crate::toxic_set::{ProxyCounters, ToxicSet};

/// How long a client waits for the upstream connection before it is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("toxic `{0}` already exists")]
    ToxicExists(String),
    #[error("toxic `{0}` not found")]
    ToxicNotFound(String),
    #[error(transparent)]
    InvalidToxic(#[from] ToxicError),
}

/// The open connections of a proxy: each one's task and what its two directions share.
type Connections = Arc<std::sync::Mutex<Vec<(JoinHandle<()>, Arc<Shared>)>>>;

/// A running proxy. Dropping it stops accepting and ends its connections.
pub struct Proxy {
    pub name: String,
    pub upstream: String,
    listen: SocketAddr,
    toxics: Arc<ToxicSet>,
    counters: Arc<ProxyCounters>,
    enabled: Arc<AtomicBool>,
    accept: JoinHandle<()>,
    connections: Connections,
}

impl Proxy {
    /// Starts listening on `listen` (e.g. `127.0.0.1:0`) and forwarding to `upstream`.
    pub async fn start(name: &str, listen: &str, upstream: &str) -> Result<Self, ProxyError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProxyError::Listen {
                addr: listen.to_owned(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Listen {
            addr: listen.to_owned(),
            source,
        })?;
        let toxics = Arc::new(ToxicSet::default());
        let counters = Arc::new(ProxyCounters::default());
        let enabled = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream.to_owned(),
            toxics.clone(),
            counters.clone(),
            enabled.clone(),
            connections.clone(),
        ));
        Ok(Self {
            name: name.to_owned(),
            upstream: upstream.to_owned(),
            listen: addr,
            toxics,
            counters,
            enabled,
            accept,
            connections,
        })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn toxics(&self) -> Vec<Toxic> {
        self.toxics.snapshot().to_vec()
    }

    /// Bytes and connections so far, for `/metrics`.
    pub fn counters(&self) -> &ProxyCounters {
        &self.counters
    }

    pub fn add_toxic(&self, toxic: Toxic) -> Result<(), ProxyError> {
        let toxic = toxic.normalized();
        toxic.validate()?;
        self.toxics.update(|toxics| {
            if toxics.iter().any(|t| t.name == toxic.name) {
                return Err(ProxyError::ToxicExists(toxic.name));
            }
            toxics.push(toxic);
            Ok(())
        })
    }

    pub fn remove_toxic(&self, name: &str) -> Result<(), ProxyError> {
        self.toxics.update(|toxics| {
            let before = toxics.len();
            toxics.retain(|t| t.name != name);
            if toxics.len() == before {
                Err(ProxyError::ToxicNotFound(name.to_owned()))
            } else {
                Ok(())
            }
        })
    }

    /// Replaces the toxic of the same name in place (keeping its position in the chain).
    pub fn replace_toxic(&self, toxic: Toxic) -> Result<(), ProxyError> {
        let toxic = toxic.normalized();
        toxic.validate()?;
        self.toxics.update(|toxics| {
            let slot = toxics
                .iter_mut()
                .find(|t| t.name == toxic.name)
                .ok_or_else(|| ProxyError::ToxicNotFound(toxic.name.clone()))?;
            *slot = toxic;
            Ok(())
        })
    }

    /// Removes every toxic (the proxy keeps running).
    pub fn clear_toxics(&self) {
        self.toxics.update(Vec::clear);
    }

    /// A disabled proxy refuses new connections and ends the open ones.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
        if !enabled {
            self.close_connections();
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    fn close_connections(&self) {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, shared) in connections.drain(..) {
            shared.kill();
        }
    }
}

impl Proxy {
    /// Stops the proxy and waits until its listener is closed, so its port can be
    /// bound again right away (dropping only asks the accept task to stop).
    pub async fn stop(mut self) {
        self.accept.abort();
        self.close_connections();
        // `Drop` owns the fields; swap the handle out to await it.
        let accept = std::mem::replace(&mut self.accept, tokio::spawn(async {}));
        let _ = accept.await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.close_connections();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    toxics: Arc<ToxicSet>,
    counters: Arc<ProxyCounters>,
    enabled: Arc<AtomicBool>,
    connections: Connections,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if !enabled.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let shared = Arc::new(Shared::new(toxics.clone(), counters.clone()));
        let task = tokio::spawn(proxy_connection(client, upstream.clone(), shared.clone()));
        let mut open = connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.retain(|(task, _)| !task.is_finished());
        open.push((task, shared));
    }
}

async fn proxy_connection(client: TcpStream, upstream: String, shared: Arc<Shared>) {
    let _open = shared.counters.open_connection();
    let server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&upstream)).await {
        Ok(Ok(server)) => server,
        Ok(Err(error)) => {
            tracing::warn!(%upstream, %error, "upstream refused the connection");
            return;
        }
        Err(_) => {
            tracing::warn!(%upstream, "upstream connection timed out");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = link::run(client_read, server_write, Stream::Upstream, shared.clone());
    let down = link::run(server_read, client_write, Stream::Downstream, shared);
    tokio::join!(up, down);
}
