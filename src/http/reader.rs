//! One push reader for HTTP/1.x messages: requests on client connections and answers on peer
//! links. Like httparse itself it never blocks and never touches a socket: the caller feeds it
//! the bytes received so far and it says what to do next (wait for more, drop bytes it has taken,
//! make room for a body, or handle a whole message), or why the bytes are not HTTP.
//!
//! A body framed by `Content-Length` stays where it arrived, so the common request is handled
//! without a copy. A chunked body is decoded into the reader as it arrives (its head copied out
//! first), so the raw chunks can be dropped at once; an answer without a length runs to the close
//! of the connection.

use super::chunked::ChunkedDecoder;
use super::{Framing, Head, HttpError, ResponseHead, parse_head, parse_response_head};
use crate::limits::{BUFFER_BYTES, REQUEST_HEAD_BYTES_MAX};

/// Which messages a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Requests, on a connection from a client.
    Requests,
    /// Answers, on a link to a peer.
    Answers,
}

/// What the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Wait for more bytes.
    More,
    /// Drop this many bytes from the front of the buffer (the reader has taken them), then step
    /// again.
    Consume(usize),
    /// A request head announced a body that has not all arrived: drop the first `consume` bytes
    /// (the head of a chunked body, which the reader copied), make room for `length` bytes
    /// (`None`: chunked, its size unknown until it ends), answer `100 Continue` first when
    /// `expect_continue`, then step again as bytes arrive.
    Body { length: Option<usize>, expect_continue: bool, consume: usize },
    /// A whole message is ready: `request` or `answer` gives it, then `finish` says how many bytes
    /// to drop.
    Ready,
}

#[derive(Debug)]
enum State {
    /// Reading a head.
    Head,
    /// The head is `head_len` bytes; the body is the `length` bytes after it, in the buffer.
    Length { head_len: usize, length: usize },
    /// A chunked body, decoded into `body`; the head was copied out of the buffer.
    Chunked { head: Vec<u8>, decoder: ChunkedDecoder, body: Vec<u8> },
    /// An answer without a length: the body runs until the connection closes.
    UntilClose { head: Vec<u8>, body: Vec<u8> },
    /// A whole message; `used` bytes of the buffer are its own.
    Ready { used: usize, copied: Option<(Vec<u8>, Vec<u8>)> },
}

/// Reads one message after another from one connection.
#[derive(Debug)]
pub struct Reader {
    side: Side,
    max_body: u64,
    state: State,
}

impl Reader {
    pub fn new(side: Side, max_body: u64) -> Reader {
        Reader { side, max_body, state: State::Head }
    }

