//! Durable storage of accepted reports.
//!
//! A batch is acknowledged only once it is on disk: the writer thread appends every batch
//! that is waiting to the open write-ahead log (`wal-NNNNNN.log`: each report as its length,
//! a CRC-32 and its bytes) and syncs it once for all of them (group commit), then answers
//! each. When the log holds `segment_reports` reports or is `segment_age` old, it is sealed
//! on a thread of its own: its reports, shuffled, are written as a segment
//! (`reports-NNNNNN.<ext>`, by the [`SegmentSink`], which writes a temporary file, syncs it
//! and renames it into place), and only then is the log deleted. `veil ldp aggregate` reads
//! the segments.
//!
//! A crash loses at most the batches not yet acknowledged: on the next start, each log is
//! read up to its last whole record (a torn last record was never acknowledged) and sealed;
//! a log whose segment already exists (a crash between the rename and the delete) is only
//! deleted. Segments are never written in place, so what was stored is never corrupted.
//!
//! What the files reveal: names carry a sequence number only; a segment's rows are shuffled,
//! so a row's position does not tell when it arrived; nothing about the sender is written.
//! The open log is in arrival order until it is sealed.
//!
//! One file on purpose: the log, its group commit and the sealing of segments are one state
//! machine, and its crash-recovery argument (what a crash can lose) needs all of it at
//! once.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand_core::CryptoRng;
use veil_ldp::Protocol;

/// Writes a sealed segment.
pub trait SegmentSink: Send + Sync + 'static {
    /// The extension of segment files, without the dot (`"parquet"`).
    fn extension(&self) -> &'static str;

    /// Writes `reports` (each in Veil's compact encoding) to `path` atomically and durably:
    /// to a temporary file beside it, synced, then renamed into place.
    ///
    /// # Errors
    /// Why the segment could not be written; `path` must then not exist.
    fn write_segment(&self, path: &Path, reports: &[Vec<u8>]) -> Result<(), String>;
}

/// When the open log is sealed, and how many batches may wait for the writer.
#[derive(Debug, Clone, Copy)]
pub struct StorePolicy {
    /// Seal once the log holds this many reports.
    pub segment_reports: usize,
    /// Seal a non-empty log this long after it was opened.
    pub segment_age: Duration,
    /// Batches that may wait for the writer before new ones are turned away as busy.
    pub queue: usize,
}

/// What the store did, for the operator's log. Nothing here names a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// A log left by an earlier run was sealed (or found already sealed) at start.
    Recovered {
        /// The log.
        wal: PathBuf,
        /// Reports recovered from it.
        reports: usize,
        /// Bytes after its last whole record (a batch that was never acknowledged).
        discarded_bytes: usize,
    },
    /// A segment was written and its log deleted.
    Sealed {
        /// The segment.
        segment: PathBuf,
        /// Its reports.
        reports: usize,
    },
    /// A segment could not be written; its log stays and is sealed at the next start.
    SealFailed {
        /// The log.
        wal: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Why the store cannot be opened or closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`"creating"`, `"reading"`, …).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Another collector holds the directory.
    #[error("{} is in use by another collector (its lock file {} is held); give each collector its own --out", dir.display(), dir.join(LOCK).display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory holds reports of another protocol.
    #[error("{} holds reports of protocol {found}, not of {expected}; give each protocol its own --out", dir.display())]
    OtherProtocol {
        /// The directory.
        dir: PathBuf,
        /// The protocol it holds.
        found: String,
        /// The collector's protocol.
        expected: String,
    },
    /// A segment could not be written while recovering.
    #[error("sealing {}: {reason}", wal.display())]
    Seal {
        /// The log.
        wal: PathBuf,
        /// Why.
        reason: String,
    },
    /// The writer thread stopped with an error.
    #[error("the report writer failed: {0}")]
    Writer(String),
}

/// Why a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// Too many batches are waiting: try again shortly.
    #[error("the collector is busy; retry shortly")]
    Busy,
    /// The store is closing.
    #[error("the collector is shutting down")]
    Closed,
    /// Writing the log failed; nothing of the batch is stored.
    #[error("the collector cannot store reports: {0}")]
    Failed(String),
}

