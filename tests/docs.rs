//! README.md and docs/ as a reader uses them: every relative link between them resolves (the file,
//! and the heading an anchor names), README's first session prints what README shows, and the
//! tutorial's changes run in order, pasted as written, on the store that session made.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Server, TempDir};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// README.md and every Markdown file of docs/.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![Path::new(ROOT).join("README.md")];
    for entry in std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files
}

/// The lines of `markdown` outside fenced code blocks.
fn prose(markdown: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push(line);
        }
    }
    lines
}

/// The anchors GitHub makes of a file's headings: lower case, punctuation dropped, spaces as `-`,
/// `-1`, `-2`... after a repeated one.
fn anchors(markdown: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for line in prose(markdown) {
        let Some(title) = line.strip_prefix('#').map(|t| t.trim_start_matches('#')) else { continue };
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while !seen.insert(unique.clone()) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
    }
    seen
}

/// The targets of the Markdown links (`[text](target)`, images too) in the prose of `markdown`.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose(markdown) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    targets
}

/// What is wrong with one relative link of `from`, if anything.
fn broken(from: &Path, target: &str) -> Option<String> {
    let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
    let path = if file.is_empty() { from.to_path_buf() } else { from.parent().unwrap().join(file) };
    if !path.exists() {
        return Some(format!("{} links to {target}: no such file", from.display()));
    }
    let is_markdown = path.extension().is_some_and(|e| e == "md");
    if !anchor.is_empty() && is_markdown && !anchors(&std::fs::read_to_string(&path).unwrap()).contains(anchor) {
        return Some(format!("{} links to {target}: no such heading in {}", from.display(), path.display()));
    }
    None
}

#[test]
fn every_relative_link_between_readme_and_the_docs_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let markdown = std::fs::read_to_string(&file).unwrap();
        for target in link_targets(&markdown) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            problems.extend(broken(&file, &target));
        }
    }
    assert!(checked > 20, "only {checked} relative links found: is the link finder broken?");
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

#[test]
fn the_link_checker_knows_githubs_anchors() {
    let headings =
        anchors("# Title\n## Upgrading a `--writes=local` cluster\n## A, b: c\n## A, b: c\n```\n# no\n```\n");
    let expected = ["title", "upgrading-a---writeslocal-cluster", "a-b-c", "a-b-c-1"];
    assert_eq!(headings, expected.iter().map(|s| s.to_string()).collect());
    assert_eq!(link_targets("see [a](b.md#c) and ![d](e.png)\n```\n[no](x)\n```\n"), ["b.md#c", "e.png"]);
}

/// The first fenced block of `kind` after the heading `heading` of `markdown`.
fn block_after(markdown: &str, heading: &str, kind: &str) -> String {
    let start = markdown.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("the heading {heading}"));
    let open = format!("```{kind}\n");
    let body =
        start + markdown[start..].find(&open).unwrap_or_else(|| panic!("a {kind} block after {heading}")) + open.len();
    let end = body + markdown[body..].find("```").expect("the end of the block");
    markdown[body..end].to_string()
}

/// Runs `script` with bash in `dir`; returns its standard output, asserting it succeeded.
fn bash(dir: &Path, script: &str) -> String {
    let output = Command::new("bash").arg("-c").arg(script).current_dir(dir).output().expect("bash runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script}\nfailed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// README's first session: the seed file it gives, then each `$ ` command of its console block,
/// whose output must be the lines README shows below it.
#[test]
fn the_readme_first_session_prints_what_the_readme_shows() {
    let readme = read("README.md");
    let dir = TempDir::new("readme-session");
    std::fs::write(dir.path().join("seed.json"), block_after(&readme, "## A first session", "json")).unwrap();
    let server = Server::start(&[&dir.flag()]);
    let session = block_after(&readme, "## A first session", "console");
    let mut steps: Vec<(String, String)> = Vec::new();
    for line in session.lines() {
        match (line.strip_prefix("$ "), steps.last_mut()) {
            (Some(command), _) => steps.push((command.to_string(), String::new())),
            (None, Some((_, expected))) => expected.push_str(&format!("{line}\n")),
            (None, None) => panic!("the session starts with a command: {line}"),
        }
    }
    assert!(steps.len() >= 7, "{steps:?}");
    for (command, expected) in steps {
        let command = command.replace("http://localhost:8001", &server.url(""));
        assert_eq!(bash(dir.path(), &command), expected, "{command}");
    }
}

/// The tutorial's lock dance ("Updating") and then its one-request writes ("Writing one value"),
/// pasted in order on the store of README's first session: every request succeeds (2xx).
#[test]
fn the_tutorials_changes_run_in_order_on_the_first_sessions_store() {
    let readme = read("README.md");
    let tutorial = read("docs/tutorial.md");
    let dir = TempDir::new("tutorial-writes");
    let server = Server::start(&[&dir.flag()]);
    let seed = block_after(&readme, "## A first session", "json");
    assert_eq!(server.request("PUT", "/lock", b"deploy").status, 200);
    assert_eq!(server.request("PUT", "/update/deploy", seed.as_bytes()).status, 201);
    assert_eq!(server.request("PUT", "/lock/deploy", b"").status, 200);
    // Each request prints its status code instead of its answer.
    let mut script = String::from("curl() { command curl -sS -o /dev/null -w '%{http_code}\\n' \"$@\"; }\n");
    script.push_str(&block_after(&tutorial, "## Updating", "sh"));
    script.push_str(&block_after(&tutorial, "## Writing one value", "sh"));
    let script = script.replace("localhost:8001", &server.addr.to_string());
    let statuses = bash(dir.path(), &script);
    let codes: Vec<&str> = statuses.lines().collect();
    assert!(codes.len() >= 10, "{statuses}");
    assert!(codes.iter().all(|code| code.starts_with('2')), "a request of the tutorial failed: {codes:?}\n{script}");
    assert_eq!(server.get("/data/counter").text(), "0\n", "the counter the compare-and-set loop needs exists");
}
