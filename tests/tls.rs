//! HTTPS (`--features tls`): curl with `--cacert` reading and writing, plain HTTP to the TLS port
//! told to use https://, a three-node cluster whose peers speak TLS to each other, and SIGHUP
//! serving a new certificate. The certificates are made by the system's `openssl` command, as
//! docs/tls.md shows an operator making them.
#![cfg(feature = "tls")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cluster::Member;
use support::{Client, Server, TempDir, curl, signal, wait_for};

/// A certificate authority made for one test: its certificate and key files.
struct Authority {
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

impl Authority {
    /// A self-signed CA named `name`, in `dir`.
    fn new(dir: &Path, name: &str) -> Authority {
        let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
        let subject = format!("/CN={name}");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &key,
                "-out",
                &cert,
                "-subj",
                &subject,
            ],
        );
        Authority { cert: dir.join(cert), key: dir.join(key) }
    }

    /// A server certificate for 127.0.0.1 and localhost signed by this CA, as `name.crt` and
    /// `name.key` in `dir`.
    fn issue(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key, request) = (format!("{name}.crt"), format!("{name}.key"), format!("{name}.csr"));
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &request,
                "-subj",
                "/CN=lighthouse",
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &request,
                "-CA",
                self.cert.to_str().unwrap(),
                "-CAkey",
                self.key.to_str().unwrap(),
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &cert,
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        (dir.join(cert), dir.join(key))
    }
}

/// The flags that serve `cert` and `key` over TLS, verifying peers with `ca`.
fn tls_flags(cert: &Path, key: &Path, ca: &Path) -> Vec<String> {
    vec![
        format!("--tls-cert={}", cert.display()),
        format!("--tls-key={}", key.display()),
        format!("--peer-ca={}", ca.display()),
    ]
}

fn start_tls(flags: &[String], more: &[&str]) -> Server {
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend(more);
    Server::start(&all)
}

/// `curl --cacert CA` on https://ADDRESS/PATH, with `args` besides: (exit code, body).
fn https(ca: &Path, address: &str, path: &str, args: &[&str]) -> (i32, String) {
    let url = format!("https://{address}{path}");
    let mut all = vec!["--cacert", ca.to_str().unwrap(), url.as_str()];
    all.extend(args);
    curl(&all)
}

fn https_json(ca: &Path, address: &str, path: &str) -> serde_json::Value {
    let (code, body) = https(ca, address, path, &[]);
    assert_eq!(code, 0, "curl --cacert {} https://{address}{path} failed", ca.display());
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} answered {body:?}: {e}"))
}

/// Runs docs/tls.md's block that makes the CA and the node's certificate, in `dir`: the files
/// land in `dir/tls/`, as the page says.
fn make_certificates_as_the_docs_say(dir: &Path) -> (Authority, PathBuf, PathBuf) {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tls.md")).unwrap();
    let block = page
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
        .find(|block| block.contains("openssl req -x509"))
        .expect("docs/tls.md has a sh block that makes the CA");
    let output = Command::new("sh").current_dir(dir).args(["-ec", block]).output().expect("sh runs");
    assert!(output.status.success(), "docs/tls.md's block failed: {}", String::from_utf8_lossy(&output.stderr));
    let tls = dir.join("tls");
    (Authority { cert: tls.join("ca.crt"), key: tls.join("ca.key") }, tls.join("node.crt"), tls.join("node.key"))
}

