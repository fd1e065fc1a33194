//! Scoped tokens: what one token may do (its `Grant`), the lines of a token file that say so, and
//! the refusals (403) of a request or a change that leaves it.
//!
//! A token file holds one token a line: `TOKEN [label=NAME] [scope=read|write] [prefixes=/a,/b]`.
//! A bare token line grants what it always did (the whole store; writes in `--token-file`, reads in
//! `--read-token-file`). Prefixes are store paths (what follows `/data`), compared segment by
//! decoded segment, exactly as a request's path is resolved: `/services/web2` is not below
//! `/services/web`, `%77eb` is `web`, a trailing slash is ignored, and `..` is a key like any other
//! (the store never walks up). A token with prefixes may read and (with `scope=write`) change its
//! prefixes and everything below them, and nothing else: a read of a parent answers 403 rather
//! than a subtree filtered to what it may see, so that an answer never depends on who asks.
//!
//! Requests are judged by their path first (`refusal`); a change is judged again by what it
//! changes (`change_refusal`), which catches what a path cannot show: a transaction staged by
//! another client, or an array element deleted at a prefix, which shifts the elements after it.

use std::borrow::Cow;

use crate::core::path;
use crate::core::value::Value;
use crate::http::{Method, Response};
use crate::limits::{STORE_DEPTH_MAX, TOKEN_LABEL_BYTES_MAX, TOKEN_PREFIXES_MAX};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read (what its prefixes allow); change nothing.
    Read,
    /// Read and change (what its prefixes allow).
    Write,
}

/// What a request may do, from its token: the token's label (for the audit lines), its scope and
/// its prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Names the token in audit lines; never the token itself. `None`: no token was needed.
    pub label: Option<String>,
    pub scope: Scope,
    /// The decoded segments of each prefix; `None`: the whole store.
    pub prefixes: Option<Vec<Vec<String>>>,
}

/// One token of a token file: the secret and what it grants.
#[derive(Debug, Clone)]
pub struct TokenLine {
    pub token: String,
    pub grant: Grant,
}

impl Grant {
    /// Everything: a request that needed no token, or a peer with the cluster key.
    pub fn full() -> Grant {
        Grant { label: None, scope: Scope::Write, prefixes: None }
    }

    /// May change anything, and do what only such a token may (restore a copy, change the voters).
    pub fn is_unscoped_write(&self) -> bool {
        self.scope == Scope::Write && self.prefixes.is_none()
    }

    /// True when `path` is one of the prefixes or below one.
    fn covers<S: AsRef<str>>(&self, path: &[S]) -> bool {
        self.prefixes.as_ref().is_none_or(|prefixes| {
            prefixes.iter().any(|p| p.len() <= path.len() && p.iter().zip(path).all(|(a, b)| a == b.as_ref()))
        })
    }

    /// `this token (deploy-web)`.
    fn who(&self) -> String {
        match &self.label {
            Some(label) => format!("this token ({label})"),
            None => "this token".to_string(),
        }
    }

    /// The prefixes as a person reads them: `/services/web, /features`.
    fn shown(&self) -> String {
        let prefixes = self.prefixes.as_deref().unwrap_or_default();
        prefixes.iter().map(|p| shown_path(p)).collect::<Vec<_>>().join(", ")
    }

    /// The 403 for a request this grant does not allow, judged by its resource, method and path
    /// (the token's scope itself is checked before, with the token: `auth.rs`).
    pub fn refusal(&self, resource: &str, method: Method, below: &str) -> Option<Response> {
        self.prefixes.as_ref()?;
        let reads = matches!(method, Method::Get | Method::Head);
        // A path that names nothing is refused here as it would be later: never judged as allowed.
        let segments = || {
            path::segments(if below.is_empty() { "/" } else { below })
                .map_err(|e| Response::error(e.status(), e.message()))
        };
        let path: Vec<Cow<str>> = match resource {
            "data" => match segments() {
                Ok(path) => path,
                Err(refused) => return Some(refused),
            },
            // `/update/NAME/path`: the path below the lock's name.
            "update" => match segments() {
                Ok(path) => path.into_iter().skip(1).collect(),
                Err(refused) => return Some(refused),
            },
            "copy" => {
                let why = "/copy is the whole store: only a token without prefixes may read or restore it";
                return Some(Response::error(403, &format!("{} may not use it: {why}", self.who())));
            }
            // The peer endpoints of coordinated writes: `GET /cluster/accepted` is a whole store.
            "state" | "cluster" if !reads || resource == "cluster" => {
                let why = format!(
                    "{} may not use this endpoint of the cluster: only a token without prefixes may",
                    self.who()
                );
                return Some(Response::error(403, &why));
            }
            _ => return None,
        };
        if self.covers(&path) {
            return None;
        }
        let message = if reads {
            format!(
                "{} may read only {} and below; a parent of them answers 403, not a part of it",
                self.who(),
                self.shown()
            )
        } else {
            format!("{} may change only {} and below, not {}", self.who(), self.shown(), shown_path(&path))
        };
        Some(Response::error(403, &message))
    }

