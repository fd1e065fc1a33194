//! Request heads (on httparse) and request bodies (`Content-Length` or chunked).

use super::HttpError;
use crate::limits::{REQUEST_HEAD_BYTES_MAX, REQUEST_HEADERS_COUNT_MAX};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Trace,
    Connect,
    /// A token that is no method this server knows: 501.
    Unknown,
}

impl Method {
    fn parse(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            _ => Method::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Unknown => "other",
        }
    }
}

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// An answer with neither: its body runs to the close of the connection.
    UntilClose,
}

/// The request headers the server acts on; the others are read past.
pub type Headers<'a> = HeaderSet<&'a str>;

/// The same headers owned, for a request parked past the buffer it was read from.
pub type OwnedHeaders = HeaderSet<String>;

/// The headers the server acts on, borrowed from the request's buffer (`Headers`) or owned.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSet<S> {
    pub if_none_match: Option<S>,
    pub if_match: Option<S>,
    pub content_type: Option<S>,
    /// The page's origin on a cross-origin request from a browser (CORS); browsers also send it
    /// on same-origin requests other than `GET` and `HEAD`. A peer never sends one.
    pub origin: Option<S>,
    /// The name the client used to reach this server (`Host`), checked by a loopback node
    /// against DNS rebinding (`http::host`).
    pub host: Option<S>,
    pub accept: Option<S>,
    pub authorization: Option<S>,
    pub last_event_id: Option<S>,
    /// `X-Lighthouse-Forwarded`: another node forwarded the request to this one (the coordinator);
    /// the value is the client's address.
    pub forwarded: Option<S>,
    /// `X-Lighthouse-Grant`: what the token of a forwarded request's client grants, as the
    /// forwarding node found it (`core::grant`); it can only narrow what the request's own
    /// credential grants.
    pub grant: Option<S>,
    /// `X-Lighthouse-Writes`, `X-Lighthouse-Cluster`, `X-Lighthouse-From`: a peer's request says
    /// its write mode, its cluster and its address (`core::peering`).
    pub peer_writes: Option<S>,
    pub peer_cluster: Option<S>,
    pub peer_from: Option<S>,
}

impl<S> HeaderSet<S> {
    /// Every header through `f`: the one place that lists them all.
    fn map<'s, T>(&'s self, f: impl Fn(&'s S) -> T) -> HeaderSet<T> {
        HeaderSet {
            if_none_match: self.if_none_match.as_ref().map(&f),
            if_match: self.if_match.as_ref().map(&f),
            content_type: self.content_type.as_ref().map(&f),
            origin: self.origin.as_ref().map(&f),
            host: self.host.as_ref().map(&f),
            accept: self.accept.as_ref().map(&f),
            authorization: self.authorization.as_ref().map(&f),
            last_event_id: self.last_event_id.as_ref().map(&f),
            forwarded: self.forwarded.as_ref().map(&f),
            grant: self.grant.as_ref().map(&f),
            peer_writes: self.peer_writes.as_ref().map(&f),
            peer_cluster: self.peer_cluster.as_ref().map(&f),
            peer_from: self.peer_from.as_ref().map(&f),
        }
    }
}

impl Headers<'_> {
    /// An owned copy, to keep past the request's buffer.
    pub fn to_owned(&self) -> OwnedHeaders {
        self.map(|value| value.to_string())
    }
}

impl OwnedHeaders {
    /// The headers borrowed, as a request carries them.
    pub fn borrowed(&self) -> Headers<'_> {
        self.map(String::as_str)
    }
}

/// Shows everything but the credentials.
impl<S: std::fmt::Debug> std::fmt::Debug for HeaderSet<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Headers")
            .field("if_none_match", &self.if_none_match)
            .field("if_match", &self.if_match)
            .field("content_type", &self.content_type)
            .field("origin", &self.origin)
            .field("host", &self.host)
            .field("accept", &self.accept)
            .field("authorization", &self.authorization.as_ref().map(|_| ".."))
            .field("last_event_id", &self.last_event_id)
            .field("forwarded", &self.forwarded)
            .field("grant", &self.grant)
            .field("peer_writes", &self.peer_writes)
            .field("peer_cluster", &self.peer_cluster)
            .field("peer_from", &self.peer_from)
            .finish()
    }
}

