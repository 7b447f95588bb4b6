//! Group commit for SQLite. SQLite has one writer per database, and with
//! `synchronous = FULL` every COMMIT waits for an fsync, so one transaction per request
//! would cap writes at the disk's fsync rate and queue every writer behind it. Instead
//! one writer task takes the writes queued at that moment (up to [`MAX_BATCH`]), runs
//! each inside a savepoint of one `BEGIN IMMEDIATE` transaction, commits once, and only
//! then answers each request. A write that fails rolls back to its savepoint and fails
//! alone; a write that is one statement group (a bulk import) stays all-or-nothing.
//!
//! The writer never waits for more writes to arrive: batches form on their own while the
//! previous commit is in flight (as PostgreSQL's `commit_delay = 0`), so an idle server
//! commits a lone write at once.
//!
//! The writer has a connection of its own, outside the pool: it is the only connection
//! that writes, so its page cache stays valid between batches (a pooled connection finds
//! the database changed by another and re-reads its pages), and a batch costs no pool
//! checkout. A connection left broken by a failed batch (a full disk makes SQLite roll
//! back on its own, and sqlx then believes a transaction is still open) is dropped and
//! a new one opened for the next batch.
//!
//! A write that sat in the queue past its deadline (the pool's acquire timeout) is
//! answered 503 without running, and the queue itself is bounded: a stuck write lock
//! turns into fast 503s with Retry-After, never an unbounded backlog.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection, Executor};
use tokio::sync::{mpsc, oneshot};

use crate::error::AppError;

/// Most writes committed by one transaction.
pub const MAX_BATCH: usize = 64;
/// Writes waiting for the writer at most; beyond this a write is refused at once.
const QUEUE_CAPACITY: usize = 4096;

/// A write: statements run on the writer's connection inside a transaction (a savepoint
/// of the batch's transaction on SQLite).
pub type WriteFn<T> =
    Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, AppError>> + Send>;

/// A queued write with its result type erased.
trait Pending: Send {
    /// Runs the write; on failure its own error (its savepoint is then rolled back).
    fn run<'a>(&'a mut self, conn: &'a mut AnyConnection) -> BoxFuture<'a, Result<(), AppError>>;
    /// Answers the request: the write's own error, or the batch's outcome.
    fn finish(self: Box<Self>, batch: Result<(), AppError>);
}

struct PendingWrite<T> {
    write: Option<WriteFn<T>>,
    result: Option<Result<T, AppError>>,
    reply: oneshot::Sender<Result<T, AppError>>,
}

impl<T: Send + 'static> Pending for PendingWrite<T> {
    fn run<'a>(&'a mut self, conn: &'a mut AnyConnection) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let Some(write) = self.write.take() else {
                return Ok(());
            };
            let result = write(conn).await;
            let own_error = result.as_ref().err().cloned();
            self.result = Some(result);
            own_error.map_or(Ok(()), Err)
        })
    }

    fn finish(self: Box<Self>, batch: Result<(), AppError>) {
        let answer = match (self.result, batch) {
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(batch)) => Err(batch),
            (None, Ok(())) => Err(AppError::internal(anyhow::anyhow!(
                "a queued write was never run"
            ))),
        };
        // The requester may have gone (client disconnected): the write stands anyway.
        let _ = self.reply.send(answer);
    }
}

struct Queued {
    write: Box<dyn Pending>,
    deadline: Instant,
}

/// What the writer has done, for `/api/metrics`: writes per batch is the grouping.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Batches run (each one transaction, committed or rolled back).
    pub batches: AtomicU64,
    /// Writes run inside those batches.
    pub writes: AtomicU64,
}

/// The handle requests use to reach the writer task.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Queued>,
    max_wait: Duration,
    pub stats: Arc<WriterStats>,
}

fn busy() -> AppError {
    AppError::unavailable(
        "db_busy",
        "the database is busy with other writes; retry shortly",
    )
}

