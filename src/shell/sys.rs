//! What the server asks the operating system for directly, through `libc`: the file-descriptor
//! limit, SIGTERM/SIGINT (stop) and SIGHUP (read the token files and certificates again) delivered as a readable
//! byte to the event loop (the self-pipe trick, since a signal handler may do almost nothing but
//! `write`), socket options; huge pages for the buffer a large file is read into at start-up;
//! and, for the client's `lock -- CMD`, terminal interrupts left to the command.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use mio::net::UnixStream;

use crate::limits::{HUGE_PAGE_READ_BYTES_MIN, LISTEN_BACKLOG, WORKER_NICE};

/// Raises the soft limit on open files to the hard limit, so `--max-connections` is not capped
/// by a conservative default of 1024. Returns the soft limit now in force.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid rlimit that does not exceed the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

/// The write end of the self-pipe, for the signal handler. -1 until installed.
static SIGNAL_PIPE_FD: AtomicI32 = AtomicI32::new(-1);

/// The byte a stop signal (SIGTERM, SIGINT) writes to the pipe.
pub const SIGNAL_STOP: u8 = 1;
/// The byte SIGHUP writes: re-read the certificates.
pub const SIGNAL_RELOAD: u8 = 2;

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = if signal == libc::SIGHUP { SIGNAL_RELOAD } else { SIGNAL_STOP };
        // SAFETY: write(2) is async-signal-safe; the fd stays open for the life of the process
        // (the write end is leaked on purpose in `shutdown_signals`). A full pipe drops the
        // byte, which is fine: one pending byte of each kind says all there is to say.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Routes SIGTERM and SIGINT (`SIGNAL_STOP`) and SIGHUP (`SIGNAL_RELOAD`) to a byte on the
/// returned stream, which the loop polls.
pub fn shutdown_signals() -> io::Result<UnixStream> {
    let (read_end, write_end) = UnixStream::pair()?;
    SIGNAL_PIPE_FD.store(write_end.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(write_end);
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler only calls write(2).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `action` is initialised and the handler is async-signal-safe.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(read_end)
}

/// Ignores SIGINT and SIGQUIT in this process from now on, as `system(3)` does while its command
/// runs: a terminal sends them to the whole foreground group, so the command gets them and
/// decides, and the caller lives on to see how it ended (`lighthouse lock` then aborts its
/// transaction instead of leaving the lock to lapse). Call it after spawning the command, which
/// would otherwise inherit the ignoring.
pub fn ignore_terminal_interrupts() {
    for signal in [libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: SIG_IGN installs no handler; nothing else in the client handles these.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

/// Asks the kernel to hand over new connections only once their first bytes have arrived
/// (`TCP_DEFER_ACCEPT`, Linux), so that the event loop can read a request right after accepting it
/// instead of going round the poller once more: it halves the work of a connection that carries
/// one request, like curl in a shell loop. A client that connects and never sends is not seen.
pub fn defer_accept(listener: &mio::net::TcpListener) {
    #[cfg(target_os = "linux")]
    {
        let seconds: libc::c_int = 1;
        // SAFETY: a valid socket fd, a valid pointer to an int option value and its length.
        unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&seconds as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = listener;
}

/// Listens again with a longer backlog than the 128 mio asks for, so a burst of connections
/// (a thousand clients starting at once) waits in the queue instead of being dropped and retried
/// a second later. Linux caps it at `net.core.somaxconn`.
pub fn set_listen_backlog(listener: &mio::net::TcpListener) -> io::Result<()> {
    // SAFETY: the fd is a valid, bound, listening socket owned by `listener`.
    if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lowers the calling thread's CPU priority (nice 10), for the worker threads: when a large store
/// is being serialized or hashed on the same core as the event loop, the loop's answers come first.
/// On Linux, nice is per thread. Failing to lower it is harmless, so errors are ignored.
pub fn lower_thread_priority() {
    // SAFETY: setpriority on the calling thread (who = 0) with a valid priority; no memory involved.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WORKER_NICE) };
}

/// Reads a whole file, into memory the kernel may back with huge pages when the file is large
/// (`madvise(MADV_HUGEPAGE)`, which systems with transparent huge pages in `madvise` mode need):
/// a 100 MiB snapshot read into 4 KiB pages costs 25,600 page faults, a quarter of those of
/// its start-up.
pub fn read_file(path: &std::path::Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len.saturating_add(1)).map_err(io::Error::other)?;
    if len >= HUGE_PAGE_READ_BYTES_MIN {
        advise_huge_pages(bytes.as_mut_ptr() as usize, bytes.capacity());
    }
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Asks for huge pages over the whole pages of `[start, start + len)`; a hint, so a refusal
/// changes nothing but speed.
fn advise_huge_pages(start: usize, len: usize) {
    const PAGE: usize = 4096;
    let first = start.next_multiple_of(PAGE);
    let end = (start + len) / PAGE * PAGE;
    if end > first {
        // SAFETY: the range lies inside an allocation this function's caller owns; madvise with
        // MADV_HUGEPAGE changes how its pages are backed, never their contents.
        unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_file_gives_the_files_bytes_below_and_above_the_huge_page_size() {
        let dir = std::env::temp_dir().join(format!("lighthouse-read-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for len in [0, 1, 4095, HUGE_PAGE_READ_BYTES_MIN - 1, HUGE_PAGE_READ_BYTES_MIN + 4097] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let path = dir.join(format!("{len}.json"));
            std::fs::write(&path, &bytes).unwrap();
            assert!(read_file(&path).unwrap() == bytes, "{len} bytes read back");
        }
        assert_eq!(read_file(&dir.join("missing")).unwrap_err().kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
