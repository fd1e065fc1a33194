//! The rule the source tree is laid out by: `src/core/` is the pure side. It imports nothing that
//! does I/O, spawns threads, reads a clock, parses the command line or calls the system, so
//! whole clusters of cores can run on a simulated network and clock (`tests/simulation/`).
//! `std::net::SocketAddr` is allowed: it is a plain value (a client's address in an audit line).
//! And no file of `src/` or `tests/` is over 600 lines: a file that long holds more than one thing.
//! And the core's state has owners (below: *Who changes which state*).

use std::path::{Path, PathBuf};

/// What the core may not name, and why.
const FORBIDDEN: [(&str, &str); 14] = [
    ("std::fs", "the file system is the shell's (shell::data_dir)"),
    ("std::thread", "threads are the shell's (shell::workers)"),
    ("std::time", "the core gets the time as a value (core::clock::Now)"),
    ("Instant", "the core gets the time as a value"),
    ("SystemTime", "the core gets the time as a value"),
    ("std::process", "processes are the shell's"),
    ("std::env", "the environment is read at start-up, by the shell"),
    ("std::net::Tcp", "sockets are the shell's (shell::event_loop, shell::peers)"),
    ("std::net::Udp", "sockets are the shell's"),
    ("mio::", "the event loop is the shell's"),
    ("libc", "system calls are the shell's (shell::sys)"),
    ("crate::shell", "the core never calls into the shell"),
    ("crate::config", "the command line is parsed once, outside the core"),
    ("unsafe", "the core is plain safe Rust"),
];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source tree is readable") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn the_core_imports_nothing_that_does_io() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core"), &mut files);
    assert!(files.len() > 10, "found the core's files: {files:?}");
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (name, why) in FORBIDDEN {
                if code.contains(name) {
                    broken.push(format!("{}:{}: {name} ({why})", file.display(), number + 1));
                }
            }
        }
    }
    assert!(broken.is_empty(), "the core must stay pure:\n{}", broken.join("\n"));
}

/// The source and the tests alike: a file says what it owns, and a long one owns too much.
#[test]
fn no_source_or_test_file_is_over_600_lines() {
    let mut files = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    assert!(files.iter().any(|f| f.ends_with("tests/simulation/main.rs")), "found the tests' files: {files:?}");
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, lines)| *lines > 600)
        .map(|(f, lines)| format!("{}: {lines} lines", f.display()))
        .collect();
    assert!(long.is_empty(), "files to split by what they own:\n{}", long.join("\n"));
}

// ---- Who changes which state ----------------------------------------------------------------------
//
// The core's state has owners: `src/lib.rs`'s table *Who changes which state* names, for every
// field of the node's state, the one module that may change it, and this test holds the code to
// it. It finds every place in `src/core/` that writes a field directly: assigns it or one of its
// fields, borrows it mutably, or calls a method of a standard container that changes it (`push`,
// `take`, `insert`, `retain`, `as_mut`, ...), on the node's own receivers (`self` in the node's
// modules, the names its split borrows use). A change through a method of the field's own type
// (`self.store.install(..)`) is a transition the type's module owns: the compiler confines those,
// since such types keep their fields private.

/// The names the core's code reaches the node's state through (`co`: coordinated mode's state,
/// as shared code is handed it).
const RECEIVERS: [&str; 4] = ["self", "node", "shared", "co"];

/// The blocks whose `self` is the node's state.
const NODE_IMPLS: [&str; 4] = ["impl Node {", "impl super::Node {", "impl Shared {", "impl Coordinated {"];

/// Methods of `Option`, `Vec`, `VecDeque` and maps that change what they hold.
const CHANGING: [&str; 28] = [
    "take",
    "take_if",
    "replace",
    "insert",
    "get_or_insert",
    "get_or_insert_with",
    "push",
    "push_back",
    "push_front",
    "pop",
    "pop_back",
    "pop_front",
    "retain",
    "retain_mut",
    "clear",
    "remove",
    "swap_remove",
    "drain",
    "extend",
    "append",
    "truncate",
    "split_off",
    "resize",
    "dedup",
    "sort",
    "sort_by",
    "sort_by_key",
    "sort_unstable",
];

/// Methods that lend what a container holds mutably: a write for a plain value, a loan to the
/// transitions of its own type otherwise.
const LENDING: [&str; 7] = ["as_mut", "get_mut", "iter_mut", "values_mut", "last_mut", "first_mut", "entry"];

/// One row of the table.
#[derive(Debug)]
struct Row {
    field: String,
    /// The files that may change it; `none`: set at start, never changed; `any`: an output (the
    /// effects queued, the counters) any module appends to.
    owners: Vec<String>,
    /// A value of a type with its own transitions (private fields, methods): calling its methods
    /// is not a direct write, only assigning or lending it is.
    own_type: bool,
}