const LOCK: &str = ".lock";
const MARKER: &str = "collector.json";
const WAL_MAGIC: &[u8; 9] = b"VEIL-WAL\x01";
const WAL_HEADER: usize = WAL_MAGIC.len() + 8;
/// A report's record: length (4 bytes), CRC-32 (4 bytes), bytes.
const RECORD_HEADER: usize = 8;
/// Batches and reports one group commit takes at most.
const GROUP_BATCHES: usize = 512;
const GROUP_REPORTS: usize = 100_000;

/// Where reports accepted by a collector live: the directory, its lock, the writer thread.
pub struct Store {
    commands: Option<SyncSender<Command>>,
    writer: Option<JoinHandle<Result<(), String>>>,
    failed: Arc<AtomicBool>,
    dir: PathBuf,
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Appends batches to a [`Store`]; cheap to clone, one per request.
#[derive(Debug, Clone)]
pub struct Appender {
    commands: SyncSender<Command>,
    failed: Arc<AtomicBool>,
}

struct Command {
    reports: Vec<Vec<u8>>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The callback that receives [`StoreEvent`]s.
pub type Events = Arc<dyn Fn(StoreEvent) + Send + Sync>;

impl Store {
    /// Opens (creating it if needed) the directory of a collector for `protocol`, takes its
    /// lock, seals what an earlier run left in its logs, and starts the writer.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another collector runs on it, [`StoreError::OtherProtocol`]
    /// if it holds another protocol's reports, [`StoreError::Io`] or [`StoreError::Seal`].
    pub fn open(
        dir: &Path,
        protocol: &Protocol,
        sink: Arc<dyn SegmentSink>,
        policy: StorePolicy,
        mut rng: Box<dyn CryptoRng + Send>,
        events: Events,
    ) -> Result<Self, StoreError> {
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { what, path, source }
        };
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("creating", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(StoreError::Io {
                    what: "locking",
                    path: lock_path,
                    source,
                });
            }
        }
        check_marker(dir, protocol)?;
        let short = protocol.id().short();
        let mut next = recover(dir, sink.as_ref(), rng.as_mut(), &events)?;
        let wal = Wal::create(dir, next, short)?;
        next += 1;
        let failed = Arc::new(AtomicBool::new(false));
        let (commands, received) = sync_channel(policy.queue.max(1));
        let writer_state = Writer {
            dir: dir.to_path_buf(),
            short,
            policy,
            wal,
            next,
            reports: Vec::new(),
            failed: failed.clone(),
        };
        let sealer = Sealer {
            dir: dir.to_path_buf(),
            sink,
            rng: Mutex::new(rng),
            events,
        };
        let writer = std::thread::Builder::new()
            .name("veil-collect-writer".into())
            .spawn(move || writer_state.run(&received, sealer))
            .map_err(io("starting the writer for", dir))?;
        Ok(Self {
            commands: Some(commands),
            writer: Some(writer),
            failed,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// A handle that appends batches.
    ///
    /// # Panics
    /// Never: the sender exists until [`close`](Self::close), which consumes the store.
    #[must_use]
    pub fn appender(&self) -> Appender {
        Appender {
            commands: self
                .commands
                .clone()
                .expect("the store is open until close consumes it"),
            failed: self.failed.clone(),
        }
    }

    /// Stops taking batches once every appender is dropped, seals the open log and waits
    /// for the segments to be written.
    ///
    /// # Errors
    /// [`StoreError::Writer`] if the writer stopped with an error (its logs stay, and are
    /// sealed at the next start).
    pub fn close(mut self) -> Result<(), StoreError> {
        self.commands = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(Err(reason))) => Err(StoreError::Writer(reason)),
            Some(Err(_)) => Err(StoreError::Writer("the writer thread panicked".into())),
            _ => Ok(()),
        }
    }
}

impl Appender {
    /// Stores a batch of encoded reports; returns once they are synced to disk.
    ///
    /// # Errors
    /// [`AppendError::Busy`] when too many batches wait, [`AppendError::Closed`] while
    /// shutting down, [`AppendError::Failed`] if the log cannot be written.
    pub async fn append(&self, reports: Vec<Vec<u8>>) -> Result<(), AppendError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(AppendError::Failed(
                "an earlier write failed; restart the collector once the disk is fixed".into(),
            ));
        }
        let (done, receipt) = tokio::sync::oneshot::channel();
        match self.commands.try_send(Command { reports, done }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(AppendError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(AppendError::Closed),
        }
        match receipt.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(AppendError::Failed(reason)),
            Err(_) => Err(AppendError::Closed),
        }
    }
}

