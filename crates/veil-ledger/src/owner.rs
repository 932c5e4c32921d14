//! Which process reserved a charge, and whether it still runs.
//!
//! A reservation records its [`Owner`]: the host, the process id, the process's start time
//! and the boot it runs in. A charge left reserved by a run that was killed can then be
//! told apart from one whose run is still going ([`Owner::liveness`]), so that
//! `veil budget cancel` gives back only the budget of runs that are gone.
//!
//! Liveness is read from Linux's `/proc`; elsewhere it is [`Liveness::Unknown`].

use std::fmt;
use std::path::Path;

/// The process that reserved a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The host's name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// When the process started, in clock ticks after boot (field 22 of Linux's
    /// `/proc/<pid>/stat`), if known: it tells a reused process id apart.
    pub started: Option<u64>,
    /// The id of the boot the process ran in (Linux's
    /// `/proc/sys/kernel/random/boot_id`), if known: no process survives a reboot.
    pub boot: Option<String>,
}

/// Whether the process that reserved a charge still runs, as this process can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// It runs on this host: its run may still commit or abort.
    Running,
    /// It is gone; the text says how this is known.
    Gone(String),
    /// This process cannot tell; the text says why.
    Unknown(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {} on host {}", self.pid, self.host)
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}

/// This host's name (`/proc/sys/kernel/hostname`, `/etc/hostname`, `$HOSTNAME`), or
/// `unknown`.
fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| read_trimmed("/etc/hostname"))
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn boot_id() -> Option<String> {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`): `Ok(None)` if there
/// is no such process, `Err` if `/proc` cannot be read at all.
fn start_time(pid: u32) -> Result<Option<u64>, ()> {
    if !Path::new("/proc/self/stat").exists() {
        return Err(());
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Ok(None);
    };
    // The command name (field 2) is in parentheses and may hold spaces or parentheses:
    // the fields after the last ')' start at field 3.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    Ok(after_name
        .split_whitespace()
        .nth(22 - 3)
        .and_then(|field| field.parse().ok()))
}

impl Owner {
    /// This process.
    #[must_use]
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            host: host_name(),
            pid,
            started: start_time(pid).ok().flatten(),
            boot: boot_id(),
        }
    }

    /// Whether this owner still runs, as this process can tell: only processes on this
    /// host, in this boot, can be checked.
    #[must_use]
    pub fn liveness(&self) -> Liveness {
        let here = host_name();
        if self.host != here {
            return Liveness::Unknown(format!(
                "it was reserved on host {}, and this is host {here}",
                self.host
            ));
        }
        if let (Some(then), Some(now)) = (&self.boot, boot_id())
            && *then != now
        {
            return Liveness::Gone(format!("host {here} has restarted since it was reserved"));
        }
        match start_time(self.pid) {
            Err(()) => Liveness::Unknown(
                "this system does not show which processes run (no /proc)".to_string(),
            ),
            Ok(None) => Liveness::Gone(format!("no process {} runs on host {here}", self.pid)),
            Ok(Some(started)) => match self.started {
                Some(then) if then != started => Liveness::Gone(format!(
                    "process {} ended; its id now belongs to a process started later",
                    self.pid
                )),
                _ => Liveness::Running,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_running_and_a_finished_one_is_gone() {
        let me = Owner::current();
        assert_eq!(me.pid, std::process::id());
        if !Path::new("/proc/self/stat").exists() {
            assert!(matches!(me.liveness(), Liveness::Unknown(_)));
            return;
        }
        assert!(me.started.is_some());
        assert_eq!(me.liveness(), Liveness::Running);

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let finished = Owner { pid, ..me.clone() };
        assert!(matches!(finished.liveness(), Liveness::Gone(_)), "{pid}");

        let reused = Owner {
            started: me.started.map(|ticks| ticks + 1),
            ..me.clone()
        };
        assert!(matches!(reused.liveness(), Liveness::Gone(_)));

        let rebooted = Owner {
            boot: Some("another boot".to_string()),
            ..me.clone()
        };
        assert!(matches!(rebooted.liveness(), Liveness::Gone(_)));

        let elsewhere = Owner {
            host: format!("{}-elsewhere", me.host),
            ..me
        };
        assert!(matches!(elsewhere.liveness(), Liveness::Unknown(_)));
    }
}
