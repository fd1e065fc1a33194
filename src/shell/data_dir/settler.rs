//! The settler thread: it renames the files written into spare files to their names and makes
//! new spares (`core::spare::run`) while the writer goes on writing commits into the spares
//! still ready, so a run of back-to-back commits never waits for a settle.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use log::warn;

use super::{DataDir, DirFiles};
use crate::core::spare;

/// The settler thread's handle: it runs `core::spare::run` on the settles it is sent, on its
/// own handle on the directory, and sends each back with its result.
#[derive(Debug)]
pub(super) struct Settler {
    work: Sender<spare::Settle>,
    done: Receiver<(spare::Settle, io::Result<()>)>,
}

impl Settler {
    pub(super) fn spawn(dir: PathBuf) -> io::Result<Settler> {
        let (work, settles) = mpsc::channel::<spare::Settle>();
        let (report, done) = mpsc::channel();
        thread::Builder::new().name("lighthouse-settler".into()).spawn(move || {
            crate::shell::sys::lower_thread_priority();
            for mut settle in settles {
                let result = spare::run(&mut DirFiles(&dir), &mut settle);
                if report.send((settle, result)).is_err() {
                    break;
                }
            }
        })?;
        Ok(Settler { work, done })
    }
}

impl DataDir {
    /// Renames the files written into spares to their names and makes new spares, under one
    /// directory fsync (`core::spare::settle`), here and now, after the settle under way if any.
    /// A clean stop does it, and a removal of a file still in a spare.
    pub fn settle(&mut self) {
        self.collect_settle(true);
        let Some(dir) = self.config.dir.clone() else { return };
        if let Err(e) = spare::settle(&mut DirFiles(&dir), &mut self.spares) {
            self.settle_failed(&dir, &e);
        }
    }

    /// Starts a settle on the settler thread, unless one is under way, there is nothing to do,
    /// or the last one failed; the writer goes on writing into the spares still ready.
    pub fn start_settle(&mut self) {
        let Some(dir) = self.config.dir.clone() else { return };
        if self.settle_failed || self.spares.settling() {
            return;
        }
        if let Err(e) = spare::remove_failed(&mut DirFiles(&dir), &mut self.spares) {
            return self.settle_failed(&dir, &e);
        }
        let Some(work) = spare::begin(&mut self.spares) else { return };
        if self.settler.is_none() {
            match Settler::spawn(dir.clone()) {
                Ok(settler) => self.settler = Some(settler),
                Err(e) => warn!("cannot start the settler thread ({e}): the writer settles spare files itself"),
            }
        }
        let sent = match &self.settler {
            Some(settler) => {
                self.settling = Some(work.clone());
                settler.work.send(work).map_err(|e| e.0)
            }
            None => Err(work),
        };
        if let Err(mut work) = sent {
            self.settler = None;
            self.settling = None;
            let result = spare::run(&mut DirFiles(&dir), &mut work);
            if let Err(e) = spare::finish(&mut self.spares, work, result) {
                self.settle_failed(&dir, &e);
            }
        }
    }

    /// Ends the settle under way if the settler is done with it, or (`wait`) once it is.
    pub fn collect_settle(&mut self, wait: bool) {
        let (Some(dir), Some(settler)) = (self.config.dir.clone(), &self.settler) else { return };
        if !self.spares.settling() {
            return;
        }
        let done = if wait {
            settler.done.recv().map_err(|_| mpsc::TryRecvError::Disconnected)
        } else {
            settler.done.try_recv()
        };
        let (work, result) = match done {
            Ok(done) => done,
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => {
                // The thread is gone with its settle: the writer takes it back as not done.
                self.settler = None;
                let work = self.settling.take().expect("a settle under way has its copy");
                (work, Err(io::Error::other("the settler thread stopped")))
            }
        };
        self.settling = None;
        if let Err(e) = spare::finish(&mut self.spares, work, result) {
            self.settle_failed(&dir, &e);
        }
    }

    fn settle_failed(&mut self, dir: &Path, e: &io::Error) {
        warn!("cannot make spare files in {}: {e}; files are written by the whole write cycle", dir.display());
        self.settle_failed = true;
    }
}
