//! HTTP/1.1 as the server speaks it, in both directions: one push reader for requests from clients
//! and answers from peers (heads parsed by httparse, bodies framed by `Content-Length`, chunked
//! encoding or the close), and one writer for the heads of answers and of requests to peers.
//! Nothing here touches a socket: the shell feeds bytes in and takes bytes out.

mod answer;
mod chunked;
mod cors;
mod host;
mod reader;
mod request;
mod response;
mod writer;

pub use answer::{ResponseHead, parse_response_head, relayed_headers};
pub use chunked::ChunkedDecoder;
pub use cors::Cors;
pub use host::HostGuard;
pub use reader::{Reader, Side, Step};
pub use request::{Framing, Head, HeaderSet, Headers, Method, OwnedHeaders, parse_head};
pub use response::{Bytes, Response, reason};
pub use writer::{encode_chunk, encode_head, encode_request_head, encode_stream_head};

use crate::limits::{REQUEST_HEAD_BYTES_MAX, REQUEST_HEADERS_COUNT_MAX};

/// The 431's message; the assertion in `HttpError::message` keeps it true to the limits.
const HEAD_TOO_LARGE: &str = "request head too large (at most 16 KiB and 64 header lines)";

/// A request that cannot be served, with the status it answers. Each closes the connection,
/// because after it the position of the next request in the byte stream is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// 400: the bytes are not an HTTP/1.x request.
    Malformed(&'static str),
    /// 431: the head is longer than `REQUEST_HEAD_BYTES_MAX` or has too many header lines.
    HeadTooLarge,
    /// 413: the declared or received body is longer than `--max-body`.
    BodyTooLarge,
    /// 501: a transfer coding other than chunked.
    UnsupportedTransferCoding,
    /// 417: an `Expect` other than `100-continue`.
    UnsupportedExpectation,
    /// 408: the head or body did not arrive in time.
    Timeout,
    /// 503: too many bodies are being received at once (see `BODIES_BYTES_MAX`).
    Busy,
}

impl HttpError {
    pub fn status(self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::UnsupportedTransferCoding => 501,
            HttpError::UnsupportedExpectation => 417,
            HttpError::Timeout => 408,
            HttpError::Busy => 503,
        }
    }

    pub fn message(self) -> &'static str {
        const _: () =
            assert!(REQUEST_HEAD_BYTES_MAX == 16 * 1024 && REQUEST_HEADERS_COUNT_MAX == 64, "HEAD_TOO_LARGE says so");
        match self {
            HttpError::Malformed(why) => why,
            HttpError::HeadTooLarge => HEAD_TOO_LARGE,
            HttpError::BodyTooLarge => "request body too large (see --max-body)",
            HttpError::UnsupportedTransferCoding => "only the chunked transfer coding is supported",
            HttpError::UnsupportedExpectation => "only Expect: 100-continue is supported",
            HttpError::Timeout => "request not received in time",
            HttpError::Busy => "too many large request bodies are being received at once; retry",
        }
    }

    pub fn response(self) -> Response {
        Response::error(self.status(), self.message()).closing()
    }
}
