//! Answers: a status, a block of preformatted header lines, a body, and whether the connection
//! closes after it. The hot path (a cached GET) builds a `Response` from two shared buffers and
//! allocates nothing.

use std::fmt::Write as _;
use std::sync::Arc;

/// Bytes that are static, owned, or shared with a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bytes {
    Static(&'static [u8]),
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Bytes {
    pub const EMPTY: Bytes = Bytes::Static(b"");

    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Static(s) => s,
            Bytes::Owned(v) => v,
            Bytes::Shared(a) => a,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header lines, each ending in CRLF, without the ones `encode_head` writes itself
    /// (`Server`, `Date`, `Content-Length`, `Connection`).
    pub headers: Bytes,
    pub body: Bytes,
    /// Close the connection once this answer is sent.
    pub close: bool,
}

const JSON: &[u8] = b"Content-Type: application/json\r\n";
const TEXT: &[u8] = b"Content-Type: text/plain; charset=utf-8\r\n";

impl Response {
    /// A JSON answer; `body` is already rendered and ends in a newline.
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response { status, headers: Bytes::Static(JSON), body: Bytes::Owned(body), close: false }
    }

    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: Bytes::Static(TEXT), body: Bytes::Owned(body.into()), close: false }
    }

    /// An answer without a body (`204`, a `201` with nothing to say).
    pub fn empty(status: u16) -> Response {
        Response { status, headers: Bytes::EMPTY, body: Bytes::EMPTY, close: false }
    }

    /// An error: one line of JSON, `{"error": "..."}`.
    pub fn error(status: u16, message: &str) -> Response {
        let mut body = b"{\"error\": ".to_vec();
        crate::core::value::write_str(&mut body, message.as_bytes()).expect("writing to a Vec cannot fail");
        body.extend_from_slice(b"}\n");
        Response::json(status, body)
    }

    /// Adds a header line.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        let mut headers = match self.headers {
            Bytes::Owned(v) => v,
            other => other.as_slice().to_vec(),
        };
        headers.extend_from_slice(name.as_bytes());
        headers.extend_from_slice(b": ");
        headers.extend_from_slice(value.as_bytes());
        headers.extend_from_slice(b"\r\n");
        self.headers = Bytes::Owned(headers);
        self
    }

    /// Marks the answer as the last on its connection.
    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// Statuses whose answers never carry a body (RFC 9110 6.4.1).
    pub fn has_no_body(&self) -> bool {
        matches!(self.status, 100..=199 | 204 | 304)
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// Writes the status line and headers of `response` into `out`.
/// `keep_alive` is whether the connection stays open after it; `http10_client` adds the explicit
/// `Connection: keep-alive` an HTTP/1.0 client needs to keep it. `date` is a cached IMF-fixdate.
pub fn encode_head(response: &Response, keep_alive: bool, http10_client: bool, date: &str, out: &mut Vec<u8>) {
    encode_status_line(response.status, date, out);
    if !response.has_no_body() {
        let mut length = itoa_buffer();
        let _ = write!(length, "{}", response.body.len());
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(length.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if http10_client {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(response.headers.as_slice());
    out.extend_from_slice(b"\r\n");
}

/// Writes the head of a streamed answer (server-sent events): no length, the body follows in
/// chunks for HTTP/1.1, or runs until the connection closes for HTTP/1.0.
pub fn encode_stream_head(response: &Response, http10_client: bool, date: &str, out: &mut Vec<u8>) {
    encode_status_line(response.status, date, out);
    out.extend_from_slice(if http10_client { b"Connection: close\r\n" } else { b"Transfer-Encoding: chunked\r\n" });
    out.extend_from_slice(response.headers.as_slice());
    out.extend_from_slice(b"\r\n");
}

/// The status line and the headers every answer has: `Server` and `Date`.
fn encode_status_line(status: u16, date: &str, out: &mut Vec<u8>) {
    let mut digits = itoa_buffer();
    let _ = write!(digits, "{status}");
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(digits.as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: lighthouse\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Frames a piece of a streamed answer: a chunk for HTTP/1.1, the bytes as they are for 1.0.
pub fn encode_chunk(bytes: &[u8], chunked: bool, out: &mut Vec<u8>) {
    if !chunked {
        out.extend_from_slice(bytes);
        return;
    }
    let mut size = itoa_buffer();
    let _ = write!(size, "{:x}", bytes.len());
    out.extend_from_slice(size.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// A small stack string for formatting numbers without allocating.
fn itoa_buffer() -> StackString {
    StackString { bytes: [0; 24], len: 0 }
}

struct StackString {
    bytes: [u8; 24],
    len: usize,
}

impl StackString {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Write for StackString {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            return Err(std::fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn head_of(response: &Response, keep_alive: bool, http10: bool) -> String {
        let mut out = Vec::new();
        encode_head(response, keep_alive, http10, DATE, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_answers_carry_length_and_type() {
        let head = head_of(&Response::json(200, b"1024\n".to_vec()), true, false);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nServer: lighthouse\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Length: 5\r\nContent-Type: application/json\r\n\r\n"
        );
    }

    #[test]
    fn connection_header_follows_keep_alive_and_version() {
        let response = Response::empty(204);
        assert!(head_of(&response, false, false).contains("Connection: close\r\n"));
        assert!(head_of(&response, true, true).contains("Connection: keep-alive\r\n"));
        assert!(!head_of(&response, true, false).contains("Connection"));
        assert!(!head_of(&response, true, false).contains("Content-Length"), "204 has no body");
    }

    #[test]
    fn streamed_answers_are_chunked_for_http_1_1_and_until_close_for_1_0() {
        let response = Response::text(200, "").with_header("Cache-Control", "no-cache");
        let mut out = Vec::new();
        encode_stream_head(&response, false, DATE, &mut out);
        let head = String::from_utf8(out).unwrap();
        assert!(head.contains("Transfer-Encoding: chunked\r\n") && !head.contains("Content-Length"));
        let mut out = Vec::new();
        encode_chunk(b"data: 1\n\n", true, &mut out);
        assert_eq!(out, b"9\r\ndata: 1\n\n\r\n");
        let mut out = Vec::new();
        encode_stream_head(&response, true, DATE, &mut out);
        assert!(String::from_utf8(out).unwrap().contains("Connection: close\r\n"));
    }

    #[test]
    fn errors_are_one_line_of_json() {
        let response = Response::error(404, "no such path: /a\"b");
        assert_eq!(response.body.as_slice(), b"{\"error\": \"no such path: /a\\\"b\"}\n");
        let parsed: serde_json::Value = serde_json::from_slice(response.body.as_slice()).unwrap();
        assert_eq!(parsed["error"], "no such path: /a\"b");
    }

    #[test]
    fn extra_headers_are_appended() {
        let response = Response::error(503, "inactive").with_header("Retry-After", "1");
        assert!(head_of(&response, true, false).ends_with("Content-Type: application/json\r\nRetry-After: 1\r\n\r\n"));
    }
}
