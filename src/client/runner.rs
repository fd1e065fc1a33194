//! What `watch` does with each change, on the main thread: print it, render it into a file
//! (a temporary file renamed over it, so a reader never sees half a file), and run the command
//! with it on stdin. One change at a time: a change that arrives meanwhile waits in `Latest`,
//! replaced by any newer one, so a burst makes one more run with the newest value. Each change
//! runs once (the follower drops a version it has already passed on, and changes are taken in the
//! order received); a value equal to the one run last (a reconnection after the store moved
//! elsewhere) runs nothing.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::Failure;
use super::commands::print;
use super::watch::{Change, Latest};

/// What to do on each change.
#[derive(Debug)]
pub struct Action {
    /// The path watched, as given (`LIGHTHOUSE_PATH`).
    pub path: String,
    /// `--exec CMD`, run by `sh -c`.
    pub exec: Option<String>,
    /// `--render FILE` (the value), or `--render TEMPLATE:FILE` (the template filled from it).
    pub render: Option<Render>,
    /// `--raw`: a string value as its text.
    pub raw: bool,
}

/// Where `--render` writes, and from what.
#[derive(Debug)]
pub struct Render {
    pub template: Option<PathBuf>,
    pub file: PathBuf,
}

impl Render {
    /// `FILE`, or `TEMPLATE:FILE` (split at the first colon).
    pub fn of(text: &str) -> Render {
        match text.split_once(':') {
            Some((template, file)) if !template.is_empty() && !file.is_empty() => {
                Render { template: Some(template.into()), file: file.into() }
            }
            _ => Render { template: None, file: text.into() },
        }
    }

    /// The bytes to write for a value shown as `bytes` (its JSON, or with `--raw` a string's text)
    /// whose JSON is `data`.
    fn contents(&self, data: &[u8], bytes: &[u8]) -> Result<Vec<u8>, String> {
        let Some(template) = &self.template else { return Ok(bytes.to_vec()) };
        let text = std::fs::read_to_string(template).map_err(|e| format!("cannot read {}: {e}", template.display()))?;
        super::template::fill(&text, data).map_err(|e| format!("{}: {e}", template.display()))
    }
}

/// Runs `action` on every change `latest` receives, until the follower stops.
pub fn run(latest: &Latest, action: &Action) -> Result<u8, Failure> {
    let mut done: Option<u64> = None;
    let mut last_value: Option<Vec<u8>> = None;
    loop {
        let change = latest.newer_than(done)?;
        done = Some(change.serial);
        let Some(value) = &change.value else {
            note!("lighthouse watch: {} is missing (sequence {})", action.path, change.sequence);
            last_value = None;
            continue;
        };
        let bytes = shown(value, action.raw);
        if last_value.as_ref() == Some(&bytes) {
            continue;
        }
        if !perform(action, &change, value, &bytes) {
            return Ok(0);
        }
        last_value = Some(bytes);
    }
}

/// The bytes of a value as `get` prints it: JSON with a final newline, or a string's text.
fn shown(data: &[u8], raw: bool) -> Vec<u8> {
    if raw && let Ok(serde_json::Value::String(text)) = serde_json::from_slice(data) {
        return text.into_bytes();
    }
    let mut bytes = data.to_vec();
    bytes.push(b'\n');
    bytes
}

/// Does what the change asks; false when there is nobody left to print to.
fn perform(action: &Action, change: &Change, data: &[u8], bytes: &[u8]) -> bool {
    if action.exec.is_none() && action.render.is_none() {
        // One line per change, for `| while read`.
        let line = match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(value) => format!("{value}\n").into_bytes(),
            Err(_) => [bytes, b"\n"].concat(),
        };
        return print(&line);
    }
    if let Some(target) = &action.render {
        let written = target.contents(data, bytes).and_then(|contents| {
            render(&target.file, &contents).map_err(|e| format!("cannot write {}: {e}", target.file.display()))
        });
        if let Err(e) = written {
            // The command would act on an old file: skip it, and try again on the next change.
            note!("lighthouse watch: {e}");
            return true;
        }
    }
    if let Some(command) = &action.exec {
        execute(command, action, change.sequence, bytes);
    }
    true
}

/// Writes `bytes` to `file` atomically: a temporary file beside it, synced, renamed over it.
fn render(file: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = file.file_name().ok_or(std::io::ErrorKind::InvalidInput)?.to_string_lossy();
    let temporary = file.with_file_name(format!(".{name}.lighthouse-{}", std::process::id()));
    let written = (|| {
        let mut out = std::fs::File::create(&temporary)?;
        out.write_all(bytes)?;
        out.sync_all()?;
        std::fs::rename(&temporary, file)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Runs `sh -c COMMAND` with the value on stdin, and waits for it.
fn execute(command: &str, action: &Action, sequence: u64, bytes: &[u8]) {
    let child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("LIGHTHOUSE_SEQUENCE", sequence.to_string())
        .env("LIGHTHOUSE_PATH", &action.path)
        .stdin(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return note!("lighthouse watch: cannot run {command:?}: {e}"),
    };
    // From another thread: a command that does not read its stdin must not block us.
    let feeder = child.stdin.take().map(|mut stdin| {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        })
    });
    match child.wait() {
        Ok(status) if status.success() => {}
        Ok(status) => note!("lighthouse watch: {command:?} failed ({status}) at sequence {sequence}"),
        Err(e) => note!("lighthouse watch: {command:?}: {e}"),
    }
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
}
