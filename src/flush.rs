//! The worker threads: the only places the server writes to disk or does long computations.
//!
//! Like Redis's `bio.c`, the event loop hands them immutable work through queues and goes on
//! serving; each thread reports back through one channel and wakes the loop with a `mio::Waker`.
//! The writer thread seals and writes snapshots: a job carries the new store as a shared tree
//! (one reference count, no copy), so serializing and hashing a large store happen there, never
//! on the loop thread. The decoder thread parses and checks copies sent by peers, so a large
//! `PUT /copy` does not stall the loop either, and never waits behind an fsync.
//!
//! A snapshot is written to a temporary name, fsync'd, renamed into place, and the directory
//! fsync'd: after the report, the file survives `kill -9` and power loss.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use log::{debug, error, warn};

use crate::clock::unix_micros;
use crate::snapshot::{self, DecodeError, NodeJson, Sealed};
use crate::value::Value;
use crate::version::Lineage;

/// Where snapshots go and how long they are kept.
#[derive(Debug, Clone)]
pub struct DiskConfig {
    /// `--data.d`; without it the store lives in memory only and jobs only compute checksums.
    pub dir: Option<PathBuf>,
    /// `--rm-limit` in microseconds.
    pub keep_micros: u64,
    /// `--keep-snapshots`: the most snapshot files kept.
    pub keep_count: usize,
    /// Files that could not be loaded at start: never removed, so an operator can look at them.
    pub damaged: Vec<PathBuf>,
}

/// Work for the worker threads.
#[derive(Debug)]
pub enum Job {
    /// Seal a commit at `sequence`, extending `parent`: render and hash the store, and with a data
    /// directory write it.
    Seal { id: u64, sequence: u64, root: Value, parent: Lineage, node: NodeJson },
    /// Write a store that is already sealed (a copy taken from a peer) to the data directory.
    Write { id: u64, body: Arc<[u8]>, node: NodeJson },
    /// Remove a snapshot that must never be loaded (a commit that lost to a newer store), durably.
    Remove { id: u64, file: PathBuf },
    /// Parse a copy sent by a peer, check its checksum and render its canonical body.
    Decode { id: u64, body: Vec<u8> },
    /// Look up a peer's host name (for the event loop's peer links; a lookup may block).
    Resolve { address: String },
}

/// The worker threads, one queue each, so that no kind of job waits behind another: a copy is not
/// checked behind an fsync, and a slow DNS lookup delays neither.
#[derive(Debug, Clone, Copy)]
enum Queue {
    Writer,
    Decoder,
    Resolver,
}

impl Job {
    fn queue(&self) -> Queue {
        match self {
            Job::Seal { .. } | Job::Write { .. } | Job::Remove { .. } => Queue::Writer,
            Job::Decode { .. } => Queue::Decoder,
            Job::Resolve { .. } => Queue::Resolver,
        }
    }
}

/// A finished job, reported back to the loop. `file` is the snapshot written (`None` without a
/// data directory); `elapsed_us` is how long the job took, for the latency histogram.
#[derive(Debug)]
pub enum Done {
    Sealed {
        id: u64,
        sealed: Sealed,
        file: Result<Option<PathBuf>, DiskError>,
        elapsed_us: u64,
    },
    Written {
        id: u64,
        file: Result<Option<PathBuf>, DiskError>,
        elapsed_us: u64,
    },
    Decoded {
        id: u64,
        result: Result<Sealed, DecodeError>,
    },
    /// The file is gone, and the directory fsync'd (or the removal failed and was logged).
    Removed {
        id: u64,
    },
    Resolved {
        address: String,
        result: Result<std::net::SocketAddr, String>,
    },
}

/// A snapshot that could not be written. The answer to the waiting commit says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskError {
    /// 507 when the disk is full, 503 otherwise (read-only, permissions, I/O error).
    pub status: u16,
    pub message: String,
}

