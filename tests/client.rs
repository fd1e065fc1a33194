//! The client in the same binary (`lighthouse get|put|...`), driven as a user drives it: through
//! `sh` pipes, with `$EDITOR` set to a script, a `watch --exec` left running across a server
//! restart, and `lock -- CMD` around commands that stage with the client itself.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use support::{BINARY, Server, TempDir, wait_for};

/// The client's command for `server`, with nothing of this process's environment that it reads.
fn client(server: &Server) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env("LIGHTHOUSE_SERVER", format!("http://{}", server.addr))
        .env_remove("LIGHTHOUSE_TOKEN_FILE")
        .env_remove("LIGHTHOUSE_LOCK")
        .stdin(Stdio::null());
    command
}

/// Runs the client with `args`; its exit status, stdout and stderr.
fn run(server: &Server, args: &[&str]) -> (i32, String, String) {
    finished(client(server).args(args).output().expect("the client runs"))
}

/// Runs a shell command line with the client's environment (`$LH` is the binary).
fn shell(server: &Server, line: &str) -> (i32, String, String) {
    let mut command = Command::new("sh");
    command.arg("-c").arg(line).env("LH", BINARY).env("LIGHTHOUSE_SERVER", format!("http://{}", server.addr));
    finished(command.env_remove("LIGHTHOUSE_TOKEN_FILE").env_remove("LIGHTHOUSE_LOCK").output().expect("sh runs"))
}

fn finished(output: Output) -> (i32, String, String) {
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8 output");
    (output.status.code().unwrap_or(-1), text(output.stdout), text(output.stderr))
}

/// A script at `dir/name` that runs `body` under sh.
fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// A client process left running (a `watch`), killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines of a file (none when it does not exist yet).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn sequence(server: &Server) -> u64 {
    server.get("/version").json()["sequence"].as_u64().unwrap()
}

