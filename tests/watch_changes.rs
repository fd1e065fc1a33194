//! Event streams of changes (`?changes`): after the first event, each event is an RFC 6902 JSON
//! Patch of the watched subtree. Read with curl, as the docs show; the patches are applied here,
//! as a client would, and the result compared with the subtree at that event's version.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use support::{Client, Server, curl, wait_for};

/// One server-sent event: its sequence, its whole id (`SEQUENCE-CHECKSUM`, the version), its
/// type (`message` when none is given) and its data.
#[derive(Debug, Clone)]
struct Event {
    id: u64,
    version: String,
    kind: String,
    data: String,
}

/// `curl -N` on an event stream, its events collected by a thread as they arrive.
struct Stream {
    child: Child,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Stream {
    fn open(server: &Server, path: &str, headers: &[&str]) -> Stream {
        let mut args = vec!["-s", "-N", "--max-time", "60", "-H", "Accept: text/event-stream"];
        for header in headers {
            args.extend(["-H", header]);
        }
        let url = server.url(path);
        args.push(&url);
        let mut child = Command::new("curl").args(&args).stdout(Stdio::piped()).spawn().expect("curl runs");
        let stdout = child.stdout.take().expect("piped");
        let events = Arc::new(Mutex::new(Vec::new()));
        let collected = events.clone();
        std::thread::spawn(move || {
            let (mut id, mut version, mut kind, mut data) =
                (0, String::new(), String::from("message"), Vec::<String>::new());
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(value) = line.strip_prefix("id: ") {
                    let (sequence, checksum) = value.split_once('-').expect("ids are SEQUENCE-CHECKSUM");
                    assert_eq!(checksum.len(), 40, "a whole checksum: {value}");
                    (id, version) = (sequence.parse().expect("a sequence"), value.to_string());
                } else if let Some(value) = line.strip_prefix("event: ") {
                    kind = value.to_string();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push(value.to_string());
                } else if line.is_empty() && !data.is_empty() {
                    let kind = std::mem::replace(&mut kind, "message".into());
                    let event = Event { id, version: version.clone(), kind, data: data.join("\n") };
                    data.clear();
                    collected.lock().unwrap().push(event);
                }
            }
        });
        Stream { child, events }
    }

