//! The `lighthouse` binary: flags to `Config`, logging, then the server.

use std::process::ExitCode;

use lighthouse::config::{self, Command, USAGE};

fn main() -> ExitCode {
    let config = match config::parse(std::env::args_os().skip(1).collect()) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("lighthouse {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("lighthouse: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Logging goes to stderr, with UTC timestamps; a second logger cannot exist in this process.
    simple_logger::SimpleLogger::new()
        .with_level(config.log_level)
        .with_utc_timestamps()
        .init()
        .expect("the logger is set once");
    match lighthouse::server::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