#[test]
fn put_reads_json_from_a_pipe_and_get_prints_it_for_pipes() {
    let server = Server::start(&[]);
    let (status, out, err) = shell(&server, r#"echo '{"a": 1, "s": "a b", "list": [1, 2]}' | "$LH" put /x -"#);
    assert_eq!(status, 0, "put from a pipe: {err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["sequence"], 1, "prints the version");
    assert_eq!(run(&server, &["get", "/x/a"]), (0, "1\n".into(), String::new()));
    assert_eq!(run(&server, &["get", "/x/s", "--raw"]).1, "a b");
    assert_eq!(run(&server, &["get", "/x", "--keys"]).1, "[\n  \"a\",\n  \"list\",\n  \"s\"\n]\n");
    let (status, out, _) = shell(&server, r#""$LH" get /x | tr -d ' \n'"#);
    assert_eq!((status, out.as_str()), (0, r#"{"a":1,"list":[1,2],"s":"ab"}"#));
    assert_eq!(run(&server, &["patch", "/x", "--merge", r#"{"a": null, "b": true}"#]).0, 0);
    let patch = r#"[{"op": "add", "path": "/list/-", "value": 3}]"#;
    assert_eq!(run(&server, &["patch", "/x", "--json-patch", patch]).0, 0);
    assert_eq!(run(&server, &["delete", "/x/s"]).0, 0);
    assert_eq!(server.get("/data/x").json(), serde_json::json!({"b": true, "list": [1, 2, 3]}));
}

#[test]
fn exit_statuses_say_refused_usage_or_unreachable() {
    let server = Server::start(&[]);
    let (status, out, err) = run(&server, &["get", "/nope"]);
    assert_eq!((status, out.as_str()), (1, ""), "a refusal prints nothing on stdout");
    assert_eq!(err, "lighthouse get: no such path: /data/nope (404)\n", "the server's one line");
    assert_eq!(run(&server, &["put", "/x", "{nope"]).0, 1, "the server refuses what is not JSON");
    let tag = "\"0000000000000000000000000000000000000000\"";
    let (status, _, err) = run(&server, &["put", "/x", "1", "--if-match", tag]);
    assert!(status == 1 && err.contains("412"), "a failed precondition is a refusal: {err}");
    for args in [&["put", "/x"][..], &["get"], &["get", "/x", "--nope"], &["get", "x"], &["patch", "/x", "{}"]] {
        let (status, _, err) = run(&server, args);
        assert_eq!(status, 2, "{args:?} is a usage error");
        assert!(err.contains("Usage: lighthouse"), "{args:?} prints its usage: {err}");
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (status, _, err) = run(&server, &["get", "/", "--server", &format!("http://{closed}")]);
    assert_eq!(status, 3, "nobody listens: {err}");
    assert!(err.contains("cannot reach the server"), "{err}");
    for command in ["get", "put", "patch", "delete", "edit", "watch", "lock", "status"] {
        let (status, out, _) = run(&server, &[command, "--help"]);
        assert_eq!(status, 0);
        assert!(out.starts_with(&format!("Usage: lighthouse {command}")), "{command} --help: {out}");
    }
}

#[test]
fn a_token_file_is_sent_as_the_server_expects() {
    let dir = TempDir::new("client-token");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let server = Server::start(&[&format!("--token-file={}", token.display())]);
    let (status, _, err) = run(&server, &["put", "/x", "1"]);
    assert_eq!(status, 1, "no token: refused");
    assert!(err.contains("changes need a token"), "{err}");
    let (status, _, err) = run(&server, &["put", "/x", "1", "--token-file", token.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let mut put = client(&server);
    put.args(["put", "/y", "2"]).env("LIGHTHOUSE_TOKEN_FILE", &token).stdout(Stdio::null());
    let status = put.status().unwrap();
    assert_eq!(status.code(), Some(0), "the token file from the environment");
    // A line as the server's token file has it: comments and blank lines first, then words after.
    let line = dir.path().join("line");
    std::fs::write(
        &line,
        "# the deploy job

s3cret label=deploy scope=write
",
    )
    .unwrap();
    assert_eq!(run(&server, &["put", "/z", "3", "--token-file", line.to_str().unwrap()]).0, 0);
    let empty = dir.path().join("empty");
    std::fs::write(
        &empty,
        "# nothing
",
    )
    .unwrap();
    assert_eq!(run(&server, &["get", "/", "--token-file", empty.to_str().unwrap()]).0, 2, "no token: usage");
}

#[test]
fn edit_writes_back_what_the_editor_saved() {
    let server = Server::start(&[]);
    let dir = TempDir::new("client-edit");
    assert_eq!(run(&server, &["put", "/web", r#"{"port": 8080}"#]).0, 0);
    let editor = script(dir.path(), "editor", r#"sed -i 's/8080/9090/' "$1""#);
    let (status, _, err) = finished(client(&server).args(["edit", "/web"]).env("EDITOR", &editor).output().unwrap());
    assert_eq!(status, 0, "{err}");
    assert_eq!(server.get("/data/web/port").text(), "9090\n");
    let unchanged = script(dir.path(), "true", "true");
    let (status, _, err) = finished(client(&server).args(["edit", "/web"]).env("EDITOR", &unchanged).output().unwrap());
    assert_eq!((status, err.as_str()), (0, "lighthouse edit: no change\n"));
    assert_eq!(sequence(&server), 2, "an edit that changed nothing writes nothing");
}

#[test]
fn edit_refuses_to_overwrite_a_change_made_while_the_editor_was_open() {
    let server = Server::start(&[]);
    let dir = TempDir::new("client-edit-412");
    assert_eq!(run(&server, &["put", "/web", r#"{"port": 8080}"#]).0, 0);
    // The editor: someone else writes the value through the server meanwhile, then the user saves.
    let editor = script(dir.path(), "editor", r#""$LH" put /web/port 7070 >/dev/null && sed -i 's/8080/9090/' "$1""#);
    let output = client(&server).args(["edit", "/web"]).env("EDITOR", &editor).env("LH", BINARY).output().unwrap();
    let (status, _, err) = finished(output);
    assert_eq!(status, 1, "without a terminal it gives up: {err}");
    assert!(err.contains("someone else changed /web since you opened it"), "{err}");
    assert_eq!(server.get("/data/web/port").text(), "7070\n", "the other change stands");
    let kept = err.split("kept in ").nth(1).and_then(|rest| rest.strip_suffix(")\n")).expect("names the file");
    assert!(std::fs::read_to_string(kept).unwrap().contains("9090"), "the edit is kept");
    let _ = std::fs::remove_file(kept);
}

#[test]
fn watch_exec_survives_a_server_restart_and_never_runs_twice_for_one_version() {
    let data = TempDir::new("client-watch-restart");
    let dir = TempDir::new("client-watch-runs");
    let runs = dir.path().join("runs");
    let server = Server::start(&[&data.flag()]);
    let addr = server.addr;
    assert_eq!(run(&server, &["put", "/x", "0"]).0, 0);
    let exec = format!("echo \"$LIGHTHOUSE_SEQUENCE $LIGHTHOUSE_PATH $(cat)\" >> {}", runs.display());
    let _watch = Running(client(&server).args(["watch", "/x", "--exec", &exec]).stderr(Stdio::null()).spawn().unwrap());
    wait_for("the first run, at start", || lines(&runs) == ["1 /x 0"]);
    assert_eq!(run(&server, &["put", "/x", "1"]).0, 0);
    wait_for("the run of sequence 2", || lines(&runs).last().map(String::as_str) == Some("2 /x 1"));
    assert_eq!(server.terminate().code(), Some(0));
    let server = Server::start_on(&addr.to_string(), &[&data.flag()]);
    // Back on the same version: the watch resumes from it and runs nothing again.
    assert_eq!(run(&server, &["put", "/y", "0"]).0, 0, "a change elsewhere");
    for value in 2..=4 {
        assert_eq!(run(&server, &["put", "/x", &value.to_string()]).0, 0);
    }
    let newest = sequence(&server);
    wait_for("the run of the newest version", || lines(&runs).last() == Some(&format!("{newest} /x 4")));
    let seen = lines(&runs);
    let sequences: Vec<u64> = seen.iter().map(|l| l.split(' ').next().unwrap().parse().unwrap()).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "each version ran once, in order: {seen:?}");
    assert!(!sequences.contains(&3), "sequence 3 changed only /y: {seen:?}");
}

#[test]
fn watch_coalesces_a_burst_into_one_more_run_with_the_newest_value() {
    let server = Server::start(&[]);
    let dir = TempDir::new("client-watch-burst");
    let (runs, gate) = (dir.path().join("runs"), dir.path().join("gate"));
    assert_eq!(run(&server, &["put", "/n", "0"]).0, 0);
    // Each run records its value, then waits for the test to open the gate: a slow command (that
    // ends too when the test's directory is gone, so none outlives the test).
    let exec = format!(
        "echo \"$LIGHTHOUSE_SEQUENCE $(cat)\" >> {runs}; \
         while [ ! -e {gate} ] && [ -d {dir} ]; do sleep 0.01; done; rm -f {gate}",
        runs = runs.display(),
        gate = gate.display(),
        dir = dir.path().display()
    );
    let _watch = Running(client(&server).args(["watch", "/n", "--exec", &exec]).stderr(Stdio::null()).spawn().unwrap());
    wait_for("the first run to start", || lines(&runs).len() == 1);
    for value in 1..=10 {
        assert_eq!(run(&server, &["put", "/n", &value.to_string()]).0, 0);
    }
    let newest = sequence(&server);
    // Open the gate for each run until one has run with the newest value.
    wait_for("a run with the newest value", || {
        if !gate.exists() {
            std::fs::write(&gate, "").unwrap();
        }
        lines(&runs).last() == Some(&format!("{newest} 10"))
    });
    let seen = lines(&runs);
    // Usually one more run (two when the last events reached the watch just after the first run
    // ended); one per write without coalescing.
    assert!(seen.len() < 11, "ten writes coalesced into fewer runs: {seen:?}");
    let sequences: Vec<u64> = seen.iter().map(|l| l.split(' ').next().unwrap().parse().unwrap()).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "no version ran twice: {seen:?}");
}

#[test]
fn watch_renders_a_file_atomically_and_prints_values_one_per_line() {
    let server = Server::start(&[]);
    let dir = TempDir::new("client-watch-render");
    let file = dir.path().join("motd");
    assert_eq!(run(&server, &["put", "/motd", "\"hello\""]).0, 0);
    let args = ["watch", "/motd", "--raw", "--render", file.to_str().unwrap()];
    let _render = Running(client(&server).args(args).stderr(Stdio::null()).spawn().unwrap());
    let mut printer = Running(client(&server).args(["watch", "/"]).stdout(Stdio::piped()).spawn().unwrap());
    wait_for("the file", || std::fs::read_to_string(&file).is_ok_and(|t| t == "hello"));
    assert_eq!(run(&server, &["put", "/motd", "\"bye\""]).0, 0);
    wait_for("the file rewritten", || std::fs::read_to_string(&file).is_ok_and(|t| t == "bye"));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["motd"], "no temporary file is left");
    let mut stdout = std::io::BufReader::new(printer.0.stdout.take().unwrap());
    let mut line = String::new();
    for expected in ["{\"motd\":\"hello\"}\n", "{\"motd\":\"bye\"}\n"] {
        line.clear();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert_eq!(line, expected);
    }
}

#[test]
fn watch_renders_a_template_and_goes_on_after_a_value_it_cannot_fill() {
    let server = Server::start(&[]);
    let dir = TempDir::new("client-watch-template");
    let (template, file) = (dir.path().join("upstream.tmpl"), dir.path().join("upstream.conf"));
    std::fs::write(&template, "upstream web { server {{/host}}:{{/port}}; } # {{/tags}}\n").unwrap();
    let put = |value: &str| assert_eq!(run(&server, &["put", "/web", value]).0, 0);
    put(r#"{"host": "10.0.0.5", "port": 8080, "tags": ["blue"]}"#);
    let render = format!("{}:{}", template.display(), file.display());
    let _watch =
        Running(client(&server).args(["watch", "/web", "--render", &render]).stderr(Stdio::null()).spawn().unwrap());
    let filled = "upstream web { server 10.0.0.5:8080; } # [\"blue\"]\n";
    wait_for("the file from the template", || std::fs::read_to_string(&file).is_ok_and(|t| t == filled));
    // A value the template cannot be filled from leaves the file as it was...
    put(r#"{"host": "10.0.0.6", "tags": []}"#);
    put(r#"{"host": "10.0.0.7", "port": 9090, "tags": []}"#);
    // ...and the next one that can rewrites it.
    let refilled = "upstream web { server 10.0.0.7:9090; } # []\n";
    wait_for("the file filled again", || std::fs::read_to_string(&file).is_ok_and(|t| t == refilled));
}

#[test]
fn lock_commits_what_the_command_staged_when_it_succeeds() {
    let server = Server::start(&[]);
    let line = r#""$LH" lock deploy -- sh -c '"$LH" put /a 1 && "$LH" put /b "\"$LIGHTHOUSE_LOCK\"" && "$LH" get /a'"#;
    let (status, out, err) = shell(&server, line);
    assert_eq!(status, 0, "{err}");
    assert!(out.starts_with("1\n"), "the command reads what it staged: {out}");
    assert_eq!(server.get("/data").json(), serde_json::json!({"a": 1, "b": "deploy"}));
    assert_eq!(server.get("/lock").status, 404, "the lock is free");
}

#[test]
fn lock_aborts_when_the_command_fails_and_exits_with_its_status() {
    let server = Server::start(&[]);
    let (status, _, err) = shell(&server, r#""$LH" lock deploy -- sh -c '"$LH" put /a 1 && exit 7'"#);
    assert_eq!(status, 7, "{err}");
    assert!(err.contains("aborted"), "{err}");
    assert_eq!(server.get("/data").json(), serde_json::json!({}), "nothing landed");
    assert_eq!(server.get("/lock").status, 404, "the lock is free");
    assert_eq!(server.request("PUT", "/lock", b"other").status, 200);
    let (status, _, err) = run(&server, &["lock", "deploy", "--", "true"]);
    assert_eq!(status, 1, "another holds the lock");
    assert!(err.contains("other"), "the server's message names the holder: {err}");
    assert_eq!(server.request("DELETE", "/lock/other", b"").status, 200);
    // A lock its name already holds is another run's transaction: not joined.
    assert_eq!(server.request("PUT", "/lock", b"deploy").status, 200);
    assert_eq!(server.request("PUT", "/update/deploy/stale", b"1").status, 201);
    let (status, _, err) = run(&server, &["lock", "deploy", "--", "true"]);
    assert_eq!(status, 1);
    assert!(err.contains("deploy already holds the lock"), "{err}");
    assert_eq!(server.get("/data").json(), serde_json::json!({}), "the stale change did not land");
}

#[test]
fn lock_renews_the_lease_while_the_command_runs() {
    let server = Server::start(&[]);
    // A lease of 2 s, and a command that stages, then works for 4 s: only renewals keep it.
    let line = r#""$LH" lock deploy --ttl 2 -- sh -c '"$LH" put /a 1 && sleep 4'"#;
    let (status, out, err) = shell(&server, line);
    assert_eq!(status, 0, "committed: {err}");
    assert!(out.contains("\"sequence\": 1"), "{out}");
    assert_eq!(server.get("/data/a").text(), "1\n");
}

#[test]
fn status_shows_every_node_of_a_three_node_cluster() {
    let members = support::cluster::chain(3, "client-status", &[]);
    let report = || {
        let (status, out, err) = run(members[1].server(), &["status", "--json"]);
        assert_eq!(status, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    // The peers' sequences are what gossip last told this node: within a round they agree.
    wait_for("every node at lag 0", || report()["nodes"].as_array().unwrap().iter().all(|n| n["lag"] == 0));
    let report = report();
    let nodes = report["nodes"].as_array().unwrap();
    let mut addresses: Vec<&str> = nodes.iter().map(|n| n["address"].as_str().unwrap()).collect();
    addresses.sort();
    let mut expected: Vec<String> = members.iter().map(|m| m.address()).collect();
    expected.sort();
    assert_eq!(addresses, expected);
    assert_eq!(nodes.iter().filter(|n| n["role"] == "coordinator").count(), 1, "{report}");
    assert!(nodes.iter().all(|n| n["reachable"] == true), "{report}");
    assert_eq!(report["coordinator"], members[0].writes()["coordinator"]);
    let (status, table, _) = run(members[1].server(), &["status"]);
    assert_eq!(status, 0);
    assert!(table.contains("ADDRESS") && expected.iter().all(|a| table.contains(a.as_str())), "{table}");
}

/// docs/client.md's session, each `$ ` command run by bash with the client on `PATH` (stderr
/// shown with stdout, as a terminal shows it), printing the lines the page shows below it.
#[test]
fn the_client_pages_session_prints_what_the_page_shows() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/client.md")).unwrap();
    let start = page.find("\n## A session\n").expect("the session's heading");
    let body = start + page[start..].find("```console\n").expect("its console block") + "```console\n".len();
    let session = &page[body..body + page[body..].find("```").unwrap()];
    let server = Server::start(&[]);
    let bin_dir = Path::new(BINARY).parent().unwrap().display().to_string();
    let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let mut steps: Vec<(String, String)> = Vec::new();
    for line in session.lines() {
        match line.strip_prefix("$ ") {
            Some(command) => steps.push((command.to_string(), String::new())),
            None => steps.last_mut().expect("a command first").1.push_str(&format!("{line}\n")),
        }
    }
    assert!(steps.len() >= 8, "{steps:?}");
    for (command, expected) in steps {
        let mut bash = Command::new("bash");
        bash.arg("-c").arg(format!("{{ {command}; }} 2>&1")).env("PATH", &path);
        bash.env("LIGHTHOUSE_SERVER", format!("http://{}", server.addr)).env_remove("LIGHTHOUSE_TOKEN_FILE");
        let (_, out, _) = finished(bash.env_remove("LIGHTHOUSE_LOCK").output().unwrap());
        assert_eq!(out, expected, "{command}");
    }
}

/// The `lighthouse watch` line docs/tutorial.md shows beside its shell loop, run as written.
#[test]
fn the_tutorials_watch_line_reports_each_change() {
    let tutorial = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tutorial.md")).unwrap();
    let line = tutorial.lines().find(|l| l.starts_with("lighthouse watch /providers/beta")).expect("the line");
    let server = Server::start(&[]);
    assert_eq!(run(&server, &["put", "/", r#"{"providers": {"beta": ["192.168.2.1"]}}"#]).0, 0);
    let dir = TempDir::new("client-tutorial-watch");
    let bin_dir = Path::new(BINARY).parent().unwrap().display().to_string();
    let mut bash = Command::new("bash");
    bash.arg("-c").arg(format!("exec {line} > out")).current_dir(dir.path()).stderr(Stdio::null());
    bash.env("PATH", format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()));
    let _watch = Running(bash.env("LIGHTHOUSE_SERVER", format!("http://{}", server.addr)).spawn().unwrap());
    let out = dir.path().join("out");
    wait_for("the first report", || lines(&out) == [r#"providers changed: ["192.168.2.1"]"#]);
    assert_eq!(run(&server, &["put", "/providers/beta/1", "\"192.168.2.2\""]).0, 0);
    let second = r#"providers changed: ["192.168.2.1","192.168.2.2"]"#;
    wait_for("the second report", || lines(&out).last().map(String::as_str) == Some(second));
}

#[test]
fn lock_aborts_when_ctrl_c_interrupts_the_command() {
    use std::os::unix::process::CommandExt;
    let server = Server::start(&[]);
    // Its own process group, as a terminal's foreground job: Ctrl-C goes to every process in it.
    let mut command = client(&server);
    command.args(["lock", "deploy", "--", "sh", "-c", "\"$0\" put /a 1 && exec sleep 60", BINARY]);
    // With Ctrl-C's default action, as an interactive shell starts a job, even when this test
    // runs where SIGINT is ignored (a background job of a script), which every child inherits.
    // SAFETY: signal() is async-signal-safe, as a function run between fork and exec must be.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        })
    };
    let mut lock = Running(command.stderr(Stdio::null()).process_group(0).spawn().unwrap());
    wait_for("the command to stage", || server.get("/update/deploy/a").status == 200);
    let group = libc::pid_t::try_from(lock.0.id()).unwrap();
    // SAFETY: a signal to the process group this test made.
    unsafe { libc::kill(-group, libc::SIGINT) };
    let mut status = None;
    wait_for("the client to exit", || {
        status = lock.0.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(130), "the command's death by SIGINT, as a shell reports it");
    assert_eq!(server.get("/lock").status, 404, "aborted at once, not left to lapse");
    assert_eq!(server.get("/data").json(), serde_json::json!({}));
}

#[test]
fn watch_exits_1_when_the_server_refuses_and_0_when_its_reader_is_gone() {
    let dir = TempDir::new("client-watch-refused");
    let token = dir.path().join("token");
    std::fs::write(&token, "r\n").unwrap();
    let reads = Server::start(&[&format!("--read-token-file={}", token.display())]);
    let (status, _, err) = run(&reads, &["watch", "/"]);
    assert_eq!(status, 1, "no token: the stream is refused, for good");
    assert!(err.contains("reads need a token"), "{err}");
    let server = Server::start(&[]);
    assert_eq!(run(&server, &["put", "/x", "1"]).0, 0);
    let mut command = Command::new("sh");
    command.arg("-c").arg("\"$0\" watch /x | head -n 1 > /dev/null").arg(BINARY);
    let mut pipeline = Running(command.env("LIGHTHOUSE_SERVER", format!("http://{}", server.addr)).spawn().unwrap());
    let mut value = 2;
    wait_for("the watch to end once head is gone (on its next print)", || {
        assert_eq!(run(&server, &["put", "/x", &value.to_string()]).0, 0);
        value += 1;
        pipeline.0.try_wait().unwrap().is_some()
    });
}

#[test]
fn edit_on_a_terminal_offers_the_new_version_after_a_conflict() {
    let server = Server::start(&[]);
    let dir = TempDir::new("client-edit-tty");
    assert_eq!(run(&server, &["put", "/web", r#"{"port": 8080}"#]).0, 0);
    // The first time, someone else writes meanwhile; the second time (the new version), the user
    // edits in peace.
    let marker = dir.path().join("opened");
    let body = format!(
        "if [ -e {m} ]; then sed -i 's/7070/6060/' \"$1\"; else touch {m}; \"$LH\" put /web/port 7070 >/dev/null; \
         sed -i 's/8080/9090/' \"$1\"; fi",
        m = marker.display()
    );
    let editor = script(dir.path(), "editor", &body);
    // `script` runs the client on a terminal of its own, whose input is ours: the answer "y".
    let mut command = Command::new("script");
    command.args(["-qec", &format!("{BINARY} edit /web"), "/dev/null"]).env("EDITOR", &editor).env("LH", BINARY);
    command.env("LIGHTHOUSE_SERVER", format!("http://{}", server.addr)).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = command.spawn().expect("script(1) runs (util-linux)");
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(shown.contains("someone else changed /web since you opened it. Edit the new version?"), "{shown}");
    assert_eq!(server.get("/data/web/port").text(), "6060\n", "the new version, edited");
}

#[test]
fn a_body_the_server_refuses_unread_gets_its_refusal_not_unreachable() {
    let server = Server::start(&["--max-body=1024"]);
    let big = format!("\"{}\"", "x".repeat(8 * 1024 * 1024));
    let mut put =
        client(&server).args(["put", "/x", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    put.stdin.take().unwrap().write_all(big.as_bytes()).unwrap();
    let (status, _, err) = finished(put.wait_with_output().unwrap());
    assert_eq!(status, 1, "a refusal: {err}");
    assert!(err.contains("413"), "{err}");
}
