//! HTTP/1.1 as the server speaks it: request heads parsed by httparse, bodies framed by
//! `Content-Length` or chunked encoding, and answers encoded with their status line and headers.
//! Nothing here touches a socket: the event loop feeds bytes in and takes bytes out.

mod client;
mod request;
mod response;

pub use client::{ResponseHead, parse_response_head};
pub use request::{ChunkedDecoder, Framing, Head, Headers, Method, parse_head};
pub use response::{Bytes, Response, encode_chunk, encode_head, encode_stream_head, reason};

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
        match self {
            HttpError::Malformed(why) => why,
            HttpError::HeadTooLarge => "request head too large (at most 16 KiB and 64 header lines)",
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
