//! The page at `/ui` and cross-origin use (`--cors`), in a real browser: headless Chromium driven
//! through ChromeDriver (`tests/support/browser.rs`). The page is opened on a three-node cluster;
//! changes made with curl must appear without a reload, an edit through the page must land on
//! every node, and an edit that lost a race must say so. Keys and items are added and deleted
//! from the page, tokens are asked for, and a 100 MB store loads and opens level by level.
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

/// The document of docs/ui.png.
const SCREENSHOT_DOCUMENT: &str = r#"{
  "services": {
    "web": {"image": "registry.example/web:2.14.1", "port": 8080, "replicas": 3,
            "hosts": ["10.0.1.11", "10.0.1.12", "10.0.1.13"], "health": "/healthz"},
    "api": {"image": "registry.example/api:5.2.0", "port": 9090, "timeout-s": 2.5, "max-body": 67108864}
  },
  "features": {"new-checkout": true, "dark-mode": false, "rollout": 1.0},
  "billing": {"account-id": 12345678901234567890, "currency": "EUR"},
  "regions": ["eu-west-1", "eu-central-1", "us-east-1"]
}"#;

#[test]
fn the_page_shows_the_tree_the_cluster_and_live_changes_and_edits_with_if_match() {
    let members = chain(3, "ui", &[]);
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

    // The cluster table: every node, one coordinator and two voters, no lag.
    wait_for("the three nodes and their roles in the cluster table", || {
        let table = cluster_table(&browser);
        table.len() == 3
            && table.iter().all(|row| row[2] == "yes" && row[3] == "0")
            && table.iter().filter(|row| row[4] == "coordinator").count() == 1
            && table.iter().filter(|row| row[4] == "voter").count() == 2
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

    // Numbers are shown and edited as the server wrote them: JavaScript would round these
    // integers and write 1.0 as 1, and saving would change what nobody edited.
    put(one, "/data/account", r#"{"id": 9007199254740993, "ratio": 1.0, "big": 12345678901234567890}"#);
    let account = r#"[data-path="/data/account"]"#;
    browser.wait_text("the new object", account, |t| t.contains("account"));
    let shown = |key: &str| browser.text(&format!(r#"[data-path="/data/account/{key}"]"#)).unwrap();
    assert_eq!(shown("big"), "\"big\": 12345678901234567890");
    assert_eq!(shown("id"), "\"id\": 9007199254740993");
    assert_eq!(shown("ratio"), "\"ratio\": 1.0");
    browser.click(account);
    let text = browser.wait_text("the editor", "#editor", |t| t.contains("9007199254740993"));
    assert!(text.contains("1.0"), "{text}");
    browser.click("#save");
    browser.wait_text("the saved message", "#message", |t| t.starts_with("Saved /data/account"));
    assert_eq!(one.get("/data/account/id").text(), "9007199254740993\n");
    assert_eq!(one.request("DELETE", "/data/account", b"").status, 200);

    if let Ok(path) = std::env::var("LIGHTHOUSE_UI_SCREENSHOT") {
        // A real document: the configuration of a small deployment.
        put(one, "/data", SCREENSHOT_DOCUMENT);
        let account = r#"[data-path="/data/billing/account-id"]"#;
        browser.wait_text("the document", account, |t| t.ends_with("12345678901234567890"));
        browser.click(r#"[data-path="/data/services/api"]"#);
        browser.wait_text("the selection", "#selected-path", |t| t == "/data/services/api");
        browser.wait_text("the add form", "#add", |t| t == "Add key");
        assert_eq!(browser.text("#message").unwrap(), "", "a new selection clears the old message");
        let sequence = one.get("/version").json()["sequence"].to_string();
        wait_for("the table to show the last version", || cluster_table(&browser).iter().all(|row| row[1] == sequence));
        // Tall enough for the selected object's editor, add form and delete button.
        browser.resize(1280, 1240);
        browser.eval("window.scrollTo(0, 0);");
        std::fs::write(&path, browser.screenshot()).unwrap();
    }
    assert!(browser.screenshot().starts_with(b"\x89PNG\r\n\x1a\n"), "a screenshot is a PNG");
}

#[test]
fn a_server_that_needs_a_read_token_gets_asked_for_it_and_a_write_for_the_write_token() {
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
    // The page itself needs no token; the data does, and the page asks for it up front.
    browser.open(&server.url("/"));
    assert_eq!(browser.eval("return location.pathname;"), "/ui");
    browser.wait_text("the stream refused", "#live-text", |t| t == "needs a token");
    let asked = browser.wait_text("the read token asked for", "#token-why", |t| t.contains("needs a token to read"));
    assert!(asked.contains("reads need a token"), "the server's reason is shown: {asked}");
    assert_eq!(browser.eval("return document.querySelector('#token-form').hidden;"), false);
    assert!(browser.text("#tree").unwrap().contains("needs a token"), "no \"loading…\" for ever");
    assert_eq!(browser.text("#version").unwrap(), "…");
    browser.type_into("#token", "r-secret");
    browser.click("#token-form button");
    browser.wait_text("the tree, streamed with the token", r#"[data-path="/data/x"]"#, |t| t == "\"x\": 1");
    assert_eq!(browser.eval("return document.querySelector('#token-form').hidden;"), true);
    assert_eq!(browser.eval("return sessionStorage.getItem('lighthouse-token');"), "r-secret", "kept for the tab");

    // The read token does not write: the page asks for the write token, then saves.
    browser.click(r#"[data-path="/data/x"]"#);
    browser.wait_text("the editor", "#editor", |t| t.trim() == "1");
    browser.type_into("#editor", "2");
    browser.click("#save");
    browser.wait_text("the write token asked for", "#token-why", |t| t.contains("needs the write token"));
    assert!(browser.text("#message").unwrap().starts_with("Not saved"));
    assert_eq!(server.request_with("GET", "/data/x", &write, b"").text(), "1\n");
    browser.type_into("#token", "w-secret");
    browser.click("#token-form button");
    browser.wait_text("the saved message", "#message", |t| t.starts_with("Saved"));
    assert_eq!(server.request_with("GET", "/data/x", &write, b"").text(), "2\n");
    assert_eq!(browser.eval("return sessionStorage.getItem('lighthouse-write-token');"), "w-secret");
    // The stream, read with the token in a header (never in a URL), goes on live.
    assert_eq!(server.request_with("PUT", "/data/x", &write, b"3").status, 200);
    browser.wait_text("the change streamed", r#"[data-path="/data/x"]"#, |t| t == "\"x\": 3");
}

#[test]
fn the_page_adds_and_deletes_keys_and_items_under_if_match() {
    let server = Server::start(&[]);
    put(&server, "/data", r#"{"list": ["a", "b", "c"], "team": {"lead": "ana"}}"#);
    let read = |path: &str| curl(&["-fsS", &server.url(path)]).1;
    let browser = Browser::start();
    browser.open(&server.url("/ui"));
    let team = r#"[data-path="/data/team"]"#;
    browser.wait_text("the tree", team, |t| t.contains("team"));

    // A key added to an object: its value goes as typed, a big integer included.
    browser.click(team);
    browser.wait_text("the add form", "#add", |t| t == "Add key");
    browser.type_into("#add-key", "limits");
    browser.type_into("#add-value", r#"{"max": 12345678901234567890, "ratio": 1.0}"#);
    browser.click("#add");
    browser.wait_text("the added message", "#message", |t| t.starts_with("Added /data/team/limits"));
    assert_eq!(read("/data/team/limits"), "{\n  \"max\": 12345678901234567890,\n  \"ratio\": 1.0\n}\n");
    browser.wait_text("the new key in the tree", r#"[data-path="/data/team/limits/max"]"#, |t| {
        t == "\"max\": 12345678901234567890"
    });

    // An item appended to an array, and one deleted.
    let list = r#"[data-path="/data/list"]"#;
    browser.click(list);
    browser.wait_text("the append form", "#add", |t| t == "Append");
    browser.type_into("#add-value", "\"d\"");
    browser.click("#add");
    browser.wait_text("the appended message", "#message", |t| t.starts_with("Added /data/list/3"));
    assert_eq!(read("/data/list"), "[\n  \"a\",\n  \"b\",\n  \"c\",\n  \"d\"\n]\n");
    browser.wait_text("the item in the tree", r#"[data-path="/data/list/3"]"#, |t| t == "3: \"d\"");
    browser.click(r#"[data-path="/data/list/1"]"#);
    browser.wait_text("the delete button", "#delete", |t| t == "Delete /data/list/1");
    browser.click("#delete");
    browser.wait_text("the deleted message", "#message", |t| t.starts_with("Deleted /data/list/1"));
    assert_eq!(read("/data/list"), "[\n  \"a\",\n  \"c\",\n  \"d\"\n]\n");
    browser.wait_text("the parent selected", "#selected-path", |t| t == "/data/list");

    // Someone else wrote meanwhile: 412, nothing changes, and the page says so.
    browser.wait_text("the list redrawn", r#"[data-path="/data/list/1"]"#, |t| t == "1: \"c\"");
    browser.click(r#"[data-path="/data/list/0"]"#);
    browser.wait_text("the delete button", "#delete", |t| t == "Delete /data/list/0");
    put(&server, "/data/list/0", r#""z""#);
    browser.click("#delete");
    let message = browser.wait_text("the 412 message", "#message", |t| t.starts_with("Not deleted"));
    assert!(message.contains("/data/list/0 changed since you opened it"), "{message}");
    assert_eq!(read("/data/list"), "[\n  \"z\",\n  \"c\",\n  \"d\"\n]\n", "nothing was deleted");
    browser.wait_text("the current value in the editor", "#editor", |t| t.trim() == "\"z\"");
    browser.wait_text("the other write in the tree", r#"[data-path="/data/list/0"]"#, |t| t == "0: \"z\"");
    browser.click(team);
    browser.wait_text("the add form", "#add", |t| t == "Add key");
    put(&server, "/data/team/lead", r#""bo""#);
    browser.type_into("#add-key", "size");
    browser.type_into("#add-value", "3");
    browser.click("#add");
    let message = browser.wait_text("the 412 message", "#message", |t| t.starts_with("Not added"));
    assert!(message.contains("/data/team changed since you opened it"), "{message}");
    assert_eq!(server.get("/data/team/size").status, 404, "nothing was added");
}

#[test]
fn with_a_cluster_key_the_cluster_table_shows_what_this_node_knows() {
    let dir = TempDir::new("ui-key");
    let key = dir.path().join("key");
    std::fs::write(&key, "k-secret\n").unwrap();
    let members = chain(2, "uikey", &[&format!("--cluster-key-file={}", key.display())]);
    let one = members[0].server();
    assert_eq!(one.get("/state").status, 401, "/state is for nodes only");
    let browser = Browser::start();
    browser.open(&one.url("/ui"));
    wait_for("both nodes and their roles in the cluster table", || {
        let table = cluster_table(&browser);
        table.len() == 2
            && table.iter().all(|row| row[2] == "yes")
            && table.iter().filter(|row| row[4] == "coordinator").count() == 1
            && table.iter().filter(|row| row[4] == "voter").count() == 1
    });
    assert!(cluster_table(&browser)[0][0].ends_with("(this node)"));
    let note = browser.text("#cluster-note").unwrap();
    assert!(note.contains("as this node sees it") && note.contains("cluster key"), "{note}");
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
    store.push_str(r#"{"services": {"web": {"port": 8080, "id": 12345678901234567890}}, "bulk": {"#);
    for i in 0..210_000 {
        store.push_str(&format!("{}\"k{i:06}\": \"{filler}\"", if i > 0 { ", " } else { "" }));
    }
    store.push_str("}}");
    assert!(store.len() > 100_000_000, "{} bytes", store.len());
    put(&server, "/data", &store);
    drop(store);

    let browser = Browser::start();
    let loading = std::time::Instant::now();
    browser.open(&server.url("/ui"));
    let port = r#"[data-path="/data/services/web/port"]"#;
    wait_long("the tree of the 100 MB store", 120, || browser.text(port).is_some_and(|t| t == "\"port\": 8080"));
    eprintln!("the page showed the 100 MB store in {:?}", loading.elapsed());
    assert_eq!(browser.text("#live-text").as_deref(), Some("live"));
    let id = browser.text(r#"[data-path="/data/services/web/id"]"#);
    assert_eq!(id.as_deref(), Some("\"id\": 12345678901234567890"), "numbers as written, in a 100 MB store too");
    // Only the open levels are built: the 210,000 keys of "bulk" are not in the page.
    let rows = || browser.eval("return document.querySelectorAll('#tree .row').length;").as_u64().unwrap();
    assert!(rows() < 20, "{} rows built", rows());
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

    // A level of 210,000 keys opens at once: its first rows, and more on demand.
    let opened = std::time::Instant::now();
    browser.click(r#"summary[data-toggle="/data/bulk"]"#);
    wait_long("the first rows of bulk", 10, || browser.text(r#"[data-path="/data/bulk/k000199"]"#).is_some());
    let more = r#"button[data-more="/data/bulk"]"#;
    assert_eq!(browser.text(more).as_deref(), Some("show 200"));
    browser.click(more);
    wait_long("the next rows of bulk", 10, || browser.text(r#"[data-path="/data/bulk/k000399"]"#).is_some());
    let elapsed = opened.elapsed();
    eprintln!("bulk opened, and 200 more shown, in {elapsed:?}");
    assert!(elapsed < std::time::Duration::from_secs(3), "opening and showing more took {elapsed:?}");
    assert!(rows() < 500, "{} rows built", rows());
    assert!(browser.text("#tree").unwrap().contains("209,600 more"));
}
