//! The push reader (`http::Reader`) on arbitrary bytes, for requests and for answers.
//!
//! Input: one control byte, then the bytes as they would arrive on a connection. The low two bits
//! choose the body limit, the next bit the side (requests or answers), the other five how many
//! bytes arrive at a time (1 to 32).
//!
//! Checked: nothing panics; the messages read (heads and bodies), where reading stops and the
//! error it stops with are the same however the bytes are sliced; no body is over the limit; the
//! reader never asks to drop more bytes than it holds, nor loops without progress; every error
//! answers 4xx or 5xx and closes the connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lighthouse::http::{HttpError, Reader, Side, Step};

const BODY_LIMITS: [u64; 4] = [0, 64, 1 << 20, u64::MAX];

/// What reading a stream gives: each message (its first line and body), then how it ended.
#[derive(Debug, PartialEq, Eq)]
struct Read {
    messages: Vec<(String, Vec<u8>)>,
    /// The bytes left unread when the input ran out (a partial message), or the error.
    end: Result<usize, HttpError>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else { return };
    let body_max = BODY_LIMITS[usize::from(control & 3)];
    let side = if control & 4 == 0 { Side::Requests } else { Side::Answers };
    let piece = usize::from(control >> 3) + 1;
    let whole = read(side, input, input.len().max(1), body_max);
    let sliced = read(side, input, piece, body_max);
    assert_eq!(whole, sliced, "reading depends on how the bytes are sliced (pieces of {piece})");
    for (_, body) in &whole.messages {
        assert!(body.len() as u64 <= body_max, "a body of {} bytes with the limit {body_max}", body.len());
    }
    if let Err(e) = whole.end {
        let response = e.response();
        assert!(response.close && response.status >= 400, "{e:?}");
    }
});

/// Feeds `input` to a reader `piece` bytes at a time, as a socket would, and the close at the end.
fn read(side: Side, input: &[u8], piece: usize, body_max: u64) -> Read {
    let mut reader = Reader::new(side, body_max);
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut messages = Vec::new();
    // Bounded: each step either takes bytes, feeds bytes, or finishes a message.
    for _ in 0..4 * input.len() + 16 {
        let closed = fed == input.len();
        let step = match reader.step(&buf, closed) {
            Ok(step) => step,
            Err(e) => return Read { messages, end: Err(e) },
        };
        match step {
            Step::More | Step::Body { consume: 0, .. } if closed => return Read { messages, end: Ok(buf.len()) },
            Step::More | Step::Body { consume: 0, .. } => {
                let end = (fed + piece).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
            Step::Consume(n) | Step::Body { consume: n, .. } => {
                assert!(n > 0 && n <= buf.len(), "asked to drop {n} of {} bytes", buf.len());
                buf.drain(..n);
            }
            Step::Ready => {
                let message = match side {
                    Side::Requests => {
                        let (head, body) = reader.request(&buf);
                        (format!("{} {} {}", head.method.as_str(), head.target, head.keep_alive), body.to_vec())
                    }
                    Side::Answers => {
                        let (head, _, body) = reader.answer(&buf);
                        (format!("{} {}", head.status, head.keep_alive), body.to_vec())
                    }
                };
                messages.push(message);
                let used = reader.finish();
                assert!(used <= buf.len(), "a message of {used} bytes in {}", buf.len());
                buf.drain(..used);
            }
        }
    }
    panic!("the reader made no progress");
}
