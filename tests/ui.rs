//! The page at `/ui` and cross-origin use (`--cors`), in a real browser: headless Chromium driven
//! through ChromeDriver (`tests/support/browser.rs`). The page is opened on a two-node cluster;
//! changes made with curl must appear without a reload, an edit through the page must land on
//! every node, and an edit that lost a race must say so.
//!
//! `LIGHTHOUSE_UI_SCREENSHOT=docs/ui.png cargo test --release --test ui` saves the screenshot
//! docs/tutorial.md shows.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};

use support::browser::Browser;
use support::cluster::chain;
use support::{Server, TempDir, curl, wait_for};

fn put(server: &Server, path: &str, json: &str) {
    let response = server.request("PUT", path, json.as_bytes());
    assert_eq!(response.status, 200, "PUT {path}: {}", response.text());
}

/// The text of every cell of the cluster table, row by row.
fn cluster_table(browser: &Browser) -> Vec<Vec<String>> {
    let rows = browser.eval(
        "return [...document.querySelectorAll('#cluster tbody tr')].map(r => [...r.cells].map(c => c.textContent));",
    );
    serde_json::from_value(rows).unwrap()
}

#[test]
fn the_page_shows_the_tree_the_cluster_and_live_changes_and_edits_with_if_match() {
    let members = chain(2, "ui", &[]);
    let (one, two) = (members[0].server(), members[1].server());
    put(one, "/data", r#"{"services": {"web": {"port": 8080, "hosts": ["a", "b"]}}, "feature": "off"}"#);

    // A browser asking for / is sent to the page; curl still gets JSON.
    let (_, head) = curl(&["-s", "-D", "-", "-o", "/dev/null", "-H", "Accept: text/html", &one.url("/")]);
    assert!(head.starts_with("HTTP/1.1 302") && head.contains("Location: /ui"), "{head}");
    let (_, info) = curl(&[&one.url("/")]);
    assert!(info.contains("\"name\": \"lighthouse\""), "{info}");

    let browser = Browser::start();
    browser.open(&one.url("/"));
    assert_eq!(browser.eval("return location.pathname;"), "/ui");
    let sequence = one.get("/version").json()["sequence"].to_string();
    browser.wait_text("the store's version", "#version", |v| v == sequence);
    let port = r#"[data-path="/data/services/web/port"]"#;
    assert_eq!(browser.wait_text("the tree", port, |t| !t.is_empty()), "\"port\": 8080");
    assert!(browser.text(r#"[data-path="/data/services/web/hosts/1"]"#).unwrap().contains("\"b\""));

    // The cluster table: both nodes, one coordinator and one voter, no lag.
    wait_for("both nodes in the cluster table", || {
        let table = cluster_table(&browser);
        table.len() == 2
            && table.iter().all(|row| row[2] == "yes" && row[3] == "0")
            && table.iter().filter(|row| row[4] == "coordinator").count() == 1
            && table.iter().filter(|row| row[4] == "voter").count() == 1
    });
    assert!(cluster_table(&browser)[0][0].ends_with("(this node)"));

    // A change committed with curl (the lock dance, on the other node) appears without a reload,
    // highlighted.
    browser.eval("window.notReloaded = true;");
    let lock = |args: &[&str]| assert_eq!(curl(args).0, 0);
    lock(&["-fsS", "-X", "PUT", "-d", "deploy", &two.url("/lock")]);
    browser.wait_text("the lock holder", "#lock", |t| t.starts_with("held by deploy"));
    lock(&["-fsS", "-X", "PUT", "-d", "\"on\"", &two.url("/update/deploy/feature")]);
    lock(&["-fsS", "-X", "PUT", &two.url("/lock/deploy")]);
    browser.wait_text("the new value", r#"[data-path="/data/feature"]"#, |t| t == "\"feature\": \"on\"");
    assert_eq!(browser.eval("return window.notReloaded === true;"), true, "the page was not reloaded");
    let class = browser.eval(r#"return document.querySelector('[data-path="/data/feature"]').className;"#);
    assert!(class.as_str().unwrap().contains("changed"), "{class}");
    browser.wait_text("the lock freed", "#lock", |t| t == "free");

    // Select a value: its path and a curl command ready to copy.
    browser.click(port);
    let command = browser.wait_text("the selected node", "#curl-write", |t| t.contains("If-Match"));
    assert!(command.contains(&one.url("/data/services/web/port")), "{command}");
    let tag = one.get("/data/services/web/port").header("ETag").unwrap().to_string();
    assert!(command.contains(&tag), "{command} has {tag}");

    // Edit it through the page: written with If-Match, seen on the other node.
    browser.type_into("#editor", "9090");
    browser.click("#save");
    browser.wait_text("the saved message", "#message", |t| t.starts_with("Saved /data/services/web/port"));
    wait_for("the edit on the other node", || two.get("/data/services/web/port").text() == "9090\n");
    // The tree is drawn again for the edit's event: click only once that is done, or the click
    // may land on a node just replaced (a stale element, seen with the page busy).
    browser.wait_text("the edit in the tree", port, |t| t == "\"port\": 9090");

    // An edit that lost a race: someone wrote the value after the editor opened.
    browser.click(port);
    browser.wait_text("the editor on 9090", "#editor", |t| t.trim() == "9090");
    put(two, "/data/services/web/port", "7070");
    browser.type_into("#editor", "6060");
    browser.click("#save");
    let message = browser.wait_text("the 412 message", "#message", |t| t.starts_with("Not saved"));
    assert!(message.contains("changed since you opened it"), "{message}");
    assert_eq!(one.get("/data/services/web/port").text(), "7070\n", "the lost edit changed nothing");
    browser.wait_text("the editor showing the current value", "#editor", |t| t.trim() == "7070");

    // Numbers are edited as the server wrote them: JavaScript would round this integer and
    // write 1.0 as 1, and saving would change what nobody edited.
    put(one, "/data/account", r#"{"id": 9007199254740993, "ratio": 1.0}"#);
    let account = r#"[data-path="/data/account"]"#;
    browser.wait_text("the new object", account, |t| t.contains("account"));
    browser.click(account);
    let text = browser.wait_text("the editor", "#editor", |t| t.contains("9007199254740993"));
    assert!(text.contains("1.0"), "{text}");
    browser.click("#save");
    browser.wait_text("the saved message", "#message", |t| t.starts_with("Saved /data/account"));
    assert_eq!(one.get("/data/account/id").text(), "9007199254740993\n");
    assert_eq!(one.request("DELETE", "/data/account", b"").status, 200);

    if let Ok(path) = std::env::var("LIGHTHOUSE_UI_SCREENSHOT") {
        // The deletion's event redraws the tree: a node found before it would be stale.
        wait_for("the deletion on the page", || browser.text(account).is_none());
        browser.click(r#"[data-path="/data/feature"]"#);
        browser.wait_text("the selection", "#selected-path", |t| t == "/data/feature");
        assert_eq!(browser.text("#message").unwrap(), "", "a new selection clears the old message");
        let sequence = one.get("/version").json()["sequence"].to_string();
        wait_for("the table to show the last version", || cluster_table(&browser).iter().all(|row| row[1] == sequence));
        std::fs::write(&path, browser.screenshot()).unwrap();
    }
    assert!(browser.screenshot().starts_with(b"\x89PNG\r\n\x1a\n"), "a screenshot is a PNG");
}

#[test]
fn with_tokens_the_page_streams_and_edits_once_given_one() {
    let dir = TempDir::new("ui-tokens");
    std::fs::write(dir.path().join("write"), "w-secret\n").unwrap();
    std::fs::write(dir.path().join("read"), "r-secret\n").unwrap();
    let server = Server::start(&[
        &format!("--token-file={}", dir.path().join("write").display()),
        &format!("--read-token-file={}", dir.path().join("read").display()),
    ]);
    let write = [("Authorization", "Bearer w-secret")];
    assert_eq!(server.request_with("PUT", "/data/x", &write, b"1").status, 200);

    let browser = Browser::start();
    // The page itself needs no token; the data does.
    browser.open(&server.url("/"));
    assert_eq!(browser.eval("return location.pathname;"), "/ui");
    browser.wait_text("the stream refused", "#live-text", |t| t == "reconnecting");
    assert_eq!(browser.text("#version").unwrap(), "…");
    // The write token reads too; the page keeps it for the tab only.
    browser.type_into("#token", "w-secret");
    browser.click("#token-form button");
    browser.wait_text("the tree, streamed with the token", r#"[data-path="/data/x"]"#, |t| t == "\"x\": 1");
    assert_eq!(browser.eval("return sessionStorage.getItem('lighthouse-token');"), "w-secret");
    browser.click(r#"[data-path="/data/x"]"#);
    browser.wait_text("the editor", "#editor", |t| t.trim() == "1");
    browser.type_into("#editor", "2");
    browser.click("#save");
    browser.wait_text("the saved message", "#message", |t| t.starts_with("Saved"));
    assert_eq!(server.request_with("GET", "/data/x", &write, b"").text(), "2\n");
    // The stream, read with the token in a header (never in a URL), goes on live.
    assert_eq!(server.request_with("PUT", "/data/x", &write, b"3").status, 200);
    browser.wait_text("the change streamed", r#"[data-path="/data/x"]"#, |t| t == "\"x\": 3");
}

/// A page on another origin that reads, streams and writes `target` (a Lighthouse node), and
/// shows what happened in `#read`, `#etag`, `#stream` and `#write`.
const OTHER_ORIGIN_PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>another origin</title>
<div id="read">…</div><div id="etag">…</div><div id="stream">…</div><div id="write">…</div>
<script>
const target = new URLSearchParams(location.search).get("target");
const show = (id, text) => { document.getElementById(id).textContent = text; };
fetch(target + "/data/x")
  .then(async (r) => { show("etag", r.headers.get("ETag") || "none"); show("read", r.status + " " + (await r.text()).trim()); })
  .catch((e) => show("read", "blocked: " + e.message));
const source = new EventSource(target + "/data/x");
source.onmessage = (e) => show("stream", e.data);
source.onerror = () => show("stream", "error");
window.write = (value, etag) => fetch(target + "/data/x", { method: "PUT", headers: { "If-Match": etag, "Content-Type": "application/json" }, body: value })
  .then((r) => show("write", String(r.status)))
  .catch((e) => show("write", "blocked: " + e.message));
</script>"#;

/// Serves `OTHER_ORIGIN_PAGE` at every path, on a thread that lives as long as the test.
fn serve_other_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                OTHER_ORIGIN_PAGE.len(),
                OTHER_ORIGIN_PAGE
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    addr
}

#[test]
fn a_page_on_another_origin_reads_streams_and_writes_only_with_cors() {
    let page = serve_other_origin();
    let origin = format!("http://{page}");
    let open = Server::start(&[&format!("--cors={origin}")]);
    let closed = Server::start(&[]);
    for server in [&open, &closed] {
        put(server, "/data/x", "1");
    }

    let browser = Browser::start();
    browser.open(&format!("{origin}/?target=http://{}", open.addr));
    browser.wait_text("the cross-origin read", "#read", |t| t == "200 1");
    let tag = open.get("/data/x").header("ETag").unwrap().to_string();
    assert_eq!(browser.text("#etag").unwrap(), tag, "the ETag is exposed to the page");
    browser.wait_text("the first event", "#stream", |t| t == "1");
    put(&open, "/data/x", "2");
    browser.wait_text("the change streamed", "#stream", |t| t == "2");
    // A write with If-Match: the browser sends a preflight first, and the write lands.
    let tag = open.get("/data/x").header("ETag").unwrap().to_string();
    browser.eval(&format!("window.write('3', {});", serde_json::json!(tag)));
    browser.wait_text("the cross-origin write", "#write", |t| t == "200");
    assert_eq!(open.get("/data/x").text(), "3\n");

    // Without --cors the browser keeps the other origin out.
    browser.open(&format!("{origin}/?target=http://{}", closed.addr));
    browser.wait_text("the read blocked", "#read", |t| t.starts_with("blocked"));
    browser.wait_text("the stream blocked", "#stream", |t| t == "error");
    let tag = closed.get("/data/x").header("ETag").unwrap().to_string();
    browser.eval(&format!("window.write('3', {});", serde_json::json!(tag)));
    browser.wait_text("the write blocked", "#write", |t| t.starts_with("blocked"));
    assert_eq!(closed.get("/data/x").text(), "1\n", "the preflight was refused, so no write was sent");
}

/// Polls `condition` for up to `seconds` (a 100 MB store takes a while on a busy machine).
fn wait_long(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out after {seconds} s waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_page_loads_and_edits_a_100_mb_store() {
    let server = Server::start(&["--max-body=200000000"]);
    // 100 MB in one PUT: 210,000 keys of 490 bytes, beside the value the page edits.
    let filler = "x".repeat(480);
    let mut store = String::with_capacity(101_000_000);
    store.push_str(r#"{"services": {"web": {"port": 8080}}, "bulk": {"#);
    for i in 0..210_000 {
        store.push_str(&format!("{}\"k{i:06}\": \"{filler}\"", if i > 0 { ", " } else { "" }));
    }
    store.push_str("}}");
    assert!(store.len() > 100_000_000, "{} bytes", store.len());
    put(&server, "/data", &store);
    drop(store);

    let browser = Browser::start();
    browser.open(&server.url("/ui"));
    let port = r#"[data-path="/data/services/web/port"]"#;
    wait_long("the tree of the 100 MB store", 120, || browser.text(port).is_some_and(|t| t == "\"port\": 8080"));
    assert_eq!(browser.text("#live-text").as_deref(), Some("live"));
    let sent = || {
        let metrics = server.get("/metrics").text();
        let line = metrics.lines().find(|l| l.starts_with("lighthouse_sent_bytes_total ")).expect("a byte counter");
        line.split(' ').nth(1).unwrap().parse::<u64>().unwrap()
    };
    let sent_loaded = sent();

    browser.click(port);
    browser.wait_text("the editor", "#editor", |t| t.trim() == "8080");
    browser.type_into("#editor", "9090");
    browser.click("#save");
    browser.wait_text("the saved message", "#message", |t| t.starts_with("Saved /data/services/web/port"));
    assert_eq!(server.get("/data/services/web/port").text(), "9090\n");
    wait_long("the edit in the tree", 60, || browser.text(port).is_some_and(|t| t == "\"port\": 9090"));
    assert_eq!(browser.text("#live-text").as_deref(), Some("live"), "the stream stayed up");
    let sent_since = sent() - sent_loaded;
    assert!(sent_since < 10_000_000, "{sent_since} bytes sent for an edit: the store was downloaded again");
}
