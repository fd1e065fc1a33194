//! The one-request commands: `get`, `put`, `patch`, `delete` (each one HTTP request, its answer
//! on stdout) and `status` (the cluster from `GET /state`).

use std::io::{Read, Write};

use super::{Answer, Args, Failure, Server, lock_of, target};

/// Writes the bytes to stdout; false when it is closed (`| head -1`), which is not an error.
pub fn print(bytes: &[u8]) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).is_ok()
}

/// 0 after printing a successful answer's body; the refusal otherwise.
fn finish(answer: Answer) -> Result<u8, Failure> {
    if !answer.ok() {
        return Err(Failure::refused(&answer));
    }
    print(&answer.body);
    Ok(0)
}

/// `If-Match` as the server wants it: a tag in quotes, or `*`.
fn if_match(args: &Args) -> Option<String> {
    let tag = args.value("--if-match")?;
    Some(if tag == "*" || tag.starts_with('"') || tag.starts_with("W/") {
        tag.to_string()
    } else {
        format!("\"{tag}\"")
    })
}

/// A value from the command line, or from stdin for `-`.
pub fn value_of(word: &str) -> Result<Vec<u8>, Failure> {
    if word != "-" {
        return Ok(word.as_bytes().to_vec());
    }
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
    Ok(bytes)
}

pub fn get(server: &Server, args: &Args) -> Result<u8, Failure> {
    let [path] = args.exactly(1, "PATH")? else { unreachable!("one word") };
    let mut target = target(path, lock_of(args).as_deref())?;
    match (args.has("--raw"), args.has("--keys")) {
        (true, true) => return Err(Failure::Usage("--raw or --keys, not both".into())),
        (true, false) => target.push_str("?raw"),
        (false, true) => target.push_str("?keys"),
        (false, false) => {}
    }
    finish(server.send("GET", &target, &[], b"")?)
}

/// `PUT`, `PATCH` or `DELETE` of `body` at the path, with `If-Match` when given.
fn write(server: &Server, args: &Args, method: &str, content_type: &str, body: &[u8]) -> Result<u8, Failure> {
    let target = target(&args.positionals[0], lock_of(args).as_deref())?;
    let tag = if_match(args);
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(tag) = &tag {
        headers.push(("If-Match", tag));
    }
    finish(server.send(method, &target, &headers, body)?)
}

pub fn put(server: &Server, args: &Args) -> Result<u8, Failure> {
    let [_, value] = args.exactly(2, "PATH VALUE (or - for stdin)")? else { unreachable!("two words") };
    let body = value_of(value)?;
    write(server, args, "PUT", "application/json", &body)
}

pub fn patch(server: &Server, args: &Args) -> Result<u8, Failure> {
    let [_, patch] = args.exactly(2, "PATH PATCH (or - for stdin)")? else { unreachable!("two words") };
    let content_type = match (args.has("--merge"), args.has("--json-patch")) {
        (true, false) => "application/merge-patch+json",
        (false, true) => "application/json-patch+json",
        _ => return Err(Failure::Usage("say which kind of patch: --merge or --json-patch".into())),
    };
    let body = value_of(patch)?;
    write(server, args, "PATCH", content_type, &body)
}

pub fn delete(server: &Server, args: &Args) -> Result<u8, Failure> {
    args.exactly(1, "PATH")?;
    write(server, args, "DELETE", "application/json", b"")
}

/// One node in `status`.
struct Row {
    address: String,
    role: String,
    sequence: Option<u64>,
    reachable: bool,
}

pub fn status(server: &Server, args: &Args) -> Result<u8, Failure> {
    args.exactly(0, "no words")?;
    let answer = server.send("GET", "/state", &[], b"")?;
    if !answer.ok() {
        return Err(Failure::refused(&answer));
    }
    let state: serde_json::Value = serde_json::from_slice(&answer.body)
        .map_err(|e| Failure::Refused(format!("the server's /state is not JSON: {e}")))?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let mut rows = vec![Row {
        address: text(&state["me"]),
        role: text(&state["role"]),
        sequence: state["version"]["sequence"].as_u64(),
        reachable: true,
    }];
    for peer in state["cluster"].as_array().into_iter().flatten() {
        rows.push(Row {
            address: text(&peer["address"]),
            role: text(&peer["role"]),
            sequence: peer["version"]["sequence"].as_u64(),
            reachable: peer["reachable"].as_bool().unwrap_or(false),
        });
    }
    let newest = rows.iter().filter_map(|r| r.sequence).max().unwrap_or(0);
    let writes = &state["writes"];
    if args.has("--json") {
        let nodes: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "address": r.address, "role": r.role, "sequence": r.sequence,
                    "lag": r.sequence.map(|s| newest - s), "reachable": r.reachable,
                })
            })
            .collect();
        let out = serde_json::json!({
            "writes": writes["writes"], "coordinator": writes["coordinator"], "term": writes["term"], "nodes": nodes,
        });
        print(format!("{}\n", serde_json::to_string_pretty(&out).unwrap_or_default()).as_bytes());
        return Ok(0);
    }
    let mut out = match writes["writes"].as_str() {
        Some("coordinated") => format!(
            "writes: coordinated, term {}, coordinator {}\n",
            writes["term"].as_u64().map_or("-".into(), |t| t.to_string()),
            writes["coordinator"].as_str().unwrap_or("none")
        ),
        Some(mode) => format!("writes: {mode}\n"),
        None => String::new(),
    };
    let width = rows.iter().map(|r| r.address.len()).max().unwrap_or(0).max("ADDRESS".len());
    out.push_str(&format!("{:width$}  {:11}  {:>8}  {:>6}  REACHABLE\n", "ADDRESS", "ROLE", "SEQUENCE", "LAG"));
    for r in &rows {
        let sequence = r.sequence.map_or("-".into(), |s| s.to_string());
        let lag = r.sequence.map_or("-".into(), |s| (newest - s).to_string());
        let reachable = if r.reachable { "yes" } else { "no" };
        out.push_str(&format!("{:width$}  {:11}  {sequence:>8}  {lag:>6}  {reachable}\n", r.address, r.role));
    }
    print(out.as_bytes());
    Ok(0)
}
