//! The rule the source tree is laid out by: `src/core/` is the pure side. It imports nothing that
//! does I/O, spawns threads, reads a clock, parses the command line or calls the system, so
//! whole clusters of cores can run on a simulated network and clock (`tests/simulation/`).
//! `std::net::SocketAddr` is allowed: it is a plain value (a client's address in an audit line).
//! And no file of `src/` or `tests/` is over 600 lines: a file that long holds more than one thing.

use std::path::{Path, PathBuf};

/// What the core may not name, and why.
const FORBIDDEN: [(&str, &str); 14] = [
    ("std::fs", "the file system is the shell's (shell::data_dir)"),
    ("std::thread", "threads are the shell's (shell::workers)"),
    ("std::time", "the core gets the time as a value (core::clock::Now)"),
    ("Instant", "the core gets the time as a value"),
    ("SystemTime", "the core gets the time as a value"),
    ("std::process", "processes are the shell's"),
    ("std::env", "the environment is read at start-up, by the shell"),
    ("std::net::Tcp", "sockets are the shell's (shell::event_loop, shell::peers)"),
    ("std::net::Udp", "sockets are the shell's"),
    ("mio::", "the event loop is the shell's"),
    ("libc", "system calls are the shell's (shell::sys)"),
    ("crate::shell", "the core never calls into the shell"),
    ("crate::config", "the command line is parsed once, outside the core"),
    ("unsafe", "the core is plain safe Rust"),
];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source tree is readable") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn the_core_imports_nothing_that_does_io() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core"), &mut files);
    assert!(files.len() > 10, "found the core's files: {files:?}");
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (name, why) in FORBIDDEN {
                if code.contains(name) {
                    broken.push(format!("{}:{}: {name} ({why})", file.display(), number + 1));
                }
            }
        }
    }
    assert!(broken.is_empty(), "the core must stay pure:\n{}", broken.join("\n"));
}

/// The source and the tests alike: a file says what it owns, and a long one owns too much.
#[test]
fn no_source_or_test_file_is_over_600_lines() {
    let mut files = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    assert!(files.iter().any(|f| f.ends_with("tests/simulation/main.rs")), "found the tests' files: {files:?}");
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, lines)| *lines > 600)
        .map(|(f, lines)| format!("{}: {lines} lines", f.display()))
        .collect();
    assert!(long.is_empty(), "files to split by what they own:\n{}", long.join("\n"));
}