/// A parsed request head, borrowing from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'a> {
    pub method: Method,
    pub target: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub keep_alive: bool,
    pub framing: Framing,
    pub expect_continue: bool,
    pub headers: Headers<'a>,
    /// Bytes of the head, blank line included; the body starts here.
    pub len: usize,
}

/// Parses a request head from the start of `buf`. `Ok(None)` means the head is not complete yet.
pub fn parse_head(buf: &[u8], body_bytes_max: u64) -> Result<Option<Head<'_>>, HttpError> {
    let mut lines = [httparse::EMPTY_HEADER; REQUEST_HEADERS_COUNT_MAX];
    let mut request = httparse::Request::new(&mut lines);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > REQUEST_HEAD_BYTES_MAX => {
            return Err(HttpError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(httparse::Error::Version) => {
            return Err(HttpError::Malformed("unsupported HTTP version (1.0 and 1.1 are served)"));
        }
        Err(_) => return Err(HttpError::Malformed("malformed request head")),
    };
    if len > REQUEST_HEAD_BYTES_MAX {
        return Err(HttpError::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor_version)) = (request.method, request.path, request.version) else {
        unreachable!("a complete head has a method, a target and a version");
    };

    let mut head = Head {
        method: Method::parse(method),
        target: origin_form(target),
        minor_version,
        keep_alive: minor_version >= 1,
        framing: Framing::None,
        expect_continue: false,
        headers: Headers::default(),
        len,
    };
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    for line in request.headers.iter() {
        let name = line.name;
        let value = line.value;
        if name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(value, body_bytes_max)?;
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err(HttpError::Malformed("conflicting Content-Length headers"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = parse_transfer_encoding(value)?;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor_version == 0 {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                return Err(HttpError::UnsupportedExpectation);
            }
            head.expect_continue = minor_version >= 1;
        } else if name.eq_ignore_ascii_case("if-none-match") {
            head.headers.if_none_match = text(value);
        } else if name.eq_ignore_ascii_case("if-match") {
            head.headers.if_match = text(value);
        } else if name.eq_ignore_ascii_case("content-type") {
            head.headers.content_type = text(value);
        } else if name.eq_ignore_ascii_case("origin") {
            head.headers.origin = text(value);
        } else if name.eq_ignore_ascii_case("host") {
            // Two names for one request: which one a guard checks and which one a proxy routed by
            // would be anyone's guess (RFC 9112 3.2 says 400).
            if head.headers.host.is_some() {
                return Err(HttpError::Malformed("more than one Host header"));
            }
            head.headers.host = text(value);
        } else if name.eq_ignore_ascii_case("accept") {
            head.headers.accept = text(value);
        } else if name.eq_ignore_ascii_case("authorization") {
            head.headers.authorization = text(value);
        } else if name.eq_ignore_ascii_case("last-event-id") {
            head.headers.last_event_id = text(value);
        } else if name.eq_ignore_ascii_case("x-lighthouse-forwarded") {
            head.headers.forwarded = text(value);
        } else if name.eq_ignore_ascii_case("x-lighthouse-grant") {
            head.headers.grant = text(value);
        } else if name.eq_ignore_ascii_case("x-lighthouse-writes") {
            head.headers.peer_writes = text(value);
        } else if name.eq_ignore_ascii_case("x-lighthouse-cluster") {
            head.headers.peer_cluster = text(value);
        } else if name.eq_ignore_ascii_case("x-lighthouse-from") {
            head.headers.peer_from = text(value);
        }
    }
    head.framing = match (chunked, content_length) {
        // A message with both is a request-smuggling attempt or a broken proxy (RFC 9112 6.3).
        (true, Some(_)) => {
            return Err(HttpError::Malformed("both Transfer-Encoding and Content-Length"));
        }
        (true, None) => Framing::Chunked,
        (false, Some(0) | None) => Framing::None,
        (false, Some(length)) => Framing::Length(length),
    };
    Ok(Some(head))
}

/// The path and query of a target in absolute form (`http://host:8001/data?raw`, as some proxies
/// send it; RFC 9112 3.2.2 says a server must accept it); any other target as it is.
fn origin_form(target: &str) -> &str {
    let after_scheme = ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme).then(|| &target[scheme.len()..])
    });
    match after_scheme {
        None => target,
        Some(rest) => match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => &rest[i..],
            _ => "/",
        },
    }
}

fn text(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(value).ok().map(str::trim)
}

