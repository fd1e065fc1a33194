//! Answers: a status, a block of preformatted header lines, a body, and whether the connection
//! closes after it. The hot path (a cached GET) builds a `Response` from two shared buffers and
//! allocates nothing.

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

    /// 504 `{"error": "...", "outcome": "unknown"}`: a commit that may land or not.
    pub fn outcome_unknown(message: &str) -> Response {
        let mut body = b"{\"error\": ".to_vec();
        crate::core::value::write_str(&mut body, message.as_bytes()).expect("writing to a Vec cannot fail");
        body.extend_from_slice(b", \"outcome\": \"unknown\"}\n");
        Response::json(504, body)
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

    /// Adds header lines, each ending in CRLF.
    pub fn with_extra_lines(mut self, lines: &str) -> Response {
        let mut headers = match self.headers {
            Bytes::Owned(v) => v,
            other => other.as_slice().to_vec(),
        };
        headers.extend_from_slice(lines.as_bytes());
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
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        412 => "Precondition Failed",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_of_json() {
        let response = Response::error(404, "no such path: /a\"b");
        assert_eq!(response.body.as_slice(), b"{\"error\": \"no such path: /a\\\"b\"}\n");
        let parsed: serde_json::Value = serde_json::from_slice(response.body.as_slice()).unwrap();
        assert_eq!(parsed["error"], "no such path: /a\"b");
    }

    #[test]
    fn an_unknown_outcome_is_a_504_in_the_same_style() {
        let response = Response::outcome_unknown("it \"may\" land");
        assert_eq!(response.status, 504);
        assert_eq!(reason(504), "Gateway Timeout");
        assert_eq!(response.body.as_slice(), b"{\"error\": \"it \\\"may\\\" land\", \"outcome\": \"unknown\"}\n");
    }
}
