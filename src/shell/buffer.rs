//! Per-connection byte buffers, and the pool they come from.
//!
//! An idle connection owns no buffer: one is taken from the pool when bytes arrive or an answer
//! is queued, and given back as soon as it is empty again. Memory follows activity, not the
//! number of open connections, and a busy keep-alive connection reuses the same pooled buffers
//! instead of allocating per request.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use crate::http::{self, Bytes, Response};
use crate::limits::{
    BUFFER_BYTES, BUFFER_POOL_BYTES_MAX, BUFFER_POOL_COUNT_MAX, SHARED_BODY_BYTES_MIN, WRITE_SEGMENTS_MAX,
};

/// Buffers kept for reuse: receive buffers (fully initialised) and send buffers (empty).
#[derive(Default)]
pub struct Pool {
    recv: Vec<Vec<u8>>,
    send: Vec<Vec<u8>>,
}

impl Pool {
    fn take_recv(&mut self) -> Vec<u8> {
        self.recv.pop().unwrap_or_else(|| vec![0; BUFFER_BYTES])
    }

    fn give_recv(&mut self, buffer: Vec<u8>) {
        if buffer.len() == BUFFER_BYTES && self.recv.len() < BUFFER_POOL_COUNT_MAX {
            self.recv.push(buffer);
        }
    }

    fn take_send(&mut self) -> Vec<u8> {
        self.send.pop().unwrap_or_else(|| Vec::with_capacity(BUFFER_BYTES))
    }

    fn give_send(&mut self, mut buffer: Vec<u8>) {
        if buffer.capacity() <= BUFFER_POOL_BYTES_MAX && self.send.len() < BUFFER_POOL_COUNT_MAX {
            buffer.clear();
            self.send.push(buffer);
        }
    }
}

/// Bytes received and not yet parsed: `bytes[start..end]`. `bytes` is always fully initialised,
/// so reading never zeroes memory again.
#[derive(Default)]
pub struct RecvBuffer {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

/// What one read from a socket gave.
#[derive(Debug)]
pub enum Received {
    Bytes(usize),
    WouldBlock,
    /// The peer closed its side.
    Eof,
    /// `held_max` bytes are already held; parse or drop some first.
    Full,
    Error(io::Error),
}

impl RecvBuffer {
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Drops `n` parsed bytes from the front.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len(), "consumed more than was received");
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops the bytes at `range` (relative to `data()`), keeping those before and after it.
    pub fn remove(&mut self, range: std::ops::Range<usize>) {
        let (from, to) = (self.start + range.start, self.start + range.end);
        assert!(from <= to && to <= self.end, "removed bytes that were not received");
        self.bytes.copy_within(to..self.end, from);
        self.end -= to - from;
    }

