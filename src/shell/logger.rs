//! Log lines to stderr: `2026-11-29T11:03:44.123Z INFO  [lighthouse::core] message`.
//!
//! When stderr is the journal (systemd says so in `JOURNAL_STREAM`, the device and inode of the
//! stream it connected, which must be stderr's own), a line starts instead with its priority as
//! `<N>` (`sd-daemon(3)`): the journal takes it as the line's priority (`journalctl -p warning`)
//! and adds its own timestamp, so the date is left out: `<4>WARN  [lighthouse::core] message`.
//!
//! A closed or full stderr must never stop the server: a write that fails is dropped (a logger
//! that panics on `EPIPE`, as `eprintln!` does, would abort the process on
//! `lighthouse ... 2>&1 | head`).

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{LevelFilter, Log, Metadata, Record};

use crate::core::clock::Civil;
use crate::shell::system_clock::unix_micros;

struct StderrLogger;

/// Whether stderr is the journal, decided once in `init`.
static TO_JOURNAL: AtomicBool = AtomicBool::new(false);

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let (level, target, args) = (record.level(), record.target(), record.args());
        let line = if TO_JOURNAL.load(Ordering::Relaxed) {
            format!("<{}>{level:<5} [{target}] {args}\n", priority(level))
        } else {
            let micros = unix_micros();
            let date = Civil::from_unix(micros / 1_000_000).iso8601("-", ":");
            format!("{date}.{:03}Z {level:<5} [{target}] {args}\n", micros / 1000 % 1000)
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// The syslog priority of a level, as the journal reads it from a `<N>` prefix.
fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` is
/// `DEVICE:INODE` of that stream, and a child that inherited the variable but not the stream
/// (`lighthouse ... 2>file` from a service's shell) must not take it for the journal.
fn stderr_is_journal() -> bool {
    let Some(named) = std::env::var("JOURNAL_STREAM").ok() else { return false };
    let Some((device, inode)) = named.split_once(':') else { return false };
    let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    let Ok(meta) = std::fs::File::from(stderr).metadata() else { return false };
    device.parse() == Ok(meta.dev()) && inode.parse() == Ok(meta.ino())
}

/// Installs the logger for the whole process, once.
pub fn init(level: LevelFilter) {
    static LOGGER: StderrLogger = StderrLogger;
    TO_JOURNAL.store(stderr_is_journal(), Ordering::Relaxed);
    // The only logger of the process: `main` calls this once, before anything logs.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
