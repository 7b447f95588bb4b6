//! One direction of one proxied connection: read a chunk, pass it through the toxics
//! active for this direction (in order), write it on.
//!
//! ```text
//! socket ─read─▶ chunk{bytes, received_at} ─▶ toxic ─▶ toxic ─▶ … ─write─▶ socket
//! ```
//!
//! The toxic list is read per chunk, so toxics added or removed while a connection is
//! open apply from its next chunk, as in Toxiproxy. Whether a toxic applies to this
//! connection at all is rolled once per connection against its `toxicity`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use crate::toxic::{Stream, Toxic, ToxicKind};

/// Chunk size read at once (Toxiproxy reads 32 KiB too).
const CHUNK: usize = 32 * 1024;

/// How a direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The reading side closed: pass the close on.
    Eof,
    /// A toxic (or the other direction) closed the connection.
    Close,
    /// A toxic reset the connection.
    Reset,
}

/// What the two directions of a connection share.
pub struct Shared {
    pub toxics: Arc<RwLock<Vec<Toxic>>>,
    /// Per toxic name: does this connection get it (rolled against toxicity once).
    rolls: Mutex<HashMap<String, bool>>,
    /// Set when one direction closes or resets the whole connection.
    kill: watch::Sender<bool>,
}

impl Shared {
    pub fn new(toxics: Arc<RwLock<Vec<Toxic>>>) -> Self {
        Self {
            toxics,
            rolls: Mutex::new(HashMap::new()),
            kill: watch::Sender::new(false),
        }
    }

    /// Ends both directions of the connection.
    pub fn kill(&self) {
        self.kill.send_replace(true);
    }

    /// The toxics of `stream` this connection gets, in order.
    fn active(&self, stream: Stream) -> Vec<Toxic> {
        let toxics = match self.toxics.read() {
            // The common case, a proxy with no faults, takes no lock but this read one.
            Ok(toxics) if toxics.is_empty() => return Vec::new(),
            Ok(toxics) => toxics.clone(),
            Err(_) => return Vec::new(),
        };
        let mut rolls = self
            .rolls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        toxics
            .into_iter()
            .filter(|toxic| toxic.stream == stream)
            .filter(|toxic| {
                *rolls
                    .entry(toxic.name.clone())
                    .or_insert_with(|| rand::rng().random::<f32>() < toxic.toxicity)
            })
            .collect()
    }
}

fn jittered(base: u64, jitter: u64) -> Duration {
    let offset = if jitter == 0 {
        0
    } else {
        rand::rng().random_range(0..=2 * jitter) as i64 - jitter as i64
    };
    Duration::from_millis(base.saturating_add_signed(offset))
}

/// Moves bytes from `from` to `to` through the toxics until one side ends.
pub async fn run(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    stream: Stream,
    shared: Arc<Shared>,
) -> End {
    let mut killed = shared.kill.subscribe();
    let mut buffer = vec![0u8; CHUNK];
    let mut passed: u64 = 0;
    // Set while a timeout toxic holds the connection: when it closes it (None = never).
    let mut held_until: Option<Option<Instant>> = None;
    loop {
        let hold = async {
            match held_until {
                Some(Some(deadline)) => tokio::time::sleep_until(deadline.into()).await,
                _ => std::future::pending::<()>().await,
            }
        };
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = killed.wait_for(|killed| *killed) => return End::Close,
            () = hold => {
                shared.kill();
                return End::Close;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => {
                for toxic in shared.active(stream) {
                    if let ToxicKind::SlowClose { delay } = toxic.kind {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                }
                let _ = to.shutdown().await;
                return End::Eof;
            }
            Ok(n) => n,
        };
        let received = Instant::now();
        let mut data = &buffer[..n];
        let mut slices: Option<(usize, usize, u64)> = None;
        let mut close_after = false;
        let mut timeout_active = false;
        for toxic in shared.active(stream) {
            match toxic.kind {
                ToxicKind::Latency { latency, jitter } => {
                    tokio::time::sleep_until((received + jittered(latency, jitter)).into()).await;
                }
                ToxicKind::Bandwidth { rate } if rate > 0 => {
                    tokio::time::sleep(Duration::from_secs_f64(
                        data.len() as f64 / (rate as f64 * 1000.0),
                    ))
                    .await;
                }
                ToxicKind::Timeout { timeout } => {
                    timeout_active = true;
                    if held_until.is_none() {
                        held_until =
                            Some((timeout > 0).then(|| received + Duration::from_millis(timeout)));
                    }
                }
                ToxicKind::ResetPeer { timeout } => {
                    tokio::time::sleep(Duration::from_millis(timeout)).await;
                    // SO_LINGER 0: closing sends RST instead of FIN. `forget` keeps the
                    // write half from sending a FIN first when it is dropped; the socket
                    // closes (with the RST) once the other direction lets go of it.
                    let _ = to.as_ref().set_zero_linger();
                    to.forget();
                    shared.kill();
                    return End::Reset;
                }
                ToxicKind::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => {
                    slices = Some((average_size, size_variation, delay));
                }
                ToxicKind::LimitData { bytes } => {
                    let allowed = bytes.saturating_sub(passed);
                    if (data.len() as u64) >= allowed {
                        data = &data[..allowed as usize];
                        close_after = true;
                    }
                }
                ToxicKind::Bandwidth { .. } | ToxicKind::SlowClose { .. } => {}
            }
        }
        if timeout_active {
            // Held: the data is dropped, as Toxiproxy's timeout does.
            continue;
        }
        held_until = None;
        let written = match slices {
            Some((average, variation, delay)) => {
                write_sliced(&mut to, data, average, variation, delay).await
            }
            None => to.write_all(data).await,
        };
        if written.is_err() {
            shared.kill();
            return End::Close;
        }
        passed += data.len() as u64;
        if close_after {
            shared.kill();
            return End::Close;
        }
    }
}

async fn write_sliced(
    to: &mut OwnedWriteHalf,
    mut data: &[u8],
    average: usize,
    variation: usize,
    delay_us: u64,
) -> std::io::Result<()> {
    while !data.is_empty() {
        let size = if variation == 0 {
            average
        } else {
            rand::rng().random_range(average.saturating_sub(variation)..=average + variation)
        }
        .clamp(1, data.len());
        to.write_all(&data[..size]).await?;
        to.flush().await?;
        data = &data[size..];
        if !data.is_empty() && delay_us > 0 {
            tokio::time::sleep(Duration::from_micros(delay_us)).await;
        }
    }
    Ok(())
}
