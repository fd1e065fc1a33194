//! The data directory (`--data.d`): listing and loading snapshot files at start, and writing them
//! durably (into a spare file and `fdatasync`, or temporary name, fsync, rename, directory fsync:
//! `core::spare` says which, through `DirFiles`) with the retention rules. The file format itself
//! is `core::snapshot`'s.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use log::{debug, error, warn};

use crate::core::chain::ChainState;
use crate::core::jobs::{Disk, DiskError};
use crate::core::node_state::NodeState;
use crate::core::snapshot::{self, parse_file_name};
use crate::core::spare::{self, Files, Spares, Sync};
use crate::core::startup::Directory;
use crate::limits::{SNAPSHOT_TAIL_PEEK_BYTES, SNAPSHOTS_KEPT_WHEN_FULL, SPARE_SETTLE_AT_READY};
use crate::shell::system_clock::unix_micros;

/// Snapshot files in `dir`, newest first, with their times.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let time = parse_file_name(name.to_str()?)?;
            Some((time, entry.path()))
        })
        .collect();
    files.sort_by(|a, b| b.cmp(a));
    Ok(files)
}

/// The last `SNAPSHOT_TAIL_PEEK_BYTES` of a file.
fn tail(file: &Path) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut handle = File::open(file)?;
    let length = handle.metadata()?.len();
    handle.seek(SeekFrom::Start(length.saturating_sub(SNAPSHOT_TAIL_PEEK_BYTES as u64)))?;
    let mut tail = Vec::with_capacity(SNAPSHOT_TAIL_PEEK_BYTES);
    handle.read_to_end(&mut tail)?;
    Ok(tail)
}

/// The data directory as start-up reads it (`core::startup`): its snapshot files and `node.json`.
pub struct StartupDir<'a>(pub &'a Path);

impl StartupDir<'_> {
    /// Creates the directory (private to its owner) if it is missing, removes what a crash left
    /// in the middle of a write, and places the files spare files hold (`core::spare::recover`).
    pub fn prepare(&self) -> io::Result<()> {
        create_private_dir(self.0)?;
        spare::recover(&mut DirFiles(self.0), unix_micros()).map_err(io::Error::other)
    }
}

impl Directory for StartupDir<'_> {
    fn snapshots(&mut self) -> Result<Vec<(u64, String)>, String> {
        let files = list(self.0).map_err(|e| format!("cannot list {}: {e}", self.0.display()))?;
        let names = files.into_iter().filter_map(|(time, file)| Some((time, file.file_name()?.to_str()?.to_string())));
        Ok(names.collect())
    }

    fn read(&mut self, name: &str) -> Result<Vec<u8>, String> {
        crate::shell::sys::read_file(&self.0.join(name)).map_err(|e| e.to_string())
    }

    fn tail(&mut self, name: &str) -> Result<Vec<u8>, String> {
        tail(&self.0.join(name)).map_err(|e| e.to_string())
    }

    fn node_state(&mut self) -> Result<Option<Vec<u8>>, String> {
        let file = self.0.join(STATE_FILE);
        match fs::read(&file) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", file.display())),
        }
    }
}

/// Writes `node.json` durably (fsync'd, and the directory fsync'd): start-up does it before the
/// node first speaks to a peer.
pub fn save_state(dir: &Path, state: &NodeState) -> io::Result<()> {
    let bytes = state.to_bytes();
    spare::write_atomically(&mut DirFiles(dir), STATE_FILE, &mut |file| file.write_all(&bytes))
}

/// The file of the node's state, beside the snapshots.
pub const STATE_FILE: &str = "node.json";

/// The file a server keeps locked (`flock`, exclusive) for as long as it runs on the directory,
/// holding its process id: two servers on one directory would both answer writes, and after a
/// restart one's would be gone.
pub const LOCK_FILE: &str = "lighthouse.lock";

/// The file start-up writes and removes to check that the directory takes files.
const PROBE_FILE: &str = ".lighthouse-probe";