/// How many acknowledged reports a collector directory holds in write-ahead logs, not yet
/// sealed into segments (a collector is running, or stopped without sealing). Reads the
/// logs without taking the directory's lock.
///
/// # Errors
/// [`StoreError::Io`] if the directory or a log cannot be read.
pub fn pending_reports(dir: &Path) -> Result<usize, StoreError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { what, path, source }
    };
    let mut pending = 0;
    for entry in fs::read_dir(dir).map_err(io("reading", dir))? {
        let entry = entry.map_err(io("reading", dir))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if sequence_of(&name, "wal-", "log").is_some() {
            let path = entry.path();
            match fs::read(&path) {
                Ok(bytes) => pending += read_records(&bytes).0.len(),
                // Sealed and deleted while we looked.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        what: "reading",
                        path,
                        source,
                    });
                }
            }
        }
    }
    Ok(pending)
}

/// Refuses a directory that holds another protocol's reports; marks a new one.
fn check_marker(dir: &Path, protocol: &Protocol) -> Result<(), StoreError> {
    let path = dir.join(MARKER);
    let id = protocol.id().to_string();
    match fs::read_to_string(&path) {
        Ok(text) => {
            let found = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|marker| marker["protocol"].as_str().map(str::to_string))
                .unwrap_or_else(|| "(unreadable marker)".to_string());
            if found == id {
                Ok(())
            } else {
                Err(StoreError::OtherProtocol {
                    dir: dir.to_path_buf(),
                    found,
                    expected: id,
                })
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let marker = serde_json::json!({
                "format": "veil-ldp-collector",
                "protocol": id,
                "oracle": protocol.oracle().name().as_str(),
                "epsilon": protocol.epsilon().get(),
            });
            let temporary = dir.join(format!(".{MARKER}.tmp"));
            let write = || -> std::io::Result<()> {
                let mut file = File::create(&temporary)?;
                file.write_all(format!("{marker:#}\n").as_bytes())?;
                file.sync_all()?;
                fs::rename(&temporary, &path)?;
                sync_directory(dir)
            };
            write().map_err(|source| StoreError::Io {
                what: "writing",
                path,
                source,
            })
        }
        Err(source) => Err(StoreError::Io {
            what: "reading",
            path,
            source,
        }),
    }
}

fn wal_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("wal-{sequence:06}.log"))
}

fn segment_path(dir: &Path, sequence: u64, extension: &str) -> PathBuf {
    dir.join(format!("reports-{sequence:06}.{extension}"))
}

/// The sequence number in a file name `PREFIX-NNNNNN.EXT`.
fn sequence_of(name: &str, prefix: &str, extension: &str) -> Option<u64> {
    name.strip_prefix(prefix)?
        .strip_suffix(extension)?
        .strip_suffix('.')?
        .parse()
        .ok()
}

/// Seals every log an earlier run left; returns the next free sequence number.
fn recover(
    dir: &Path,
    sink: &dyn SegmentSink,
    rng: &mut (dyn CryptoRng + Send),
    events: &Events,
) -> Result<u64, StoreError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { what, path, source }
    };
    let extension = sink.extension();
    let mut logs = Vec::new();
    let mut last = 0;
    for entry in fs::read_dir(dir).map_err(io("reading", dir))? {
        let entry = entry.map_err(io("reading", dir))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(sequence) = sequence_of(&name, "wal-", "log") {
            logs.push(sequence);
            last = last.max(sequence);
        } else if let Some(sequence) = sequence_of(&name, "reports-", extension) {
            last = last.max(sequence);
        }
    }
    logs.sort_unstable();
    for sequence in logs {
        let wal = wal_path(dir, sequence);
        let segment = segment_path(dir, sequence, extension);
        let mut bytes = Vec::new();
        File::open(&wal)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(io("reading", &wal))?;
        let (mut reports, discarded_bytes) = read_records(&bytes);
        let count = reports.len();
        if !segment.exists() && !reports.is_empty() {
            shuffle(&mut reports, rng);
            sink.write_segment(&segment, &reports)
                .map_err(|reason| StoreError::Seal {
                    wal: wal.clone(),
                    reason,
                })?;
        }
        fs::remove_file(&wal).map_err(io("deleting", &wal))?;
        sync_directory(dir).map_err(io("syncing", dir))?;
        events(StoreEvent::Recovered {
            wal,
            reports: count,
            discarded_bytes,
        });
    }
    Ok(last + 1)
}

