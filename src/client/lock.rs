//! `lock NAME -- CMD`: a transaction around a command. The lock is taken as NAME, CMD runs with
//! `LIGHTHOUSE_LOCK=NAME` and `LIGHTHOUSE_SERVER` in its environment (so `lighthouse put` in it
//! stages under `/update/NAME`, and curl can too), a thread renews the lease
//! `LOCK_RENEWALS_PER_LEASE` times per lease while CMD runs, and the transaction is committed
//! when CMD exits 0 and aborted otherwise.

use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::commands::print;
use super::{Args, Failure, Server};
use crate::limits::{LOCK_RENEWALS_PER_LEASE, LOCK_TIMEOUT_S_DEFAULT, LOCK_TTL_S_MAX};

pub fn run(server: &Server, args: &Args) -> Result<u8, Failure> {
    let [name] = args.exactly(1, "NAME (then -- CMD)")? else { unreachable!("one word") };
    let Some(command) = args.rest.as_ref().filter(|rest| !rest.is_empty()) else {
        return Err(Failure::Usage("give the command to run after --".into()));
    };
    let ttl = match args.value("--ttl") {
        None => None,
        Some(text) => match text.parse::<u64>() {
            Ok(s) if (1..=LOCK_TTL_S_MAX).contains(&s) => Some(s),
            _ => return Err(Failure::Usage(format!("--ttl {text}: seconds from 1 to {LOCK_TTL_S_MAX}"))),
        },
    };
    let acquire = match ttl {
        Some(s) => format!("/lock?ttl={s}"),
        None => "/lock".to_string(),
    };
    // Taking a lock NAME already holds renews it, staged changes and all: that would be another
    // run's transaction (a `lock NAME` still running, or one that died), so it is refused.
    let holder = server.send("GET", "/lock", &[], b"")?;
    if holder.ok() && String::from_utf8_lossy(&holder.body).trim() == name {
        let why = format!("{name} already holds the lock (another `lighthouse lock {name}`?); abort it or wait");
        return Err(Failure::Refused(why));
    }
    let headers = [("Accept", "application/json"), ("Content-Type", "text/plain")];
    let taken = server.send("PUT", &acquire, &headers, name.as_bytes())?;
    if !taken.ok() {
        return Err(Failure::refused(&taken));
    }
    let lease_s = serde_json::from_slice::<serde_json::Value>(&taken.body)
        .ok()
        .and_then(|details| details["lease"].as_u64())
        .or(ttl)
        .unwrap_or(LOCK_TIMEOUT_S_DEFAULT);
    let renewals = Renewals::start(server.clone(), acquire, name.clone(), lease_s);
    let status = child(command, name, server, args).spawn().and_then(|mut child| {
        // Ctrl-C reaches CMD too: let it decide, and abort below if it dies of it.
        crate::shell::sys::ignore_terminal_interrupts();
        child.wait()
    });
    renewals.stop();
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            abort(server, name);
            note!("lighthouse lock: cannot run {}: {e}; aborted", command[0]);
            return Ok(127);
        }
    };
    if !status.success() {
        abort(server, name);
        note!("lighthouse lock: {} failed ({status}); aborted", command[0]);
        use std::os::unix::process::ExitStatusExt;
        let code = status.code().or(status.signal().map(|s| 128 + s)).unwrap_or(1);
        return Ok(u8::try_from(code & 0xff).unwrap_or(1));
    }
    let committed = server.send("PUT", &format!("/lock/{name}"), &[], b"")?;
    if !committed.ok() {
        return Err(Failure::refused(&committed));
    }
    print(&committed.body);
    Ok(0)
}

/// CMD, with what it needs to stage in the transaction.
fn child(command: &[String], name: &str, server: &Server, args: &Args) -> Command {
    let mut child = Command::new(&command[0]);
    child.args(&command[1..]).env("LIGHTHOUSE_LOCK", name).env("LIGHTHOUSE_SERVER", &server.url);
    if let Some(file) = args.value("--token-file") {
        let file = std::path::absolute(file).unwrap_or_else(|_| file.into());
        child.env("LIGHTHOUSE_TOKEN_FILE", file);
    }
    child
}

fn abort(server: &Server, name: &str) {
    match server.send("DELETE", &format!("/lock/{name}"), &[], b"") {
        Ok(answer) if answer.ok() => {}
        Ok(answer) => note!("lighthouse lock: the abort was refused: {}", answer.message()),
        Err(e) => note!("lighthouse lock: the abort was not sent: {} (the lease will lapse)", e.0),
    }
}

/// The thread that renews the lease, and the flag that stops it.
struct Renewals {
    stopped: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Renewals {
    fn start(server: Server, acquire: String, name: String, lease_s: u64) -> Renewals {
        let stopped = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stopped.clone();
        let every = Duration::from_millis(lease_s * 1000 / LOCK_RENEWALS_PER_LEASE);
        let thread = std::thread::Builder::new()
            .name("lock-renewals".into())
            .spawn(move || {
                let (lock, changed) = &*flag;
                let mut stop = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    stop = changed.wait_timeout(stop, every).unwrap_or_else(|e| e.into_inner()).0;
                    if *stop {
                        return;
                    }
                    match server.send("PUT", &acquire, &[("Content-Type", "text/plain")], name.as_bytes()) {
                        Ok(answer) if answer.ok() => {}
                        Ok(answer) => note!("lighthouse lock: the lease was not renewed: {}", answer.message()),
                        Err(e) => note!("lighthouse lock: the lease was not renewed: {}", e.0),
                    }
                }
            })
            .ok();
        Renewals { stopped, thread }
    }

    fn stop(mut self) {
        let (lock, changed) = &*self.stopped;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
