//! How a version's file reaches the disk durably without a directory fsync on the commit's path.
//!
//! A new file needs its directory entry made durable (an fsync of the directory: a journal commit
//! on ext4), which costs about three times a write and `fdatasync` into a file that exists. So
//! the writer keeps `SPARE_FILES` **spare files**: empty files named `.spare-N`, made between
//! commits, each created, fsync'd and its directory fsync'd before it is used, so its entry is
//! durable. A file (a change file or a full snapshot) is written into a spare from its start and
//! `fdatasync`'d (the size it grows to is part of what `fdatasync` makes durable), and only then
//! reported, so its commit is answered once its bytes are durable under the spare's name. Later,
//! off the commit's path (`settle`), the spare is renamed to the file's own name
//! (`YYYYMMDDTHHMMSS.ffffff.json`) and the directory fsync'd, and new spares are made, all under
//! one directory fsync. The server does that disk work (`run`) on a thread of its own while the
//! writer goes on writing into the spares still ready (`begin` and `finish` on the writer).
//!
//! A spare is recognised by its contents at start (`recover`): empty, it is a spare, fsync'd
//! with the directory so that the writer takes it as ready; holding a whole file (its `file-sha1` matches), it holds
//! a version that was written, maybe answered, and is renamed to a file name after every other
//! file's, in the order of the versions the spares hold (a version's change file before a full
//! snapshot of it: the order they were written in); anything else is a write cut short,
//! never answered (its answer waited for `fdatasync`), like a temporary file of the write cycle
//! before: it is removed with a warning, and blocks nothing. Pending spares are always newer
//! than every named file: a file written without a spare (`write_new`) first renames the pending
//! spares and fsyncs the directory.
//!
//! The real directory (`shell::data_dir`) and the simulated one (`tests/simulation/disk.rs`)
//! carry out these steps through `Files`, so the simulation's crashes cut the same sequence of
//! operations the server makes.

use std::io;

use log::{info, warn};

use crate::core::change_file;
use crate::core::snapshot::{self, check_file_sha1};
use crate::limits::SPARE_FILES;

/// The file operations of a data directory, by name: the real one's are system calls, the
/// simulation's model what a crash keeps (a file's bytes once synced, a name once the directory
/// is synced).
pub trait Files {
    /// The names in the directory.
    fn names(&mut self) -> io::Result<Vec<String>>;
    /// A file's bytes.
    fn read(&mut self, name: &str) -> io::Result<Vec<u8>>;
    /// Writes `name` from its start with `write`, then syncs it as `sync` says: `create` makes it
    /// new (empty, private to its owner), else it exists (a spare).
    fn write(
        &mut self,
        name: &str,
        create: bool,
        sync: Sync,
        write: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> io::Result<()>;
    /// Syncs a file (`fsync`).
    fn sync(&mut self, name: &str) -> io::Result<()>;
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries durable (fsync of the directory).
    fn sync_dir(&mut self) -> io::Result<()>;
}

/// How a file written is synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// Not yet (`Files::sync` follows).
    Later,
    /// `fdatasync`: the bytes and the size, which is all a reader needs.
    Data,
    /// `fsync`.
    All,
}

/// The prefix of a spare's name: a dot-name, so listings of versions (and `ls`) pass it over.
pub const SPARE_PREFIX: &str = ".spare-";

/// The number in a spare's name, or `None` if the name is not a spare's.
pub fn spare_number(name: &str) -> Option<u64> {
    name.strip_prefix(SPARE_PREFIX)?.parse().ok()
}

/// The writer's spares: the ones ready (their entries durable, empty), and the ones holding a
/// file not yet renamed to its name.
#[derive(Debug, Default)]
pub struct Spares {
    ready: Vec<String>,
    /// (spare, the file's name), oldest first.
    pending: Vec<(String, String)>,
    /// Spares a write into failed and that could not be removed: what they hold was never
    /// answered, and may be whole (a failed `fdatasync`), so no other file is written until they
    /// are gone (start-up would place them after it).
    failed: Vec<String>,
    next: u64,
    /// A settle is under way (`begin` without `finish`), and the names of the files it renames.
    settling: bool,
    in_flight: Vec<String>,
}

impl Spares {
    /// Spares for a directory holding `names` after `recover`, which leaves only empty spares,
    /// synced: they are ready, and new ones are numbered after them.
    pub fn new(names: &[String]) -> Spares {
        let mut ready: Vec<String> = names.iter().filter(|n| spare_number(n).is_some()).cloned().collect();
        ready.sort_by_key(|n| std::cmp::Reverse(spare_number(n)));
        let next = names.iter().filter_map(|n| spare_number(n)).max().map_or(0, |n| n + 1);
        Spares { ready, next, ..Spares::default() }
    }

    /// Whether `settle` has work: a file to rename, or spares to make.
    pub fn unsettled(&self) -> bool {
        !self.pending.is_empty() || self.ready.len() < SPARE_FILES
    }

