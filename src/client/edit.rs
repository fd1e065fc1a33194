//! `edit PATH`: the compare-and-set loop etcd users write by hand. The value is opened in
//! `$VISUAL` or `$EDITOR` as the server's pretty JSON and written back with `If-Match` its
//! `ETag`, so an edit never overwrites a change made meanwhile: on 412 the user is told, and on a
//! terminal offered the new version to edit again; without one, the command exits 1 and the
//! edit is kept in its file.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::commands::print;
use super::{Args, Failure, Server, target};

pub fn run(server: &Server, args: &Args) -> Result<u8, Failure> {
    let [path] = args.exactly(1, "PATH")? else { unreachable!("one word") };
    let target = target(path, None)?;
    let file = EditFile::new()?;
    let mut answer = server.send("GET", &target, &[], b"")?;
    loop {
        if !answer.ok() {
            return Err(Failure::refused(&answer));
        }
        let tag = answer.header("etag").map(str::to_string);
        let tag = tag.ok_or_else(|| Failure::Refused("the server sent no ETag to edit against".into()))?;
        let Some(edited) = edit_until_valid(&file, &answer.body)? else {
            note!("lighthouse edit: no change");
            file.remove();
            return Ok(0);
        };
        let headers = [("Content-Type", "application/json"), ("If-Match", tag.as_str())];
        let written = server.send("PUT", &target, &headers, &edited)?;
        if written.ok() {
            file.remove();
            print(&written.body);
            return Ok(0);
        }
        if written.status != 412 {
            return Err(Failure::Refused(format!("{} (your edit is kept in {})", written.message(), file.shown())));
        }
        let changed = format!("someone else changed {path} since you opened it");
        if !ask(&format!("{changed}. Edit the new version? [y/N] "), false) {
            return Err(Failure::Refused(format!(
                "{changed}; nothing written (your edit is kept in {})",
                file.shown()
            )));
        }
        answer = server.send("GET", &target, &[], b"")?;
    }
}

/// Opens the editor on `original` until it saves JSON; `None` when it saved the text unchanged.
fn edit_until_valid(file: &EditFile, original: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
    let mut text = original.to_vec();
    loop {
        file.write(&text)?;
        run_editor(&file.0)?;
        text =
            std::fs::read(&file.0).map_err(|e| Failure::Refused(format!("cannot read back {}: {e}", file.shown())))?;
        if text == original {
            return Ok(None);
        }
        match serde_json::from_slice::<serde_json::Value>(&text) {
            Ok(_) => return Ok(Some(text)),
            Err(e) if ask(&format!("that is not JSON ({e}). Edit it again? [Y/n] "), true) => {}
            Err(e) => {
                return Err(Failure::Refused(format!("not JSON ({e}); nothing written (kept in {})", file.shown())));
            }
        }
    }
}

fn run_editor(file: &Path) -> Result<(), Failure> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "vi".into());
    // Through the shell, as git and crontab do, so EDITOR may carry flags ("code --wait").
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file)
        .status()
        .map_err(|e| Failure::Refused(format!("cannot run the editor {editor}: {e}")))?;
    if !status.success() {
        return Err(Failure::Refused(format!("the editor {editor} failed ({status}); nothing written")));
    }
    Ok(())
}

/// Asks a yes-or-no question on a terminal; without one, the answer is no.
fn ask(question: &str, default: bool) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    let _ = write!(std::io::stderr(), "{question}");
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    match line.trim().to_ascii_lowercase().as_str() {
        "" => default,
        answer => answer.starts_with('y'),
    }
}

/// The file the editor works on, readable by its owner only (the value may hold secrets).
struct EditFile(PathBuf);

impl EditFile {
    fn new() -> Result<EditFile, Failure> {
        let name = format!("lighthouse-edit-{}.json", std::process::id());
        Ok(EditFile(std::env::temp_dir().join(name)))
    }

    fn write(&self, bytes: &[u8]) -> Result<(), Failure> {
        use std::os::unix::fs::OpenOptionsExt;
        let failed = |e: std::io::Error| Failure::Refused(format!("cannot write {}: {e}", self.shown()));
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.0)
            .map_err(failed)?;
        out.write_all(bytes).map_err(failed)
    }

    fn shown(&self) -> String {
        self.0.display().to_string()
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
