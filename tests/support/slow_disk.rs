//! A slow disk for one running server: `strace` attached to it delays every `fdatasync` it makes,
//! and so every version's file it writes (each is `fdatasync`'d into a spare file), by a set time.
//! A test then knows a write is still running when something else happens, instead of hoping so.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TempDir, wait_for};

/// `strace` attached to a server; detached (and the server's disk fast again) when dropped.
pub struct SlowDisk {
    strace: Child,
    _log: TempDir,
}

impl SlowDisk {
    /// Delays every `fdatasync` of process `pid` (all its threads) by `delay`. `None` where
    /// strace is missing or may not attach (ptrace needs root, or the same user and a permissive
    /// `kernel.yama.ptrace_scope`): the test then says so and skips.
    pub fn attach(pid: u32, delay: Duration) -> Option<SlowDisk> {
        let log = TempDir::new("strace");
        let messages = log.path().join("strace.err");
        let Ok(file) = std::fs::File::create(&messages) else { return None };
        let spawned = Command::new("strace")
            .args(["-f", "-p", &pid.to_string(), "-e", "trace=fdatasync", "-o", "/dev/null"])
            .arg("-e")
            .arg(format!("inject=fdatasync:delay_exit={}", delay.as_micros()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn();
        let Ok(mut strace) = spawned else {
            eprintln!("skipping: no strace (apt-get install strace) to make a disk slow");
            return None;
        };
        let said = || std::fs::read_to_string(&messages).unwrap_or_default();
        let mut exited = None;
        wait_for("strace to attach or give up", || {
            exited = strace.try_wait().ok().flatten();
            exited.is_some() || said().contains("attached")
        });
        if exited.is_some() {
            eprintln!("skipping: strace cannot attach here ({}): tests of a slow disk need root", said().trim());
            return None;
        }
        Some(SlowDisk { strace, _log: log })
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        // SIGTERM: strace detaches from the server (which goes on, or has stopped) and exits.
        // SAFETY: a signal to the strace process this struct started.
        unsafe { libc::kill(self.strace.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.strace.wait();
    }
}
