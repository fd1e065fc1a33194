//! A real browser for the tests: Debian's headless Chromium, driven through ChromeDriver's
//! WebDriver protocol (W3C WebDriver: JSON over HTTP), with this crate's own test client. `.ci/run`
//! installs both (`apt-get install chromium chromium-driver`).

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use super::{Client, TempDir, wait_for};

/// How many times a click is tried again on an element the page replaced meanwhile.
const STALE_RETRIES: usize = 5;

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One ChromeDriver with one browser session, both ended when dropped.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with a fresh profile. The flags keep Chromium
    /// from reaching for Google's services, which this machine's closed network refuses.
    pub fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // In a process group of its own, so that dropping the browser ends Chromium's processes
        // too (they are ChromeDriver's children, and would outlive it).
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let profile = TempDir::new("chromium-profile");
        let mut browser = Browser { driver, addr, session: String::new(), profile };
        wait_for("chromedriver to answer", || {
            std::net::TcpStream::connect(addr).is_ok() && browser.call("GET", "/status", &Value::Null)["ready"] == true
        });
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", browser.profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let session = browser.call("POST", "/session", &capabilities);
        browser.session = session["sessionId"].as_str().expect("a session id").to_string();
        browser
    }

    /// One WebDriver command; its `value`, or a panic with the driver's error.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        match self.try_call(method, path, body) {
            Ok(value) => value,
            Err(answer) => panic!("WebDriver {method} {path}: {answer}"),
        }
    }

    /// One WebDriver command; its `value`, or the driver's whole answer when it refused.
    fn try_call(&self, method: &str, path: &str, body: &Value) -> Result<Value, Value> {
        let mut client = Client::connect(self.addr);
        let bytes = match (method, body) {
            ("GET", _) => Vec::new(),
            (_, Value::Null) => b"{}".to_vec(),
            _ => serde_json::to_vec(body).unwrap(),
        };
        // ChromeDriver answers only requests whose Host is its own address.
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            bytes.len()
        );
        client.send(&[head.as_bytes(), &bytes].concat());
        let response = client.read_response();
        let answer = response.json();
        if response.status != 200 {
            return Err(answer);
        }
        Ok(answer["value"].clone())
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), &body)
    }

    pub fn open(&self, url: &str) {
        self.session_call("POST", "/url", json!({"url": url}));
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn eval(&self, script: &str) -> Value {
        self.session_call("POST", "/execute/sync", json!({"script": script, "args": []}))
    }

    /// Runs a script that ends by calling its last argument (`arguments[0]`) with its result.
    pub fn eval_async(&self, script: &str) -> Value {
        self.session_call("POST", "/execute/async", json!({"script": script, "args": []}))
    }

    /// The text of the first element `css` selects, or `None` while there is none.
    pub fn text(&self, css: &str) -> Option<String> {
        let script = format!("const e = document.querySelector({}); return e ? e.textContent : null;", json!(css));
        self.eval(&script).as_str().map(str::to_string)
    }

    /// Waits until `css` selects an element whose text satisfies `condition`.
    pub fn wait_text(&self, what: &str, css: &str, condition: impl Fn(&str) -> bool) -> String {
        let mut last = None;
        wait_for(what, || {
            last = self.text(css);
            last.as_deref().is_some_and(&condition)
        });
        last.unwrap()
    }

    fn element(&self, css: &str) -> String {
        let found = self.session_call("POST", "/element", json!({"using": "css selector", "value": css}));
        found[ELEMENT].as_str().expect("an element reference").to_string()
    }

    /// Clicks the element as a user would (WebDriver moves the pointer there and clicks). The page
    /// draws its tree again on every version: an element replaced between finding and clicking
    /// it is found again and clicked, as a user would click again.
    pub fn click(&self, css: &str) {
        for _ in 0..STALE_RETRIES {
            let element = self.element(css);
            let path = format!("/session/{}/element/{element}/click", self.session);
            match self.try_call("POST", &path, &json!({})) {
                Ok(_) => return,
                Err(answer) if answer["value"]["error"] == "stale element reference" => continue,
                Err(answer) => panic!("WebDriver POST {path}: {answer}"),
            }
        }
        panic!("{css} was replaced {STALE_RETRIES} times in a row before it could be clicked");
    }

    /// Replaces a field's text by typing.
    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css);
        self.session_call("POST", &format!("/element/{element}/clear"), json!({}));
        self.session_call("POST", &format!("/element/{element}/value"), json!({"text": text}));
    }

    /// Sets the size of the browser's window, in CSS pixels.
    pub fn resize(&self, width: u32, height: u32) {
        self.session_call("POST", "/window/rect", json!({"width": width, "height": height}));
    }

    /// A PNG of the page as shown.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.session_call("GET", "/screenshot", Value::Null);
        decode_base64(encoded.as_str().expect("base64 text"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.call("DELETE", &path, &Value::Null)));
        }
        let group = i32::try_from(self.driver.id()).expect("a pid fits an i32");
        // SAFETY: kill(2) on the process group this browser started; no memory is involved.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

/// Standard base64 (RFC 4648, section 4), as WebDriver sends screenshots.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let bits = chunk.iter().enumerate().fold(0u32, |acc, (i, d)| acc | (u32::from(*d) << (18 - 6 * i)));
        out.extend_from_slice(&bits.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_as_rfc_4648_says() {
        assert_eq!(super::decode_base64("Zm9vYmFy"), b"foobar");
        assert_eq!(super::decode_base64("Zm9vYg=="), b"foob");
        assert_eq!(super::decode_base64("Zm9vYmE="), b"fooba");
    }
}
