//! A data directory's files in memory, as a crash leaves them: the server's file operations
//! (`core::spare::Files`) on names and files, where a file's bytes are durable only once synced
//! (`fsync`, `fdatasync`) and a name (created, renamed, removed) only once the directory is
//! synced. A process killed (`kill -9`) keeps everything done; a power loss keeps only what was
//! durable. A crash may also cut a job short after some operations: the operation cut writes
//! half its bytes, and nothing after it happens.

use std::collections::{BTreeMap, HashMap};
use std::io;

use lighthouse::core::spare::{Files, Sync};

use super::disk::DiskFault;

#[derive(Debug, Clone, Default)]
struct Inode {
    bytes: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct SimFiles {
    /// Names as the running process sees them, and as they survive a power loss.
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    /// Operations left before the process dies (`None`: it lives on).
    ops_left: Option<u32>,
    /// A failing disk: a full one refuses bytes written, a read-only one every change.
    pub fault: Option<DiskFault>,
}

impl SimFiles {
    /// The process dies after `ops` more operations (the one cut writes half its bytes).
    pub fn cut_after(&mut self, ops: u32) {
        self.ops_left = Some(ops);
    }

    /// The node stops: killed (everything done is kept), or the machine loses power (only what
    /// was durable is). The process that comes next works normally.
    pub fn crash(&mut self, power_loss: bool) {
        self.ops_left = None;
        if power_loss {
            self.names = self.durable_names.clone();
            for inode in self.inodes.values_mut() {
                inode.bytes = inode.durable.clone();
            }
        }
        let live: Vec<u64> = self.names.values().chain(self.durable_names.values()).copied().collect();
        self.inodes.retain(|id, _| live.contains(id));
    }

    /// A file's bytes, as the running process reads them.
    pub fn get(&self, name: &str) -> Option<&Vec<u8>> {
        Some(&self.inodes.get(self.names.get(name)?)?.bytes)
    }

    pub fn list(&self) -> impl Iterator<Item = &String> {
        self.names.keys()
    }

    /// One more operation: `Err` once the process is dead (nothing happens), or if the disk
    /// fails it (`changes` names, `bytes` written).
    fn step(&mut self, changes: bool, bytes: bool) -> io::Result<()> {
        match &mut self.ops_left {
            Some(0) => return Err(io::Error::other("the process is dead (simulated)")),
            Some(left) => *left -= 1,
            None => {}
        }
        match self.fault {
            Some(DiskFault::Full) if bytes => Err(io::Error::other("no space left (simulated)")),
            Some(DiskFault::ReadOnly) if changes || bytes => Err(io::Error::other("read-only (simulated)")),
            _ => Ok(()),
        }
    }

    fn not_found(name: &str) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file (simulated)"))
    }
}

impl Files for SimFiles {
    fn names(&mut self) -> io::Result<Vec<String>> {
        self.step(false, false)?;
        Ok(self.names.keys().cloned().collect())
    }

    fn read(&mut self, name: &str) -> io::Result<Vec<u8>> {
        self.step(false, false)?;
        self.get(name).cloned().ok_or_else(|| Self::not_found(name))
    }

    fn write(
        &mut self,
        name: &str,
        create: bool,
        sync: Sync,
        write: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let last = self.ops_left == Some(1);
        self.step(create, true)?;
        let id = match (create, self.names.get(name)) {
            (false, Some(id)) => *id,
            (false, None) => return Err(Self::not_found(name)),
            (true, _) => {
                self.next_inode += 1;
                self.names.insert(name.to_string(), self.next_inode);
                self.next_inode
            }
        };
        let mut bytes = Vec::new();
        write(&mut bytes)?;
        let inode = self.inodes.entry(id).or_default();
        if last {
            // Cut while writing: half of it reached the file, none of it the disk.
            inode.bytes = bytes[..bytes.len() / 2].to_vec();
            self.ops_left = Some(0);
            return Err(io::Error::other("the process is dead (simulated)"));
        }
        inode.bytes = bytes;
        if sync != Sync::Later {
            // `fdatasync` keeps the size too, and the file holds nothing else.
            inode.durable = inode.bytes.clone();
        }
        Ok(())
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.step(false, false)?;
        let id = *self.names.get(name).ok_or_else(|| Self::not_found(name))?;
        let inode = self.inodes.get_mut(&id).expect("a named file");
        inode.durable = inode.bytes.clone();
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.step(true, false)?;
        let id = self.names.remove(from).ok_or_else(|| Self::not_found(from))?;
        self.names.insert(to.to_string(), id);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.step(true, false)?;
        self.names.remove(name).map(|_| ()).ok_or_else(|| Self::not_found(name))
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        self.step(true, false)?;
        self.durable_names = self.names.clone();
        Ok(())
    }
}