/// The whole records of a log, and how many bytes follow the last one.
fn read_records(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut reports = Vec::new();
    if bytes.len() < WAL_HEADER || &bytes[..WAL_MAGIC.len()] != WAL_MAGIC {
        return (reports, bytes.len());
    }
    let mut at = WAL_HEADER;
    while let Some(header) = bytes.get(at..at + RECORD_HEADER) {
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let checksum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let start = at + RECORD_HEADER;
        let Some(report) = usize::try_from(length)
            .ok()
            .and_then(|length| bytes.get(start..start + length))
        else {
            break;
        };
        if crc32fast::hash(report) != checksum {
            break;
        }
        reports.push(report.to_vec());
        at = start + report.len();
    }
    (reports, bytes.len() - at)
}

fn append_record(buffer: &mut Vec<u8>, report: &[u8]) {
    let length = u32::try_from(report.len()).unwrap_or(u32::MAX);
    buffer.extend_from_slice(&length.to_le_bytes());
    buffer.extend_from_slice(&crc32fast::hash(report).to_le_bytes());
    buffer.extend_from_slice(report);
}

/// Shuffles uniformly (Fisher–Yates with unbiased bounded draws).
fn shuffle(reports: &mut [Vec<u8>], rng: &mut (dyn CryptoRng + Send)) {
    for last in (1..reports.len()).rev() {
        let bound = u64::try_from(last + 1).unwrap_or(u64::MAX);
        let limit = u64::MAX - u64::MAX % bound;
        let draw = loop {
            let draw = rng.next_u64();
            if draw < limit {
                break draw % bound;
            }
        };
        reports.swap(last, usize::try_from(draw).unwrap_or(0));
    }
}

