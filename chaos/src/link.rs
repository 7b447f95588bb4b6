//! One direction of one proxied connection, as a pipeline, like Toxiproxy's chain of
//! toxic stages:
//!
//! ```text
//! socket ─read─▶ chunk{bytes, arrived} ─▶ queue ─▶ toxics ─write─▶ socket
//!        (reading goes on while a chunk is in the toxics; they time it from `arrived`)
//! ```
//!
//! Each chunk is stamped as it arrives, so a response written in many pieces is not
//! slowed once per piece: a latency toxic holds each chunk until `arrived + latency`,
//! and chunks that arrived while an earlier one was held are due (almost) at once after
//! it. The queue is bounded ([`QUEUED_BYTES`]): when the toxics fall behind (a
//! bandwidth cap), reading stops and TCP pushes back on the sender, as on a slow network.
//!
//! The toxic list is read per chunk, so a toxic added while a connection is open applies
//! from its next chunk; a wait in a toxic ends as soon as the toxic is removed. Whether a
//! toxic applies to this connection at all is rolled once per connection against its
//! `toxicity`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use crate::http::{Action, HttpExchange, Out};
use crate::toxic::{Stream, Toxic, ToxicKind};
use crate::toxic_set::{ProxyCounters, ToxicSet};

/// Chunk size read at once (Toxiproxy reads 32 KiB too).
const CHUNK: usize = 32 * 1024;
/// Bytes queued while the toxics hold earlier ones, per direction: past this, reading
/// stops (back-pressure). A 1 MB response under a latency toxic fits, however the
/// sender cut it, so it pays the latency once.
const QUEUED_BYTES: usize = 4 * 1024 * 1024;
/// How late a bandwidth toxic's timer may wake before the lost time counts as idle.
const PACE_SLACK: Duration = Duration::from_millis(20);

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
    pub toxics: Arc<ToxicSet>,
    pub counters: Arc<ProxyCounters>,
    /// Per toxic name: does this connection get it (rolled against toxicity once).
    rolls: Mutex<HashMap<String, bool>>,
    /// Set when one direction closes or resets the whole connection.
    kill: watch::Sender<bool>,
    /// Requests and responses of this connection, for the HTTP-aware toxics.
    pub http: HttpExchange,
}

impl Shared {
    pub fn new(toxics: Arc<ToxicSet>, counters: Arc<ProxyCounters>) -> Self {
        Self {
            toxics,
            counters,
            rolls: Mutex::new(HashMap::new()),
            kill: watch::Sender::new(false),
            http: HttpExchange::default(),
        }
    }

    /// Ends both directions of the connection.
    pub fn kill(&self) {
        self.kill.send_replace(true);
    }

    /// The toxics of `stream` this connection gets, in order.
    fn active(&self, stream: Stream) -> Vec<Toxic> {
        let toxics = self.toxics.snapshot();
        if toxics.is_empty() {
            return Vec::new();
        }
        let mut rolls = self
            .rolls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        toxics
            .iter()
            .filter(|toxic| toxic.stream == stream)
            .filter(|toxic| {
                *rolls
                    .entry(toxic.name.clone())
                    .or_insert_with(|| rand::rng().random::<f32>() < toxic.toxicity)
            })
            .cloned()
            .collect()
    }

