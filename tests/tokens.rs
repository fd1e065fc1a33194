//! Scoped tokens (docs/tokens.md): a token file gives each token a label, a scope and path
//! prefixes; every endpoint keeps a token to what it grants, a transaction is judged at its commit,
//! SIGHUP rotates the tokens, and no token is ever logged.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::cluster::{Member, chain};
use support::{Response, Server, TempDir, signal, wait_for};

const ADMIN: &str = "adm1n-t0ken-s3cret";
const WEB: &str = "w3b-t0ken-s3cret";
const VIEWER: &str = "v1ewer-t0ken-s3cret";
const LIST: &str = "l1st-t0ken-s3cret";
const READER: &str = "r3ader-t0ken-s3cret";
const SECRETS: [&str; 5] = [ADMIN, WEB, VIEWER, LIST, READER];

/// Writes a private token file.
fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The token file of these tests: an admin token as today's files hold it, and scoped ones.
fn token_file(dir: &TempDir) -> String {
    let path = dir.path().join("tokens");
    let text = format!(
        "# the operators' token, as before scopes\n{ADMIN}\n\n\
         {WEB} label=deploy-web scope=write prefixes=/services/web,/features\n\
         {VIEWER} label=viewer scope=read prefixes=/services\n\
         {LIST} label=list-0 prefixes=/list/0\n"
    );
    write_file(&path, &text);
    path.display().to_string()
}

fn call(server: &Server, token: &str, method: &str, path: &str, body: &str) -> Response {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if method == "PATCH" {
        headers.push(("Content-Type", "application/json-patch+json"));
    }
    server.request_with(method, path, &headers, body.as_bytes())
}

/// Asserts a 403 whose one-line message contains `says`.
fn refused(response: Response, says: &str, what: &str) {
    assert_eq!(response.status, 403, "{what}: {}", response.text());
    let message = response.error();
    assert!(message.contains(says), "{what}: {message}");
}

fn never_logged(server: &Server) {
    let log = server.log().join("\n");
    for secret in SECRETS {
        assert!(!log.contains(secret), "a token was logged:\n{log}");
    }
}

/// A node with the test's tokens and reads guarded, holding a small store.
fn seeded_node(dir: &TempDir) -> Server {
    let tokens = token_file(dir);
    let reads = dir.path().join("reads");
    write_file(&reads, &format!("{READER}\n"));
    let server = Server::start(&[&format!("--token-file={tokens}"), &format!("--read-token-file={}", reads.display())]);
    let store = r#"{"services": {"web": {"port": 80}, "db": {"port": 5432}}, "features": {}, "list": [0, 1, 2]}"#;
    assert_eq!(call(&server, ADMIN, "PUT", "/data", store).status, 200, "a bare token line changes everything");
    server
}

#[test]
fn a_scoped_token_changes_only_below_its_prefixes_on_every_endpoint() {
    let dir = TempDir::new("tokens-endpoints");
    let server = seeded_node(&dir);
    let may = "this token (deploy-web) may change only /services/web, /features and below";
    assert_eq!(call(&server, WEB, "PUT", "/data/services/web/port", "81").status, 200);
    assert_eq!(call(&server, WEB, "PUT", "/data/features/dark", "true").status, 200);
    assert_eq!(call(&server, WEB, "PUT", "/data/services/web/", "{\"port\": 82}").status, 200, "a trailing slash");
    assert_eq!(call(&server, WEB, "PUT", "/data/services/%77eb/port", "83").status, 200, "percent-encoded");
    refused(call(&server, WEB, "PUT", "/data/services/db/port", "1"), may, "PUT beside the prefix");
    refused(call(&server, WEB, "PUT", "/data/services/web2", "1"), "not /services/web2", "a longer name");
    refused(call(&server, WEB, "PUT", "/data/services%2Fweb", "1"), may, "one key with a slash");
    refused(call(&server, WEB, "DELETE", "/data/services/db", ""), may, "DELETE");
    refused(call(&server, WEB, "PUT", "/data", "{}"), may, "the whole store");
    let escape = r#"[{"op": "replace", "path": "/db/port", "value": 1}]"#;
    refused(call(&server, WEB, "PATCH", "/data/services", escape), may, "a JSON Patch of a parent");
    let inside = r#"[{"op": "copy", "from": "/port", "path": "/old-port"}]"#;
    assert_eq!(call(&server, WEB, "PATCH", "/data/services/web", inside).status, 200, "a JSON Patch inside");
    assert_eq!(call(&server, WEB, "DELETE", "/data/features/dark", "").status, 200);
    refused(call(&server, WEB, "PUT", "/copy", "{}"), "only a token without prefixes", "a restore");
    refused(call(&server, WEB, "GET", "/copy", ""), "only a token without prefixes", "the whole store as a copy");
    refused(
        call(&server, WEB, "DELETE", "/state/127.0.0.9:1", ""),
        "may not use this endpoint of the cluster",
        "removing a voter",
    );
    refused(
        call(&server, WEB, "PUT", "/cluster/accept", "{}"),
        "may not use this endpoint of the cluster",
        "a pushed version",
    );
    refused(
        call(&server, WEB, "GET", "/cluster/accepted", ""),
        "may not use this endpoint of the cluster",
        "a peer's store",
    );
    refused(call(&server, WEB, "PUT", "/state", "[]"), "may not use this endpoint of the cluster", "gossip");
    // A transaction: the lock is anyone's with a write token, staging is kept to the prefixes.
    assert_eq!(call(&server, WEB, "PUT", "/lock", "deploy").status, 200);
    refused(call(&server, WEB, "PUT", "/update/deploy/services/db/port", "1"), may, "staging beside the prefix");
    refused(call(&server, WEB, "DELETE", "/update/deploy", ""), may, "resetting the staged store");
    refused(call(&server, WEB, "GET", "/update/deploy/services", ""), "may read only", "reading a staged parent");
    assert_eq!(call(&server, WEB, "PUT", "/update/deploy/services/web/port", "90").status, 201);
    assert_eq!(call(&server, WEB, "GET", "/update/deploy/services/web/port", "").text(), "90\n");
    assert_eq!(call(&server, WEB, "PUT", "/lock/deploy", "").status, 200, "a commit inside the prefixes lands");
    assert_eq!(call(&server, ADMIN, "GET", "/data/services/web/port", "").text(), "90\n");
    // A deletion at an array prefix would shift the elements after it, outside the prefix.
    refused(call(&server, LIST, "DELETE", "/data/list/0", ""), "reaches /list/", "an array deletion at the prefix");
    assert_eq!(call(&server, LIST, "PUT", "/data/list/0", "7").status, 200);
    assert_eq!(call(&server, ADMIN, "GET", "/data/list", "").json(), serde_json::json!([7, 1, 2]));
    let log = server.log().join("\n");
    assert!(log.contains("by deploy-web"), "the audit lines name the label:\n{log}");
    never_logged(&server);
}

