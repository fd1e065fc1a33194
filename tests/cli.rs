//! The command line: help, version, bad flags, and a clean stop on SIGTERM.

mod support;

use std::process::Command;

use support::{BINARY, Server, TempDir};

#[test]
fn help_prints_usage_and_exits_0() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    for flag in ["--data.d", "--bind", "--port", "--seeds", "--bootstrap", "--lock-timeout", "--max-body"] {
        assert!(text.contains(flag), "usage mentions {flag}");
    }
}

#[test]
fn version_prints_the_version_and_the_git_commit_and_exits_0() {
    let output = Command::new(BINARY).arg("--version").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    // The commit the test is built from, as build.rs asks git for it ("unknown" without git).
    let git =
        Command::new("git").args(["rev-parse", "--short", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output();
    let commit = match git {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap().trim().to_string(),
        _ => "unknown".to_string(),
    };
    let expected = format!("lighthouse {} (commit {commit})\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
}

#[test]
fn a_bad_flag_prints_one_line_and_the_usage_and_exits_2() {
    for args in [&["--no-such-flag"][..], &["--port=notaport"], &["--max-body=-5"], &["--lock-timeout"]] {
        let output = Command::new(BINARY).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = String::from_utf8(output.stderr).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("lighthouse: "), "{args:?}: {first}");
        assert!(text.contains("Usage: lighthouse"), "{args:?} prints the usage");
    }
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let server = Server::start(&[]);
    assert_eq!(server.get("/version").status, 200);
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
}

#[test]
fn sigint_stops_the_server_cleanly_with_a_data_directory() {
    let dir = TempDir::new("sigint");
    let mut server = Server::start(&[&dir.flag()]);
    support::signal(&server.child, libc::SIGINT);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert!(server.log().iter().any(|l| l.contains("stopped")));
}

#[test]
fn the_port_flag_overrides_the_port_of_bind() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let server = Server::start(&[&format!("--port={port}")]);
    assert_eq!(server.addr.port(), port);
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let server = Server::start(&[]);
    let output = Command::new(BINARY).arg(format!("--bind={}", server.addr)).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8(output.stderr).unwrap().contains("cannot listen on"));
}

#[test]
fn empty_arguments_are_ignored() {
    // The original's cluster test passes '' for options it leaves unset.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let server = Server::start(&["", &format!("--port={port}"), ""]);
    assert_eq!(server.get("/version").status, 200);
}

#[test]
fn a_flag_never_takes_the_next_flag_as_its_value_and_a_repeated_flag_takes_the_last() {
    let dir = TempDir::new("next-flag");
    let output = Command::new(BINARY).current_dir(dir.path()).args(["--data.d", "--port=19060"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let first = String::from_utf8(output.stderr).unwrap().lines().next().unwrap().to_string();
    assert!(first.contains("--data.d needs a value"), "{first}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "no directory named after a flag");
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let server = Server::start(&["--port=1", &format!("--port={port}")]);
    assert_eq!(server.addr.port(), port, "the last --port wins");
}

#[test]
fn range_errors_say_the_range() {
    for (flag, range) in [
        ("--port=70000", "from 0 to 65535"),
        ("--lock-timeout=0", "from 1 to 3600"),
        ("--max-connections=0", "from 1 to"),
        ("--keep-snapshots=0", "from 1 to"),
    ] {
        let output = Command::new(BINARY).arg(flag).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{flag}");
        let first = String::from_utf8(output.stderr).unwrap().lines().next().unwrap().to_string();
        assert!(first.contains(range), "{flag}: {first}");
    }
}

#[test]
fn a_closed_stdout_or_stderr_never_crashes_the_process() {
    use std::process::Stdio;
    for (arg, code) in [("--port=70000", 2), ("--help", 0), ("--version", 0)] {
        let mut child = Command::new(BINARY).arg(arg).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Close the read ends before the process writes: its writes fail with EPIPE.
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{arg}: {status:?} (an abort has no exit code)");
    }
}

#[cfg(not(feature = "tls"))]
#[test]
fn tls_flags_in_a_build_without_tls_say_to_rebuild_and_exit_2() {
    for args in
        [&["--tls-cert=a.crt", "--tls-key=a.key"][..], &["--tls-cert=a.crt", "--tls-key=a.key", "--peer-ca=ca.crt"]]
    {
        let output = Command::new(BINARY).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end(), "lighthouse: built without TLS: rebuild with --features tls", "{args:?}");
    }
}

#[test]
fn tls_flags_go_together() {
    for (args, says) in [
        (&["--tls-cert=a.crt"][..], "--tls-cert needs --tls-key"),
        (&["--tls-key=a.key"], "--tls-key needs --tls-cert"),
        (&["--peer-ca=ca.crt"], "--peer-ca needs --tls-cert"),
    ] {
        let output = Command::new(BINARY).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.lines().next().is_some_and(|line| line.contains(says)), "{args:?}: {stderr}");
    }
}