/// The table's rows.
fn owners() -> Vec<Row> {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let table = lib.split("# Who changes which state").nth(1).expect("lib.rs has the table of owners");
    let rows: Vec<Row> = table
        .lines()
        .map(|line| line.trim_start_matches("//!").trim())
        .take_while(|line| line.is_empty() || line.starts_with('|') || !line.starts_with('#'))
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let field = cells[1].trim_matches('`').to_string();
            let owners = cells[2].split(',').map(|f| f.trim().trim_matches('`').to_string()).collect();
            Row { field, owners, own_type: cells[3].starts_with("its methods") }
        })
        .collect();
    assert!(rows.len() > 10, "the table names the node's fields: {rows:?}");
    rows
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `code[at..]`, just past `receiver.field`, writes the field: assigns it or a field of
/// it, lends it mutably (`&mut`), calls a method of a standard container that changes what it
/// holds (`take`, `push`, ...), or one that lends what it holds (`as_mut`, ...) unless the field
/// holds a type with its own transitions. Methods of the field's own type are its transitions.
fn writes(code: &str, start: usize, at: usize, own_type: bool) -> bool {
    if let Some(before) = code[..start].trim_end().strip_suffix("&mut") {
        // Lent to the transitions of its own type, unless swapped out whole (`mem::take`).
        let swapped = ["take(", "replace(", "swap("].iter().any(|f| before.trim_end().ends_with(f));
        return !own_type || swapped;
    }
    let mut rest = &code[at..];
    let mut depth = 0;
    while let Some(after) = rest.strip_prefix('.') {
        let name_len = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
        let (name, next) = after.split_at(name_len);
        if name.is_empty() {
            return false;
        }
        if next.starts_with('(') || next.starts_with("::<") {
            return CHANGING.contains(&name) || (depth > 0 || !own_type) && LENDING.contains(&name);
        }
        depth += 1;
        rest = next;
    }
    let rest = rest.trim_start();
    ["=", "+=", "-=", "*=", "|=", "&="].iter().any(|op| rest.starts_with(op)) && !rest.starts_with("==")
}

/// The lines of `text` where the node's state is in scope as `self`: inside `impl Node` (and the
/// parts it is split into), before the tests.
fn node_lines(text: &str) -> Vec<(usize, bool, &str)> {
    let body = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut inside = false;
    let mut lines = Vec::new();
    for (number, line) in body.lines().enumerate() {
        if NODE_IMPLS.iter().any(|i| line.starts_with(i)) {
            inside = true;
        } else if line == "}" {
            inside = false;
        }
        lines.push((number + 1, inside, line.split("//").next().unwrap_or("")));
    }
    lines
}

/// Every direct write of `row.field` in `text`: its line numbers.
fn write_sites(text: &str, field: &str, own_type: bool) -> Vec<usize> {
    let mut sites = Vec::new();
    for (number, in_node, code) in node_lines(text) {
        for receiver in RECEIVERS.iter().filter(|r| in_node || **r != "self") {
            let needle = format!("{receiver}.{field}");
            let mut from = 0;
            while let Some(found) = code[from..].find(&needle) {
                let start = from + found;
                let end = start + needle.len();
                let whole = !code[..start].ends_with(is_ident) && !code[end..].starts_with(is_ident);
                if whole && writes(code, start, end, own_type) {
                    sites.push(number);
                }
                from = end;
            }
        }
    }
    sites
}

#[test]
fn every_field_of_the_node_is_changed_only_in_its_owners_module() {
    let mut files = Vec::new();
    rust_files(&root().join("src/core"), &mut files);
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let name = f.strip_prefix(root().join("src/core")).unwrap().display().to_string();
            (name, std::fs::read_to_string(f).unwrap())
        })
        .collect();
    let mut strays = Vec::new();
    for Row { field, owners, own_type } in owners() {
        if owners == ["any"] {
            continue;
        }
        let mut seen = false;
        for (file, text) in &sources {
            let sites = write_sites(text, &field, own_type);
            seen |= !sites.is_empty();
            if !sites.is_empty() && !owners.iter().any(|o| o == file) {
                strays.push(format!("{field} changed in {file} at lines {sites:?}; its owners: {owners:?}"));
            }
        }
        let changes = owners != ["none"];
        assert!(seen || !changes || own_type, "{field}: no direct write found; say `none` in the table or correct it");
    }
    assert!(strays.is_empty(), "state changed outside its owner's module:\n{}", strays.join("\n"));
}

#[test]
fn the_scanner_sees_the_writes_it_is_meant_to_see() {
    let text = "impl Node {\n    fn f(&mut self) {\n\
                self.mine.push(x);\nlet n = self.mine.len();\nself.floor = 3;\nif self.floor == 3 {}\n\
                std::mem::take(&mut self.lock);\nnode.cluster.peers.retain(|p| p.ok);\nself.store.install(s);\n\
                self.lockout = 1;\nself.activation.target = None;\nself.lock.as_mut().map(Lock::renew);\n\
                self.lock.take();\nif let Some(l) = &mut self.lock {}\n    }\n}\n\
                impl NodeJson {\n    fn g(&mut self) { self.mine.push(b','); }\n}\n";
    assert_eq!(write_sites(text, "mine", false), [3], "not the other impl's field of that name");
    assert_eq!(write_sites(text, "mine", true), [3], "a changing method on a field of its own type");
    assert_eq!(write_sites(text, "floor", false), [5]);
    assert_eq!(write_sites(text, "lock", true), [7, 13], "swapped out, taken; not `lockout`, nor lent to its own type");
    assert_eq!(write_sites(text, "lock", false), [7, 12, 13, 14], "a plain value lent is written");
    assert_eq!(write_sites(text, "cluster", true), [8], "a changing method on a field of it");
    assert_eq!(write_sites(text, "store", true), Vec::<usize>::new(), "a method of the field's own type");
    assert_eq!(write_sites(text, "activation", true), [11]);
}