    /// Reads once from `source`, holding at most `held_max` bytes in all.
    pub fn read_from<R: Read>(&mut self, source: &mut R, held_max: usize, pool: &mut Pool) -> Received {
        if self.len() >= held_max {
            return Received::Full;
        }
        if self.bytes.is_empty() {
            self.bytes = pool.take_recv();
        }
        if self.end == self.bytes.len() {
            if self.start > 0 {
                self.bytes.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grown = (self.bytes.len() * 2).min(held_max.max(BUFFER_BYTES));
                self.bytes.resize(grown.max(self.end + 1), 0);
            }
        }
        let room = (held_max - self.len()).min(self.bytes.len() - self.end);
        match source.read(&mut self.bytes[self.end..self.end + room]) {
            Ok(0) => Received::Eof,
            Ok(n) => {
                self.end += n;
                Received::Bytes(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Received::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Received::Bytes(0),
            Err(e) => Received::Error(e),
        }
    }

    /// Gives the buffer back to the pool when it holds nothing.
    pub fn release_if_empty(&mut self, pool: &mut Pool) {
        if self.is_empty() && !self.bytes.is_empty() {
            pool.give_recv(std::mem::take(&mut self.bytes));
        }
    }
}

/// One queued piece of output.
enum Segment {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Segment {
    fn as_slice(&self) -> &[u8] {
        match self {
            Segment::Owned(v) => v,
            Segment::Shared(a) => a,
        }
    }
}

/// Output waiting for the socket: small pieces copied into pooled buffers, large bodies queued
/// by reference.
#[derive(Default)]
pub struct SendQueue {
    segments: VecDeque<Segment>,
    /// Bytes of the first segment already written.
    front_written: usize,
    pending: usize,
    /// Bytes written since the queue was made: with `pending`, it places a byte of a stream
    /// (`end`, `queued_after`).
    written: u64,
}

impl SendQueue {
    /// Bytes not yet written.
    pub fn len(&self) -> usize {
        self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Where the next byte pushed will be, counted from the queue's first byte ever.
    pub fn end(&self) -> u64 {
        self.written + self.pending as u64
    }

    /// Bytes not yet written that were queued after position `mark` (an earlier `end()`).
    pub fn queued_after(&self, mark: u64) -> usize {
        (self.end() - mark.max(self.written)) as usize
    }

    /// Copies small bytes in, appending to the last pooled buffer when it has room.
    pub fn push_bytes(&mut self, bytes: &[u8], pool: &mut Pool) {
        if bytes.is_empty() {
            return;
        }
        self.pending += bytes.len();
        self.tail(pool).extend_from_slice(bytes);
    }

    /// The buffer at the end of the queue that small output is appended to.
    fn tail(&mut self, pool: &mut Pool) -> &mut Vec<u8> {
        let has_room = matches!(self.segments.back(), Some(Segment::Owned(last)) if last.len() < BUFFER_BYTES);
        if !has_room {
            self.segments.push_back(Segment::Owned(pool.take_send()));
        }
        match self.segments.back_mut() {
            Some(Segment::Owned(buffer)) => buffer,
            _ => unreachable!("an owned buffer was just ensured"),
        }
    }

    /// Queues a body: copied when small, by reference (or by move) when large.
    pub fn push_body(&mut self, body: Bytes, pool: &mut Pool) {
        if body.len() < SHARED_BODY_BYTES_MIN {
            self.push_bytes(body.as_slice(), pool);
            return;
        }
        self.pending += body.len();
        self.segments.push_back(match body {
            Bytes::Static(s) => Segment::Shared(Arc::from(s)),
            Bytes::Owned(v) => Segment::Owned(v),
            Bytes::Shared(a) => Segment::Shared(a),
        });
    }

    /// Queues a whole answer: head (with the `extra` header lines), then body unless the request
    /// was HEAD.
    #[allow(clippy::too_many_arguments)]
    pub fn push_response(
        &mut self,
        response: Response,
        extra: &[u8],
        head_only: bool,
        keep_alive: bool,
        http10_client: bool,
        date: &str,
        pool: &mut Pool,
    ) {
        let tail = self.tail(pool);
        let before = tail.len();
        http::encode_head(&response, keep_alive, http10_client, date, tail);
        insert_before_blank_line(tail, extra);
        self.pending += tail.len() - before;
        if !head_only && !response.has_no_body() {
            self.push_body(response.body, pool);
        }
    }

    /// Queues the head of a streamed answer and its first piece.
    pub fn push_stream_start(
        &mut self,
        response: Response,
        extra: &[u8],
        http10_client: bool,
        date: &str,
        pool: &mut Pool,
    ) {
        let tail = self.tail(pool);
        let before = tail.len();
        http::encode_stream_head(&response, http10_client, date, tail);
        insert_before_blank_line(tail, extra);
        self.pending += tail.len() - before;
        self.push_chunk(response.body, !http10_client, pool);
    }

    /// Queues one piece of a streamed answer: copied when small; a large one (a whole store as
    /// an event) is queued by move or reference between its chunk framing, not copied.
    pub fn push_chunk(&mut self, bytes: Bytes, chunked: bool, pool: &mut Pool) {
        if bytes.is_empty() {
            return;
        }
        if bytes.len() < SHARED_BODY_BYTES_MIN {
            let tail = self.tail(pool);
            let before = tail.len();
            http::encode_chunk(bytes.as_slice(), chunked, tail);
            self.pending += tail.len() - before;
            return;
        }
        if chunked {
            self.push_bytes(format!("{:x}\r\n", bytes.len()).as_bytes(), pool);
        }
        self.push_body(bytes, pool);
        if chunked {
            self.push_bytes(b"\r\n", pool);
        }
    }

    /// Writes as much as the socket takes, up to `budget` bytes, with vectored writes.
    /// Returns the bytes written; `WouldBlock` is not an error (the rest waits for writable).
    pub fn write_to<W: Write>(&mut self, sink: &mut W, budget: usize, pool: &mut Pool) -> io::Result<usize> {
        let mut written = 0;
        while self.pending > 0 && written < budget {
            let mut slices = [IoSlice::new(&[]); WRITE_SEGMENTS_MAX];
            let mut count = 0;
            for (i, segment) in self.segments.iter().take(WRITE_SEGMENTS_MAX).enumerate() {
                let bytes = segment.as_slice();
                slices[i] = IoSlice::new(if i == 0 { &bytes[self.front_written..] } else { bytes });
                count += 1;
            }
            let n = match sink.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            written += n;
            self.advance(n, pool);
        }
        Ok(written)
    }

    fn advance(&mut self, mut n: usize, pool: &mut Pool) {
        self.pending -= n;
        self.written += n as u64;
        while n > 0 {
            let front_left =
                self.segments.front().expect("written bytes were queued").as_slice().len() - self.front_written;
            if n < front_left {
                self.front_written += n;
                return;
            }
            n -= front_left;
            self.front_written = 0;
            if let Some(Segment::Owned(buffer)) = self.segments.pop_front() {
                pool.give_send(buffer);
            }
        }
        if self.pending == 0 {
            // Give back any empty trailing buffers.
            while let Some(segment) = self.segments.pop_front() {
                if let Segment::Owned(buffer) = segment {
                    pool.give_send(buffer);
                }
            }
            self.front_written = 0;
        }
    }
}

/// Adds header lines to a head just written (it ends in the blank line).
fn insert_before_blank_line(head: &mut Vec<u8>, extra: &[u8]) {
    if !extra.is_empty() {
        debug_assert!(head.ends_with(b"\r\n\r\n"));
        head.truncate(head.len() - 2);
        head.extend_from_slice(extra);
        head.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes at most `step` bytes per write and then blocks every other call.
    struct Trickle {
        taken: Vec<u8>,
        step: usize,
        block_next: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let block = self.block_next;
            self.block_next = !block;
            if block {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = bytes.len().min(self.step);
            self.taken.extend_from_slice(&bytes[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn queued_output_arrives_whole_and_in_order_however_the_socket_takes_it() {
        let mut pool = Pool::default();
        let mut queue = SendQueue::default();
        let large: Arc<[u8]> = (0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>().into();
        queue.push_bytes(b"head-1 ", &mut pool);
        queue.push_body(Bytes::Shared(large.clone()), &mut pool);
        queue.push_bytes(b" head-2", &mut pool);
        let mut expected = b"head-1 ".to_vec();
        expected.extend_from_slice(&large);
        expected.extend_from_slice(b" head-2");
        let mut sink = Trickle { taken: Vec::new(), step: 7_777, block_next: false };
        while !queue.is_empty() {
            queue.write_to(&mut sink, usize::MAX, &mut pool).unwrap();
        }
        assert_eq!(sink.taken.len(), expected.len());
        assert!(sink.taken == expected, "output differs from what was queued");
    }

    #[test]
    fn receive_buffer_grows_to_its_limit_and_compacts() {
        let mut pool = Pool::default();
        let mut buffer = RecvBuffer::default();
        let input: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut source = &input[..];
        while let Received::Bytes(_) = buffer.read_from(&mut source, 50_000, &mut pool) {}
        assert_eq!(buffer.data(), &input[..]);
        buffer.consume(30_000);
        assert_eq!(buffer.data(), &input[30_000..]);
        buffer.remove(0..5_000);
        assert_eq!(buffer.data(), &input[35_000..]);
        let mut more = &b"abc"[..];
        assert!(matches!(buffer.read_from(&mut more, 5_003, &mut pool), Received::Bytes(3)));
        assert!(matches!(buffer.read_from(&mut more, 5_003, &mut pool), Received::Full));
        buffer.consume(5_003);
        buffer.release_if_empty(&mut pool);
        assert_eq!(pool.recv.len(), 0, "a grown buffer is not pooled");
    }
}