    /// The 403 for a change from `base` to `staged` that reaches outside this grant's prefixes:
    /// `staged` with every prefix's subtree put back as `base` has it must be `base`.
    pub fn change_refusal(&self, base: &Value, staged: &Value, after: &str) -> Option<Response> {
        let prefixes = self.prefixes.as_ref()?;
        let mut outside = staged.clone();
        for prefix in prefixes {
            // An edit that fails leaves a difference, which is refused below: the change removed
            // or replaced a parent of the prefix.
            let _ = match base.resolve(prefix) {
                Some(kept) => outside.put(prefix, kept.clone(), STORE_DEPTH_MAX),
                None => outside.delete(prefix),
            };
        }
        if outside.same_content(base) {
            return None;
        }
        let patch = base.diff(&outside);
        let first = serde_json::from_slice::<serde_json::Value>(&patch).ok();
        let first = first.as_ref().and_then(|p| p[0]["path"].as_str()).map(|p| if p.is_empty() { "/" } else { p });
        let message = format!(
            "this change reaches {} outside what {} may change ({}); nothing was changed{after}",
            first.unwrap_or("a path"),
            self.who(),
            self.shown()
        );
        Some(Response::error(403, &message))
    }

    /// The grant as one header line (`label=L scope=write prefixes=/a,/b`), which a node
    /// forwarding a request to the coordinator sends with it.
    pub fn to_header(&self) -> String {
        let mut fields = Vec::new();
        if let Some(label) = &self.label {
            fields.push(format!("label={label}"));
        }
        fields.push(format!("scope={}", if self.scope == Scope::Write { "write" } else { "read" }));
        if let Some(prefixes) = &self.prefixes {
            let encoded: Vec<String> = prefixes.iter().map(|p| encoded_path(p)).collect();
            fields.push(format!("prefixes={}", encoded.join(",")));
        }
        fields.join(" ")
    }

    /// A grant as `to_header` writes it.
    pub fn from_header(text: &str) -> Result<Grant, String> {
        attributes(text.split_whitespace(), Scope::Write, None, true)
    }
}

/// Reads a token file: blank lines and lines starting with `#` are skipped. A malformed line is
/// refused with its number and why, never with the token.
pub fn parse_token_file(text: &str, default: Scope, flag: &str) -> Result<Vec<TokenLine>, String> {
    let mut tokens: Vec<TokenLine> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: String| format!("{flag}: line {number}: {why}");
        let mut fields = line.split_whitespace();
        let token = fields.next().unwrap_or_default();
        if token.chars().any(char::is_control) {
            return Err(at("a token has no control characters".into()));
        }
        let default_label = format!("{}-line-{number}", flag.trim_start_matches('-'));
        let grant = attributes(fields, default, Some(default_label), false).map_err(at)?;
        if grant.scope == Scope::Write && default == Scope::Read {
            return Err(at("scope=write in a read token file: write tokens belong in --token-file".into()));
        }
        if let Some(same) = tokens.iter().find(|t| t.token == token) {
            let label = same.grant.label.as_deref().unwrap_or_default();
            return Err(at(format!("the same token as the one labelled {label}")));
        }
        if let Some(same) = tokens.iter().find(|t| t.grant.label == grant.label) {
            let label = same.grant.label.as_deref().unwrap_or_default();
            return Err(at(format!("label {label} is used twice")));
        }
        tokens.push(TokenLine { token: token.to_string(), grant });
    }
    if tokens.is_empty() {
        return Err(format!("{flag}: the file holds no token"));
    }
    Ok(tokens)
}

