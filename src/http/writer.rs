//! Heads out, in both directions: the status line and headers of an answer (and of a streamed
//! one), the request line and headers of a request to a peer, and the framing of a stream's pieces.
//! Numbers are formatted on the stack: the hot path (a cached GET) allocates nothing here.

use std::fmt::Write as _;

use super::{Method, Response, reason};

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

/// Writes the request line and headers of a request to a peer: `path` on `host`, a JSON body of
/// `body_len` bytes, and `extra` header lines (each ending in CRLF: the cluster key, say).
pub fn encode_request_head(method: Method, path: &str, host: &str, body_len: usize, extra: &str, out: &mut Vec<u8>) {
    let mut length = itoa_buffer();
    let _ = write!(length, "{body_len}");
    for part in [method.as_str(), " ", path, " HTTP/1.1\r\nHost: ", host, "\r\nContent-Type: application/json\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(length.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(b"\r\n");
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
    fn extra_headers_are_appended() {
        let response = Response::error(503, "inactive").with_header("Retry-After", "1");
        assert!(head_of(&response, true, false).ends_with("Content-Type: application/json\r\nRetry-After: 1\r\n\r\n"));
    }
    #[test]
    fn request_heads_parse_back_as_requests() {
        let mut out = Vec::new();
        encode_request_head(Method::Put, "/copy", "node2:8001", 12, "Authorization: Bearer k\r\n", &mut out);
        let head = crate::http::parse_head(&out, 100).unwrap().unwrap();
        assert_eq!((head.method, head.target, head.framing), (Method::Put, "/copy", crate::http::Framing::Length(12)));
        assert_eq!(head.headers.authorization, Some("Bearer k"));
        assert_eq!(head.len, out.len());
        // What the peer endpoints require of a peer (`core::guard`): JSON, and no browser's Origin.
        assert_eq!((head.headers.content_type, head.headers.origin), (Some("application/json"), None));
    }
}
