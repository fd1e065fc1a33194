//! What the integration tests share: a real server process on a free loopback port, a raw HTTP
//! client that can send exactly the bytes a test wants, temporary directories, and waiting for a
//! condition with a deadline instead of sleeping.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod browser;
pub mod cluster;
pub mod counter;
pub mod proxy;
pub mod slow_disk;
pub mod tmpfs;

/// The server binary cargo built for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_lighthouse");

/// How long a test waits for anything before failing.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A running `lighthouse` process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub args: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on a free loopback port with the given extra flags.
    pub fn start(args: &[&str]) -> Server {
        Server::start_on("127.0.0.1:0", args)
    }

    /// Starts a server bound to `bind` (port 0 picks a free one).
    pub fn start_on(bind: &str, args: &[&str]) -> Server {
        raise_open_files();
        let mut all: Vec<String> = vec![format!("--bind={bind}")];
        all.extend(args.iter().map(|a| a.to_string()));
        if !all.iter().any(|a| a.starts_with("--log-level")) {
            // LIGHTHOUSE_TEST_LOG_LEVEL=debug (with LIGHTHOUSE_TEST_LOG=1 to echo) when a test
            // needs the servers' whole story.
            all.push(
                std::env::var("LIGHTHOUSE_TEST_LOG_LEVEL")
                    .map(|l| format!("--log-level={l}"))
                    .unwrap_or("--log-level=info".into()),
            );
        }
        let mut child = Command::new(BINARY)
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = log.clone();
        let echo = std::env::var_os("LIGHTHOUSE_TEST_LOG").is_some();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("[server] {line}");
                }
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = addr_tx.send(addr.trim().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match addr_rx.recv_timeout(PATIENCE) {
            Ok(addr) => addr.parse().expect("the logged address parses"),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!("server with {all:?} did not start (exit {status:?}); log:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        Server { child, addr, args: all, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        signal(&self.child, libc::SIGTERM);
        wait_exit(&mut self.child)
    }

    /// Sends SIGTERM, waits for the exit, and returns it with everything the server logged.
    pub fn terminate_logged(self) -> (ExitStatus, Vec<String>) {
        let log = self.log.clone();
        let status = self.terminate();
        // The reader thread takes the last lines from the pipe a moment after the exit.
        wait_for("the stopped server's last log line", || log.lock().unwrap().iter().any(|l| l.contains("stopped")));
        let lines = log.lock().unwrap().clone();
        (status, lines)
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// One request on a new connection.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        self.request_with(method, path, &[], body)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, b"")
    }

    pub fn request_with(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut client = Client::connect(self.addr);
        client.send_request(method, path, headers, body);
        client.read_response()
    }
}

/// The last lines of each server's log a failing test prints (its servers are dropped as the
/// panic unwinds), so that a failure seen once, in CI, tells what the servers did.
const LOG_LINES_SHOWN_ON_FAILURE: usize = 40;

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() && std::env::var_os("LIGHTHOUSE_TEST_LOG").is_none() {
            let log = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let shown = &log[log.len().saturating_sub(LOG_LINES_SHOWN_ON_FAILURE)..];
            eprintln!("--- the last {} log lines of the server at {}:", shown.len(), self.addr);
            for line in shown {
                eprintln!("    {line}");
            }
        }
    }
}

/// Raises this test process's open-files limit to its hard limit, once: some tests hold thousands
/// of connections, more than a default soft limit of 1024 allows.
pub fn raise_open_files() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        lighthouse::shell::sys::raise_open_files_limit().expect("the open-files limit can be read");
    });
}

pub fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, signal) };
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("waiting works") {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not exit in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("the body is UTF-8")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The message of an error answer, checking it is one line of `{"error": "..."}`.
    pub fn error(&self) -> String {
        let text = self.text();
        assert!(text.ends_with('\n') && text.lines().count() == 1, "error body is one line: {text:?}");
        let value = self.json();
        let object = value.as_object().expect("error body is an object");
        assert_eq!(object.len(), 1, "error body has only \"error\": {text}");
        object["error"].as_str().expect("error is a string").to_string()
    }
}

