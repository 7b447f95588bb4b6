//! JSON log lines to stdout and to `logs/ai-mate-YYYY-MM-DD.log` (UTC days), the file
//! names the guide's runbooks grep (`logs/ai-mate-*.log`).
//!
//! ```text
//! request threads: format the line ─▶ append to a shared buffer (a mutex, no syscall)
//! writer thread:   every 50 ms, or sooner when 256 KiB are waiting ─▶ stdout + day file
//! ```
//!
//! Not tracing-appender's non-blocking writer: it hands over every line on a channel and
//! wakes its worker thread per line, which under load cost more than the requests did
//! (a futex wake and a context switch per access-log line; scripts/bench-server.sh).
//! Its rolling file names (`prefix.DATE.suffix`) do not fit the guide's either.

mod json;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Longest a line waits before it is written: short enough to tail logs live.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Write early once this much is waiting, so a burst cannot grow the buffer unbounded.
const FLUSH_BYTES: usize = 256 * 1024;

/// Appends to the current UTC day's file, switching files at midnight.
pub struct DailyFile {
    dir: PathBuf,
    current: Option<(NaiveDate, File)>,
}

impl DailyFile {
    pub fn new(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut file = Self {
            dir: dir.to_owned(),
            current: None,
        };
        file.file_for(Utc::now().date_naive())?;
        Ok(file)
    }

    pub fn path_for(dir: &Path, day: NaiveDate) -> PathBuf {
        dir.join(format!("ai-mate-{}.log", day.format("%Y-%m-%d")))
    }

    fn file_for(&mut self, day: NaiveDate) -> io::Result<&mut File> {
        if self
            .current
            .as_ref()
            .is_none_or(|(open_day, _)| *open_day != day)
        {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(Self::path_for(&self.dir, day))?;
            self.current = Some((day, file));
        }
        match &mut self.current {
            Some((_, file)) => Ok(file),
            None => Err(io::Error::other("log file not open")),
        }
    }
}

impl Write for DailyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file_for(Utc::now().date_naive())?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((_, file)) => file.flush(),
            None => Ok(()),
        }
    }
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave `Pending` inconsistent (it only
        // appends bytes), so a poisoned lock is still usable.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The `MakeWriter` the subscriber formats into.
#[derive(Clone)]
struct BatchedWriter(Arc<Shared>);

impl Write for BatchedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pending = self.0.lock();
        pending.bytes.extend_from_slice(buf);
        if pending.bytes.len() >= FLUSH_BYTES {
            self.0.wake.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = BatchedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn write_batches(shared: &Shared, mut sinks: Vec<Box<dyn Write + Send>>) {
    let mut batch = Vec::with_capacity(FLUSH_BYTES);
    loop {
        let closed = {
            let mut pending = shared.lock();
            if pending.bytes.is_empty() && !pending.closed {
                pending = shared
                    .wake
                    .wait_timeout(pending, FLUSH_INTERVAL)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0);
            }
            std::mem::swap(&mut batch, &mut pending.bytes);
            pending.closed
        };
        if !batch.is_empty() {
            for sink in &mut sinks {
                // Nowhere left to report a failing log sink; keep serving requests.
                let _ = sink.write_all(&batch).and_then(|()| sink.flush());
            }
            batch.clear();
        }
        if closed {
            break;
        }
    }
}

/// Keeps the log writer running; dropping it writes what is pending and stops the thread.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start_writer(sinks: Vec<Box<dyn Write + Send>>) -> io::Result<(BatchedWriter, LogGuard)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
    });
    let thread = std::thread::Builder::new()
        .name("aimate-log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || write_batches(&shared, sinks)
        })?;
    Ok((
        BatchedWriter(shared.clone()),
        LogGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// The `--log-dir` that writes no files: lines go to stdout only.
pub const STDOUT_ONLY: &str = "-";

/// Installs the global subscriber. The filter comes from `AIMATE_LOG` (e.g. `warn`,
/// `info,access=warn`), default `info`. Lines go to stdout and, unless `log_dir` is
/// [`STDOUT_ONLY`], to its day files.
pub fn init(log_dir: &Path) -> io::Result<LogGuard> {
    let mut sinks: Vec<Box<dyn Write + Send>> = vec![Box::new(io::stdout())];
    if log_dir != Path::new(STDOUT_ONLY) {
        sinks.push(Box::new(DailyFile::new(log_dir)?));
    }
    let (writer, guard) = start_writer(sinks)?;
    let filter = EnvFilter::try_from_env("AIMATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(json::JsonLines)
                .with_writer(writer),
        )
        .try_init()
        .map_err(io::Error::other)?;
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_to_the_dated_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = DailyFile::new(dir.path()).unwrap();
        writeln!(file, "{{\"msg\":\"hello\"}}").unwrap();
        file.flush().unwrap();
        let path = DailyFile::path_for(dir.path(), Utc::now().date_naive());
        assert!(
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("ai-mate-20")
        );
        assert!(std::fs::read_to_string(path).unwrap().contains("hello"));
    }

    /// A sink that remembers what reached it.
    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<u8>>>);

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_reaches_every_sink_by_the_time_the_guard_drops() {
        let (a, b) = (Memory::default(), Memory::default());
        let (writer, guard) = start_writer(vec![Box::new(a.clone()), Box::new(b.clone())]).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        writer
                            .make_writer()
                            .write_all(format!("{t}-{i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(guard);
        for sink in [a, b] {
            let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
            assert_eq!(text.lines().count(), 4000);
            assert!(text.contains("3-999\n") && text.contains("0-0\n"));
        }
    }
}
