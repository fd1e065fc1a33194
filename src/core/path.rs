//! Request targets: the path split into percent-decoded segments, and the query's parameters.
//!
//! `/data/a%2Fb/0/` is the segments `data`, `a/b`, `0`: each segment is decoded on its own, so an
//! encoded slash stays inside its key, and one empty segment from a trailing slash is dropped.
//! An empty segment anywhere else (`/data//x`, `//`) names nothing and answers 404, as in the
//! original.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The target is not an origin-form path (it does not start with `/`).
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8, so they cannot name a JSON key.
    NotUtf8,
    /// An empty segment other than one trailing slash: `//` names nothing.
    EmptySegment,
}

impl PathError {
    pub fn message(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "the request target must be a path starting with /",
            PathError::BadEscape => "bad percent-escape in the path: % must be followed by two hex digits",
            PathError::NotUtf8 => "the decoded path is not UTF-8",
            PathError::EmptySegment => "no such path: an empty segment (//) names nothing",
        }
    }

    /// The status a request with this path answers.
    pub fn status(self) -> u16 {
        match self {
            PathError::EmptySegment => 404,
            _ => 400,
        }
    }
}

/// Splits a request target into its path and its query (without the `?`).
pub fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    }
}

/// The raw (still encoded) segments of a path, with one trailing empty segment dropped.
pub fn raw_segments(path: &str) -> Result<impl Iterator<Item = &str>, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    // "/" has no segments.
    let empty = rest.is_empty();
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    Ok(rest.split('/').filter(move |_| !empty))
}

/// The decoded segments of a path.
pub fn segments(path: &str) -> Result<Vec<Cow<'_, str>>, PathError> {
    raw_segments(path)?.map(|s| if s.is_empty() { Err(PathError::EmptySegment) } else { decode(s) }).collect()
}

/// Percent-decodes one segment; borrows when there is nothing to decode.
pub fn decode(segment: &str) -> Result<Cow<'_, str>, PathError> {
    if !segment.contains('%') {
        return Ok(Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = bytes.get(i + 1).and_then(|b| char::from(*b).to_digit(16));
            let low = bytes.get(i + 2).and_then(|b| char::from(*b).to_digit(16));
            let (Some(high), Some(low)) = (high, low) else {
                return Err(PathError::BadEscape);
            };
            decoded.push(u8::try_from(high * 16 + low).expect("two hex digits fit a byte"));
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).map(Cow::Owned).map_err(|_| PathError::NotUtf8)
}

/// The query parameters each resource takes; `routing.rs` answers 400 to any other name, so a
/// typo (`?wiat=30`) is not a read that answers at once. A name starting with `_` is a cache
/// buster (`?_=1733400000`) and passes everywhere. `access_token` (the read token in a URL) is
/// taken by every resource. A resource not listed answers 404 before its query matters.
pub const PARAMETERS: [(&str, &[&str]); 12] = [
    ("data", &["raw", "keys", "shallow", "wait", "min-version", "changes", "access_token"]),
    ("update", &["raw", "keys", "shallow", "access_token"]),
    ("lock", &["ttl", "access_token"]),
    ("", &["access_token"]),
    ("ui", &["access_token"]),
    ("version", &["access_token"]),
    ("health", &["access_token"]),
    ("ready", &["access_token"]),
    ("metrics", &["access_token"]),
    ("copy", &["access_token"]),
    ("state", &["access_token"]),
    ("cluster", &["access_token"]),
];

/// The refusal of a query with a parameter `resource` does not take, naming the parameter.
pub fn unknown_parameter(resource: &str, query: &str) -> Option<String> {
    let (_, taken) = PARAMETERS.iter().find(|(name, _)| *name == resource)?;
    let unknown = query
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .find(|name| !name.is_empty() && !name.starts_with('_') && !taken.contains(name))?;
    Some(format!(
        "unknown query parameter '{unknown}': /{resource} takes {} (a name starting with _ is ignored)",
        taken.join(", ")
    ))
}