fn parse_content_length(value: &[u8], body_bytes_max: u64) -> Result<u64, HttpError> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::Malformed("Content-Length is not a decimal number"));
    }
    // Digits that overflow u64 are a length nobody can send: too large, not malformed.
    let length = digits
        .iter()
        .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or(HttpError::BodyTooLarge)?;
    if length > body_bytes_max {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(length)
}

/// True when the codings end in `chunked` and are nothing else.
fn parse_transfer_encoding(value: &[u8]) -> Result<bool, HttpError> {
    let mut codings = value.split(|b| *b == b',').map(<[u8]>::trim_ascii).filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (Some(only), None) if only.eq_ignore_ascii_case(b"chunked") => Ok(true),
        (None, _) => Err(HttpError::Malformed("empty Transfer-Encoding")),
        _ => Err(HttpError::UnsupportedTransferCoding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1 << 20;

    fn head(text: &str) -> Result<Option<Head<'_>>, HttpError> {
        parse_head(text.as_bytes(), MAX)
    }

    #[test]
    fn a_simple_get_keeps_alive() {
        let h = head("GET /data/x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.method, h.target, h.minor_version), (Method::Get, "/data/x", 1));
        assert!(h.keep_alive);
        assert_eq!(h.framing, Framing::None);
        assert_eq!(h.len, 33);
    }

    #[test]
    fn http_1_0_closes_unless_asked_to_keep_alive() {
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().unwrap().keep_alive);
    }

    #[test]
    fn partial_heads_wait_and_oversized_heads_are_refused() {
        assert_eq!(head("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(REQUEST_HEAD_BYTES_MAX));
        assert_eq!(head(&long), Err(HttpError::HeadTooLarge));
        let many: String = (0..=REQUEST_HEADERS_COUNT_MAX).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(head(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn body_framing() {
        let h = head("PUT /x HTTP/1.1\r\nContent-Length: 12\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::Length(12));
        let h = head("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = head("PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(h.unwrap().unwrap().expect_continue);
    }

    #[test]
    fn bad_framing_is_refused_with_the_right_status() {
        let cases = [
            ("Content-Length: 12a", 400),
            ("Content-Length: -1", 400),
            ("Content-Length: 99999999999999999999999999", 413),
            ("Content-Length: 2000000", 413),
            ("Content-Length: 1\r\nContent-Length: 2", 400),
            ("Transfer-Encoding: gzip, chunked", 501),
            ("Transfer-Encoding: chunked\r\nContent-Length: 5", 400),
            ("Expect: something-else", 417),
        ];
        for (line, status) in cases {
            let text = format!("PUT /x HTTP/1.1\r\n{line}\r\n\r\n");
            assert_eq!(head(&text).map(|_| ()).unwrap_err().status(), status, "{line}");
        }
    }

    #[test]
    fn garbage_and_unknown_versions_are_malformed() {
        for text in ["\x00\x01\x02\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET / FOO\r\n\r\n", "G E T\r\n\r\n"] {
            assert_eq!(head(text).map(|_| ()).unwrap_err().status(), 400, "{text:?}");
        }
    }

    #[test]
    fn a_target_in_absolute_form_is_served_by_its_path() {
        let target = |t: &str| head(&format!("GET {t} HTTP/1.1\r\n\r\n")).unwrap().unwrap().target.to_string();
        assert_eq!(target("http://node1:8001/data/x?raw"), "/data/x?raw");
        assert_eq!(target("HTTPS://node1/lock"), "/lock");
        assert_eq!(target("http://node1"), "/");
        assert_eq!(target("http://node1?raw"), "/");
        assert_eq!(target("/data/http://x"), "/data/http://x", "origin form stays as it is");
    }

    #[test]
    fn the_host_is_read_once() {
        assert_eq!(
            head("GET / HTTP/1.1\r\nHost: localhost:8001\r\n\r\n").unwrap().unwrap().headers.host,
            Some("localhost:8001")
        );
        assert_eq!(head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().headers.host, None);
        let twice = head("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n");
        assert_eq!(twice.map(|_| ()).unwrap_err().status(), 400);
    }

    #[test]
    fn unknown_methods_parse_as_unknown() {
        assert_eq!(head("BREW /pot HTTP/1.1\r\n\r\n").unwrap().unwrap().method, Method::Unknown);
    }
}
