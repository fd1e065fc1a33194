//! The worker threads: the only places the server writes to disk or does long computations.
//!
//! Like Redis's `bio.c`, the event loop hands them immutable work through queues and goes on
//! serving; each thread reports back through one channel and wakes the loop with a `mio::Waker`.
//! The writer thread carries out the core's jobs that touch the data directory
//! (`core::jobs::run_keeping` with a `DataDir`), in order; the decoder thread checks copies sent by peers, so a large
//! `PUT /copy` never waits behind an fsync; the resolver looks up peers' host names, since a DNS
//! lookup may block. They run at a lower priority and yield the core between pieces of long work.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::core::jobs::{self, Disk, Done, Job, NoDisk};
use crate::core::value::TextCache;
use crate::shell::data_dir::{self, DataDir, DiskConfig};

/// What a worker reports.
#[derive(Debug)]
pub enum Report {
    /// A core job finished.
    Job(Box<Done>),
    /// A peer's host name was looked up.
    Resolved { address: String, result: Result<SocketAddr, String> },
}

/// The loop's handle on the worker threads.
pub struct Workers {
    /// The writer's, the decoder's and the resolver's queues; `None` after shutdown.
    writer: Option<Sender<Job>>,
    decoder: Option<Sender<Job>>,
    resolver: Option<Sender<String>>,
    reports: Receiver<Report>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts the writer, decoder and resolver threads. `wake` is called after each report (the
    /// loop's waker).
    pub fn spawn(disk: DiskConfig, wake: Arc<dyn Fn() + Send + Sync>) -> io::Result<Workers> {
        let (report, reports) = mpsc::channel::<Report>();
        let mut threads = Vec::new();
        let files = match &disk.dir {
            Some(dir) => data_dir::list(dir)?,
            None => Vec::new(),
        };
        let data_dir = DataDir::new(disk.clone(), &files);
        // Each thread that hashes or renders whole stores keeps the text of the one it walked
        // last (`core::value::TextCache`): the writer for commits' seals and full snapshots, the
        // decoder for the versions voters are pushed as changes.
        let writer = spawn_writer(&mut threads, report.clone(), wake.clone(), data_dir)?;
        let mut decoder_text = TextCache::default();
        let decoder =
            spawn(&mut threads, "lighthouse-decoder", report.clone(), wake.clone(), move |job: Job, send| {
                send(Report::Job(Box::new(run_timed(job, &mut NoDisk, &mut decoder_text))));
            })?;
        let resolver = spawn(&mut threads, "lighthouse-resolver", report, wake, |address: String, send| {
            let result = match address.to_socket_addrs() {
                Ok(mut found) => found.next().ok_or_else(|| "no address found".to_string()),
                Err(e) => Err(e.to_string()),
            };
            send(Report::Resolved { address, result });
        })?;
        Ok(Workers { writer: Some(writer), decoder: Some(decoder), resolver: Some(resolver), reports, threads })
    }

    /// Hands a core job to its worker.
    pub fn submit(&self, job: Job) {
        let queue = if job.writes() { &self.writer } else { &self.decoder };
        queue.as_ref().expect("no jobs after shutdown").send(job).expect("the worker threads outlive the loop");
    }

    /// Looks up a peer's host name.
    pub fn resolve(&self, address: String) {
        if let Some(resolver) = &self.resolver {
            let _ = resolver.send(address);
        }
    }

    /// A report, if one has arrived.
    pub fn try_report(&self) -> Option<Report> {
        self.reports.try_recv().ok()
    }

    /// The next report, once it arrives (`None`: every worker is gone).
    pub fn wait_report(&self) -> Option<Report> {
        self.reports.recv().ok()
    }

    /// Lets the threads finish the work they have, then joins them.
    pub fn shutdown(&mut self) {
        (self.writer, self.decoder, self.resolver) = (None, None, None);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    pub fn is_shut_down(&self) -> bool {
        self.writer.is_none()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts a thread that runs `work` on each item of its queue; `work` reports through the
/// function it is given (which wakes the loop), and may go on with work of its own after.
fn spawn<T: Send + 'static>(
    threads: &mut Vec<JoinHandle<()>>,
    name: &str,
    report: Sender<Report>,
    wake: Arc<dyn Fn() + Send + Sync>,
    mut work: impl FnMut(T, &mut dyn FnMut(Report)) + Send + 'static,
) -> io::Result<Sender<T>> {
    let (sender, receiver) = mpsc::channel::<T>();
    threads.push(thread::Builder::new().name(name.into()).spawn(move || {
        crate::shell::sys::lower_thread_priority();
        for item in receiver {
            let mut loop_gone = false;
            work(item, &mut |done| match report.send(done) {
                Ok(()) => wake(),
                Err(_) => loop_gone = true,
            });
            if loop_gone {
                break;
            }
        }
    })?);
    Ok(sender)
}

/// Starts the writer thread: it carries out the jobs that touch the data directory, in order, and
/// between them its own work, off the commits' path: it hands the settling of spare files
/// (`DataDir::start_settle`: the names of files written into spare files, and new spares) to the
/// settler thread once half the spares are used or no job has come for `SPARE_SETTLE_IDLE_MS`,
/// and goes on writing into the spares still ready meanwhile, picking up the settle's end before
/// each write and when idle; then old snapshots go. A clean stop waits for the settle and leaves
/// every file under its name.
fn spawn_writer(
    threads: &mut Vec<JoinHandle<()>>,
    report: Sender<Report>,
    wake: Arc<dyn Fn() + Send + Sync>,
    mut data_dir: DataDir,
) -> io::Result<Sender<Job>> {
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::Duration;
    let (sender, receiver) = mpsc::channel::<Job>();
    let idle = Duration::from_millis(crate::limits::SPARE_SETTLE_IDLE_MS);
    threads.push(thread::Builder::new().name("lighthouse-writer".into()).spawn(move || {
        crate::shell::sys::lower_thread_priority();
        let mut text = TextCache::default();
        data_dir.settle();
        loop {
            let job = if data_dir.unsettled() {
                match receiver.recv_timeout(idle) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        data_dir.collect_settle(false);
                        data_dir.start_settle();
                        data_dir.tidy();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match receiver.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            if report.send(Report::Job(Box::new(run_timed(job, &mut data_dir, &mut text)))).is_err() {
                break;
            }
            wake();
            data_dir.collect_settle(false);
            if data_dir.spares_low() {
                data_dir.start_settle();
            }
            // Once the report is out: old snapshots go while the loop answers.
            data_dir.tidy();
        }
        data_dir.settle();
        data_dir.tidy();
    })?);
    Ok(sender)
}

/// Runs a core job, yielding the core between pieces of long work, and records how long it took.
fn run_timed(job: Job, disk: &mut dyn Disk, text: &mut TextCache) -> Done {
    let started = Instant::now();
    let done = jobs::run_keeping(job, disk, text, &mut thread::yield_now);
    done.took(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))
}
