//! `watch PATH`: follows the value at PATH through the server's event stream, for as long as the
//! process runs. A follower thread keeps the stream open: it reconnects with `Last-Event-ID` (the
//! last version seen, so a server that has not moved sends nothing again) and, while the server
//! is down or not serving yet, retries after a pause that doubles up to `WATCH_BACKOFF_MS_MAX`.
//! It keeps only the newest change in `Latest`; the main thread (`runner.rs`) takes it whenever
//! it is free, so a burst of changes while the command runs makes one more run, not one each.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::connection::Event;
use super::{Args, Failure, Server, runner, target};
use crate::limits::{WATCH_BACKOFF_MS_MAX, WATCH_BACKOFF_MS_MIN};

/// One change: the store's sequence and the value at the path then (`None`: the path is missing),
/// numbered in the order the follower received it (`serial`).
#[derive(Debug, Clone)]
pub struct Change {
    pub sequence: u64,
    pub value: Option<Vec<u8>>,
    pub serial: u64,
}

/// The newest change the follower has seen, or why it stopped.
#[derive(Default)]
pub struct Latest {
    slot: Mutex<(Option<Change>, Option<String>)>,
    arrived: Condvar,
}

impl Latest {
    /// Keeps `change`, the newest received (the stream sends versions in order; two histories
    /// may share a sequence after a restore, so the order received decides, not the sequence).
    fn offer(&self, mut change: Change) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        change.serial = slot.0.as_ref().map_or(1, |kept| kept.serial + 1);
        slot.0 = Some(change);
        self.arrived.notify_all();
    }

    /// The follower stopped: the server refused the stream.
    fn fail(&self, message: String) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.1 = Some(message);
        self.arrived.notify_all();
    }

    /// Waits for a change received after the one numbered `done` (any, for `None`); a refusal
    /// ends the wait.
    pub fn newer_than(&self, done: Option<u64>) -> Result<Change, Failure> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(message) = &slot.1 {
                return Err(Failure::Refused(message.clone()));
            }
            if let Some(change) = slot.0.as_ref().filter(|c| done.is_none_or(|d| c.serial > d)) {
                return Ok(change.clone());
            }
            slot = self.arrived.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

pub fn run(server: &Server, args: &Args) -> Result<u8, Failure> {
    let [path] = args.exactly(1, "PATH")? else { unreachable!("one word") };
    let target = target(path, None)?;
    let action = runner::Action {
        path: path.clone(),
        exec: args.value("--exec").map(str::to_string),
        render: args.value("--render").map(runner::Render::of),
        raw: args.has("--raw"),
    };
    let latest = Arc::new(Latest::default());
    let follower = (server.clone(), latest.clone());
    std::thread::Builder::new()
        .name("watch-follower".into())
        .spawn(move || follow(&follower.0, &target, &follower.1))
        .map_err(|e| Failure::Refused(format!("cannot start watching: {e}")))?;
    runner::run(&latest, &action)
}

/// Keeps a stream open on `target`, for ever, offering every event to `latest`.
fn follow(server: &Server, target: &str, latest: &Latest) {
    let mut last_id: Option<String> = None;
    let mut pause = WATCH_BACKOFF_MS_MIN;
    let mut down_since_said = false;
    loop {
        match server.open_stream(target, last_id.as_deref()) {
            Ok(mut stream) => {
                if down_since_said {
                    note!("lighthouse watch: following {} again", server.url);
                    down_since_said = false;
                }
                while let Ok(event) = stream.next_event() {
                    pause = WATCH_BACKOFF_MS_MIN;
                    // The same version again (a server that resent it) is not a change.
                    if event.id.is_some() && event.id == last_id {
                        continue;
                    }
                    let id = event.id.clone();
                    if let Some(change) = change_of(event) {
                        last_id = id;
                        latest.offer(change);
                    }
                }
            }
            // Not serving yet, no majority, a proxy's error: the server will be back.
            Err(Ok(answer)) if answer.status >= 500 || answer.status == 429 => {}
            Err(Ok(answer)) => return latest.fail(answer.message()),
            Err(Err(unreachable)) if !down_since_said => {
                note!("lighthouse watch: {}; retrying", unreachable.0);
                down_since_said = true;
            }
            Err(Err(_)) => {}
        }
        std::thread::sleep(Duration::from_millis(pause));
        pause = (pause * 2).min(WATCH_BACKOFF_MS_MAX);
    }
}

/// The change an event brings: a value (`message`), or the path gone (`missing`).
fn change_of(event: Event) -> Option<Change> {
    // `SEQUENCE-CHECKSUM`; a server older than version ids sends the sequence alone.
    let id = event.id?;
    let sequence = id.split('-').next()?.parse().ok()?;
    match event.kind.as_str() {
        "message" => Some(Change { sequence, value: Some(event.data), serial: 0 }),
        "missing" => Some(Change { sequence, value: None, serial: 0 }),
        _ => None,
    }
}