impl DiskError {
    fn from_io(e: &io::Error, file: &Path) -> DiskError {
        let status =
            if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) { 507 } else { 503 };
        DiskError { status, message: format!("cannot write the snapshot {}: {e}", file.display()) }
    }
}

/// Runs one job to completion. Pure apart from the disk, so simulations call it directly.
pub fn run(job: Job, disk: &DiskConfig, names: &mut WriterState) -> Option<Done> {
    let started = Instant::now();
    let elapsed_us = || u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    match job {
        Job::Seal { id, sequence, root, parent, mut node } => {
            let sealed = snapshot::seal(root, sequence, Some(&parent));
            // The node's own commits include this one, which only now has its checksum.
            node.add_mine(sealed.copy.version);
            let file = write(disk, names, &node, &sealed.body);
            Some(Done::Sealed { id, sealed, file, elapsed_us: elapsed_us() })
        }
        Job::Write { id, body, node } => {
            let file = write(disk, names, &node, &body);
            Some(Done::Written { id, file, elapsed_us: elapsed_us() })
        }
        Job::Remove { id, file } => {
            let removed = fs::remove_file(&file).and_then(|()| match file.parent() {
                Some(dir) => File::open(dir)?.sync_all(),
                None => Ok(()),
            });
            if let Err(e) = removed {
                error!("cannot remove the superseded snapshot {}: {e}", file.display());
            }
            names.forget(&file);
            Some(Done::Removed { id })
        }
        Job::Decode { id, body } => Some(Done::Decoded { id, result: snapshot::parse_copy(&body) }),
        Job::Resolve { address } => {
            use std::net::ToSocketAddrs;
            let result = match address.to_socket_addrs() {
                Ok(mut found) => found.next().ok_or_else(|| "no address found".to_string()),
                Err(e) => Err(e.to_string()),
            };
            Some(Done::Resolved { address, result })
        }
    }
}

/// Writes a snapshot into the data directory, if there is one, and applies the retention rules.
fn write(
    disk: &DiskConfig,
    names: &mut WriterState,
    node: &NodeJson,
    body: &[u8],
) -> Result<Option<PathBuf>, DiskError> {
    let Some(dir) = &disk.dir else { return Ok(None) };
    let name = names.next_name();
    write_snapshot(dir, &name, node, body)?;
    names.files.push_back((names.last_micros, name));
    for expired in names.expired(unix_micros(), disk) {
        let file = dir.join(expired);
        match fs::remove_file(&file) {
            Ok(()) => debug!("removed old snapshot {}", file.display()),
            Err(e) => warn!("cannot remove old snapshot {}: {e}", file.display()),
        }
    }
    Ok(Some(dir.join(&names.files.back().expect("pushed above").1)))
}

/// Writes, fsyncs and renames one snapshot, then fsyncs the directory.
fn write_snapshot(dir: &Path, name: &str, node: &NodeJson, body: &[u8]) -> Result<(), DiskError> {
    let temporary = dir.join(snapshot::temporary_name(name));
    let finished = dir.join(name);
    let attempt = || -> io::Result<()> {
        let file = create_private(&temporary)?;
        snapshot::encode(&file, node, body)?;
        file.sync_all()?;
        fs::rename(&temporary, &finished)?;
        File::open(dir)?.sync_all()
    };
    attempt().map_err(|e| {
        // Best effort: the temporary name is never loaded, and start-up removes leftovers.
        let _ = fs::remove_file(&temporary);
        DiskError::from_io(&e, &finished)
    })
}

/// Creates a file readable and writable by its owner only, whatever the umask: snapshots often
/// hold addresses and secrets.
fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// What the writer remembers between jobs: the last file name it handed out (names always sort
/// after every earlier one, even when two snapshots fall in the same microsecond or the wall clock
/// steps back), and the snapshot files it may remove, oldest first, so the retention rules cost
/// no directory listing.
#[derive(Debug, Default)]
pub struct WriterState {
    last_micros: u64,
    files: VecDeque<(u64, String)>,
}