/// A raw HTTP/1.1 client on one connection.
pub struct Client {
    pub stream: TcpStream,
    buffered: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connects to the server");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, buffered: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("the server accepts the bytes");
    }

    pub fn send_request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        // A node on loopback serves only IP literals, localhost and its advertised name.
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
            request.push_str("Host: 127.0.0.1\r\n");
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "PUT" | "POST") {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes);
    }

    /// Reads one response (for a request that was not HEAD).
    pub fn read_response(&mut self) -> Response {
        self.read_response_to(false)
    }

    /// Reads one response; `head_request` says there is no body whatever the headers say.
    pub fn read_response_to(&mut self, head_request: bool) -> Response {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = parsed.parse(&self.buffered).expect("a valid response head") {
                let status = parsed.code.expect("a status");
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect();
                let length = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse::<usize>().expect("numeric length"));
                let body_len =
                    if head_request || matches!(status, 100..=199 | 204 | 304) { 0 } else { length.unwrap_or(0) };
                while self.buffered.len() < head_len + body_len {
                    self.fill();
                }
                let body = self.buffered[head_len..head_len + body_len].to_vec();
                self.buffered.drain(..head_len + body_len);
                return Response { status, headers, body };
            }
            self.fill();
        }
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 64 * 1024];
        // A read with a timeout fails with EINTR when this process is stopped and continued (the
        // shared machine does), even without a signal handler: that is no answer, read again.
        let n = loop {
            match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => break read.expect("the server answers in time"),
            }
        };
        assert!(n > 0, "the server closed the connection; had {:?}", String::from_utf8_lossy(&self.buffered));
        self.buffered.extend_from_slice(&chunk[..n]);
    }

    /// True when the server has closed the connection (reads EOF, with nothing else pending).
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => {
                self.buffered.extend_from_slice(&chunk[..n]);
                false
            }
            Err(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }
}

/// Runs curl and returns (exit code, stdout).
pub fn curl(args: &[&str]) -> (i32, String) {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "15"])
        .args(args)
        .output()
        .expect("curl runs (apt-get install curl)");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Held by a test that keeps every core busy (three nodes hashing and writing a store of tens of
/// MiB): such tests of one file run one at a time, so that none waits past a commit's timeout for
/// CPU its neighbours took (CI machines have two cores).
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Polls `condition` until it holds or `PATIENCE` runs out, then fails with `what`.
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("lighthouse-test-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir is created");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `--data.d=<this dir>`.
    pub fn flag(&self) -> String {
        format!("--data.d={}", self.0.display())
    }

    /// Snapshot file names in the directory, oldest first.
    pub fn snapshots(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| lighthouse::core::snapshot::parse_file_name(n).is_some())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Waits until every file the server wrote is under its name: a commit's file is written
    /// into a spare file (`.spare-N`) and renamed by the writer a moment after the answer.
    pub fn wait_named(&self) {
        wait_for("the files written into spare files to be renamed", || {
            std::fs::read_dir(&self.0).unwrap().filter_map(Result::ok).all(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                !name.starts_with(".spare-") || entry.metadata().map_or(true, |m| m.len() == 0)
            })
        });
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The seed's example configuration.
pub const SEED_CONFIG: &str = r#"{
  "file": "/var/log/apache2/access.log",
  "size": 1024,
  "providers": {
    "alpha": ["192.168.1.1", "192.168.1.2"],
    "beta": ["192.168.2.1", "192.168.2.2"],
    "gamma": ["192.168.3.1", "192.168.3.2"]
  }
}"#;

/// Writes a valid snapshot of `json` at `sequence` into `dir`, as the server would, and returns
/// the file's path.
pub fn write_snapshot(dir: &Path, unix_micros: u64, sequence: u64, json: &str) -> PathBuf {
    let root = lighthouse::core::value::Value::parse(json.as_bytes()).expect("test JSON parses");
    let path = dir.join(lighthouse::core::snapshot::file_name(unix_micros));
    let file = std::fs::File::create(&path).expect("snapshot file is created");
    let sealed = lighthouse::core::sealed::seal(root, sequence, None);
    let node = lighthouse::core::snapshot::NodeJson::default();
    lighthouse::core::snapshot::encode(&file, &node, &sealed.body, &mut || {}).expect("snapshot is written");
    path
}

/// One request on a new connection that may fail (the server may be gone): for crash tests.
pub fn try_request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> std::io::Result<Response> {
    try_request_with(addr, method, path, &[], body)
}

/// As `try_request`, with header lines.
pub fn try_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let lines: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{lines}Content-Length: {}\r\n\r\n", body.len())
            .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    let mut buffered = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffered.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head_len)) = parsed.parse(&buffered) else { continue };
        let length: usize = parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
            .unwrap_or(0);
        if buffered.len() >= head_len + length {
            let status = parsed.code.unwrap_or(0);
            let headers = parsed
                .headers
                .iter()
                .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                .collect();
            return Ok(Response { status, headers, body: buffered[head_len..head_len + length].to_vec() });
        }
    }
}

/// The project's seeded generator, so failing runs can be replayed by seed.
#[allow(unused_imports)]
pub use lighthouse::core::rng::Rng;

/// Takes the lock as `name`, puts `json` at `path` and commits; returns the commit's answer.
pub fn transact(server: &Server, name: &str, path: &str, json: &str) -> Response {
    assert_eq!(server.request("PUT", "/lock", name.as_bytes()).status, 200, "acquire {name}");
    assert_eq!(server.request("PUT", &format!("/update/{name}{path}"), json.as_bytes()).status, 201, "stage {path}");
    server.request("PUT", &format!("/lock/{name}"), b"")
}
