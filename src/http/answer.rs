//! Answer heads, as peers send them (the reader frames their bodies).

use super::{Framing, HttpError};
use crate::limits::{REQUEST_HEAD_BYTES_MAX, REQUEST_HEADERS_COUNT_MAX};

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// How the body is delimited.
    pub framing: Framing,
    pub keep_alive: bool,
    pub len: usize,
}

/// Parses a response head from the start of `buf`; `Ok(None)` means it is not complete yet.
pub fn parse_response_head(buf: &[u8], body_bytes_max: u64) -> Result<Option<ResponseHead>, HttpError> {
    let mut lines = [httparse::EMPTY_HEADER; REQUEST_HEADERS_COUNT_MAX];
    let mut response = httparse::Response::new(&mut lines);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > REQUEST_HEAD_BYTES_MAX => return Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HttpError::Malformed("malformed response head")),
    };
    let status = response.code.expect("a complete head has a status");
    let mut head = ResponseHead { status, framing: Framing::None, keep_alive: response.version == Some(1), len };
    let mut length = None;
    let mut chunked = false;
    for line in response.headers.iter() {
        if line.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(line.value).map_err(|_| HttpError::Malformed("bad Content-Length"))?;
            let n: u64 = text.trim().parse().map_err(|_| HttpError::Malformed("bad Content-Length"))?;
            if n > body_bytes_max {
                return Err(HttpError::BodyTooLarge);
            }
            length = Some(n);
        } else if line.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = line.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            if !chunked {
                return Err(HttpError::UnsupportedTransferCoding);
            }
        } else if line.name.eq_ignore_ascii_case("connection") && line.value.trim_ascii().eq_ignore_ascii_case(b"close")
        {
            head.keep_alive = false;
        }
    }
    let bodiless = matches!(status, 100..=199 | 204 | 304);
    head.framing = match (bodiless, chunked, length) {
        (true, _, _) | (false, false, Some(0)) => Framing::None,
        (false, true, _) => Framing::Chunked,
        (false, false, Some(n)) => Framing::Length(n),
        (false, false, None) => {
            head.keep_alive = false;
            Framing::UntilClose
        }
    };
    Ok(Some(head))
}

/// The header lines of an answer worth passing on to a client when a node relays the coordinator's
/// answer (`Content-Type`, `Retry-After`, `Allow`, `WWW-Authenticate`, `ETag`,
/// `X-Lighthouse-Version`), and the ones a peer's answer says its cluster with (`core::peering`),
/// each ending in CRLF.
pub fn relayed_headers(head: &[u8]) -> Vec<u8> {
    const RELAYED: [&str; 8] = [
        "content-type",
        "retry-after",
        "allow",
        "www-authenticate",
        "etag",
        "x-lighthouse-version",
        "x-lighthouse-writes",
        "x-lighthouse-cluster",
    ];
    let mut lines = [httparse::EMPTY_HEADER; REQUEST_HEADERS_COUNT_MAX];
    let mut response = httparse::Response::new(&mut lines);
    let mut out = Vec::new();
    if response.parse(head).is_err() {
        return out;
    }
    for line in response.headers.iter().filter(|l| RELAYED.iter().any(|r| l.name.eq_ignore_ascii_case(r))) {
        out.extend_from_slice(line.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(line.value);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_give_status_and_framing() {
        let head = parse_response_head(b"HTTP/1.1 201 Created\r\nContent-Length: 12\r\n\r\n", 100).unwrap().unwrap();
        assert_eq!((head.status, head.framing, head.keep_alive), (201, Framing::Length(12), true));
        let head = parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 100).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        let head = parse_response_head(b"HTTP/1.0 200 OK\r\n\r\n", 100).unwrap().unwrap();
        assert!(head.framing == Framing::UntilClose && !head.keep_alive);
        let head = parse_response_head(b"HTTP/1.1 204 No Content\r\n\r\n", 100).unwrap().unwrap();
        assert_eq!(head.framing, Framing::None);
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", 100),
            Err(HttpError::BodyTooLarge)
        );
        assert_eq!(parse_response_head(b"HTTP/1.1 200 OK\r\n", 100), Ok(None));
        assert!(parse_response_head(b"NOPE\r\n\r\n", 100).is_err());
    }
}