impl WriterState {
    /// The state for a directory holding `files` (newest first, as `snapshot::list` gives them),
    /// of which `damaged` are never removed.
    pub fn after(files: &[(u64, PathBuf)], damaged: &[PathBuf]) -> WriterState {
        let removable = files.iter().rev().filter(|(_, file)| !damaged.contains(file));
        WriterState {
            last_micros: files.first().map_or(0, |(time, _)| *time),
            files: removable
                .filter_map(|(time, file)| Some((*time, file.file_name()?.to_str()?.to_string())))
                .collect(),
        }
    }

    pub fn next_name(&mut self) -> String {
        self.last_micros = unix_micros().max(self.last_micros + 1);
        snapshot::file_name(self.last_micros)
    }

    /// Takes out of the list the files the retention rules remove now: past the newest
    /// `keep_count`, or older than `keep_micros`; never the newest one.
    fn expired(&mut self, now_micros: u64, disk: &DiskConfig) -> Vec<String> {
        let cutoff = now_micros.saturating_sub(disk.keep_micros);
        let mut expired = Vec::new();
        while self.files.len() > 1
            && (self.files.len() > disk.keep_count.max(1) || self.files.front().is_some_and(|(t, _)| *t < cutoff))
        {
            expired.push(self.files.pop_front().expect("more than one").1);
        }
        expired
    }

    /// Forgets a file removed for another reason (a commit that lost).
    fn forget(&mut self, file: &Path) {
        let name = file.file_name().and_then(|n| n.to_str());
        self.files.retain(|(_, n)| Some(n.as_str()) != name);
    }
}