    /// Whether no spare is ready (the next file would take the whole write cycle).
    pub fn exhausted(&self) -> bool {
        self.ready.is_empty()
    }

    /// Whether `name` is still held by a spare (or being renamed by a settle under way).
    pub fn holds(&self, name: &str) -> bool {
        self.pending.iter().any(|(_, n)| n == name) || self.in_flight.iter().any(|n| n == name)
    }

    /// Whether a settle is under way (`begin` without `finish`).
    pub fn settling(&self) -> bool {
        self.settling
    }

    /// How many spares are ready.
    pub fn ready(&self) -> usize {
        self.ready.len()
    }
}

/// Writes the new file `name` durably with `write`: into a ready spare when there is one
/// (written and `fdatasync`'d; renamed later by `settle`), else by the write cycle (pending
/// spares renamed first, then a temporary file written, fsync'd, renamed, the directory
/// fsync'd). Either way the file's bytes survive `kill -9` and power loss once this returns.
/// The whole write cycle waits for a settle under way, which may rename older files: it fails
/// with `ErrorKind::WouldBlock` (nothing written), and the caller `finish`es the settle and
/// calls again.
pub fn write_new(
    files: &mut dyn Files,
    spares: &mut Spares,
    name: &str,
    write: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
) -> io::Result<()> {
    remove_failed(files, spares)?;
    if let Some(spare) = spares.ready.pop() {
        match files.write(&spare, false, Sync::Data, write) {
            Ok(()) => {
                spares.pending.push((spare, name.to_string()));
                return Ok(());
            }
            Err(e) => {
                warn!("cannot write into the spare file {spare} ({e}): writing {name} by the whole write cycle");
                spares.failed.push(spare);
                remove_failed(files, spares)?;
            }
        }
    }
    if spares.settling {
        return Err(io::Error::new(io::ErrorKind::WouldBlock, "a settle of the spare files is under way"));
    }
    if !spares.pending.is_empty() {
        rename_pending(files, spares)?;
        files.sync_dir()?;
    }
    write_atomically(files, name, write)
}

/// Writes `name` so that it is there whole or not at all: under a temporary name, fsync'd,
/// renamed into place, and the directory fsync'd.
pub fn write_atomically(
    files: &mut dyn Files,
    name: &str,
    write: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
) -> io::Result<()> {
    let temporary = snapshot::temporary_name(name);
    let written = files.write(&temporary, true, Sync::All, write).and_then(|()| files.rename(&temporary, name));
    if let Err(e) = written {
        // Best effort: the temporary name is never loaded, and start-up removes leftovers.
        let _ = files.remove(&temporary);
        return Err(e);
    }
    files.sync_dir()
}

/// Removes the spares whose write failed (their answer was an error, so they must never load).
pub fn remove_failed(files: &mut dyn Files, spares: &mut Spares) -> io::Result<()> {
    while let Some(spare) = spares.failed.last() {
        files.remove(spare)?;
        spares.failed.pop();
    }
    Ok(())
}

/// Renames the files held by spares to their names, oldest first (the caller fsyncs the
/// directory). A rename that fails leaves that spare and the ones after it pending, and is an
/// error: no file may be written under its name while an older one is still in a spare, since
/// start-up places spares after every named file.
fn rename_pending(files: &mut dyn Files, spares: &mut Spares) -> io::Result<()> {
    while let Some((spare, name)) = spares.pending.first() {
        files.rename(spare, name)?;
        spares.pending.remove(0);
    }
    Ok(())
}

/// The work the writer does off the commits' path: renames the files held by spares and makes
/// spares up to `SPARE_FILES`, under one journal commit (`begin`, `run` and `finish` back to back;
/// the server runs `run` on another thread while the writer goes on writing into the spares
/// still ready). Spares a write failed into are removed first.
pub fn settle(files: &mut dyn Files, spares: &mut Spares) -> io::Result<()> {
    remove_failed(files, spares)?;
    let Some(mut work) = begin(spares) else { return Ok(()) };
    let result = run(files, &mut work);
    finish(spares, work, result)
}

/// The disk work of one settle, taken from the writer's `Spares` by `begin` and handed back to
/// `finish`; `run` does it.
#[derive(Debug, Clone)]
pub struct Settle {
    /// (spare, the file's name), oldest first, and how many of them `run` renamed.
    pending: Vec<(String, String)>,
    renamed: usize,
    /// The spares to make, and how many `run` made and synced (all or none).
    make: Vec<String>,
    made: bool,
}

/// Starts a settle on the writer (nothing on disk): takes the pending spares and the names of
/// the spares to make. `None` when there is nothing to do, a settle is already under way, or a
/// spare a write failed into is still there (the next write removes it first).
pub fn begin(spares: &mut Spares) -> Option<Settle> {
    if spares.settling || !spares.unsettled() || !spares.failed.is_empty() {
        return None;
    }
    let pending = std::mem::take(&mut spares.pending);
    let make = (spares.ready.len()..SPARE_FILES)
        .map(|_| {
            spares.next += 1;
            format!("{SPARE_PREFIX}{}", spares.next - 1)
        })
        .collect();
    spares.settling = true;
    spares.in_flight = pending.iter().map(|(_, name)| name.clone()).collect();
    Some(Settle { pending, renamed: 0, make, made: false })
}