/// The parameters of a query string: `raw`, `keys` (or `shallow`), `wait=S`, `ttl=S`, ...
/// Which resource takes which is `PARAMETERS`, checked before this.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    pub raw: bool,
    pub keys: bool,
    pub wait: Option<&'a str>,
    pub ttl: Option<&'a str>,
    /// `?min-version=N`: answer once the node holds at least sequence N.
    pub min_version: Option<&'a str>,
    /// `?access_token=T`: the read token in the URL, for clients that cannot send a header (a
    /// browser's `EventSource`; RFC 6750, section 2.3).
    pub access_token: Option<&'a str>,
    /// `?changes`: an event stream of JSON Patches instead of whole subtrees.
    pub changes: bool,
}

impl<'a> Query<'a> {
    pub fn parse(query: &'a str) -> Query<'a> {
        let mut parsed = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "raw" => parsed.raw = true,
                "keys" | "shallow" => parsed.keys = true,
                "wait" => parsed.wait = Some(value),
                "ttl" => parsed.ttl = Some(value),
                "min-version" => parsed.min_version = Some(value),
                "access_token" => parsed.access_token = Some(value),
                "changes" => parsed.changes = true,
                _ => {}
            }
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(path: &str) -> Vec<String> {
        segments(path).unwrap().into_iter().map(Cow::into_owned).collect()
    }

    #[test]
    fn segments_are_decoded_one_by_one() {
        assert_eq!(decoded("/data/providers/beta/0"), ["data", "providers", "beta", "0"]);
        assert_eq!(decoded("/data/a%2Fb"), ["data", "a/b"]);
        assert_eq!(decoded("/data/sn%C3%B8w%20man"), ["data", "snøw man"]);
        assert_eq!(decoded("/data/a+b"), ["data", "a+b"], "plus is not a space in a path");
    }

    #[test]
    fn one_trailing_slash_is_ignored_and_other_empty_segments_name_nothing() {
        assert_eq!(decoded("/data/x/"), ["data", "x"]);
        assert_eq!(decoded("/lock/"), ["lock"]);
        assert_eq!(decoded("/"), Vec::<String>::new());
        for path in ["/data//x", "/data//", "//", "/data/x//"] {
            assert_eq!(segments(path).unwrap_err(), PathError::EmptySegment, "{path}");
            assert_eq!(PathError::EmptySegment.status(), 404);
        }
    }

    #[test]
    fn bad_escapes_and_non_utf8_are_errors() {
        assert_eq!(segments("/data/%G1").unwrap_err(), PathError::BadEscape);
        assert_eq!(segments("/data/%2").unwrap_err(), PathError::BadEscape);
        assert_eq!(segments("/data/%").unwrap_err(), PathError::BadEscape);
        assert_eq!(segments("/data/%FF").unwrap_err(), PathError::NotUtf8);
        assert_eq!(segments("data").unwrap_err(), PathError::NotAbsolute);
        assert_eq!(segments("*").unwrap_err(), PathError::NotAbsolute);
    }

    #[test]
    fn query_parameters() {
        assert_eq!(split_target("/data/x?raw"), ("/data/x", "raw"));
        assert_eq!(split_target("/data/x"), ("/data/x", ""));
        let q = Query::parse("wait=30&keys&_=1&ttl=5");
        assert_eq!(q, Query { raw: false, keys: true, wait: Some("30"), ttl: Some("5"), ..Query::default() });
        assert_eq!(Query::parse("access_token=abc").access_token, Some("abc"));
        assert_eq!(Query::parse("min-version=7").min_version, Some("7"));
        assert!(Query::parse("shallow").keys);
        assert!(Query::parse("raw=1").raw);
    }

    #[test]
    fn a_parameter_a_resource_does_not_take_is_named_and_cache_busters_pass() {
        assert_eq!(unknown_parameter("data", "wait=30&raw&min-version=2&access_token=t"), None);
        let refused = unknown_parameter("data", "raw&wiat=30").unwrap();
        assert!(refused.starts_with("unknown query parameter 'wiat': /data takes raw, keys"), "{refused}");
        assert!(unknown_parameter("lock", "wait=3").unwrap().contains("'wait'"));
        assert_eq!(unknown_parameter("lock", "ttl=5&_=123&_cache"), None);
        assert_eq!(unknown_parameter("data", "&&"), None);
        assert_eq!(unknown_parameter("no-such-resource", "x=1"), None, "its 404 says more");
        for (resource, _) in PARAMETERS {
            assert_eq!(unknown_parameter(resource, "access_token=t"), None, "/{resource}");
        }
    }
}
