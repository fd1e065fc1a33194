//! Runs the operator's guide (`docs/operators-guide.md`): every `sh` block, in order, as one bash
//! script with `set -euo pipefail`, in an empty directory, with the freshly built binary first on
//! `PATH` as `lighthouse` and free ports in place of 8001 to 8005. A step that fails fails the
//! test, with the script's output and the nodes' logs. Every process the guide starts is in the
//! script's process group, killed at the end whatever happened.

mod support;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{BINARY, TempDir};

/// The guide's ports, replaced by free ones.
const GUIDE_PORTS: [&str; 5] = ["8001", "8002", "8003", "8004", "8005"];
/// The whole guide runs in well under this (it waits for elections and promotions).
const GUIDE_DEADLINE: Duration = Duration::from_secs(300);

/// The `sh` blocks of a Markdown file, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed code block");
    blocks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `file`'s blocks; returns the script's output.
fn run_guide(file: &str) -> String {
    let markdown = std::fs::read_to_string(file).expect("the guide is readable");
    let mut script = String::from("set -euo pipefail\nset -x\n");
    for block in shell_blocks(&markdown) {
        script.push_str(&block);
    }
    for port in GUIDE_PORTS {
        script = script.replace(port, &free_port().to_string());
    }
    let dir = TempDir::new("guide");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BINARY, bin.join("lighthouse")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash runs");
    let mut output = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > GUIDE_DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Every node the guide started, and the script itself if it is still running.
    let group = child.id() as libc::pid_t;
    // SAFETY: signalling a process group this test created.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    let _ = stdout.read_to_string(&mut output);
    let trace = reader.join().unwrap();
    let logs: String = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| format!("--- {}\n{}", e.path().display(), std::fs::read_to_string(e.path()).unwrap_or_default()))
        .collect();
    let report = format!("stdout:\n{output}\ntrace:\n{trace}\nlogs:\n{logs}");
    match status {
        Some(status) => assert!(status.success(), "{file} failed ({status}):\n{report}"),
        None => panic!("{file} ran past {GUIDE_DEADLINE:?}:\n{report}"),
    }
    output
}

#[test]
fn the_operators_guide_runs_as_written() {
    let output = run_guide("docs/operators-guide.md");
    // What the guide's last reads print: the greeting through every step, the write taken after
    // the recovery, the backup restored into a new cluster, and the store of the upgraded cluster.
    // (The versions that writes print are JSON objects over several lines; the reads print one.)
    let reads: Vec<&str> = output.lines().filter(|l| l.starts_with('"') || *l == "true").collect();
    let expected = ["\"hello\""; 3].into_iter().chain(["true", "\"hello\"", "\"from local writes\""]);
    assert_eq!(reads, expected.collect::<Vec<_>>(), "{output}");
}

#[test]
fn shell_blocks_are_found_in_order() {
    let blocks = shell_blocks("text\n```sh\na\nb\n```\n```js\nno\n```\n```sh\nc\n```\n");
    assert_eq!(blocks, vec!["a\nb\n".to_string(), "c\n".to_string()]);
}
