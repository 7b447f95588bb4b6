//! JSON log lines to stdout and to `logs/ai-mate-YYYY-MM-DD.log` (UTC days), the file
//! names the guide's runbooks grep (`logs/ai-mate-*.log`). tracing-appender's rolling
//! writer names files `prefix.DATE.suffix`, so the daily file is our own small writer
//! behind its non-blocking worker.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the log writers flushing; drop it last, after shutdown completes.
pub struct LogGuard {
    _stdout: WorkerGuard,
    _file: WorkerGuard,
}

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

/// Installs the global subscriber. The filter comes from `AIMATE_LOG` (e.g. `warn`,
/// `info,access=warn`), default `info`.
pub fn init(log_dir: &Path) -> io::Result<LogGuard> {
    let (stdout, stdout_guard) = tracing_appender::non_blocking(io::stdout());
    let (file, file_guard) = tracing_appender::non_blocking(DailyFile::new(log_dir)?);
    let filter = EnvFilter::try_from_env("AIMATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(stdout),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(file),
        )
        .try_init()
        .map_err(io::Error::other)?;
    Ok(LogGuard {
        _stdout: stdout_guard,
        _file: file_guard,
    })
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
}
