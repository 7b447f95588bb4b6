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
    /// Unpause a container paused through the Docker Engine API.
    UnpauseContainer {
        engine: crate::docker::Engine,
        id: String,
    },
    /// Start a container the drill killed (unless it already runs again).
    StartContainer {
        engine: crate::docker::Engine,
        id: String,
    },
    /// Remove a toxic the drill added to a deployment's fault proxy.
    RemoveToxic {
        at: crate::links::RemoteAddress,
        toxic: String,
    },
    /// Let traffic through a deployment's fault proxy the drill disabled.
    EnableProxy { at: crate::links::RemoteAddress },
}

impl Revert {
    /// The process a process revert signals, if it is one.
    fn pid(&self) -> Option<u32> {
        match self {
            Self::Resume { pid } | Self::Kill { pid } => Some(*pid),
            _ => None,
        }
    }

    /// Pins the process this revert signals: opens a pidfd for it now. A pidfd names
    /// one process for good, so the signal can never reach a later process that was
    /// given the same PID. Pin while the process cannot have been reaped yet (its parent
    /// still holds it unwaited, as when a fault is granted); a process already gone pins
    /// to nothing, and its revert does nothing.
    pub fn pin(self) -> Pinned {
        let process = self
            .pid()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(rustix::process::Pid::from_raw)
            .and_then(|pid| {
                rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
            });
        Pinned {
            revert: self,
            process,
        }
    }

    /// Undoes the fault (a process revert is pinned first: see [`Revert::pin`]). A
    /// process or file that is already gone counts as undone.
    pub fn apply(&self) -> std::io::Result<()> {
        self.clone().pin().apply()
    }
}

/// A revert whose process, if any, is held by a pidfd.
#[derive(Debug)]
pub struct Pinned {
    pub revert: Revert,
    process: Option<std::os::fd::OwnedFd>,
}

impl Pinned {
    pub fn apply(&self) -> std::io::Result<()> {
        use rustix::process::{Signal, pidfd_send_signal};
        let signal = |signal| match &self.process {
            // Gone before it was pinned: nothing to undo.
            None => Ok(()),
            Some(pidfd) => match pidfd_send_signal(pidfd, signal) {
                // Exited (and perhaps reaped) since: nothing to undo.
                Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
                Err(errno) => Err(std::io::Error::from(errno)),
            },
        };
        match &self.revert {
            Revert::Resume { .. } => signal(Signal::CONT),
            Revert::Kill { .. } => signal(Signal::KILL),
            Revert::RemoveFile { path } => match std::fs::remove_file(path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            },
            Revert::Unmount { path } => {
                match rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH) {
                    // EINVAL: not a mount point (any more); ENOENT: gone.
                    Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => Ok(()),
                    Err(errno) => Err(errno.into()),
                }
            }
            Revert::UnpauseContainer { engine, id } => engine.blocking_unpause(id),
            Revert::StartContainer { engine, id } => engine.blocking_start(id),
            Revert::RemoveToxic { at, toxic } => {
                at.blocking(reqwest::Method::DELETE, format!("/toxics/{toxic}"))
            }
            Revert::EnableProxy { at } => at.blocking(reqwest::Method::POST, String::new()),
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
            Self::UnpauseContainer { id, .. } => write!(f, "unpause container {id}"),
            Self::StartContainer { id, .. } => write!(f, "start container {id}"),
            Self::RemoveToxic { at, toxic } => {
                write!(f, "remove toxic {toxic} from proxy {}", at.proxy)
            }
            Self::EnableProxy { at } => write!(f, "enable proxy {}", at.proxy),
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
    pub held: Pinned,
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
    /// A process revert must be granted while its process is unreaped (both sides pin
    /// it then; see [`Revert::pin`]).
    pub fn grant(&self, revert: Revert, until: SystemTime) -> Result<Grant, KeeperError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let held = revert.clone().pin();
        self.send(
            &Request::Grant {
                id,
                until_ms: unix_ms(until),
                revert,
            },
            Some(id),
        )?;
        Ok(Grant { id, held })
    }

    /// Undoes the fault here and now, then tells the keeper it is no longer held.
    pub fn release(&self, grant: Grant) -> std::io::Result<()> {
        let undone = grant.held.apply();
        // If the keeper is gone the fault is undone anyway; nothing more to do.
        let _ = self.send(&Request::Release { id: grant.id }, None);
        undone
    }

    /// The controller undid the fault itself (asynchronously, as a container's is): the
    /// keeper forgets it, nothing is applied here.
    pub fn forget(&self, grant: Grant) {
        let _ = self.send(&Request::Release { id: grant.id }, None);
    }

    /// Whether the keeper can still undo what it holds: its process runs and the pipe is
    /// open. A controller must stop injecting the moment this turns false.
    pub fn is_alive(&self) -> bool {
        let pipe_open = self.pipe.lock().is_ok_and(|pipe| pipe.is_some());
        let process_runs = match self.child.lock() {
            Ok(mut child) => match child.as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(None)),
                // In-process keeper: a thread of ours, alive as long as its pipe.
                None => true,
            },
            Err(_) => false,
        };
        pipe_open && process_runs
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
    let mut held: HashMap<u64, (u64, Pinned)> = HashMap::new();
    let mut reverted = 0;
    let revert = |id: u64, pinned: &Pinned, why: &str| match pinned.apply() {
        Ok(()) => eprintln!("aimate chaos keeper: lease {id} {why}: {}", pinned.revert),
        Err(error) => eprintln!(
            "aimate chaos keeper: lease {id} {why}: {} failed: {error}",
            pinned.revert
        ),
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
                    // Pinned on arrival: the controller still holds the process unreaped
                    // while it waits for this "ok".
                    held.insert(id, (until_ms, revert.pin()));
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

    #[test]
    fn a_pinned_revert_signals_its_own_process_never_a_reused_pid() {
        let mut first = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pinned = Revert::Kill { pid: first.id() }.pin();
        first.kill().unwrap();
        first.wait().unwrap(); // reaped: its PID is free for anyone now
        // Another live process, standing in for one that got the same PID number: the
        // revert names it (the number) but is pinned to the first process.
        let mut bystander = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let impostor = Pinned {
            revert: Revert::Kill {
                pid: bystander.id(),
            },
            process: pinned.process,
        };
        impostor.apply().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "the revert signalled a process by number"
        );
        // Pinned to the live bystander itself, it does end it.
        Revert::Kill {
            pid: bystander.id(),
        }
        .pin()
        .apply()
        .unwrap();
        let status = bystander.wait().unwrap();
        assert!(!status.success());
    }
}
