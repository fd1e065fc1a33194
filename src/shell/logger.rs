//! Log lines to stderr: `2026-11-29T11:03:44.123Z INFO  [lighthouse::core] message`.
//!
//! A closed or full stderr must never stop the server: a write that fails is dropped (a logger
//! that panics on `EPIPE`, as `eprintln!` does, would abort the process on
//! `lighthouse ... 2>&1 | head`).

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

use crate::core::clock::Civil;
use crate::shell::system_clock::unix_micros;

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let micros = unix_micros();
        let date = Civil::from_unix(micros / 1_000_000).iso8601("-", ":");
        let line = format!(
            "{date}.{:03}Z {:<5} [{}] {}\n",
            micros / 1000 % 1000,
            record.level(),
            record.target(),
            record.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger for the whole process, once.
pub fn init(level: LevelFilter) {
    static LOGGER: StderrLogger = StderrLogger;
    // The only logger of the process: `main` calls this once, before anything logs.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
