//! Request heads, chunked request bodies and response heads on arbitrary bytes.
//!
//! Input: one control byte, then the bytes as they would arrive on a connection. The low two bits
//! of the control byte choose the body limit (`--max-body`), the other six how many bytes each
//! call of the chunked decoder gets (1 to 64), as reads of a socket would split them.
//!
//! Checked: nothing panics; a complete head is no longer than the input and than
//! `REQUEST_HEAD_BYTES_MAX`, and parses the same from exactly its own bytes; `Content-Length`
//! framing respects the body limit; a chunked body decodes to the same bytes, the same stopping
//! point and the same error however it is sliced, never holds more than the limit, and uses fewer
//! bytes than given only once complete; a decoded body framed again as one chunk decodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lighthouse::http::{ChunkedDecoder, Framing, HttpError, encode_chunk, parse_head, parse_response_head};
use lighthouse::limits::REQUEST_HEAD_BYTES_MAX;

const BODY_LIMITS: [u64; 4] = [0, 64, 1 << 20, u64::MAX];

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else { return };
    let body_max = BODY_LIMITS[usize::from(control & 3)];
    let step = usize::from(control >> 2) + 1;
    check_request(input, body_max, step);
    check_response(input, body_max, step);
    // The bytes as a chunked body on their own, so the decoder is fuzzed without a head first.
    check_chunked(input, body_max, step);
});

fn check_request(input: &[u8], body_max: u64, step: usize) {
    match parse_head(input, body_max) {
        Ok(Some(head)) => {
            assert!(head.len <= input.len(), "head longer than its input: {head:?}");
            assert!(head.len <= REQUEST_HEAD_BYTES_MAX, "head over the limit accepted: {head:?}");
            assert!(head.minor_version <= 1, "{head:?}");
            assert_eq!(parse_head(&input[..head.len], body_max), Ok(Some(head)), "the head from its own bytes");
            match head.framing {
                Framing::Length(n) => assert!(n > 0 && n <= body_max, "length {n} with limit {body_max}"),
                Framing::Chunked => check_chunked(&input[head.len..], body_max, step),
                Framing::None => {}
                Framing::UntilClose => panic!("a request is never framed by the close: {head:?}"),
            }
        }
        Ok(None) => assert!(input.len() <= REQUEST_HEAD_BYTES_MAX, "an oversized partial head waits"),
        Err(e) => check_error(e),
    }
}

fn check_response(input: &[u8], body_max: u64, step: usize) {
    match parse_response_head(input, body_max) {
        Ok(Some(head)) => {
            assert!(head.len <= input.len(), "head longer than its input: {head:?}");
            assert_eq!(parse_response_head(&input[..head.len], body_max), Ok(Some(head)));
            if head.framing == Framing::UntilClose {
                assert!(!head.keep_alive, "{head:?}");
            }
            match head.framing {
                Framing::Length(n) => assert!(n > 0 && n <= body_max, "length {n} with limit {body_max}"),
                Framing::Chunked => check_chunked(&input[head.len..], body_max, step),
                Framing::None | Framing::UntilClose => {}
            }
        }
        Ok(None) => assert!(input.len() <= REQUEST_HEAD_BYTES_MAX, "an oversized partial head waits"),
        Err(e) => check_error(e),
    }
}

fn check_error(e: HttpError) {
    let response = e.response();
    assert!(response.close && response.status >= 400, "{e:?}");
}

/// What decoding `input` as a chunked body gives: the result (bytes used, or the error), the
/// body, and whether the body is complete.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    result: Result<usize, HttpError>,
    body: Vec<u8>,
    done: bool,
}

fn decode(input: &[u8], body_max: u64, step: usize) -> Decoded {
    let mut decoder = ChunkedDecoder::default();
    let mut body = Vec::new();
    let mut used = 0;
    while used < input.len() && !decoder.is_done() {
        let end = (used + step).min(input.len());
        match decoder.decode(&input[used..end], &mut body, body_max) {
            Ok(n) => {
                assert!(n <= end - used, "used {n} of {} bytes", end - used);
                assert!(n == end - used || decoder.is_done(), "stopped early without finishing the body");
                used += n;
            }
            Err(e) => return Decoded { result: Err(e), body, done: false },
        }
        assert!(body.len() as u64 <= body_max, "body of {} bytes over the limit {body_max}", body.len());
    }
    Decoded { result: Ok(used), body, done: decoder.is_done() }
}

fn check_chunked(input: &[u8], body_max: u64, step: usize) {
    let whole = decode(input, body_max, input.len().max(1));
    let sliced = decode(input, body_max, step);
    assert_eq!(whole, sliced, "decoding depends on how the input is sliced (step {step})");
    if let Err(e) = whole.result {
        check_error(e);
    }
    if whole.done && !whole.body.is_empty() {
        let mut framed = Vec::new();
        encode_chunk(&whole.body, true, &mut framed);
        framed.extend_from_slice(b"0\r\n\r\n");
        let again = decode(&framed, body_max, step);
        assert_eq!(again, Decoded { result: Ok(framed.len()), body: whole.body, done: true }, "re-framed body");
    }
}