/// Takes `dir` for this process: creates it if missing, locks `LOCK_FILE` in it and writes this
/// process's id there. The lock lasts as long as the returned file is open (the kernel lets go of
/// it when the process ends, however it ends). Another server holding it is an error naming its
/// process id.
pub fn lock(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    create_private_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    // On a directory that takes no files an existing lock file can still be locked: the probe
    // that follows then says what is wrong with the directory.
    let created = fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(&path);
    if let Err(e) = created
        && !path.is_file()
    {
        return Err(io::Error::new(e.kind(), format!("cannot create the lock file {}: {e}", path.display())));
    }
    // The lock is held through a read-only descriptor: a server that keeps a file open for
    // writing would stop an operator from remounting its disk read-only.
    let file = File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open the lock file {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = match holder.trim() {
                "" => "unknown".to_string(),
                pid => pid.to_string(),
            };
            let why = format!(
                "the data directory {} is in use by another server (process {holder}, which holds {}); one \
                 directory serves one server",
                dir.display(),
                path.display()
            );
            return Err(io::Error::new(io::ErrorKind::WouldBlock, why));
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(io::Error::new(e.kind(), format!("cannot lock {}: {e}", path.display())));
        }
    }
    // Best effort: the process id is for the operator's message; the lock is what counts.
    if let Err(e) = fs::write(&path, format!("{}\n", std::process::id())) {
        debug!("cannot write the process id into {}: {e}", path.display());
    }
    Ok(file)
}

/// Checks that `dir` takes a file: creates, writes, fsyncs and removes a probe file. A node that
/// cannot write its snapshots must not start and answer `/ready`.
pub fn probe(dir: &Path) -> io::Result<()> {
    use std::io::Write;
    let path = dir.join(PROBE_FILE);
    let attempt = || -> io::Result<()> {
        let mut file = create_private(&path)?;
        file.write_all(b"lighthouse\n")?;
        file.sync_all()?;
        fs::remove_file(&path)?;
        File::open(dir)?.sync_all()
    };
    attempt().map_err(|e| {
        let _ = fs::remove_file(&path);
        let why = format!("the data directory {} does not take a file ({}): {e}", dir.display(), path.display());
        io::Error::new(e.kind(), why)
    })
}

/// Creates `dir` and its missing parents; a directory this creates is readable by its owner only
/// (snapshots often hold addresses and secrets), whatever the umask.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

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
    /// The change files among the directory's files at start (by name), for the retention rules.
    pub change_files: Vec<String>,
    /// The directory's chain at start (`Startup::chain`).
    pub chain: ChainState,
}

/// The data directory as the writer thread sees it: where files go, and what it remembers between
/// jobs. That is the last file name it handed out (names always sort after every earlier one, even
/// when two snapshots fall in the same microsecond or the wall clock steps back), the files it may
/// remove, oldest first, each marked if it is a change file, so the retention rules cost no
/// directory listing, and the chain of its newest files (`core::chain`).
#[derive(Debug)]
pub struct DataDir {
    config: DiskConfig,
    last_micros: u64,
    files: VecDeque<(u64, String, bool)>,
    chain: ChainState,
    spares: Spares,
    /// The last `settle` failed: not tried again before the next write.
    settle_failed: bool,
    /// The thread that settles spares while the writer goes on (started at the first settle),
    /// and a copy of the settle it has, for the case it is gone.
    settler: Option<settler::Settler>,
    settling: Option<spare::Settle>,
}

impl DataDir {
    /// The writer's view of `config.dir`, which holds `files` (newest first, as `list` gives them).
    pub fn new(config: DiskConfig, files: &[(u64, PathBuf)]) -> DataDir {
        let last_micros = files.first().map_or(0, |(time, _)| *time);
        let removable = files.iter().rev().filter(|(_, file)| !config.damaged.contains(file));
        let changes: std::collections::HashSet<&str> = config.change_files.iter().map(String::as_str).collect();
        let files = removable
            .filter_map(|(time, file)| {
                let name = file.file_name()?.to_str()?.to_string();
                let change = changes.contains(name.as_str());
                Some((*time, name, change))
            })
            .collect();
        let names = config.dir.as_deref().and_then(|dir| DirFiles(dir).names().ok()).unwrap_or_default();
        let spares = Spares::new(&names);
        DataDir {
            last_micros,
            files,
            chain: config.chain,
            spares,
            settle_failed: false,
            settler: None,
            settling: None,
            config,
        }
    }

    /// Whether the writer has work of its own to do when idle (`start_settle`, `collect_settle`).
    pub fn unsettled(&self) -> bool {
        self.config.dir.is_some() && !self.settle_failed && (self.spares.unsettled() || self.spares.settling())
    }

