//! What a client gets wrong is refused with the reason, not taken some other way: a query
//! parameter the endpoint does not take (a typo such as `?wiat=30` answered at once, and a
//! polling loop spun), and a JSON body with a key twice in one object (the last one won silently).

mod support;

use std::time::{Duration, Instant};

use support::{Server, curl, transact};

#[test]
fn a_query_parameter_the_endpoint_does_not_take_answers_400_naming_it() {
    let server = Server::start(&[]);
    transact(&server, "w", "/a", "1");
    assert_eq!(server.request("PUT", "/lock", b"held").status, 200);
    for (method, target, name) in [
        ("GET", "/data/a?wiat=30", "wiat"),
        ("GET", "/data?raw&wait=1&verbose=1", "verbose"),
        ("PUT", "/data/b?ttl=5", "ttl"),
        ("GET", "/lock?wait=1", "wait"),
        ("GET", "/update/held?changes", "changes"),
        ("GET", "/version?pretty", "pretty"),
        ("GET", "/?x=1", "x"),
        ("GET", "/health?probe", "probe"),
        ("GET", "/ready?probe", "probe"),
        ("GET", "/metrics?name=lighthouse_up", "name"),
        ("GET", "/copy?since=1", "since"),
        ("GET", "/state?all", "all"),
        ("GET", "/ui?debug", "debug"),
    ] {
        let started = Instant::now();
        let response = server.request(method, target, b"2");
        assert_eq!(response.status, 400, "{method} {target}: {}", response.text());
        let error = response.error();
        assert!(error.contains(&format!("unknown query parameter '{name}'")), "{method} {target}: {error}");
        assert!(started.elapsed() < Duration::from_secs(1), "{method} {target} was not held");
    }
    assert_eq!(server.get("/data/b").status, 404, "the refused PUT wrote nothing");

    // Names starting with _ are cache busters; the parameters an endpoint takes still work.
    assert_eq!(server.get("/data/a?_=1733400000&raw").text(), "1");
    assert_eq!(server.get("/version?_cache=no").status, 200);
    assert_eq!(server.get("/data/a?keys&_").status, 400, "a is a number, not an object: ?keys still acts");
    let started = Instant::now();
    assert_eq!(server.get("/data/missing?wait=0.3").status, 404);
    assert!(started.elapsed() >= Duration::from_millis(250), "?wait still waits");

    // README's polling loop with the typo, as curl runs it: told at once.
    let (_, answer) = curl(&["-s", "-w", " %{http_code}", &server.url("/data/a?wiat=30")]);
    assert!(answer.contains("unknown query parameter 'wiat'") && answer.ends_with(" 400"), "{answer}");
}

#[test]
fn a_body_with_a_key_twice_in_one_object_answers_400_naming_the_key() {
    let server = Server::start(&[]);
    transact(&server, "w", "/cfg", r#"{"port": 1}"#);
    let body = br#"{"port": 8080, "hosts": {"a": 1, "b": 2, "a": 3}}"#;
    let merge = [("Content-Type", "application/merge-patch+json")];
    let json_patch = [("Content-Type", "application/json-patch+json")];
    let patch_twice = br#"[{"op": "add", "path": "/x", "value": 1, "value": 2}]"#;
    for (method, target, headers, body, key) in [
        ("PUT", "/data/cfg", &[][..], &body[..], "\"a\""),
        ("PATCH", "/data/cfg", &merge[..], &body[..], "\"a\""),
        ("PATCH", "/data/cfg", &json_patch[..], &patch_twice[..], "\"value\""),
    ] {
        let response = server.request_with(method, target, headers, body);
        assert_eq!(response.status, 400, "{method} {target}: {}", response.text());
        assert!(response.error().contains(&format!("duplicate key {key}")), "{}", response.error());
    }
    // A transaction's staged write.
    assert_eq!(server.request("PUT", "/lock", b"w").status, 200);
    let response = server.request("PUT", "/update/w/cfg", br#"{"port": 1, "port": 2}"#);
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.error().contains("duplicate key \"port\""), "{}", response.error());
    assert_eq!(server.request("PUT", "/lock/w", b"").status, 200);
    assert_eq!(server.get("/data/cfg").json(), serde_json::json!({"port": 1}), "nothing was written");

    // A copy (a restore, or a peer's push) with a key twice in its data.
    let copy = server.get("/copy").text();
    let twice = copy.replacen(r#""port":1"#, r#""port":1,"port":1"#, 1);
    assert_ne!(copy, twice);
    let response = server.request("PUT", "/copy", twice.as_bytes());
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.error().contains("duplicate key \"port\""), "{}", response.error());
}
