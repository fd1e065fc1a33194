//! Deterministic simulation of whole clusters of pure cores on a simulated clock, network and
//! disk, all driven by one seed. `harness/` is the world both modes share (nodes booted by the
//! server's own start-up decision on `disk.rs`'s directories, the network and its faults, the
//! clocks, the event loop); a mode brings its workload, the faults it draws and its checks:
//! `local.rs` for local writes (each node its own lock), and `coordinated/` for coordinated writes
//! (one lock, commits durable on a majority).
//!
//! `cargo test --release --test simulation` runs 1,000 seeds of each. More, or one to replay:
//!
//! ```sh
//! LIGHTHOUSE_SIM_SEEDS=100000 cargo test --release --test simulation -- --nocapture
//! LIGHTHOUSE_SIM_SEED=1234 cargo test --release --test simulation -- --nocapture
//! LIGHTHOUSE_SIM_SEED=1234 LIGHTHOUSE_SIM_LOG=1 cargo test --release --test simulation local -- --nocapture
//! LIGHTHOUSE_SIM_FIRST=50001 LIGHTHOUSE_SIM_SEEDS=10000 cargo test --release --test simulation coordinated
//! ```
//!
//! `LIGHTHOUSE_SIM_LOG=1` (or `trace`, which adds every event) prints the nodes' log lines of the
//! seed replayed; a seed replays the same history every time.

mod coordinated;
mod disk;
mod files;
mod harness;
mod local;

use std::cell::RefCell;

thread_local! {
    /// What the log lines of this thread are about now: the simulated time and node.
    static CONTEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// With `LIGHTHOUSE_SIM_LOG=1` (and one seed), the nodes' log lines, each with its time and node.
struct SimLogger;

impl log::Log for SimLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        CONTEXT.with(|c| eprintln!("{} {} {}", c.borrow(), record.level(), record.args()));
    }

    fn flush(&self) {}
}

/// Sets what the next log lines are about.
fn log_context(context: impl FnOnce() -> String) {
    if log::max_level() != log::LevelFilter::Off {
        CONTEXT.with(|c| *c.borrow_mut() = context());
    }
}

fn init_log() {
    if std::env::var("LIGHTHOUSE_SIM_LOG").is_ok() && log::set_logger(&SimLogger).is_ok() {
        log::set_max_level(if std::env::var("LIGHTHOUSE_SIM_LOG").as_deref() == Ok("trace") {
            log::LevelFilter::Trace
        } else {
            log::LevelFilter::Info
        });
    }
}

/// The seeds to run: `LIGHTHOUSE_SIM_SEED` alone, or `LIGHTHOUSE_SIM_SEEDS` of them (default 1,000)
/// from `LIGHTHOUSE_SIM_FIRST` (default 1), so that a long run can be split.
fn seeds() -> Vec<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    if let Some(seed) = var("LIGHTHOUSE_SIM_SEED") {
        return vec![seed];
    }
    let first = var("LIGHTHOUSE_SIM_FIRST").unwrap_or(1);
    (first..first + var("LIGHTHOUSE_SIM_SEEDS").unwrap_or(1_000)).collect()
}

/// Runs `run` for every seed, on as many threads as there are cores, and sums what the runs
/// return; a failing seed is named as it fails (after its panic) and all of them at the end, so
/// that they can be replayed.
fn run_seeds(run: fn(u64) -> (usize, usize)) -> (usize, usize) {
    init_log();
    let seeds = seeds();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunks: Vec<Vec<u64>> =
        (0..threads).map(|t| seeds.iter().copied().skip(t).step_by(threads).collect()).collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            std::thread::spawn(move || {
                let (mut sums, mut failed) = ((0, 0), Vec::new());
                for seed in chunk {
                    match std::panic::catch_unwind(|| run(seed)) {
                        Ok((a, b)) => sums = (sums.0 + a, sums.1 + b),
                        Err(_) => {
                            eprintln!("seed {seed} failed");
                            failed.push(seed);
                        }
                    }
                }
                (sums, failed)
            })
        })
        .collect();
    let (mut sums, mut failed) = ((0, 0), Vec::new());
    for handle in handles {
        let ((a, b), f) = handle.join().expect("a seed's panic is caught");
        sums = (sums.0 + a, sums.1 + b);
        failed.extend(f);
    }
    failed.sort_unstable();
    assert!(failed.is_empty(), "{} seeds failed: {failed:?}; replay one with LIGHTHOUSE_SIM_SEED=N", failed.len());
    sums
}
