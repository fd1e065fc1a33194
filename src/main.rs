//! The `lighthouse` binary: the client when the first word is one of its commands
//! (`lighthouse get /x`, see `client`), else flags to `Config`, logging, then the server.
//!
//! Nothing printed here may abort the process when stdout or stderr is a closed pipe
//! (`lighthouse --help | head -c 5`): every write ignores its error.

use std::io::Write;
use std::process::ExitCode;

use lighthouse::config::{self, Command, USAGE};

fn main() -> ExitCode {
    let words: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if words.first().is_some_and(|w| lighthouse::client::is_command(w)) {
        return ExitCode::from(lighthouse::client::run(words));
    }
    let config = match config::parse(words) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            let _ = std::io::stdout().write_all(USAGE.as_bytes());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            let (version, commit) = (env!("CARGO_PKG_VERSION"), env!("LIGHTHOUSE_COMMIT"));
            let _ = writeln!(std::io::stdout(), "lighthouse {version} (commit {commit})");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "lighthouse: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if config.wants_tls() && !cfg!(feature = "tls") {
        let _ = writeln!(std::io::stderr(), "lighthouse: {}", config::BUILT_WITHOUT_TLS);
        return ExitCode::from(2);
    }
    lighthouse::shell::logger::init(config.log_level);
    match lighthouse::shell::server::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