/// Syncs a directory, so that a rename or delete in it survives a crash.
fn sync_directory(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The open log.
struct Wal {
    file: File,
    path: PathBuf,
    sequence: u64,
    opened: Instant,
    length: u64,
}

impl Wal {
    fn create(dir: &Path, sequence: u64, short: u64) -> Result<Self, StoreError> {
        let path = wal_path(dir, sequence);
        let create = || -> std::io::Result<File> {
            let mut file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            file.write_all(WAL_MAGIC)?;
            file.write_all(&short.to_le_bytes())?;
            file.sync_all()?;
            sync_directory(dir)?;
            Ok(file)
        };
        let file = create().map_err(|source| StoreError::Io {
            what: "creating",
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            file,
            path,
            sequence,
            opened: Instant::now(),
            length: WAL_HEADER as u64,
        })
    }
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    short: u64,
    policy: StorePolicy,
    wal: Wal,
    next: u64,
    /// The open log's reports, kept to seal it without reading it back.
    reports: Vec<Vec<u8>>,
    failed: Arc<AtomicBool>,
}

/// A log to seal.
struct Seal {
    wal: PathBuf,
    sequence: u64,
    reports: Vec<Vec<u8>>,
}

struct Sealer {
    dir: PathBuf,
    sink: Arc<dyn SegmentSink>,
    rng: Mutex<Box<dyn CryptoRng + Send>>,
    events: Events,
}

impl Sealer {
    fn seal(&self, mut job: Seal) {
        let segment = segment_path(&self.dir, job.sequence, self.sink.extension());
        if let Ok(mut rng) = self.rng.lock() {
            shuffle(&mut job.reports, rng.as_mut());
        } else {
            (self.events)(StoreEvent::SealFailed {
                wal: job.wal,
                reason: "the shuffling generator is unusable".into(),
            });
            return;
        }
        let result = self
            .sink
            .write_segment(&segment, &job.reports)
            .and_then(|()| {
                fs::remove_file(&job.wal)
                    .and_then(|()| sync_directory(&self.dir))
                    .map_err(|error| format!("deleting {}: {error}", job.wal.display()))
            });
        (self.events)(match result {
            Ok(()) => StoreEvent::Sealed {
                segment,
                reports: job.reports.len(),
            },
            Err(reason) => StoreEvent::SealFailed {
                wal: job.wal,
                reason,
            },
        });
    }
}

impl Writer {
    fn run(mut self, commands: &Receiver<Command>, sealer: Sealer) -> Result<(), String> {
        let (seal_jobs, seal_received) = sync_channel::<Seal>(2);
        let sealer = std::thread::Builder::new()
            .name("veil-collect-sealer".into())
            .spawn(move || {
                while let Ok(job) = seal_received.recv() {
                    sealer.seal(job);
                }
            })
            .map_err(|error| format!("starting the sealer: {error}"))?;
        let result = self.serve(commands, &seal_jobs);
        // Seal what is open (an empty log is just deleted), then let the sealer finish.
        let last = self.take_open();
        let closing = match last {
            Some(job) if !job.reports.is_empty() => seal_jobs
                .send(job)
                .map_err(|_| "the sealer stopped".to_string()),
            Some(job) => fs::remove_file(&job.wal)
                .map_err(|error| format!("deleting {}: {error}", job.wal.display())),
            None => Ok(()),
        };
        drop(seal_jobs);
        let joined = sealer.join().map_err(|_| "the sealer panicked".to_string());
        result.and(closing).and(joined)
    }

    fn serve(
        &mut self,
        commands: &Receiver<Command>,
        seal_jobs: &SyncSender<Seal>,
    ) -> Result<(), String> {
        loop {
            let first = if self.reports.is_empty() {
                match commands.recv() {
                    Ok(command) => command,
                    Err(_) => return Ok(()),
                }
            } else {
                let left = self
                    .policy
                    .segment_age
                    .saturating_sub(self.wal.opened.elapsed());
                match commands.recv_timeout(left) {
                    Ok(command) => command,
                    Err(RecvTimeoutError::Timeout) => {
                        self.rotate(seal_jobs)?;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
            };
            let mut group = vec![first];
            let mut count = group[0].reports.len();
            while group.len() < GROUP_BATCHES && count < GROUP_REPORTS {
                match commands.try_recv() {
                    Ok(command) => {
                        count += command.reports.len();
                        group.push(command);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
            if self.reports.len() >= self.policy.segment_reports
                || (!self.reports.is_empty()
                    && self.wal.opened.elapsed() >= self.policy.segment_age)
            {
                self.rotate(seal_jobs)?;
            }
        }
    }

    /// Appends a group of batches to the log, syncs it, and answers each batch.
    fn commit(&mut self, group: Vec<Command>) {
        let mut buffer = Vec::new();
        for command in &group {
            for report in &command.reports {
                append_record(&mut buffer, report);
            }
        }
        let written = self
            .wal
            .file
            .write_all(&buffer)
            .and_then(|()| self.wal.file.sync_data());
        match written {
            Ok(()) => {
                self.wal.length += buffer.len() as u64;
                for command in group {
                    self.reports.extend(command.reports);
                    let _ = command.done.send(Ok(()));
                }
            }
            Err(error) => {
                // Take back what may have reached the file: the batches are refused, so
                // they must not be sealed later. Further batches are refused.
                let _ = self.wal.file.set_len(self.wal.length);
                let _ = self.wal.file.sync_data();
                self.failed.store(true, Ordering::Release);
                let reason = format!("writing {}: {error}", self.wal.path.display());
                for command in group {
                    let _ = command.done.send(Err(reason.clone()));
                }
            }
        }
    }

    /// Hands the open log to the sealer and opens the next one.
    fn rotate(&mut self, seal_jobs: &SyncSender<Seal>) -> Result<(), String> {
        let wal = Wal::create(&self.dir, self.next, self.short).map_err(|e| e.to_string())?;
        self.next += 1;
        let old = std::mem::replace(&mut self.wal, wal);
        let job = Seal {
            wal: old.path,
            sequence: old.sequence,
            reports: std::mem::take(&mut self.reports),
        };
        seal_jobs
            .send(job)
            .map_err(|_| "the sealer stopped".to_string())
    }

    fn take_open(&mut self) -> Option<Seal> {
        Some(Seal {
            wal: self.wal.path.clone(),
            sequence: self.wal.sequence,
            reports: std::mem::take(&mut self.reports),
        })
    }
}

#[cfg(test)]
mod tests;