    /// True while no byte of a body has been asked for: between messages, or inside a head.
    pub fn in_head(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// Bytes of a chunked or until-close body decoded so far (they count against the caller's
    /// memory budget; a body framed by length is counted by `Step::Body`).
    pub fn decoded_len(&self) -> usize {
        match &self.state {
            State::Chunked { body, .. } | State::UntilClose { body, .. } => body.len(),
            _ => 0,
        }
    }

    /// The most bytes the caller should hold unparsed now: a head and a little more, or a head and
    /// its body. Past it, the caller stops reading until it has stepped.
    pub fn receive_limit(&self) -> usize {
        match self.state {
            State::Head | State::Ready { .. } => REQUEST_HEAD_BYTES_MAX + BUFFER_BYTES,
            State::Length { head_len, length } => head_len + length + BUFFER_BYTES,
            State::Chunked { .. } | State::UntilClose { .. } => BUFFER_BYTES,
        }
    }

    /// Advances over `buf`, the bytes received and not yet dropped; `closed` says no more will
    /// come (the other side closed), which ends an answer that runs to the close.
    pub fn step(&mut self, buf: &[u8], closed: bool) -> Result<Step, HttpError> {
        match &mut self.state {
            State::Head => self.head(buf, closed),
            State::Length { head_len, length } => {
                let used = *head_len + *length;
                if buf.len() < used {
                    return Ok(Step::More);
                }
                self.state = State::Ready { used, copied: None };
                Ok(Step::Ready)
            }
            State::Chunked { decoder, body, .. } => {
                let used = decoder.decode(buf, body, self.max_body)?;
                if !decoder.is_done() {
                    return Ok(if used > 0 { Step::Consume(used) } else { Step::More });
                }
                let State::Chunked { head, body, .. } = std::mem::replace(&mut self.state, State::Head) else {
                    unreachable!("chunked above")
                };
                self.state = State::Ready { used, copied: Some((head, body)) };
                Ok(Step::Ready)
            }
            State::UntilClose { body, .. } => {
                body.extend_from_slice(buf);
                if body.len() as u64 > self.max_body {
                    return Err(HttpError::BodyTooLarge);
                }
                if !closed {
                    return Ok(if buf.is_empty() { Step::More } else { Step::Consume(buf.len()) });
                }
                let State::UntilClose { head, body } = std::mem::replace(&mut self.state, State::Head) else {
                    unreachable!("until close above")
                };
                self.state = State::Ready { used: buf.len(), copied: Some((head, body)) };
                Ok(Step::Ready)
            }
            State::Ready { .. } => Ok(Step::Ready),
        }
    }

    /// Parses a head, and decides how its body is read.
    fn head(&mut self, buf: &[u8], closed: bool) -> Result<Step, HttpError> {
        if buf.is_empty() {
            return Ok(Step::More);
        }
        let parsed = match self.side {
            Side::Requests => parse_head(buf, self.max_body)?.map(|h| (h.len, h.framing, h.expect_continue)),
            Side::Answers => match parse_response_head(buf, self.max_body)? {
                // Interim answers (100 Continue) come before the real one: skip them.
                Some(h) if (100..200).contains(&h.status) => return Ok(Step::Consume(h.len)),
                Some(h) => Some((h.len, h.framing, false)),
                None => None,
            },
        };
        let Some((head_len, framing, expect_continue)) = parsed else {
            // A client that closes in the middle of a request is simply gone; a peer that does
            // so in the middle of an answer failed it.
            if closed && self.side == Side::Answers {
                return Err(HttpError::Malformed("the connection closed in the middle of a head"));
            }
            return Ok(Step::More);
        };
        match framing {
            Framing::None => {
                self.state = State::Ready { used: head_len, copied: None };
                Ok(Step::Ready)
            }
            Framing::Length(length) => {
                let length = usize::try_from(length).map_err(|_| HttpError::BodyTooLarge)?;
                self.state = State::Length { head_len, length };
                if buf.len() >= head_len + length {
                    return self.step(buf, closed);
                }
                Ok(Step::Body { length: Some(length), expect_continue, consume: 0 })
            }
            Framing::Chunked => {
                // The head is copied, so the caller can drop the raw chunks as they are decoded.
                let head = buf[..head_len].to_vec();
                self.state = State::Chunked { head, decoder: ChunkedDecoder::default(), body: Vec::new() };
                Ok(Step::Body { length: None, expect_continue, consume: head_len })
            }
            Framing::UntilClose => {
                self.state = State::UntilClose { head: buf[..head_len].to_vec(), body: Vec::new() };
                Ok(Step::Consume(head_len))
            }
        }
    }

    /// The whole request that is ready: its head and body, borrowed from `buf` or the reader.
    pub fn request<'a>(&'a self, buf: &'a [u8]) -> (Head<'a>, &'a [u8]) {
        let (head_bytes, body) = self.parts(buf);
        match parse_head(head_bytes, u64::MAX) {
            Ok(Some(head)) => (head, body),
            other => unreachable!("a head that parsed once parses again: {other:?}"),
        }
    }