impl Writer {
    /// Starts the writer task; it opens its connection with `options` and runs
    /// `pragmas` on it (again after every reconnect), and ends when the last handle is
    /// dropped.
    pub fn start(options: AnyConnectOptions, pragmas: Arc<str>, max_wait: Duration) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriterStats::default());
        let connector = Connector { options, pragmas };
        tokio::spawn(run_writer(connector, receiver, stats.clone()));
        Self {
            queue,
            max_wait,
            stats,
        }
    }

    /// Queues `write` and waits until its batch has committed (or failed).
    pub async fn write<T: Send + 'static>(&self, write: WriteFn<T>) -> Result<T, AppError> {
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            write: Box::new(PendingWrite {
                write: Some(write),
                result: None,
                reply,
            }),
            deadline: Instant::now() + self.max_wait,
        };
        self.queue.try_send(queued).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => busy(),
            mpsc::error::TrySendError::Closed(_) => {
                AppError::unavailable("shutting_down", "the server is shutting down")
            }
        })?;
        // A dropped reply means the writer skipped the write (its deadline passed).
        answer.await.unwrap_or_else(|_| Err(busy()))
    }
}

/// Opens the writer's connection.
struct Connector {
    options: AnyConnectOptions,
    pragmas: Arc<str>,
}

impl Connector {
    async fn connect(&self) -> Result<AnyConnection, AppError> {
        let mut conn = self.options.connect().await?;
        conn.execute(&*self.pragmas).await?;
        Ok(conn)
    }
}

async fn run_writer(
    connector: Connector,
    mut receiver: mpsc::Receiver<Queued>,
    stats: Arc<WriterStats>,
) {
    let mut connection: Option<AnyConnection> = None;
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let now = Instant::now();
        // Expired writes are dropped unrun: their requesters get a 503.
        batch.retain(|queued| queued.deadline > now);
        if batch.is_empty() {
            continue;
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let conn = match connection.take() {
            Some(conn) => conn,
            None => match connector.connect().await {
                Ok(conn) => conn,
                Err(error) => {
                    for queued in batch {
                        queued.write.finish(Err(error.clone()));
                    }
                    continue;
                }
            },
        };
        // A task per batch: a panic in one write ends its batch (rolled back with the
        // connection, which is dropped; every requester answered 503 by the dropped
        // replies), never the writer.
        match tokio::spawn(commit_batch(conn, batch)).await {
            Ok(conn) => connection = conn,
            Err(error) => tracing::error!(%error, "a write batch panicked; it was rolled back"),
        }
    }
}

/// A batch slower than this is logged: writers queue behind it.
const SLOW_BATCH: Duration = Duration::from_millis(500);

/// Runs one batch in one transaction and answers every write in it. Gives the
/// connection back unless the batch left it unusable.
async fn commit_batch(mut conn: AnyConnection, mut batch: Vec<Queued>) -> Option<AnyConnection> {
    let started = Instant::now();
    let outcome = run_batch(&mut conn, &mut batch).await;
    let took = started.elapsed();
    if took > SLOW_BATCH {
        tracing::warn!(
            writes = batch.len(),
            took_ms = took.as_millis() as u64,
            ok = outcome.is_ok(),
            "slow write batch: later writes waited behind it"
        );
    }
    let failed = outcome.is_err();
    for queued in batch {
        queued.write.finish(outcome.clone());
    }
    if failed {
        // The ping runs a dropped transaction's pending rollback first.
        if conn.ping().await.is_err() || conn.is_in_transaction() {
            return None;
        }
    }
    Some(conn)
}

async fn run_batch(conn: &mut AnyConnection, batch: &mut [Queued]) -> Result<(), AppError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    if let [alone] = batch {
        // A batch of one needs no savepoint: if it fails, the whole transaction is its
        // own (rolled back when `tx` drops). Two statements fewer per write when the
        // server is not busy enough to group.
        alone.write.run(&mut tx).await?;
        tx.commit().await?;
        return Ok(());
    }
    for queued in batch.iter_mut() {
        tx.execute("SAVEPOINT write").await?;
        match queued.write.run(&mut tx).await {
            Ok(()) => {
                tx.execute("RELEASE write").await?;
            }
            Err(own) => {
                // Some errors (a full disk, an I/O error) make SQLite roll the whole
                // transaction back: then nothing in this batch was written, and the
                // batch fails with the error that caused it.
                let rolled_back = async {
                    tx.execute("ROLLBACK TO write").await?;
                    tx.execute("RELEASE write").await
                };
                rolled_back.await.map_err(|_| own)?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}