/// The loop's handle on the worker threads.
pub struct Workers {
    /// One sender per `Queue`, in its order; empty after shutdown.
    queues: Vec<Sender<Job>>,
    done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts the writer, decoder and resolver threads. `wake` is called after each report (the
    /// loop's `mio::Waker`).
    pub fn spawn(disk: DiskConfig, wake: Arc<dyn Fn() + Send + Sync>) -> io::Result<Workers> {
        let (done_sender, done) = mpsc::channel::<Done>();
        let files = match &disk.dir {
            Some(dir) => snapshot::list(dir)?,
            None => Vec::new(),
        };
        let mut threads = Vec::new();
        let mut start = |name: &str| -> io::Result<Sender<Job>> {
            let (sender, receiver) = mpsc::channel::<Job>();
            let (disk, done_sender, wake, files) = (disk.clone(), done_sender.clone(), wake.clone(), files.clone());
            threads.push(thread::Builder::new().name(name.into()).spawn(move || {
                crate::sys::lower_thread_priority();
                let mut names = WriterState::after(&files, &disk.damaged);
                for job in receiver {
                    if let Some(done) = run(job, &disk, &mut names) {
                        if done_sender.send(done).is_err() {
                            break;
                        }
                        wake();
                    }
                }
            })?);
            Ok(sender)
        };
        let queues = vec![start("lighthouse-writer")?, start("lighthouse-decoder")?, start("lighthouse-resolver")?];
        Ok(Workers { queues, done, threads })
    }

    pub fn submit(&self, job: Job) {
        let sender = self.queues.get(job.queue() as usize).expect("no jobs after shutdown");
        sender.send(job).expect("the worker threads outlive the loop");
    }

    /// A finished job, if one has been reported.
    pub fn try_done(&self) -> Option<Done> {
        self.done.try_recv().ok()
    }

    /// Lets the threads finish the jobs they have, then joins them.
    pub fn shutdown(&mut self) {
        self.queues.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    pub fn is_shut_down(&self) -> bool {
        self.queues.is_empty()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lighthouse-flush-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_seal_job_writes_a_file_that_loads_back() {
        let dir = temp_dir("write");
        let disk = DiskConfig { dir: Some(dir.clone()), keep_micros: u64::MAX, keep_count: 20, damaged: Vec::new() };
        let root = Value::parse(br#"{"a": [1, 2]}"#).unwrap();
        let parent = Lineage::of(crate::version::Version::initial());
        let job = Job::Seal { id: 7, sequence: 1, root: root.clone(), parent, node: NodeJson::default() };
        let Some(Done::Sealed { id, sealed, file, .. }) = run(job, &disk, &mut WriterState::default()) else {
            panic!("a seal job reports");
        };
        assert_eq!((id, sealed.copy.version.checksum), (7, crate::version::Checksum::of(&root)));
        let file = file.unwrap().unwrap();
        let (loaded_file, snapshot) = snapshot::load_newest(&dir).unwrap().unwrap();
        assert_eq!(loaded_file, file);
        assert_eq!(snapshot.sealed.copy.root, root);
        assert_eq!(snapshot.sealed.copy.version, sealed.copy.version);
        assert_eq!(snapshot.sealed.body, sealed.body);
        fs::remove_dir_all(dir).unwrap();
    }

    /// Seals `count` commits on an empty store with `disk`'s rules, starting from what is in the directory.
    fn commit_many(disk: &DiskConfig, count: u64) {
        let dir = disk.dir.as_ref().unwrap();
        let mut names = WriterState::after(&snapshot::list(dir).unwrap(), &disk.damaged);
        let mut parent = Lineage::of(crate::version::Version::initial());
        for sequence in 1..=count {
            let (root, node) = (Value::default(), NodeJson::default());
            let job = Job::Seal { id: sequence, sequence, root, parent: parent.clone(), node };
            let Some(Done::Sealed { sealed, .. }) = run(job, disk, &mut names) else { panic!() };
            parent = sealed.copy.lineage;
        }
    }

    #[test]
    fn expired_snapshots_are_removed_but_never_the_newest() {
        let dir = temp_dir("retention");
        let old = snapshot::file_name(1_000_000);
        fs::write(dir.join(&old), b"{}").unwrap();
        let disk = DiskConfig { dir: Some(dir.clone()), keep_micros: 1, keep_count: 20, damaged: Vec::new() };
        commit_many(&disk, 2);
        let left = snapshot::list(&dir).unwrap();
        assert_eq!(left.len(), 1, "only the newest is kept: {left:?}");
        assert_eq!(snapshot::load_newest(&dir).unwrap().unwrap().1.sealed.copy.version.sequence, 2);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn at_most_keep_count_snapshots_stay_and_damaged_files_are_never_removed() {
        let dir = temp_dir("count");
        let damaged = dir.join(snapshot::file_name(1_000_000));
        fs::write(&damaged, b"{not json").unwrap();
        let disk = DiskConfig { dir: Some(dir.clone()), keep_micros: u64::MAX, keep_count: 3, damaged: vec![damaged] };
        commit_many(&disk, 10);
        let left: Vec<u64> = snapshot::list(&dir).unwrap().iter().map(|(time, _)| *time).collect();
        assert_eq!(left.len(), 4, "three snapshots and the damaged file: {left:?}");
        assert_eq!(*left.last().unwrap(), 1_000_000, "the damaged file stays");
        assert_eq!(snapshot::load_newest(&dir).unwrap().unwrap().1.sealed.copy.version.sequence, 10);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn snapshot_files_are_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("private");
        let disk = DiskConfig { dir: Some(dir.clone()), keep_micros: u64::MAX, keep_count: 3, damaged: Vec::new() };
        commit_many(&disk, 1);
        let (_, file) = snapshot::list(&dir).unwrap().remove(0);
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let nested = dir.join("a/b");
        snapshot::create_private_dir(&nested).unwrap();
        assert_eq!(fs::metadata(&nested).unwrap().permissions().mode() & 0o777, 0o700);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn names_always_increase() {
        let mut names = WriterState::after(&[(4_000_000_000_000_000, PathBuf::from("x"))], &[]);
        let (a, b) = (names.next_name(), names.next_name());
        assert!(b > a);
    }
}
