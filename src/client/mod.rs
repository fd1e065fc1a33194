//! The client in the same binary: `lighthouse get|put|patch|delete|edit|watch|lock|status`
//! talking to a server over HTTP, so scripts need neither curl nor the loops around it
//! (docs/client.md). `main.rs` sends here when the first word is one of these commands.
//!
//! Exit statuses, for scripts: 0 done, 1 the server refused (its one-line message on stderr),
//! 2 a usage error, 3 the server cannot be reached. Output is the server's bytes, fit for pipes.
//!
//! | file | owns |
//! | --- | --- |
//! | `connection.rs` | one blocking exchange over a `TcpStream`; event streams |
//! | `args.rs` | the command line of a subcommand |
//! | `usage.rs` | every subcommand's `--help` |
//! | `commands.rs` | `get`, `put`, `patch`, `delete`, `status` |
//! | `edit.rs` | `edit`: `$EDITOR` and compare-and-set |
//! | `watch.rs`, `runner.rs`, `template.rs` | `watch`: following the stream; running the command, coalesced; `--render TEMPLATE:FILE` |
//! | `lock.rs` | `lock NAME -- CMD`: a transaction around a command, its lease renewed |

/// Writes one line to stderr, like `eprintln!` but ignoring a closed stderr instead of panicking.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod args;
mod commands;
mod connection;
mod edit;
mod lock;
mod runner;
mod template;
mod usage;
mod watch;

use std::ffi::OsString;
use std::io::Write;

pub use args::Args;
pub use connection::{Answer, Server, Unreachable};

/// The words that start the client rather than the server.
pub const COMMANDS: [&str; 8] = ["get", "put", "patch", "delete", "edit", "watch", "lock", "status"];

/// The server when neither `--server` nor `LIGHTHOUSE_SERVER` names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8001";

/// Why a command ended without doing its work, and the exit status that says so.
#[derive(Debug)]
pub enum Failure {
    /// 1: the server refused; its message.
    Refused(String),
    /// 2: the command line is wrong.
    Usage(String),
    /// 3: the server cannot be reached.
    Unreachable(String),
}

impl From<Unreachable> for Failure {
    fn from(u: Unreachable) -> Failure {
        Failure::Unreachable(u.0)
    }
}

impl Failure {
    /// A refusal from an answer that is not a success.
    pub fn refused(answer: &Answer) -> Failure {
        Failure::Refused(answer.message())
    }
}

/// True when `word` names a client command.
pub fn is_command(word: &std::ffi::OsStr) -> bool {
    COMMANDS.iter().any(|c| word == *c)
}

/// Runs the command `words[0]` with the rest of `words`; the process's exit status.
pub fn run(words: Vec<OsString>) -> u8 {
    let mut words = words.into_iter();
    let command = words.next().map(|w| w.to_string_lossy().into_owned()).unwrap_or_default();
    let rest: Vec<OsString> = words.collect();
    let (valued, switches) = usage::flags(&command);
    let result = Args::parse(rest, valued, switches).map_err(Failure::Usage).and_then(|args| {
        if args.has("--help") {
            let _ = std::io::stdout().write_all(usage::text(&command).as_bytes());
            return Ok(0);
        }
        let server = server(&args)?;
        match command.as_str() {
            "get" => commands::get(&server, &args),
            "put" => commands::put(&server, &args),
            "patch" => commands::patch(&server, &args),
            "delete" => commands::delete(&server, &args),
            "status" => commands::status(&server, &args),
            "edit" => edit::run(&server, &args),
            "watch" => watch::run(&server, &args),
            "lock" => lock::run(&server, &args),
            other => Err(Failure::Usage(format!("unknown command {other}"))),
        }
    });
    match result {
        Ok(status) => status,
        Err(Failure::Refused(message)) => say(&command, &message, 1),
        Err(Failure::Unreachable(message)) => say(&command, &message, 3),
        Err(Failure::Usage(message)) => {
            let _ = writeln!(std::io::stderr(), "lighthouse {command}: {message}\n\n{}", usage::text(&command));
            2
        }
    }
}

fn say(command: &str, message: &str, status: u8) -> u8 {
    let _ = writeln!(std::io::stderr(), "lighthouse {command}: {message}");
    status
}

/// The server and token from the flags, else the environment, else the defaults.
fn server(args: &Args) -> Result<Server, Failure> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = args.value("--server").map(str::to_string).or_else(|| env("LIGHTHOUSE_SERVER"));
    let token_file = args.value("--token-file").map(str::to_string).or_else(|| env("LIGHTHOUSE_TOKEN_FILE"));
    let token = match token_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Failure::Usage(format!("--token-file: cannot read {path}: {e}")))?;
            // The first word of the first line that is not blank or a comment: a file of one
            // token, or a line copied from the server's token file (`TOKEN label=... scope=...`).
            let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
            let token = line.and_then(|l| l.split_whitespace().next()).unwrap_or("");
            if token.is_empty() || token.chars().any(char::is_control) {
                return Err(Failure::Usage(format!("--token-file: {path} holds no token")));
            }
            Some(token.to_string())
        }
    };
    Server::new(url.as_deref().unwrap_or(DEFAULT_SERVER), token).map_err(Failure::Usage)
}

/// The request target for PATH: under `/data`, or, inside a transaction (`--lock NAME`, or
/// `LIGHTHOUSE_LOCK` as `lock NAME -- CMD` sets it), under `/update/NAME`. Characters a URL
/// cannot carry are percent-encoded; a `%` is kept, so `%2F` still names a `/` inside a key.
pub fn target(path: &str, lock: Option<&str>) -> Result<String, Failure> {
    if !path.starts_with('/') {
        return Err(Failure::Usage(format!("{path:?}: a path starts with / (/services/web)")));
    }
    let mut out = match lock {
        Some(name) => format!("/update/{name}"),
        None => "/data".to_string(),
    };
    for byte in path.trim_end_matches('/').bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@%".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(out)
}

/// The lock a read or write works in: `--lock NAME`, else `LIGHTHOUSE_LOCK`.
pub fn lock_of(args: &Args) -> Option<String> {
    args.value("--lock").map(str::to_string).or_else(|| std::env::var("LIGHTHOUSE_LOCK").ok().filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_targets_under_data_or_the_lock() {
        assert_eq!(target("/", None).unwrap(), "/data");
        assert_eq!(target("/a/b/", None).unwrap(), "/data/a/b");
        assert_eq!(target("/a b/é", None).unwrap(), "/data/a%20b/%C3%A9");
        assert_eq!(target("/a%2Fb?x#", None).unwrap(), "/data/a%2Fb%3Fx%23");
        assert_eq!(target("/x", Some("ops")).unwrap(), "/update/ops/x");
        assert!(matches!(target("x", None), Err(Failure::Usage(_))));
    }
}
