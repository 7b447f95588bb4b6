//! Running the server as a process: open the database, bind, serve until SIGTERM or
//! SIGINT, then shut down in order.
//!
//! ```text
//! signal ─▶ readiness 503 ─▶ (shutdown_delay) ─▶ close listener ─▶ drain in-flight
//!        ─▶ close pool ─▶ return (the caller drops the log guard: logs flush)
//! ```

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::db::{Db, DbError, PoolSettings, redact_url};
use crate::serve::{Drain, ServeOptions, serve};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the server task failed: {0}")]
    Task(String),
}

/// Opens the configured database (PostgreSQL by URL, else SQLite in `data_dir`) and
/// migrates it.
pub async fn open_database(config: &ServerConfig) -> Result<Db, DbError> {
    let settings = PoolSettings {
        min_connections: config.db_pool_min.min(config.db_pool_max),
        max_connections: config.db_pool_max.max(1),
        acquire_timeout: config.db_acquire_timeout,
        sqlite_synchronous: config.sqlite_synchronous,
    };
    match &config.database_url {
        Some(url) => Db::connect(url, &settings).await,
        None => Db::connect_data_dir(&config.data_dir, &settings).await,
    }
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(config: ServerConfig) -> Result<(), RunError> {
    run_until(config, shutdown_signal(), |_| {}).await
}

/// Runs until `shutdown` resolves. `on_listening` gets the bound address (useful with
/// port 0).
pub async fn run_until(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), RunError> {
    let db = open_database(&config).await?;
    let database = match &config.database_url {
        Some(url) => redact_url(url),
        None => config.data_dir.join("aimate.db").display().to_string(),
    };
    let bind = config.listen_addr();
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|source| RunError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| RunError::Bind { addr: bind, source })?;
    let options = ServeOptions {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
        keep_alive_timeout: config.keep_alive_timeout,
        drain_timeout: config.drain_timeout,
    };
    let shutdown_delay = config.shutdown_delay;
    let state = AppState::new(db.clone(), config)?;
    let lifecycle = state.lifecycle.clone();
    let router = crate::app(state);
    let synchronous = db.synchronous.map_or("n/a", crate::db::Synchronous::as_str);
    tracing::info!(%addr, backend = db.backend.name(), %database, synchronous, "listening");
    on_listening(addr);

    let stop_accepting = async move {
        shutdown.await;
        tracing::info!("shutdown requested: readiness now answers 503");
        lifecycle.start_draining();
        tokio::time::sleep(shutdown_delay).await;
    };
    let drain = serve(listener, router, options, stop_accepting).await;
    if drain == Drain::TimedOut {
        tracing::warn!("drain timeout reached; remaining connections were closed");
    }
    db.pool.close().await;
    tracing::info!(drained = (drain == Drain::Complete), "shutdown complete");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// A server running in the background of the current runtime (for embedding and tests).
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

impl Running {
    /// Asks for a graceful shutdown and waits for it.
    pub async fn stop(mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(error) => Err(RunError::Task(error.to_string())),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the server as a task and returns once it listens (use port 0 for a free one).
pub async fn spawn(config: ServerConfig) -> Result<Running, RunError> {
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_until(
        config,
        async {
            let _ = stopped.await;
        },
        |addr| {
            let _ = addr_tx.send(addr);
        },
    ));
    match addr_rx.await {
        Ok(addr) => Ok(Running {
            addr,
            stop: Some(stop),
            task,
        }),
        // The server failed before listening: report why.
        Err(_) => match task.await {
            Ok(Err(error)) => Err(error),
            Ok(Ok(())) => Err(RunError::Task("the server stopped before listening".into())),
            Err(error) => Err(RunError::Task(error.to_string())),
        },
    }
}