    /// Whether no spare file is ready.
    pub fn spares_exhausted(&self) -> bool {
        self.spares.exhausted()
    }

    /// Whether the writer should start a settle now, after a write: half the spares are used.
    pub fn spares_low(&self) -> bool {
        self.spares.ready() <= SPARE_SETTLE_AT_READY
    }

    fn next_name(&mut self) -> String {
        self.last_micros = unix_micros().max(self.last_micros + 1);
        snapshot::file_name(self.last_micros)
    }

    /// Removes the files the retention rules no longer keep. The writer does it after it has
    /// reported the write that made them old: an unlink takes about 0.3 ms on ext4, and the
    /// answer to a commit need not wait for it.
    pub fn tidy(&mut self) {
        let Some(dir) = self.config.dir.clone() else { return };
        // Never beside a settle: it renames in the same directory.
        if self.spares.settling() {
            return;
        }
        // A file still held by a spare is among the newest, which retention keeps anyway; its
        // name is not in the directory yet.
        if self.files.iter().any(|(_, name, _)| self.spares.holds(name)) {
            return;
        }
        for expired in self.expired(unix_micros()) {
            let file = dir.join(expired);
            match fs::remove_file(&file) {
                Ok(()) => debug!("removed old snapshot {}", file.display()),
                Err(e) => warn!("cannot remove old snapshot {}: {e}", file.display()),
            }
        }
    }

    /// Takes out of the list the files the retention rules remove now: whole chains (a full
    /// snapshot and the change files after it), the oldest first, while more than `keep_count`
    /// files are kept or the chain's newest file is older than `keep_micros`; never the newest
    /// chain (the newest full snapshot and everything after it), and never a full snapshot
    /// without the change files that depend on it.
    fn expired(&mut self, now_micros: u64) -> Vec<String> {
        let cutoff = now_micros.saturating_sub(self.config.keep_micros);
        let keep_count = self.config.keep_count.max(1);
        let mut expired = Vec::new();
        loop {
            let chain = self.oldest_chain_len();
            if chain >= self.files.len() {
                break;
            }
            let newest_in_chain = self.files[chain - 1].0;
            if self.files.len() <= keep_count && newest_in_chain >= cutoff {
                break;
            }
            expired.extend(self.files.drain(..chain).map(|(_, name, _)| name));
        }
        expired
    }

    /// How many files the oldest chain of the list has: its first file and the change files
    /// that follow it (a chain whose full snapshot is gone is its change files alone).
    fn oldest_chain_len(&self) -> usize {
        1 + self.files.iter().skip(1).take_while(|(_, _, change)| *change).count()
    }
}

impl DataDir {
    /// Writes `name` (`what` it is, for the error) durably with `write`. On a full disk it frees
    /// what the retention rules allow, the older snapshot files, and tries once more: a store
    /// needs room for a few copies of itself, not for the `--keep-snapshots` it keeps by default.
    /// A version's file (`spare`) may go into a spare file; `node.json` never does.
    fn write_durably(
        &mut self,
        dir: &Path,
        name: &str,
        what: &str,
        spare: bool,
        write: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> Result<(), DiskError> {
        let mut attempt = |spares: &mut Spares| {
            let files = &mut DirFiles(dir);
            if spare {
                spare::write_new(files, spares, name, write)
            } else {
                spare::write_atomically(files, name, write)
            }
        };
        let mut written = attempt(&mut self.spares);
        if matches!(&written, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            // The whole write cycle waits for the settle under way (`core::spare::write_new`).
            self.collect_settle(true);
            written = attempt(&mut self.spares);
        }
        let written = match written {
            Err(e) if is_full(&e) && self.free_room(dir) > 0 => attempt(&mut self.spares),
            written => written,
        };
        written.map_err(|e| disk_error(&e, what, &dir.join(name)))
    }

    /// Removes the older snapshot files, keeping the newest `SNAPSHOTS_KEPT_WHEN_FULL` (and, as
    /// ever, the damaged ones). Returns how many it removed.
    fn free_room(&mut self, dir: &Path) -> usize {
        let mut removed = Vec::new();
        while self.files.len() > SNAPSHOTS_KEPT_WHEN_FULL && self.oldest_chain_len() < self.files.len() {
            let chain: Vec<_> = self.files.drain(..self.oldest_chain_len()).collect();
            for (_, name, _) in chain {
                let file = dir.join(&name);
                match fs::remove_file(&file) {
                    Ok(()) => removed.push(name),
                    Err(e) => {
                        warn!("the disk is full, and the old snapshot {} cannot be removed: {e}", file.display())
                    }
                }
            }
        }
        if !removed.is_empty() {
            if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
                warn!("cannot sync the data directory {}: {e}", dir.display());
            }
            warn!(
                "the disk of {} is full: removed {} older snapshot(s) ({}) to make room, and trying again",
                dir.display(),
                removed.len(),
                removed.join(", ")
            );
        }
        removed.len()
    }
}