    /// Waits until an event with an id of at least `sequence` has arrived; returns all so far.
    fn events_through(&self, sequence: u64) -> Vec<Event> {
        wait_for(&format!("an event of sequence {sequence}"), || {
            self.events.lock().unwrap().last().is_some_and(|e| e.id >= sequence)
        });
        self.events.lock().unwrap().clone()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Applies an RFC 6902 patch of `add`, `remove` and `replace` operations, as a client would.
fn apply(document: &mut Value, patch: &Value) {
    for operation in patch.as_array().expect("a patch is an array") {
        let op = operation["op"].as_str().expect("an op");
        let path = operation["path"].as_str().expect("a path");
        if path.is_empty() {
            assert_eq!(op, "replace", "only a replace names the whole subtree");
            *document = operation["value"].clone();
            continue;
        }
        let (parent, last) = path.rsplit_once('/').expect("a pointer starts with /");
        let last = last.replace("~1", "/").replace("~0", "~");
        let target = document.pointer_mut(parent).unwrap_or_else(|| panic!("{path}: no parent"));
        match (op, target) {
            ("add" | "replace", Value::Object(map)) => {
                assert_eq!(op == "replace", map.contains_key(&last), "{op} {path}");
                map.insert(last, operation["value"].clone());
            }
            ("remove", Value::Object(map)) => assert!(map.remove(&last).is_some(), "remove {path}"),
            (op, Value::Array(items)) => {
                let index = if last == "-" { items.len() } else { last.parse().expect("an index") };
                match op {
                    "add" => items.insert(index, operation["value"].clone()),
                    "replace" => items[index] = operation["value"].clone(),
                    _ => drop(items.remove(index)),
                }
            }
            (op, _) => panic!("{op} {path}: the parent is not a container"),
        }
    }
}

/// The sequence a write produced (`X-Lighthouse-Version: SEQUENCE-CHECKSUM`).
fn write(server: &Server, method: &str, path: &str, body: &str) -> u64 {
    let response = server.request(method, path, body.as_bytes());
    assert_eq!(response.status, 200, "{method} {path}: {}", response.text());
    let version = response.header("X-Lighthouse-Version").expect("a write says its version");
    version.split('-').next().unwrap().parse().unwrap()
}

#[test]
fn patches_applied_in_order_give_the_subtree_of_every_event_under_a_burst_of_writes() {
    let server = Server::start(&[]);
    let wide: serde_json::Map<String, Value> = (0..2000).map(|i| (format!("k{i:04}"), json!(i))).collect();
    let mut model =
        json!({"cfg": {"port": 8080, "hosts": ["a", "b", "c"], "wide": wide, "a/b": {"t~1": 1}}, "other": 0});
    write(&server, "PUT", "/data", &model.to_string());
    let stream = Stream::open(&server, "/data/cfg?changes", &[]);
    wait_for("the stream's first event", || !stream.events.lock().unwrap().is_empty());

    // (sequence, the subtree then) for every write; events name sequences of writes to /cfg.
    let mut versions: HashMap<u64, Value> = HashMap::new();
    let mut last = 0;
    for i in 0..300u64 {
        let (method, path, body) = match i % 10 {
            0 => ("PUT", "/data/cfg/port".to_string(), json!(9000 + i)),
            1 => ("PUT", "/data/other".to_string(), json!(i)),
            2 => ("PUT", format!("/data/cfg/wide/k{:04}", (i * 37) % 2000), json!({"n": i})),
            3 => ("PUT", format!("/data/cfg/wide/new{i}"), json!(i)),
            4 => ("DELETE", format!("/data/cfg/wide/new{}", i - 1), Value::Null),
            5 => ("PUT", format!("/data/cfg/hosts/{}", model["cfg"]["hosts"].as_array().unwrap().len()), json!(i)),
            6 => ("DELETE", "/data/cfg/hosts/0".to_string(), Value::Null),
            7 => ("PUT", "/data/cfg/a%2Fb/t~1".to_string(), json!([i, {"x": i}])),
            8 => ("PUT", format!("/data/cfg/hosts/{}", i % 2), json!(i)),
            _ => ("PUT", "/data/cfg/wide/k0000".to_string(), json!(null)),
        };
        let body_text = if method == "DELETE" { String::new() } else { body.to_string() };
        last = write(&server, method, &path, &body_text);
        // The path's segments, decoded, as JSON Pointer tokens of the model.
        let segments: Vec<String> = path.split('/').skip(2).map(|s| s.replace("%2F", "/")).collect();
        let (key, parents) = segments.split_last().unwrap();
        let parent: String = parents.iter().map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1"))).collect();
        let key = key.as_str();
        match model.pointer_mut(&parent).unwrap() {
            Value::Object(map) if method == "DELETE" => drop(map.remove(key)),
            Value::Object(map) => drop(map.insert(key.to_string(), body)),
            Value::Array(items) if method == "DELETE" => drop(items.remove(key.parse::<usize>().unwrap())),
            Value::Array(items) if key == items.len().to_string() => items.push(body),
            Value::Array(items) => items[key.parse::<usize>().unwrap()] = body,
            _ => unreachable!(),
        }
        versions.insert(last, model["cfg"].clone());
    }

    let events = stream.events_through(last);
    assert_eq!(events[0].kind, "message", "the first event is the whole subtree");
    let mut document: Value = serde_json::from_str(&events[0].data).unwrap();
    assert!(events.len() > 200, "an event per change of /cfg: {} events", events.len());
    for event in &events[1..] {
        assert_eq!(event.kind, "patch", "event {}", event.id);
        assert!(event.data.len() < 400, "a patch holds the change, not the subtree: {}", event.data);
        apply(&mut document, &serde_json::from_str(&event.data).unwrap());
        let expected = versions.get(&event.id).unwrap_or_else(|| panic!("event {} is no write's sequence", event.id));
        assert!(&document == expected, "after the patch of event {} the subtree differs: {}", event.id, event.data);
    }
    assert!(document == server.get("/data/cfg").json(), "the patched subtree differs from a full read at the end");
}

#[test]
fn a_stream_of_changes_resumes_with_a_patch_from_a_kept_version_else_the_whole_subtree() {
    let server = Server::start(&[]);
    write(&server, "PUT", "/data", r#"{"cfg": {"a": 1, "b": [1, 2]}}"#);
    let stream = Stream::open(&server, "/data/cfg?changes", &[]);
    let first = stream.events_through(1)[0].clone();
    let mut held: Value = serde_json::from_str(&first.data).unwrap();
    drop(stream);
    write(&server, "PUT", "/data/cfg/a", "2");
    let now = write(&server, "PUT", "/data/cfg/b/2", "3");

    let resumed = Stream::open(&server, "/data/cfg?changes", &[&format!("Last-Event-ID: {}", first.version)]);
    let event = resumed.events_through(now)[0].clone();
    assert_eq!((event.id, event.kind.as_str()), (now, "patch"), "{}", event.data);
    apply(&mut held, &serde_json::from_str(&event.data).unwrap());
    assert_eq!(held, json!({"a": 2, "b": [1, 2, 3]}));

    // A version never kept (before any stream of changes): the whole subtree.
    let fresh = Stream::open(&server, "/data/cfg?changes", &["Last-Event-ID: 0"]);
    let event = fresh.events_through(now)[0].clone();
    assert_eq!((event.id, event.kind.as_str()), (now, "message"));
    assert_eq!(serde_json::from_str::<Value>(&event.data).unwrap(), json!({"a": 2, "b": [1, 2, 3]}));

    // A version this node has not reached (seen on another node): the whole subtree, since this
    // node's patches would not apply to what the client holds.
    let checksum = first.version.split_once('-').unwrap().1;
    let ahead = Stream::open(&server, "/data/cfg?changes", &[&format!("Last-Event-ID: {}-{checksum}", now + 5)]);
    let event = ahead.events_through(now)[0].clone();
    assert_eq!((event.id, event.kind.as_str()), (now, "message"));
}

#[test]
fn changes_are_refused_without_an_event_stream_or_with_raw() {
    let server = Server::start(&[]);
    let (_, answer) = curl(&["-s", "-w", " %{http_code}", &server.url("/data?changes")]);
    assert!(answer.contains("text/event-stream") && answer.ends_with(" 400"), "{answer}");
    let (_, answer) =
        curl(&["-s", "-w", " %{http_code}", "-H", "Accept: text/event-stream", &server.url("/data?changes&raw")]);
    assert!(answer.contains("JSON Patch") && answer.ends_with(" 400"), "{answer}");
}

#[test]
fn a_long_poll_with_changes_answers_the_patch_from_the_content_its_tag_names() {
    let server = Server::start(&[]);
    write(&server, "PUT", "/data", r#"{"cfg": {"port": 8080, "hosts": ["a"]}, "other": 0}"#);
    let mut held = server.get("/data/cfg").json();
    let mut tag = server.get("/data/cfg").header("ETag").unwrap().to_string();
    let writes = [
        ("/data/cfg/port", "8081"),
        ("/data/cfg/hosts/1", "\"b\""),
        ("/data/cfg/new", "{\"x\": [1, 2]}"),
        ("/data/cfg/hosts/0", "null"),
    ];
    for (path, body) in writes {
        let mut poll = Client::connect(server.addr);
        poll.send_request("GET", "/data/cfg?wait=10&changes", &[("If-None-Match", &tag)], b"");
        wait_for("the poll to wait", || server.get("/metrics").text().contains("lighthouse_watchers 1\n"));
        write(&server, "PUT", "/data/other", "1");
        write(&server, "PUT", path, body);
        let answer = poll.read_response();
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.header("Content-Type"), Some("application/json-patch+json"));
        apply(&mut held, &answer.json());
        tag = answer.header("ETag").expect("an ETag").to_string();
        let now = server.get("/data/cfg");
        assert_eq!((&held, Some(tag.as_str())), (&now.json(), now.header("ETag")), "after {path}: {}", answer.text());
    }
    // A tag that is not the current one: the whole subtree at once, as without ?changes.
    let (_, text) = curl(&["-s", "-D", "-", "-H", "If-None-Match: \"old\"", &server.url("/data/cfg?wait=5&changes")]);
    assert!(text.contains("Content-Type: application/json\r\n") && text.contains("\"port\""), "{text}");
}

/// A restore (here: the node started again on an empty data directory) makes a second history
/// whose sequence 1 is not the first history's: a client that held sequence 1 of the first must
/// get the subtree again, not be told it is up to date. An id of the older form (a sequence
/// alone) is still taken, with the whole subtree.
#[test]
fn last_event_id_names_a_version_so_a_restored_history_sharing_a_sequence_is_sent_again() {
    let first_dir = support::TempDir::new("first-history");
    let server = Server::start(&[&first_dir.flag()]);
    assert_eq!(write(&server, "PUT", "/data", r#"{"cfg": {"from": "the first history"}}"#), 1);
    let stream = Stream::open(&server, "/data/cfg", &[]);
    let held = stream.events_through(1)[0].clone();
    drop(stream);
    server.kill9();

    let second_dir = support::TempDir::new("second-history");
    let server = Server::start(&[&second_dir.flag()]);
    assert_eq!(write(&server, "PUT", "/data", r#"{"cfg": {"from": "the second history"}}"#), 1);
    for (path, id) in [("/data/cfg", held.version.as_str()), ("/data/cfg?changes", &held.version), ("/data/cfg", "1")] {
        let resumed = Stream::open(&server, path, &[&format!("Last-Event-ID: {id}")]);
        let event = resumed.events_through(1)[0].clone();
        assert_eq!((event.id, event.kind.as_str()), (1, "message"), "{path} from {id}");
        assert_eq!(serde_json::from_str::<Value>(&event.data).unwrap(), json!({"from": "the second history"}));
        assert_ne!(event.version, held.version, "the same sequence, another version");
    }
    // The id of the version this node holds: up to date, nothing is sent until a change.
    let current = Stream::open(&server, "/data/cfg", &[&format!("Last-Event-ID: {}", held_id(&server))]);
    assert_eq!(write(&server, "PUT", "/data/cfg/from", r#""a change""#), 2);
    let events = current.events_through(2);
    assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [2], "only the change: {events:?}");
}

/// The id of the version a node holds, as its events name it.
fn held_id(server: &Server) -> String {
    server.get("/data").header("X-Lighthouse-Version").expect("a read says its version").to_string()
}