    /// The whole answer that is ready: its head, the bytes of its head, and its body.
    pub fn answer<'a>(&'a self, buf: &'a [u8]) -> (ResponseHead, &'a [u8], &'a [u8]) {
        let (head_bytes, body) = self.parts(buf);
        match parse_response_head(head_bytes, u64::MAX) {
            Ok(Some(head)) => (head, head_bytes, body),
            other => unreachable!("a head that parsed once parses again: {other:?}"),
        }
    }

    fn parts<'a>(&'a self, buf: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        match &self.state {
            State::Ready { copied: Some((head, body)), .. } => (head, body),
            State::Ready { used, copied: None } => {
                let head_len = match self.side {
                    Side::Requests => parse_head(buf, u64::MAX).ok().flatten().map(|h| h.len),
                    Side::Answers => parse_response_head(buf, u64::MAX).ok().flatten().map(|h| h.len),
                };
                let head_len = head_len.expect("a ready message starts with its head");
                (&buf[..head_len], &buf[head_len..*used])
            }
            other => panic!("no message is ready: {other:?}"),
        }
    }

    /// Done with the ready message: the bytes to drop from the front of the buffer. The reader
    /// goes on with the next message.
    pub fn finish(&mut self) -> usize {
        match std::mem::replace(&mut self.state, State::Head) {
            State::Ready { used, .. } => used,
            other => panic!("no message is ready: {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    /// Each message read, as (its method and target, or its status; its body).
    type Messages = Vec<(String, Vec<u8>)>;

    /// Feeds `input` in pieces of `step` bytes, as a socket would, and returns every message as
    /// (first line of the head, body), and whether a 100 Continue was asked for.
    fn read_all(side: Side, input: &[u8], piece: usize, max_body: u64) -> Result<(Messages, bool), HttpError> {
        let mut reader = Reader::new(side, max_body);
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut messages = Vec::new();
        let mut continued = false;
        loop {
            let closed = fed == input.len();
            match reader.step(&buf, closed)? {
                Step::More if closed => return Ok((messages, continued)),
                Step::More => {
                    let end = (fed + piece).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                Step::Consume(n) => {
                    buf.drain(..n);
                }
                Step::Body { expect_continue, consume, .. } => {
                    continued |= expect_continue;
                    buf.drain(..consume);
                    if fed < input.len() {
                        let end = (fed + piece).min(input.len());
                        buf.extend_from_slice(&input[fed..end]);
                        fed = end;
                    }
                }
                Step::Ready => {
                    let message = match side {
                        Side::Requests => {
                            let (head, body) = reader.request(&buf);
                            (format!("{} {}", head.method.as_str(), head.target), body.to_vec())
                        }
                        Side::Answers => {
                            let (head, _, body) = reader.answer(&buf);
                            (format!("{}", head.status), body.to_vec())
                        }
                    };
                    messages.push(message);
                    let used = reader.finish();
                    buf.drain(..used);
                }
            }
        }
    }

    const PIPELINE: &[u8] =
        b"GET /a HTTP/1.1\r\n\r\nPUT /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPUT /c HTTP/1.1\r\n\
Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /d HTTP/1.1\r\n\r\n";

    #[test]
    fn pipelined_requests_come_out_whole_in_order_however_the_bytes_arrive() {
        for piece in [1, 2, 7, 64, PIPELINE.len()] {
            let (messages, continued) = read_all(Side::Requests, PIPELINE, piece, 1 << 20).unwrap();
            let expected: Messages = vec![
                ("GET /a".into(), vec![]),
                ("PUT /b".into(), b"hello".to_vec()),
                ("PUT /c".into(), b"abcde".to_vec()),
                ("GET /d".into(), vec![]),
            ];
            assert_eq!(messages, expected, "pieces of {piece}");
            assert!(continued, "the chunked upload asked for 100 Continue");
        }
    }

    #[test]
    fn answers_skip_interim_ones_and_may_run_to_the_close() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nHTTP/1.0 200 OK\r\n\r\nto the end";
        for piece in [1, 5, input.len()] {
            let (messages, _) = read_all(Side::Answers, input, piece, 1 << 20).unwrap();
            let statuses: Vec<&str> = messages.iter().map(|(s, _)| s.as_str()).collect();
            assert_eq!(statuses, ["201", "204", "200", "200"], "pieces of {piece}");
            assert_eq!(messages[0].1, b"ok");
            assert_eq!(messages[2].1, b"x");
            assert_eq!(messages[3].1, b"to the end");
        }
    }

    #[test]
    fn bodies_over_the_limit_and_garbage_are_errors() {
        let long = b"PUT /x HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";
        assert_eq!(read_all(Side::Requests, long, 4, 10).unwrap_err(), HttpError::BodyTooLarge);
        let chunked = b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n";
        assert_eq!(read_all(Side::Requests, chunked, 4, 10).unwrap_err(), HttpError::BodyTooLarge);
        assert!(read_all(Side::Requests, b"\x00\x01garbage\r\n\r\n", 3, 10).is_err());
        let cut = b"HTTP/1.1 200 OK\r\nContent-";
        assert!(read_all(Side::Answers, cut, 3, 10).is_err(), "a head cut by the close");
    }

    #[test]
    fn a_request_whose_body_has_arrived_is_ready_without_asking_for_room() {
        let mut reader = Reader::new(Side::Requests, 100);
        let buf = b"PUT /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(reader.step(buf, false), Ok(Step::Ready));
        let (head, body) = reader.request(buf);
        assert_eq!((head.method, body), (Method::Put, &b"abc"[..]));
        assert_eq!(reader.finish(), buf.len());
        assert!(reader.in_head());
    }
}