#[test]
fn a_scoped_token_reads_and_follows_only_below_its_prefixes() {
    let dir = TempDir::new("tokens-reads");
    let server = seeded_node(&dir);
    let only = "this token (deploy-web) may read only /services/web, /features and below";
    assert_eq!(call(&server, WEB, "GET", "/data/services/web/port", "").text(), "80\n", "a write token reads too");
    refused(call(&server, WEB, "GET", "/data/services", ""), only, "a parent");
    refused(call(&server, WEB, "GET", "/data", ""), only, "the root");
    refused(call(&server, WEB, "GET", "/data/services/db", ""), only, "a sibling");
    refused(call(&server, WEB, "GET", "/data/services?wait=1", ""), only, "a long-poll of a parent");
    let stream = |token: &str, path: &str| {
        let auth = format!("Bearer {token}");
        server.request_with("GET", path, &[("Authorization", &auth), ("Accept", "text/event-stream")], b"")
    };
    refused(stream(WEB, "/data/services"), only, "the event stream of a parent");
    refused(stream(WEB, "/data?changes"), only, "the changes of the root");
    let url = server.url(&format!("/data/services?access_token={WEB}"));
    let (_, out) = support::curl(&["-s", "-w", "\n%{http_code}", &url]);
    assert!(out.ends_with("403"), "a token in the URL is the same token: {out}");
    // An event stream inside the prefixes starts (its head arrives with the first event).
    let mut client = support::Client::connect(server.addr);
    let auth = format!("Bearer {WEB}");
    client.send_request("GET", "/data/services/web", &[("Authorization", &auth), ("Accept", "text/event-stream")], b"");
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut client.stream, &mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "the stream of a path inside");
    // A read token with prefixes reads them and changes nothing.
    assert_eq!(call(&server, VIEWER, "GET", "/data/services", "").status, 200);
    refused(call(&server, VIEWER, "GET", "/data/features", ""), "(viewer) may read only /services", "outside");
    assert_eq!(call(&server, VIEWER, "PUT", "/data/services/web/port", "1").status, 401, "no changes");
    // The node's own endpoints keep their rules: any read token reads them.
    for path in ["/version", "/metrics", "/state", "/", "/lock"] {
        let status = call(&server, WEB, "GET", path, "").status;
        assert!(status == 200 || status == 404, "{path}: {status}");
    }
    assert_eq!(call(&server, READER, "GET", "/data", "").status, 200, "a bare read token reads everything");
    never_logged(&server);
}