/// The disk work of a settle: renames the files held by spares to their names, oldest first,
/// then creates the new spares; every change is made first, then each new spare is fsync'd (the
/// first fsync commits them all) and the directory. It touches only the spares `begin` took and
/// the names it gave, so the writer may write into other ready spares meanwhile.
pub fn run(files: &mut dyn Files, work: &mut Settle) -> io::Result<()> {
    while let Some((spare, name)) = work.pending.get(work.renamed) {
        files.rename(spare, name)?;
        work.renamed += 1;
    }
    for spare in &work.make {
        files.write(spare, true, Sync::Later, &mut |_| Ok(()))?;
    }
    for spare in &work.make {
        files.sync(spare)?;
    }
    files.sync_dir()?;
    work.made = true;
    Ok(())
}

/// Ends a settle on the writer, with what `run` returned: the new spares become ready; on an
/// error the files not renamed go back in front of the pending ones (they are older), and the
/// spares made are not used (their entries may not be durable); it is tried again later.
pub fn finish(spares: &mut Spares, work: Settle, result: io::Result<()>) -> io::Result<()> {
    spares.settling = false;
    spares.in_flight.clear();
    let mut pending: Vec<(String, String)> = work.pending.into_iter().skip(work.renamed).collect();
    pending.append(&mut spares.pending);
    spares.pending = pending;
    if result.is_ok() && work.made {
        spares.ready.extend(work.make);
    }
    result
}

/// What start-up does with what a stopped server left in the middle of its writes: removes
/// temporary files (never loaded), places each spare holding a whole file under a name after
/// every file's (`after_micros` and on, in the order of the versions they hold, the change file
/// of a version before a full snapshot of it: the order they were written in), fsyncs the empty
/// ones (the writer takes them as ready), removes the rest (see the module), and fsyncs the
/// directory. An error is the directory's (permissions,
/// I/O), and stops the start.
pub fn recover(files: &mut dyn Files, after_micros: u64) -> Result<(), String> {
    let names = files.names().map_err(|e| format!("cannot list the data directory: {e}"))?;
    for temporary in names.iter().filter(|n| n.starts_with('.') && n.ends_with(".json.tmp")) {
        if let Err(e) = files.remove(temporary) {
            warn!("cannot remove the unfinished snapshot {temporary}: {e}");
        }
    }
    let spares: Vec<&String> = names.iter().filter(|n| spare_number(n).is_some()).collect();
    if spares.is_empty() {
        return Ok(());
    }
    let newest = names.iter().filter_map(|n| snapshot::parse_file_name(n)).max().unwrap_or(0);
    let mut whole = Vec::new();
    for spare in spares {
        let bytes = files.read(spare).map_err(|e| format!("cannot read the spare file {spare}: {e}"))?;
        let peeked = change_file::peek(tail(&bytes));
        match peeked {
            _ if bytes.is_empty() => {
                files.sync(spare).map_err(|e| format!("cannot sync the spare file {spare}: {e}"))?;
                continue;
            }
            Some(peeked) if matches!(check_file_sha1(&bytes), Ok(true)) => {
                // Two files of one version are its change file and then a full snapshot of it
                // (`chain::Writing::Compact`): no change file of a version follows a full one.
                // Placed the other way round, the change file would start a chain of its own
                // after the full snapshot, the next change files would apply to it, and once
                // retention removed the older chain its base is gone and none of them loads.
                let full = peeked.base.is_none();
                let key = (peeked.term, peeked.version.sequence, peeked.version.checksum.0, full);
                whole.push((key, spare.clone()));
                continue;
            }
            _ => warn!(
                "the spare file {spare} holds a write cut short ({} bytes, not a whole file): it was never \
                 answered (an answer waits until the file is synced), and is removed",
                bytes.len()
            ),
        }
        files.remove(spare).map_err(|e| format!("cannot remove the spare file {spare}: {e}"))?;
    }
    whole.sort();
    for (micros, (_, spare)) in (after_micros.max(newest + 1)..).zip(whole) {
        let name = snapshot::file_name(micros);
        files.rename(&spare, &name).map_err(|e| format!("cannot rename the spare file {spare} to {name}: {e}"))?;
        info!("the spare file {spare} holds a whole file, written before the server stopped: now {name}");
    }
    files.sync_dir().map_err(|e| format!("cannot sync the data directory: {e}"))
}

/// The last bytes of a file, where its version stands.
fn tail(bytes: &[u8]) -> &[u8] {
    &bytes[bytes.len().saturating_sub(crate::limits::SNAPSHOT_TAIL_PEEK_BYTES)..]
}

#[cfg(test)]
mod tests;
