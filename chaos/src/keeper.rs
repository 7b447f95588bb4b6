//! Leases that outlive the controller: no fault is left behind.
//!
//! A fault that lives outside the controller's own process (a frozen instance, a full
//! disk, a server instance the drill started) is registered with a *keeper* before it is
//! applied: a small process of its own, in its own process group, that knows how to undo
//! it. The controller talks to it over a pipe:
//!
//! ```text
//! controller ── {"op":"grant","id":1,"until_ms":…,"revert":{…}} ──▶ keeper ── "ok 1" ──▶
//! controller ── {"op":"release","id":1} ──▶ keeper   (the controller undid it itself)
//! deadline passed        ──▶ keeper reverts that lease
//! pipe closed (crash)    ──▶ keeper reverts every lease still held, then exits
//! ```
//!
//! The keeper is the `aimate` binary itself (`aimate chaos keeper`, hidden), so it needs
//! nothing installed; [`keep`] is its whole body.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How to undo a fault. Each one is idempotent: undoing twice does no harm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revert {
    /// Resume a process frozen with SIGSTOP.
    Resume { pid: u32 },
    /// End a process the drill started (SIGKILL: the controller is gone, nobody waits).
    Kill { pid: u32 },
    /// Delete a file that fills a disk.
    RemoveFile { path: PathBuf },
    /// Unmount a filesystem the drill mounted (lazily: open files do not block it).
    Unmount { path: PathBuf },
}

impl Revert {
    /// Undoes the fault. A process or file that is already gone counts as undone.
    pub fn apply(&self) -> std::io::Result<()> {
        use rustix::process::{Pid, Signal, kill_process};
        let signal = |pid: u32, signal| {
            let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
                return Ok(());
            };
            match kill_process(pid, signal) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
                Err(errno) => Err(std::io::Error::from(errno)),
            }
        };
        match self {
            Self::Resume { pid } => signal(*pid, Signal::CONT),
            Self::Kill { pid } => signal(*pid, Signal::KILL),
            Self::RemoveFile { path } => match std::fs::remove_file(path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            },
            Self::Unmount { path } => {
                match rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH) {
                    // EINVAL: not a mount point (any more); ENOENT: gone.
                    Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => Ok(()),
                    Err(errno) => Err(errno.into()),
                }
            }
        }
    }
}

impl std::fmt::Display for Revert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Resume { pid } => write!(f, "resume process {pid}"),
            Self::Kill { pid } => write!(f, "kill process {pid}"),
            Self::RemoveFile { path } => write!(f, "remove {}", path.display()),
            Self::Unmount { path } => write!(f, "unmount {}", path.display()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Grant {
        id: u64,
        until_ms: u64,
        revert: Revert,
    },
    Release {
        id: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    #[error("cannot start the lease keeper `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("the lease keeper is gone ({0}); refusing to inject a fault nobody could undo")]
    Gone(String),
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The controller's side: a running keeper process.
pub struct Keeper {
    child: Mutex<Option<Child>>,
    pipe: Mutex<Option<Pipe>>,
    next_id: AtomicU64,
}

type Pipe = (Box<dyn Write + Send>, BufReader<Box<dyn Read + Send>>);

/// A fault registered with the keeper. [`Keeper::release`] undoes it now; if the
/// controller never does, the keeper undoes it at `until` or when the controller dies.
#[derive(Debug)]
pub struct Grant {
    id: u64,
    pub revert: Revert,
}

impl Keeper {
    /// Starts `program args…` as the keeper (its stdin/stdout are the pipe), in a process
    /// group of its own so that a Ctrl-C or a group kill aimed at the controller leaves it
    /// alive to clean up.
    pub fn spawn(program: &std::path::Path, args: &[&str]) -> Result<Self, KeeperError> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(program)
            .args(args)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| KeeperError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(KeeperError::Gone("no pipe to the keeper".into()));
        };
        Ok(Self {
            child: Mutex::new(Some(child)),
            pipe: Mutex::new(Some((Box::new(stdin), BufReader::new(Box::new(stdout))))),
            next_id: AtomicU64::new(1),
        })
    }

    /// A keeper on a thread of this process: same protocol and deadlines, but it dies
    /// with the controller. For tests and for faults that die with the process anyway.
    pub fn in_process() -> Result<Self, KeeperError> {
        let gone = |e: std::io::Error| KeeperError::Gone(e.to_string());
        let (requests_in, requests_out) = std::io::pipe().map_err(gone)?;
        let (answers_in, answers_out) = std::io::pipe().map_err(gone)?;
        std::thread::spawn(move || keep(BufReader::new(requests_in), answers_out));
        let reader: Box<dyn Read + Send> = Box::new(answers_in);
        Ok(Self {
            child: Mutex::new(None),
            pipe: Mutex::new(Some((Box::new(requests_out), BufReader::new(reader)))),
            next_id: AtomicU64::new(1),
        })
    }

    fn send(&self, request: &Request, want_ack: Option<u64>) -> Result<(), KeeperError> {
        let mut pipe = self
            .pipe
            .lock()
            .map_err(|_| KeeperError::Gone("lock poisoned".into()))?;
        let Some((stdin, stdout)) = pipe.as_mut() else {
            return Err(KeeperError::Gone("closed".into()));
        };
        let mut line =
            serde_json::to_string(request).map_err(|e| KeeperError::Gone(e.to_string()))?;
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| KeeperError::Gone(e.to_string()))?;
        if let Some(id) = want_ack {
            let mut answer = String::new();
            stdout
                .read_line(&mut answer)
                .map_err(|e| KeeperError::Gone(e.to_string()))?;
            if answer.trim() != format!("ok {id}") {
                return Err(KeeperError::Gone(format!("unexpected answer {answer:?}")));
            }
        }
        Ok(())
    }

    /// Registers `revert` before the fault is applied; returns once the keeper holds it.
    pub fn grant(&self, revert: Revert, until: SystemTime) -> Result<Grant, KeeperError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(
            &Request::Grant {
                id,
                until_ms: unix_ms(until),
                revert: revert.clone(),
            },
            Some(id),
        )?;
        Ok(Grant { id, revert })
    }

    /// Undoes the fault here and now, then tells the keeper it is no longer held.
    pub fn release(&self, grant: Grant) -> std::io::Result<()> {
        let undone = grant.revert.apply();
        // If the keeper is gone the fault is undone anyway; nothing more to do.
        let _ = self.send(&Request::Release { id: grant.id }, None);
        undone
    }

    /// Tells the keeper the controller is finished: it undoes whatever is still held
    /// (as on a crash) and exits.
    pub fn close(&self) {
        if let Ok(mut pipe) = self.pipe.lock() {
            pipe.take();
        }
        if let Ok(mut child) = self.child.lock()
            && let Some(mut child) = child.take()
        {
            let _ = child.wait();
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.close();
    }
}

