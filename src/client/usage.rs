//! Every subcommand's flags and `--help`.

/// What every subcommand takes besides its own flags.
const COMMON: &str = "\
Common options:
  --server URL         the server (default http://127.0.0.1:8001, or $LIGHTHOUSE_SERVER)
  --token-file PATH    send the token in PATH, its first word (or $LIGHTHOUSE_TOKEN_FILE)
  --help               print this help

Exit status: 0 done, 1 the server refused (its message on stderr), 2 usage error,
3 the server cannot be reached.
";

/// The flags of `command` that take a value, and its switches.
pub fn flags(command: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match command {
        "get" => (&["--lock"], &["--raw", "--keys"]),
        "put" | "delete" => (&["--if-match", "--lock"], &[]),
        "patch" => (&["--if-match"], &["--merge", "--json-patch"]),
        "watch" => (&["--exec", "--render"], &["--raw"]),
        "lock" => (&["--ttl"], &[]),
        "status" => (&[], &["--json"]),
        _ => (&[], &[]),
    }
}

/// The `--help` of `command`.
pub fn text(command: &str) -> String {
    let own = match command {
        "get" => {
            "Usage: lighthouse get PATH [--raw] [--keys]

Prints the value at PATH (/services/web; / is the whole document) as pretty JSON.
  --raw        a string as its text, without quotes
  --keys       an object's keys, or an array's length
  --lock NAME  read what the transaction NAME has staged (default $LIGHTHOUSE_LOCK)
"
        }
        "put" => {
            "Usage: lighthouse put PATH VALUE|- [--if-match TAG]

Writes the JSON VALUE (or, with -, the JSON read from stdin) at PATH; prints the new version.
  --if-match TAG  only while the value at PATH still has this ETag (\"*\": while it exists)
  --lock NAME     stage it in the transaction NAME instead (default $LIGHTHOUSE_LOCK)
"
        }
        "patch" => {
            "Usage: lighthouse patch PATH --merge|--json-patch PATCH|-

Applies a JSON Merge Patch (RFC 7396, null removes a key) or a JSON Patch (RFC 6902, all or
nothing) to the value at PATH; - reads the patch from stdin. Prints the new version.
  --if-match TAG  only while the value at PATH still has this ETag
"
        }
        "delete" => {
            "Usage: lighthouse delete PATH [--if-match TAG]

Removes PATH; prints the new version.
  --if-match TAG  only while the value at PATH still has this ETag
  --lock NAME     stage the removal in the transaction NAME instead (default $LIGHTHOUSE_LOCK)
"
        }
        "edit" => {
            "Usage: lighthouse edit PATH

Opens $VISUAL or $EDITOR (else vi) on the value at PATH as pretty JSON and writes it back only if
nobody changed it meanwhile (If-Match). When someone did, says so and, on a terminal, offers to
edit the new version; without a terminal it exits 1.
"
        }
        "watch" => {
            "Usage: lighthouse watch PATH [--exec CMD] [--render [TEMPLATE:]FILE] [--raw]

Follows the value at PATH (an event stream, resumed with Last-Event-ID after a disconnection,
retried with a growing pause up to 5 s while the server is down). On start and on every change:
  (neither)      prints the value as one line of compact JSON
  --render FILE  writes the value to FILE atomically (a temporary file renamed over it)
  --render TEMPLATE:FILE
                 writes FILE from the text of TEMPLATE, each {{/json/pointer}} in it replaced
                 by that part of the value (a string as its text, the rest as JSON; {{}} is
                 the whole value); a pointer that names nothing leaves FILE as it was
  --exec CMD     runs `sh -c CMD` with the value on stdin and LIGHTHOUSE_SEQUENCE (the store's
                 sequence) and LIGHTHOUSE_PATH in its environment; with --render, after the write
  --raw          a string value as its text, without quotes
Changes that arrive while CMD runs are coalesced: one more run, with the newest value. CMD never
runs twice for one version, nor for a value equal to the one it last ran with.
"
        }
        "lock" => {
            "Usage: lighthouse lock NAME [--ttl SECONDS] -- CMD [ARGS...]

Takes the lock as NAME, runs CMD with LIGHTHOUSE_LOCK=NAME and LIGHTHOUSE_SERVER in its
environment (so `lighthouse put` and `lighthouse delete` in it stage under /update/NAME), renews
the lease while CMD runs, then commits when CMD exits 0 and aborts otherwise. Exits with CMD's
status, or 1 when the lock is refused or the commit is.
  --ttl SECONDS  the lease (default: the server's --lock-timeout)
"
        }
        "status" => {
            "Usage: lighthouse status [--json]

The cluster as the server sees it: each node's address, role, sequence, lag behind the newest
sequence, and whether it is reachable.
  --json  the same as JSON, for scripts
"
        }
        _ => "Usage: lighthouse get|put|patch|delete|edit|watch|lock|status ... (each takes --help)\n",
    };
    format!("{own}\n{COMMON}")
}