#[test]
fn curl_with_the_cacert_reads_and_writes_over_https() {
    let dir = TempDir::new("tls-curl");
    let (ca, cert, key) = make_certificates_as_the_docs_say(dir.path());
    let server = start_tls(&tls_flags(&cert, &key, &ca.cert), &["--bootstrap"]);
    let address = server.addr.to_string();

    let (code, body) = https(&ca.cert, &address, "/data/app", &["-X", "PUT", "--data", r#"{"port": 8080}"#]);
    assert_eq!(code, 0, "the write over https failed: {body}");
    assert_eq!(https_json(&ca.cert, &address, "/data/app/port"), serde_json::json!(8080));
    // A body larger than a TLS record and than the session's buffer goes both ways whole.
    let large = format!("\"{}\"", "x".repeat(300_000));
    let large_file = dir.path().join("large.json");
    std::fs::write(&large_file, &large).unwrap();
    let upload = format!("@{}", large_file.display());
    let (code, _) = https(&ca.cert, &address, "/data/large", &["-X", "PUT", "--data-binary", &upload]);
    assert_eq!(code, 0, "the large write over https failed");
    let (code, body) = https(&ca.cert, &address, "/data/large", &[]);
    assert_eq!((code, body.trim_end().len()), (0, large.len()), "the large read over https came back whole");

    // Without the CA, curl refuses the self-signed chain: the node really serves that certificate.
    let (code, _) = curl(&[&format!("https://{address}/data/app")]);
    assert_eq!(code, 60, "curl without --cacert must fail to verify (exit 60)");
}

#[test]
fn plain_http_to_the_tls_port_is_told_to_use_https() {
    let dir = TempDir::new("tls-plain");
    let ca = Authority::new(dir.path(), "ca");
    let (cert, key) = ca.issue(dir.path(), "node");
    let server = start_tls(&tls_flags(&cert, &key, &ca.cert), &["--bootstrap"]);

    let mut client = Client::connect(server.addr);
    client.send_request("GET", "/data", &[], b"");
    let answer = client.read_response();
    assert_eq!(answer.status, 400, "plain HTTP to the TLS port: {answer:?}");
    assert!(answer.error().contains("use https://"), "the error says to use https://: {}", answer.error());
    assert!(client.is_closed_by_server(), "the connection closes after the plain answer");

    let (code, body) = curl(&["--write-out", " %{http_code}", &server.url("/data")]);
    assert_eq!(code, 0);
    assert!(body.contains("this port speaks HTTPS") && body.ends_with(" 400"), "curl http:// read {body:?}");
    // The port still speaks TLS to the next client.
    assert_eq!(https_json(&ca.cert, &server.addr.to_string(), "/data"), serde_json::json!({}));
}

/// Waits until every member is active and all agree on the coordinator and the version, asking
/// each over https.
fn wait_settled_over_tls(members: &[Member], ca: &Path) {
    wait_for("three voters over TLS agreeing on the coordinator and the version", || {
        let states: Vec<serde_json::Value> =
            members.iter().map(|m| https_json(ca, &m.server().addr.to_string(), "/state")).collect();
        let versions: Vec<serde_json::Value> =
            members.iter().map(|m| https_json(ca, &m.server().addr.to_string(), "/version")).collect();
        let coordinator = &states[0]["writes"]["coordinator"];
        !coordinator.is_null()
            && states.iter().all(|s| {
                s["writes"]["coordinator"] == *coordinator
                    && s["writes"]["voters"].as_array().map(Vec::len) == Some(members.len())
            })
            && versions.iter().all(|v| *v == versions[0])
    });
}

#[test]
fn a_three_node_cluster_over_tls_commits_and_converges() {
    let dir = TempDir::new("tls-cluster");
    let ca = Authority::new(dir.path(), "ca");
    let (cert, key) = ca.issue(dir.path(), "node");
    let flags = tls_flags(&cert, &key, &ca.cert);
    let mut members: Vec<Member> = (0..3).map(|i| Member::new(&format!("tls{i}"))).collect();
    for i in 0..3 {
        let mut args: Vec<String> = flags.clone();
        if i > 0 {
            args.push(format!("--seeds={}", members[i - 1].address()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        members[i].start(&args);
    }
    wait_settled_over_tls(&members, &ca.cert);

    let first = members[0].server().addr.to_string();
    let (code, body) = https(&ca.cert, &first, "/data/greeting", &["-X", "PUT", "--data", r#""hello""#]);
    assert_eq!(code, 0, "the write over https failed: {body}");
    let committed = serde_json::from_str::<serde_json::Value>(&body).expect("the commit answers its version");
    for member in &members {
        let address = member.server().addr.to_string();
        wait_for(&format!("{address} to serve the committed write"), || {
            https_json(&ca.cert, &address, "/version") == committed
        });
        assert_eq!(https_json(&ca.cert, &address, "/data/greeting"), serde_json::json!("hello"));
    }
    // The peers reached each other through the proxies, which carry only what the nodes send: a
    // node speaking plain HTTP to a TLS peer would have been answered 400, and nothing committed.
    for member in &members {
        assert!(
            !member.server().log().iter().any(|line| line.contains("speaks HTTPS")),
            "no node was spoken plain HTTP to"
        );
    }
}

#[test]
fn sighup_rereads_the_certificate_and_a_bad_file_keeps_the_old_one() {
    let dir = TempDir::new("tls-reload");
    let old_ca = Authority::new(dir.path(), "old-ca");
    let new_ca = Authority::new(dir.path(), "new-ca");
    let (cert, key) = old_ca.issue(dir.path(), "node");
    let server = start_tls(&tls_flags(&cert, &key, &old_ca.cert), &["--bootstrap"]);
    let address = server.addr.to_string();
    assert_eq!(https(&old_ca.cert, &address, "/health", &[]).0, 0, "the first certificate is served");

    // Renewed in place, as certbot or an operator would, then SIGHUP.
    let (new_cert, new_key) = new_ca.issue(dir.path(), "renewed");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    signal(&server.child, libc::SIGHUP);
    wait_for("the renewed certificate to be served", || https(&new_ca.cert, &address, "/health", &[]).0 == 0);
    assert_eq!(https(&old_ca.cert, &address, "/health", &[]).0, 60, "the old certificate is no longer served");

    // A broken file: one ERROR line, and the certificate in use stays.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    signal(&server.child, libc::SIGHUP);
    wait_for("the ERROR about the broken certificate", || {
        server.log().iter().any(|line| line.contains("ERROR") && line.contains("--tls-cert"))
    });
    assert_eq!(https(&new_ca.cert, &address, "/health", &[]).0, 0, "the renewed certificate is still served");
    let errors = server.log().iter().filter(|line| line.contains("ERROR")).count();
    assert_eq!(errors, 1, "one ERROR line for one bad reload: {:?}", server.log());
}

#[test]
fn a_certificate_that_cannot_be_read_stops_the_start_with_one_line() {
    let dir = TempDir::new("tls-bad");
    let missing = dir.path().join("missing.crt");
    let output = Command::new(support::BINARY)
        .args([
            "--bind=127.0.0.1:0",
            &format!("--tls-cert={}", missing.display()),
            &format!("--tls-key={}", missing.display()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the start must fail");
    assert!(stderr.contains("--tls-cert: cannot read") && stderr.contains("missing.crt"), "stderr: {stderr}");
}

#[test]
fn a_peer_certificate_the_peer_ca_does_not_sign_keeps_the_node_out_and_is_logged_once() {
    let dir = TempDir::new("tls-wrong-ca");
    let ca = Authority::new(dir.path(), "ca");
    let stranger = Authority::new(dir.path(), "stranger");
    let (cert, key) = ca.issue(dir.path(), "node");
    let first = start_tls(&tls_flags(&cert, &key, &ca.cert), &[]);
    let seeds = format!("--seeds={}", first.addr);
    let second = start_tls(&tls_flags(&cert, &key, &stranger.cert), &[&seeds]);

    wait_for("a warning that the seed's certificate is not trusted", || {
        second.log().iter().any(|line| line.contains("WARN") && line.contains("invalid peer certificate"))
    });
    let (code, _) = https(&ca.cert, &second.addr.to_string(), "/ready", &["--fail"]);
    assert_eq!(code, 22, "a node that cannot verify its seed does not join (503 on /ready)");
    let warnings = second.log().iter().filter(|line| line.contains("invalid peer certificate")).count();
    assert_eq!(warnings, 1, "told once, not at every retry: {:?}", second.log());
}

#[test]
fn event_streams_and_long_polls_work_over_https() {
    use std::io::BufRead;
    let dir = TempDir::new("tls-watch");
    let ca = Authority::new(dir.path(), "ca");
    let (cert, key) = ca.issue(dir.path(), "node");
    let server = start_tls(&tls_flags(&cert, &key, &ca.cert), &["--bootstrap"]);
    let address = server.addr.to_string();
    assert_eq!(https(&ca.cert, &address, "/data/color", &["-X", "PUT", "--data", r#""red""#]).0, 0);

    // An event stream: the answers come from the core, not from a request, through the TLS session.
    let mut stream = Command::new("curl")
        .args(["--silent", "--no-buffer", "--max-time", "15", "--cacert", ca.cert.to_str().unwrap()])
        .args(["-H", "Accept: text/event-stream", &format!("https://{address}/data/color")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl runs");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = stream.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let wait_line = |wanted: &str| loop {
        match lines.recv_timeout(support::PATIENCE) {
            Ok(line) if line.contains(wanted) => return,
            Ok(_) => {}
            Err(_) => panic!("the event stream over https never carried {wanted}"),
        }
    };
    wait_line("\"red\"");
    // A long-poll parked on the same path, answered when the next write lands.
    let (etag_code, head) = https(&ca.cert, &address, "/data/color", &["--head"]);
    assert_eq!(etag_code, 0);
    let etag = head.lines().find_map(|l| l.strip_prefix("etag: ").or_else(|| l.strip_prefix("ETag: "))).unwrap();
    let if_none_match = format!("If-None-Match: {}", etag.trim());
    let watchers = || -> u64 {
        let (_, metrics) = https(&ca.cert, &address, "/metrics", &[]);
        metrics.lines().find_map(|line| line.strip_prefix("lighthouse_watchers ")?.parse().ok()).unwrap_or(0)
    };
    let before = watchers();
    let poll = {
        let (ca, address, header) = (ca.cert.clone(), address.clone(), if_none_match.clone());
        std::thread::spawn(move || https(&ca, &address, "/data/color?wait=10", &["-H", &header]))
    };
    wait_for("the long-poll to park", || watchers() > before);
    assert_eq!(https(&ca.cert, &address, "/data/color", &["-X", "PUT", "--data", r#""blue""#]).0, 0);
    wait_line("\"blue\"");
    let (code, body) = poll.join().unwrap();
    assert_eq!((code, body.trim()), (0, "\"blue\""), "the long-poll over https answers the new value");
    let _ = stream.kill();
    let _ = stream.wait();
}
