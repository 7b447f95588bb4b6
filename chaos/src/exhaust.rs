//! Connection exhaustion: starving the server of database connections or of sockets,
//! the way a stuck writer, a connection hog or a slowloris client would.
//!
//! Every fault here has a lease: it is given how long to last and undoes itself at the
//! end (the held transaction rolls back, the sockets close), even if nobody calls
//! [`Lease::release`]. Dropping the handle ends it early.

use std::net::SocketAddr;
use std::time::Duration;

use aimate_reports::redact::{redact_url, scrub};
use sqlx::{Connection, Executor};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum ExhaustError {
    /// `target` and `detail` are redacted: no password reaches a log, an error or a record.
    #[error("cannot open the database `{target}`: {detail}")]
    Database { target: String, detail: String },
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running fault: ends at its lease or when released or dropped.
pub struct Lease {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Lease {
    fn spawn(lease: Duration, hold: impl Future<Output = ()> + Send + 'static) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            tokio::select! {
                () = hold => {}
                () = tokio::time::sleep(lease) => {}
                _ = stopped => {}
            }
        });
        Self {
            stop: Some(stop),
            task,
        }
    }

    /// Ends the fault now and waits until it is undone.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    pub fn is_over(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Takes SQLite's single write lock (`BEGIN IMMEDIATE`) on the file at `path` and holds
/// it for `lease`: every writer of the server queues behind it on its busy timeout, its
/// pool runs dry, and readers keep working (WAL).
pub async fn hold_sqlite_writer(
    path: &std::path::Path,
    lease: Duration,
) -> Result<Lease, ExhaustError> {
    let target = path.display().to_string();
    let database_error = |source: sqlx::Error| ExhaustError::Database {
        target: target.clone(),
        detail: source.to_string(),
    };
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{target}"))
        .await
        .map_err(database_error)?;
    conn.execute("BEGIN IMMEDIATE")
        .await
        .map_err(database_error)?;
    // The connection moves into the lease: when the lease ends it is dropped, and
    // SQLite rolls the open transaction back, releasing the lock.
    Ok(Lease::spawn(lease, async move {
        let _conn = conn;
        std::future::pending::<()>().await;
    }))
}

/// Opens `count` sessions to the PostgreSQL at `url` and keeps them open for `lease`,
/// so the server cannot open new connections once `max_connections` is reached.
/// Returns the lease and how many sessions it got (the server's refusal stops it early).
pub async fn hold_postgres_sessions(
    url: &str,
    count: usize,
    lease: Duration,
) -> Result<(Lease, usize), ExhaustError> {
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count {
        match sqlx::PgConnection::connect(url).await {
            Ok(session) => sessions.push(session),
            Err(source) if sessions.is_empty() => {
                return Err(ExhaustError::Database {
                    target: redact_url(url),
                    detail: scrub(&source.to_string(), url),
                });
            }
            // The server refused more: that is the exhaustion we wanted.
            Err(_) => break,
        }
    }
    let held = sessions.len();
    Ok((
        Lease::spawn(lease, async move {
            let _sessions = sessions;
            std::future::pending::<()>().await;
        }),
        held,
    ))
}

/// Opens `count` connections to `addr` that send a request line and then one header
/// byte every `trickle` (slowloris), for `lease`.
pub async fn slowloris(
    addr: SocketAddr,
    count: usize,
    trickle: Duration,
    lease: Duration,
) -> Result<Lease, ExhaustError> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| ExhaustError::Connect { addr, source })?;
        let _ = socket
            .write_all(b"GET /health HTTP/1.1\r\nHost: aimate\r\n")
            .await;
        sockets.push(socket);
    }
    Ok(Lease::spawn(lease, async move {
        loop {
            tokio::time::sleep(trickle).await;
            for socket in &mut sockets {
                // A server that cut us off is the defence working; keep the others.
                let _ = socket.write_all(b"X").await;
            }
        }
    }))
}