#[test]
fn a_transaction_that_leaves_the_prefixes_is_refused_at_commit_and_nothing_lands() {
    let dir = TempDir::new("tokens-commit");
    let server = seeded_node(&dir);
    let before = call(&server, ADMIN, "GET", "/version", "").json();
    assert_eq!(call(&server, ADMIN, "PUT", "/lock", "shared").status, 200);
    assert_eq!(call(&server, ADMIN, "PUT", "/update/shared/services/db/port", "1").status, 201);
    assert_eq!(call(&server, WEB, "PUT", "/update/shared/services/web/port", "9").status, 201);
    let commit = call(&server, WEB, "PUT", "/lock/shared", "");
    refused(commit, "reaches /services/db/port outside what this token (deploy-web) may change", "the commit");
    assert_eq!(call(&server, ADMIN, "GET", "/version", "").json(), before, "nothing landed");
    assert_eq!(call(&server, ADMIN, "GET", "/data/services/web/port", "").text(), "80\n");
    assert_eq!(call(&server, ADMIN, "GET", "/lock", "").text(), "shared\n", "the lock stays held");
    assert_eq!(call(&server, ADMIN, "DELETE", "/lock/shared", "").status, 200, "and is aborted as usual");
    never_logged(&server);
}

#[test]
fn sighup_rotates_the_tokens_and_a_malformed_file_keeps_the_old_ones() {
    let dir = TempDir::new("tokens-sighup");
    let path = dir.path().join("tokens");
    write_file(&path, "old-t0ken label=ci\n");
    let server = Server::start(&[&format!("--token-file={}", path.display())]);
    let put = |token: &str| call(&server, token, "PUT", "/data/x", "1").status;
    assert_eq!(put("old-t0ken"), 200);
    write_file(&path, "new-t0ken label=ci prefixes=/x\n");
    signal(&server.child, libc::SIGHUP);
    wait_for("the new token to be read", || put("new-t0ken") == 200);
    assert_eq!(put("old-t0ken"), 401, "the old token is gone");
    write_file(&path, "newer-t0ken label=ci\nsecond-t0ken scope=everything\n");
    signal(&server.child, libc::SIGHUP);
    wait_for("the malformed file to be refused", || server.log().iter().any(|l| l.contains("ERROR")));
    assert_eq!(put("new-t0ken"), 200, "the tokens in use are kept");
    assert_eq!(put("newer-t0ken"), 401);
    let log = server.log();
    let errors: Vec<&String> = log.iter().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one line: {errors:?}");
    assert!(errors[0].contains("line 2") && errors[0].contains("kept"), "{}", errors[0]);
    assert!(!log.join("\n").contains("t0ken"), "no token in the log: {log:?}");
}

#[test]
fn a_malformed_token_file_stops_the_start_with_one_line_naming_the_line() {
    let dir = TempDir::new("tokens-malformed");
    let path = dir.path().join("tokens");
    write_file(&path, "good-t0ken\nbad-t0ken label=a prefixes=services\n");
    let output = std::process::Command::new(support::BINARY)
        .args(["--bind=127.0.0.1:0", &format!("--token-file={}", path.display())])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 2: prefix \"services\""), "{stderr}");
    assert!(!stderr.contains("t0ken"), "the token is never printed: {stderr}");
}

#[test]
fn a_forwarded_write_keeps_its_scope_in_a_coordinated_cluster() {
    let dir = TempDir::new("tokens-cluster");
    let tokens = token_file(&dir);
    let members = chain(3, "tokens-cluster", &[&format!("--token-file={tokens}")]);
    let coordinator = members[0].writes()["coordinator"].as_str().expect("a coordinator is known").to_string();
    let follower: &Member = members.iter().find(|m| m.address() != coordinator).unwrap();
    let server = follower.server();
    assert_eq!(call(server, ADMIN, "PUT", "/data", r#"{"services": {"web": {}, "db": {}}}"#).status, 200);
    let may = "(deploy-web) may change only /services/web, /features and below";
    assert_eq!(call(server, WEB, "PUT", "/data/services/web/port", "80").status, 200, "forwarded, in scope");
    refused(call(server, WEB, "PUT", "/data/services/db/port", "1"), may, "forwarded, out of scope");
    // A commit is judged on the coordinator, by the grant the follower sends along.
    assert_eq!(call(server, ADMIN, "PUT", "/lock", "tx").status, 200);
    assert_eq!(call(server, ADMIN, "PUT", "/update/tx/services/db/port", "1").status, 201);
    refused(call(server, WEB, "PUT", "/lock/tx", ""), "reaches /services/db/port outside", "a forwarded commit");
    assert_eq!(call(server, ADMIN, "DELETE", "/lock/tx", "").status, 200);
    // A client cannot pose as a forwarding node to widen its token.
    let coordinator_server = members.iter().find(|m| m.address() == coordinator).unwrap().server();
    let auth = format!("Bearer {WEB}");
    let forged = [
        ("Authorization", auth.as_str()),
        ("X-Lighthouse-Forwarded", "127.0.0.1:1"),
        ("X-Lighthouse-Grant", "label=admin scope=write"),
    ];
    let posed = coordinator_server.request_with("PUT", "/data/services/db/port", &forged, b"1");
    assert_eq!(posed.status, 403, "{}", posed.text());
    assert_eq!(call(server, ADMIN, "GET", "/data/services/db", "").json(), serde_json::json!({}), "nothing changed");
    for member in &members {
        never_logged(member.server());
    }
}