    /// Whether `toxic` (same name, same kind) is still set and applies to this connection.
    fn still_active(&self, toxic: &Toxic) -> bool {
        self.toxics
            .snapshot()
            .iter()
            .any(|t| t.name == toxic.name && t.kind == toxic.kind && t.stream == toxic.stream)
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

/// A chunk read while an earlier one was still in the toxics, with when it arrived.
struct Chunk {
    bytes: Vec<u8>,
    arrived: Instant,
}

/// What the writing side remembers from chunk to chunk.
struct Writer {
    to: OwnedWriteHalf,
    stream: Stream,
    /// Bytes written so far (for `limit_data`).
    passed: u64,
    /// Bandwidth: when the link is free to send again.
    free_at: Instant,
    /// Set while a timeout toxic holds the connection: when it closes it (None = never).
    held_until: Option<Option<Instant>>,
}

/// Moves bytes from `from` to `to` through the toxics until one side ends.
///
/// One future, two roles: while a chunk is in the toxics (held by a latency, paced by a
/// bandwidth cap), reading goes on into a queue, each chunk stamped with its arrival.
/// With no toxic on this direction and nothing queued, a chunk is written straight from
/// the read buffer: a proxy without faults costs a plain copy.
pub async fn run(
    mut from: OwnedReadHalf,
    to: OwnedWriteHalf,
    stream: Stream,
    shared: Arc<Shared>,
) -> End {
    let received = &shared.counters.received[stream as usize];
    let mut killed = shared.kill.subscribe();
    let mut changes = shared.toxics.subscribe();
    let mut answered = shared.http.subscribe();
    // An answer made here before this side subscribed would not wake it otherwise: look
    // once at the start (an empty look writes nothing).
    answered.mark_changed();
    let mut buffer = vec![0u8; CHUNK];
    let mut queue: VecDeque<Chunk> = VecDeque::new();
    let mut queued = 0usize;
    let mut eof = false;
    let mut writer = Writer {
        to,
        stream,
        passed: 0,
        free_at: Instant::now(),
        held_until: None,
    };
    // This direction's toxics, refreshed only when the proxy's list changes: a chunk
    // costs no clone of the list.
    let mut seen_version = u64::MAX;
    let mut toxics: Arc<Vec<Toxic>> = Arc::default();
    loop {
        let version = *changes.borrow();
        if version != seen_version {
            seen_version = version;
            toxics = Arc::new(shared.active(stream));
        }
        writer.update_hold(&toxics);
        if let Some(chunk) = queue.pop_front() {
            queued -= chunk.bytes.len();
            let outcome = {
                let work = writer.process(chunk, &toxics, &shared, &mut changes);
                tokio::pin!(work);
                loop {
                    tokio::select! {
                        outcome = &mut work => break outcome,
                        read = from.read(&mut buffer), if !eof && queued < QUEUED_BYTES => {
                            match read {
                                Ok(0) | Err(_) => eof = true,
                                Ok(n) => {
                                    received.fetch_add(n as u64, Ordering::Relaxed);
                                    queued += n;
                                    queue.push_back(Chunk {
                                        bytes: buffer[..n].to_vec(),
                                        arrived: Instant::now(),
                                    });
                                }
                            }
                        }
                        _ = killed.wait_for(|killed| *killed) => return End::Close,
                    }
                }
            };
            match outcome {
                Ok(()) => continue,
                Err(end) => return writer.end(end, &shared),
            }
        }
        if eof {
            return writer.close(&shared, &mut changes).await;
        }
        let hold = async {
            match writer.held_until {
                Some(Some(deadline)) => tokio::time::sleep_until(deadline.into()).await,
                _ => std::future::pending::<()>().await,
            }
        };
        let downstream = stream == Stream::Downstream;
        let read = tokio::select! {
            read = from.read(&mut buffer) => Some(read),
            _ = killed.wait_for(|killed| *killed) => return End::Close,
            changed = changes.changed() => {
                if changed.is_err() {
                    return End::Close;
                }
                continue;
            }
            // An answer made here (http_status) for a request whose turn has come.
            _ = answered.changed(), if downstream => None,
            () = hold => {
                shared.kill();
                return End::Close;
            }
        };
        let Some(read) = read else {
            let ready = shared.http.ready();
            if let Err(end) = writer.write_raw(&ready, None, &shared).await {
                return writer.end(end, &shared);
            }
            continue;
        };
        let n = match read {
            Ok(0) | Err(_) => {
                eof = true;
                continue;
            }
            Ok(n) => n,
        };
        received.fetch_add(n as u64, Ordering::Relaxed);
        // Only HTTP toxics on the requests: they act per request, not per chunk, so the
        // chunk needs no queue (a delay holds this direction, as HTTP/1.1 is in order).
        let http_only = stream == Stream::Upstream
            && !toxics.is_empty()
            && toxics.iter().all(|t| t.kind.http_match().is_some());
        if http_only && writer.held_until.is_none() {
            let arrived = Instant::now();
            for segment in shared.http.requests(&buffer[..n], &toxics) {
                match segment.action {
                    Action::Drop => continue,
                    Action::Delay(ms) => {
                        tokio::time::sleep_until((arrived + Duration::from_millis(ms)).into())
                            .await;
                    }
                    Action::Forward => {}
                }
                if let Err(end) = writer.write_raw(&segment.bytes, None, &shared).await {
                    return writer.end(end, &shared);
                }
            }
            continue;
        }
        if toxics.is_empty() && writer.held_until.is_none() {
            let written = match stream {
                Stream::Upstream => match shared.http.follow_requests(&buffer[..n]) {
                    None => writer.write_raw(&buffer[..n], None, &shared).await,
                    // Bytes held for an HTTP toxic that is gone: they go first.
                    Some(segments) => {
                        let mut written = Ok(());
                        for segment in segments {
                            written = writer.write_raw(&segment.bytes, None, &shared).await;
                            if written.is_err() {
                                break;
                            }
                        }
                        written
                    }
                },
                Stream::Downstream => writer.emit(&buffer[..n], None, &shared).await,
            };
            if let Err(end) = written {
                return writer.end(end, &shared);
            }
            continue;
        }
        queued += n;
        queue.push_back(Chunk {
            bytes: buffer[..n].to_vec(),
            arrived: Instant::now(),
        });
    }
}

impl Writer {
    /// A timeout toxic holds the connection from when it applies, data or not.
    fn update_hold(&mut self, toxics: &[Toxic]) {
        let timeout = toxics.iter().find_map(|t| match t.kind {
            ToxicKind::Timeout { timeout } => Some(timeout),
            _ => None,
        });
        match (timeout, self.held_until) {
            (Some(ms), None) => {
                self.held_until =
                    Some((ms > 0).then(|| Instant::now() + Duration::from_millis(ms)));
            }
            (None, Some(_)) => self.held_until = None,
            _ => {}
        }
    }

    /// How the link ends: a reset forgets the write half so that no FIN goes before the
    /// RST (the socket closes, with it, once the other direction lets go).
    fn end(self, end: End, shared: &Shared) -> End {
        if end == End::Reset {
            self.to.forget();
            shared.kill();
        }
        end
    }

    /// Writes bytes on: downstream, through the HTTP exchange, which may add answers made
    /// here before a response or cut one (http_abort).
    async fn emit(
        &mut self,
        data: &[u8],
        slices: Option<(usize, usize, u64)>,
        shared: &Shared,
    ) -> Result<(), End> {
        let planned = match self.stream {
            Stream::Downstream => shared.http.responses_plain(data),
            Stream::Upstream => None,
        };
        let Some(outs) = planned else {
            return self.write_raw(data, slices, shared).await;
        };
        for out in outs {
            match out {
                Out::Bytes(bytes) => self.write_raw(&bytes, slices, shared).await?,
                Out::Reset => {
                    let _ = self.to.as_ref().set_zero_linger();
                    return Err(End::Reset);
                }
            }
        }
        Ok(())
    }

    /// Writes `data` as it is (sliced by a slicer toxic), counting it.
    async fn write_raw(
        &mut self,
        data: &[u8],
        slices: Option<(usize, usize, u64)>,
        shared: &Shared,
    ) -> Result<(), End> {
        if data.is_empty() {
            return Ok(());
        }
        let written = match slices {
            Some((average, variation, delay)) => {
                write_sliced(&mut self.to, data, average, variation, delay).await
            }
            None => self.to.write_all(data).await,
        };
        if written.is_err() {
            shared.kill();
            return Err(End::Close);
        }
        self.passed += data.len() as u64;
        shared.counters.sent[self.stream as usize].fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Passes one chunk through `toxics`, timed from its arrival, and writes it on.
    async fn process(
        &mut self,
        chunk: Chunk,
        toxics: &[Toxic],
        shared: &Shared,
        changes: &mut watch::Receiver<u64>,
    ) -> Result<(), End> {
        if self.held_until.is_some() {
            // Held: the data is dropped, as Toxiproxy's timeout does.
            return Ok(());
        }
        if self.stream == Stream::Downstream {
            return self
                .process_bytes(&chunk.bytes, chunk.arrived, toxics, shared, changes)
                .await;
        }
        // Requests first meet the HTTP toxics: answered here, held, or passed on.
        for segment in shared.http.requests(&chunk.bytes, toxics) {
            match segment.action {
                Action::Drop => continue,
                Action::Delay(ms) => {
                    tokio::time::sleep_until((chunk.arrived + Duration::from_millis(ms)).into())
                        .await;
                }
                Action::Forward => {}
            }
            self.process_bytes(&segment.bytes, chunk.arrived, toxics, shared, changes)
                .await?;
        }
        Ok(())
    }

    /// Passes bytes through the TCP toxics, timed from `arrived`, and writes them on.
    async fn process_bytes(
        &mut self,
        bytes: &[u8],
        arrived: Instant,
        toxics: &[Toxic],
        shared: &Shared,
        changes: &mut watch::Receiver<u64>,
    ) -> Result<(), End> {
        let mut data = bytes;
        let mut slices: Option<(usize, usize, u64)> = None;
        let mut pace: Option<(u64, &Toxic)> = None;
        let mut close_after = false;
        for toxic in toxics {
            match toxic.kind {
                ToxicKind::Latency { latency, jitter } => {
                    let deadline = arrived + jittered(latency, jitter);
                    hold_until(deadline, toxic, shared, changes).await;
                }
                ToxicKind::Bandwidth { rate } if rate > 0 => pace = Some((rate, toxic)),
                ToxicKind::ResetPeer { timeout } => {
                    let deadline = Instant::now() + Duration::from_millis(timeout);
                    hold_until(deadline, toxic, shared, changes).await;
                    if !shared.still_active(toxic) {
                        continue;
                    }
                    // SO_LINGER 0: closing sends RST instead of FIN (the caller
                    // forgets the write half so that no FIN goes first).
                    let _ = self.to.as_ref().set_zero_linger();
                    return Err(End::Reset);
                }
                ToxicKind::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => slices = Some((average_size, size_variation, delay)),
                ToxicKind::LimitData { bytes } => {
                    let allowed = bytes.saturating_sub(self.passed);
                    if (data.len() as u64) >= allowed {
                        data = &data[..allowed as usize];
                        close_after = true;
                    }
                }
                ToxicKind::Bandwidth { .. }
                | ToxicKind::SlowClose { .. }
                | ToxicKind::Timeout { .. }
                | ToxicKind::HttpStatus { .. }
                | ToxicKind::HttpDelay { .. }
                | ToxicKind::HttpAbort { .. } => {}
            }
        }
        // Bandwidth, as Toxiproxy's: a piece of at most 100 ms worth of bytes at a time,
        // each paced from when the link was last free, so the rate holds across chunks
        // however they were cut, and a slow link trickles instead of bursting.
        let piece = pace.map_or(data.len().max(1), |(rate, _)| {
            usize::try_from(rate * 100).unwrap_or(usize::MAX).max(1)
        });
        for part in data.chunks(piece) {
            if let Some((rate, toxic)) = pace
                && shared.still_active(toxic)
            {
                let cost = Duration::from_secs_f64(part.len() as f64 / (rate as f64 * 1000.0));
                // A timer wakes a little late; the next piece makes up for it. Only a link
                // idle for longer than that starts its clock afresh.
                let now = Instant::now();
                if self.free_at + PACE_SLACK < now {
                    self.free_at = now;
                }
                self.free_at += cost;
                hold_until(self.free_at, toxic, shared, changes).await;
            }
            self.emit(part, slices, shared).await?;
        }
        if close_after {
            shared.kill();
            return Err(End::Close);
        }
        Ok(())
    }

    /// The sending side closed and everything queued went out: pass the close on, late
    /// if a `slow_close` toxic says so.
    async fn close(mut self, shared: &Shared, changes: &mut watch::Receiver<u64>) -> End {
        for toxic in shared.active(self.stream) {
            if let ToxicKind::SlowClose { delay } = toxic.kind {
                let deadline = Instant::now() + Duration::from_millis(delay);
                hold_until(deadline, &toxic, shared, changes).await;
            }
        }
        let _ = self.to.shutdown().await;
        End::Eof
    }
}

/// Waits until `deadline`, or less if `toxic` is removed meanwhile.
async fn hold_until(
    deadline: Instant,
    toxic: &Toxic,
    shared: &Shared,
    changes: &mut watch::Receiver<u64>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => return,
            changed = changes.changed() => {
                if changed.is_err() || !shared.still_active(toxic) {
                    return;
                }
            }
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