/// The `name=value` fields after a token (or in a forwarded grant).
fn attributes<'a>(
    fields: impl Iterator<Item = &'a str>,
    default: Scope,
    default_label: Option<String>,
    from_peer: bool,
) -> Result<Grant, String> {
    let (mut label, mut scope, mut prefixes) = (None, None, None);
    for field in fields {
        let Some((name, value)) = field.split_once('=') else {
            return Err(format!("{field:?} is not name=value (label=, scope=, prefixes=)"));
        };
        let seen = match name {
            "label" => label.replace(parse_label(value)?).is_some(),
            "scope" => scope.replace(parse_scope(value)?).is_some(),
            "prefixes" => prefixes.replace(parse_prefixes(value)?).is_some(),
            _ if from_peer => false,
            _ => return Err(format!("unknown attribute {name:?}: a token takes label=, scope=, prefixes=")),
        };
        if seen {
            return Err(format!("{name}= is given twice"));
        }
    }
    Ok(Grant { label: label.or(default_label), scope: scope.unwrap_or(default), prefixes: prefixes.flatten() })
}

fn parse_label(value: &str) -> Result<String, String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "._~-".contains(c);
    if value.is_empty() || value.len() > TOKEN_LABEL_BYTES_MAX || !value.chars().all(valid) {
        return Err(format!("a label is 1 to {TOKEN_LABEL_BYTES_MAX} characters of A-Z a-z 0-9 . _ ~ -"));
    }
    Ok(value.to_string())
}

fn parse_scope(value: &str) -> Result<Scope, String> {
    match value {
        "read" => Ok(Scope::Read),
        "write" => Ok(Scope::Write),
        _ => Err(format!("scope is read or write, not {value:?}")),
    }
}

/// Comma-separated store paths; `None` when one of them is `/` (the whole store).
fn parse_prefixes(value: &str) -> Result<Option<Vec<Vec<String>>>, String> {
    let mut prefixes = Vec::new();
    for prefix in value.split(',') {
        if prefix.starts_with("/data/") || prefix == "/data" {
            return Err(format!("prefix {prefix}: prefixes are store paths, without /data (/services/web)"));
        }
        let segments = path::segments(prefix).map_err(|e| format!("prefix {prefix:?}: {}", e.message()))?;
        if segments.is_empty() {
            return Ok(None);
        }
        prefixes.push(segments.into_iter().map(Cow::into_owned).collect());
    }
    if prefixes.len() > TOKEN_PREFIXES_MAX {
        return Err(format!("at most {TOKEN_PREFIXES_MAX} prefixes a token"));
    }
    Ok(Some(prefixes))
}

/// `/a/b` from decoded segments, for people.
fn shown_path<S: AsRef<str>>(segments: &[S]) -> String {
    if segments.is_empty() {
        return "/".into();
    }
    segments.iter().map(|s| format!("/{}", s.as_ref())).collect()
}