impl Disk for DataDir {
    fn chain(&mut self) -> Option<&mut ChainState> {
        if self.config.dir.is_some() { Some(&mut self.chain) } else { None }
    }

    fn write_file(
        &mut self,
        change: bool,
        write: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> Result<PathBuf, DiskError> {
        let Some(dir) = self.config.dir.clone() else {
            return Err(DiskError { status: 503, message: "no data directory to write to".into() });
        };
        let name = self.next_name();
        let what = if change { "the change file" } else { "the snapshot" };
        self.settle_failed = false;
        self.collect_settle(false);
        self.write_durably(&dir, &name, what, true, write)?;
        self.files.push_back((self.last_micros, name.clone(), change));
        Ok(dir.join(name))
    }

    fn save_state(&mut self, state: &NodeState) -> Result<(), DiskError> {
        let Some(dir) = self.config.dir.clone() else { return Ok(()) };
        let bytes = state.to_bytes();
        self.write_durably(&dir, STATE_FILE, "this node's state", false, &mut |file| file.write_all(&bytes))
    }

    fn remove_snapshot(&mut self, file: &Path) {
        // A file still in a spare gets its name first, so that it is removed for good.
        if file.file_name().and_then(|n| n.to_str()).is_some_and(|name| self.spares.holds(name)) {
            self.settle();
        }
        let removed = fs::remove_file(file).and_then(|()| match file.parent() {
            Some(dir) => File::open(dir)?.sync_all(),
            None => Ok(()),
        });
        if let Err(e) = removed {
            error!("cannot remove the superseded snapshot {}: {e}", file.display());
        }
        let name = file.file_name().and_then(|n| n.to_str());
        self.files.retain(|(_, n, _)| Some(n.as_str()) != name);
        self.chain.forget();
    }
}

/// The data directory's files for `core::spare`, as system calls.
pub struct DirFiles<'a>(pub &'a Path);

impl Files for DirFiles<'_> {
    fn names(&mut self) -> io::Result<Vec<String>> {
        let entries = fs::read_dir(self.0)?.filter_map(Result::ok);
        Ok(entries.filter_map(|entry| entry.file_name().into_string().ok()).collect())
    }

    fn read(&mut self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.0.join(name))
    }

    fn write(
        &mut self,
        name: &str,
        create: bool,
        sync: Sync,
        write: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let path = self.0.join(name);
        let mut file = if create { create_private(&path)? } else { fs::OpenOptions::new().write(true).open(&path)? };
        write(&mut file)?;
        match sync {
            Sync::Later => Ok(()),
            Sync::Data => file.sync_data(),
            Sync::All => file.sync_all(),
        }
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        File::open(self.0.join(name))?.sync_all()
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.0.join(from), self.0.join(to))
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        fs::remove_file(self.0.join(name))
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        File::open(self.0)?.sync_all()
    }
}

/// True for the errors of a full disk or an exhausted quota.
fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// The answer a write waiting for `file` (`what` it holds) gets when it cannot be written: 507
/// when the disk is full, 503 otherwise (read-only, permissions, an I/O error).
fn disk_error(e: &io::Error, what: &str, file: &Path) -> DiskError {
    DiskError {
        status: if is_full(e) { 507 } else { 503 },
        message: format!("cannot write {what} {}: {e}", file.display()),
    }
}

/// Creates a file readable and writable by its owner only, whatever the umask: snapshots often
/// hold addresses and secrets.
fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

mod settler;
#[cfg(test)]
mod tests;