enum Input {
    Line(String),
    Closed,
}

/// The keeper's body: reads requests from `input`, acknowledges grants on `output`,
/// reverts each lease at its deadline, and everything still held when `input` closes.
/// Returns how many leases it had to revert itself.
pub fn keep(input: impl BufRead + Send + 'static, mut output: impl Write) -> usize {
    let (lines, inbox) = mpsc::channel();
    std::thread::spawn(move || {
        for line in input.lines() {
            let Ok(line) = line else { break };
            if lines.send(Input::Line(line)).is_err() {
                return;
            }
        }
        let _ = lines.send(Input::Closed);
    });
    let mut held: HashMap<u64, (u64, Revert)> = HashMap::new();
    let mut reverted = 0;
    let revert = |id: u64, revert: &Revert, why: &str| match revert.apply() {
        Ok(()) => eprintln!("aimate chaos keeper: lease {id} {why}: {revert}"),
        Err(error) => eprintln!("aimate chaos keeper: lease {id} {why}: {revert} failed: {error}"),
    };
    loop {
        let now = unix_ms(SystemTime::now());
        let expired: Vec<u64> = held
            .iter()
            .filter(|(_, (until, _))| *until <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((_, undo)) = held.remove(&id) {
                revert(id, &undo, "expired");
                reverted += 1;
            }
        }
        let wait = held
            .values()
            .map(|(until, _)| until.saturating_sub(now))
            .min()
            .map_or(Duration::from_secs(3600), Duration::from_millis);
        match inbox.recv_timeout(wait) {
            Ok(Input::Line(line)) => match serde_json::from_str::<Request>(&line) {
                Ok(Request::Grant {
                    id,
                    until_ms,
                    revert,
                }) => {
                    held.insert(id, (until_ms, revert));
                    let _ = writeln!(output, "ok {id}").and_then(|()| output.flush());
                }
                Ok(Request::Release { id }) => {
                    held.remove(&id);
                }
                Err(error) => eprintln!("aimate chaos keeper: ignoring {line:?}: {error}"),
            },
            Ok(Input::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    for (id, (_, undo)) in held {
        revert(id, &undo, "controller gone");
        reverted += 1;
    }
    reverted
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn grant_line(id: u64, until: SystemTime, path: &std::path::Path) -> String {
        serde_json::to_string(&Request::Grant {
            id,
            until_ms: unix_ms(until),
            revert: Revert::RemoveFile {
                path: path.to_owned(),
            },
        })
        .unwrap()
    }

    #[test]
    fn a_closed_pipe_reverts_what_is_still_held_and_not_what_was_released() {
        let dir = tempfile::tempdir().unwrap();
        let (held, released) = (dir.path().join("held"), dir.path().join("released"));
        std::fs::write(&held, b"x").unwrap();
        std::fs::write(&released, b"x").unwrap();
        let later = SystemTime::now() + Duration::from_secs(600);
        let input = format!(
            "{}\n{}\n{{\"op\":\"release\",\"id\":2}}\n",
            grant_line(1, later, &held),
            grant_line(2, later, &released)
        );
        let mut output = Vec::new();
        let reverted = keep(Cursor::new(input), &mut output);
        assert_eq!(reverted, 1);
        assert_eq!(String::from_utf8(output).unwrap(), "ok 1\nok 2\n");
        assert!(!held.exists(), "the held lease was not reverted");
        assert!(
            released.exists(),
            "a released lease must be left to its owner"
        );
    }

    #[test]
    fn a_lease_reverts_at_its_deadline_while_the_controller_is_alive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fill");
        std::fs::write(&path, b"x").unwrap();
        let (reader, mut writer) = std::io::pipe().unwrap();
        let line = grant_line(7, SystemTime::now() + Duration::from_millis(200), &path);
        writeln!(writer, "{line}").unwrap();
        let keeper = std::thread::spawn(move || keep(BufReader::new(reader), Vec::new()));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while path.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!path.exists(), "the lease outlived its deadline");
        drop(writer);
        assert_eq!(keeper.join().unwrap(), 1);
    }

    #[test]
    fn reverting_what_is_already_undone_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let gone = Revert::RemoveFile {
            path: dir.path().join("never-created"),
        };
        gone.apply().unwrap();
        // Pid 0x7fff_fff0 does not exist on any sane system.
        Revert::Resume { pid: 0x7fff_fff0 }.apply().unwrap();
    }
}