/// `/a/b` from decoded segments, percent-encoded so that `/` and `,` inside a key survive.
fn encoded_path(segments: &[String]) -> String {
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(line: &str) -> Grant {
        parse_token_file(line, Scope::Write, "--token-file").unwrap().remove(0).grant
    }

    #[test]
    fn a_bare_token_grants_what_it_always_did() {
        let tokens = parse_token_file("s3cret\n", Scope::Write, "--token-file").unwrap();
        assert_eq!(tokens[0].token, "s3cret");
        assert!(tokens[0].grant.is_unscoped_write());
        assert_eq!(tokens[0].grant.label.as_deref(), Some("token-file-line-1"));
        let reads = parse_token_file("# reads\n\nr\n", Scope::Read, "--read-token-file").unwrap();
        assert_eq!(reads[0].grant.scope, Scope::Read);
    }

    #[test]
    fn a_malformed_line_is_refused_with_its_number_and_never_the_token() {
        let refused = |text: &str| parse_token_file(text, Scope::Write, "--token-file").unwrap_err();
        for (text, why) in [
            ("a\nSECRETX scope=admin\n", "line 2: scope is read or write"),
            ("SECRETX label=a b\n", "line 1: \"b\" is not name=value"),
            ("SECRETX prefixes=services\n", "line 1: prefix \"services\""),
            ("SECRETX colour=red\n", "unknown attribute"),
            ("SECRETX label=x label=y\n", "label= is given twice"),
            ("SECRETX prefixes=/data/x\n", "without /data"),
            ("SECRETX label=a\nSECRETY label=a\n", "line 2: label a is used twice"),
            ("SECRETX\nSECRETX label=b\n", "line 2: the same token"),
            ("\n# nothing\n", "holds no token"),
        ] {
            let message = refused(text);
            assert!(message.contains(why), "{message}");
            assert!(!message.contains("SECRET"), "the token is never shown: {message}");
        }
        let write_in_reads = parse_token_file("r scope=write", Scope::Read, "--read-token-file").unwrap_err();
        assert!(write_in_reads.contains("belong in --token-file"), "{write_in_reads}");
    }

    #[test]
    fn prefixes_compare_decoded_segments() {
        let g = grant("t label=web scope=write prefixes=/services/web,/features");
        let allowed = |method: Method, below: &str| g.refusal("data", method, below).is_none();
        assert!(allowed(Method::Put, "/services/web"));
        assert!(allowed(Method::Put, "/services/web/"));
        assert!(allowed(Method::Put, "/services/%77eb/port"));
        assert!(allowed(Method::Get, "/features/x"));
        assert!(allowed(Method::Put, "/services/web/../x"), "`..` is a key below the prefix: the store never walks up");
        assert!(!allowed(Method::Put, "/services/web2"));
        assert!(!allowed(Method::Put, "/services%2Fweb"), "one key with a slash in it, not two segments");
        assert!(!allowed(Method::Get, "/services"), "a parent answers 403");
        assert!(!allowed(Method::Get, ""));
        assert!(g.refusal("update", Method::Put, "/tx/services/web/a").is_none());
        assert!(g.refusal("update", Method::Put, "/tx/other").is_some());
        assert!(g.refusal("update", Method::Put, "/tx").is_some(), "the staged root is outside");
        assert!(g.refusal("copy", Method::Get, "").is_some());
        assert!(g.refusal("state", Method::Delete, "/a:1").is_some());
        assert!(g.refusal("cluster", Method::Get, "/accepted").is_some(), "a peer endpoint that shows a whole store");
        assert!(g.refusal("state", Method::Get, "").is_none());
        assert!(g.refusal("lock", Method::Put, "/tx").is_none(), "a commit is judged by its change");
        assert!(g.refusal("metrics", Method::Get, "").is_none());
        let bad = g.refusal("data", Method::Put, "/services/web//x").map(|r| r.status);
        assert_eq!(bad, Some(404), "a path that names nothing is never judged allowed");
        let message =
            String::from_utf8_lossy(g.refusal("data", Method::Put, "/other").unwrap().body.as_slice()).into_owned();
        assert!(message.contains("(web) may change only /services/web, /features and below"), "{message}");
    }

    #[test]
    fn a_change_is_judged_by_what_it_changes() {
        let g = grant("t scope=write prefixes=/a/b,/list/1");
        let base = Value::parse(br#"{"a": {"b": 1, "c": 2}, "list": [0, 1, 2]}"#).unwrap();
        let judged = |after: &str| g.change_refusal(&base, &Value::parse(after.as_bytes()).unwrap(), "").is_none();
        assert!(judged(r#"{"a": {"b": {"x": 1}, "c": 2}, "list": [0, 1, 2]}"#));
        assert!(judged(r#"{"a": {"c": 2}, "list": [0, 9, 2]}"#), "the prefix removed");
        assert!(!judged(r#"{"a": {"b": 1, "c": 3}, "list": [0, 1, 2]}"#));
        assert!(!judged(r#"{"a": 5, "list": [0, 1, 2]}"#), "a parent replaced");
        assert!(!judged(r#"{"a": {"b": 1, "c": 2}, "list": [0, 2]}"#), "a deletion at the prefix shifts the rest");
        let refused = g.change_refusal(&base, &Value::parse(br#"{"a": {"b": 1}, "list": [0, 1, 2]}"#).unwrap(), "");
        let message = String::from_utf8_lossy(refused.unwrap().body.as_slice()).into_owned();
        assert!(message.contains("reaches /a/c outside"), "{message}");
    }

    #[test]
    fn a_grant_survives_its_header() {
        let g = grant("t label=deploy-web scope=write prefixes=/services/web,/a%2Cb/c%20d");
        assert_eq!(Grant::from_header(&g.to_header()), Ok(g));
        let reads = grant("t scope=read");
        assert_eq!(Grant::from_header(&reads.to_header()), Ok(reads));
        assert_eq!(grant("t prefixes=/x,/").prefixes, None, "/ is the whole store");
    }
}
