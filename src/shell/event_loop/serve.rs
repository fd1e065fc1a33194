//! Serving one client connection: its bytes in (read within a budget), its requests read by the
//! HTTP reader and handed to the core one at a time, its answers out in request order, and the
//! verdict on whether it stays open.

use std::io;
use std::net::Shutdown;

use log::debug;
use mio::{Interest, Token};

use super::EventLoop;
use crate::core::clock::Deadline;
use crate::core::{Reply, Request};
use crate::http::{Head, HttpError, Method, Response, Step};
use crate::limits::{
    BODIES_BYTES_MAX, LINGER_BYTES_MAX, LINGER_MS, PIPELINE_REQUESTS_PER_WAKE_MAX, READ_BUDGET_BYTES,
    SEND_BACKLOG_BYTES_MAX, STREAM_BACKLOG_BYTES_MAX, WRITE_BUDGET_BYTES,
};
use crate::limits::{CONNECTION_TOKEN_BASE, TICKET_SLOT_BITS};
use crate::shell::buffer::{Received, SendQueue};
use crate::shell::connection::{AnswerShape, Connection, Phase, Verdict};

/// The answer to plain HTTP sent to a TLS port (the first byte was not a TLS handshake record).
const PLAIN_ON_TLS_PORT: &str = "this port speaks HTTPS: use https:// instead of http://";

impl EventLoop {
    // ---- Serving a connection --------------------------------------------------------------------

    /// Serves one connection: writes what is queued, reads and answers what arrived, writes again.
    pub(super) fn serve(&mut self, slot: usize, readable: bool, writable: bool) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else { return };
        let verdict = self.drive(slot, &mut conn, readable, writable);
        self.settle(slot, conn, verdict);
    }

    /// `readable` is informational: a read is always tried, since with edge-triggered events an
    /// untried read could strand bytes that arrived while the connection was parked or busy.
    pub(super) fn drive(&mut self, slot: usize, conn: &mut Connection, _readable: bool, writable: bool) -> Verdict {
        if (writable || conn.output_pending()) && self.flush(slot, conn).is_err() {
            return Verdict::Close;
        }
        let mut budget = READ_BUDGET_BYTES;
        loop {
            self.process_input(slot, conn);
            let Some(held_max) = conn.receive_limit() else { break };
            if conn.read_closed || conn.send.len() > SEND_BACKLOG_BYTES_MAX {
                break;
            }
            if budget == 0 {
                self.serve_later(slot, conn);
                break;
            }
            match conn.recv.read_from(&mut conn.socket, held_max, &mut self.pool) {
                Received::Bytes(n) => {
                    budget = budget.saturating_sub(n);
                    conn.last_progress = Deadline(self.now.mono_ms);
                    self.core.metrics_mut().bytes_received += n as u64;
                    match &mut conn.phase {
                        Phase::Lingering { drained, .. } => {
                            *drained += n;
                            let all = conn.recv.len();
                            conn.recv.consume(all);
                        }
                        // A stream's client has nothing more to ask; its input is dropped.
                        Phase::Streaming { .. } => {
                            let all = conn.recv.len();
                            conn.recv.consume(all);
                        }
                        _ => {}
                    }
                }
                Received::WouldBlock | Received::Full => break,
                Received::Eof => {
                    conn.read_closed = true;
                    self.process_input(slot, conn);
                    break;
                }
                Received::Error(_) => return Verdict::Close,
            }
        }
        if self.flush(slot, conn).is_err() {
            return Verdict::Close;
        }
        self.verdict(slot, conn)
    }

    /// Decides whether a served connection stays open.
    pub(super) fn verdict(&mut self, slot: usize, conn: &mut Connection) -> Verdict {
        let output_done = !conn.output_pending();
        match conn.phase {
            Phase::Closing { linger } if output_done => {
                let unread = !conn.recv.is_empty();
                if (linger || unread) && !conn.read_closed {
                    let _ = conn.socket.shutdown(Shutdown::Write);
                    let all = conn.recv.len();
                    conn.recv.consume(all);
                    conn.phase = Phase::Lingering { until: Deadline::after(self.now, LINGER_MS), drained: 0 };
                    // Read at once: the client's close may have arrived already.
                    self.serve_later(slot, conn);
                    Verdict::Keep
                } else {
                    Verdict::Close
                }
            }
            Phase::Lingering { drained, .. } if conn.read_closed || drained > LINGER_BYTES_MAX => Verdict::Close,
            Phase::Streaming { behind_from, .. }
                if conn.read_closed || conn.send.queued_after(behind_from) > STREAM_BACKLOG_BYTES_MAX =>
            {
                Verdict::Close
            }
            // A watcher whose client left is dropped; a parked commit still gets its answer.
            Phase::Parked { ticket, .. } if conn.read_closed && self.core.disconnected(ticket) => Verdict::Close,
            // The client closed its side and everything it asked for is answered (requests still
            // buffered are answered first: the connection is queued to be served again).
            Phase::Reading { .. } if conn.read_closed && output_done && !conn.queued_again => Verdict::Close,
            _ => Verdict::Keep,
        }
    }

    /// Puts a served connection back (with its interest and timer brought up to date) or closes it.
    pub(super) fn settle(&mut self, slot: usize, mut conn: Connection, verdict: Verdict) {
        if let Verdict::Close = verdict {
            self.close(conn);
            self.free_slots.push(slot);
            return;
        }
        if !conn.nodelay && conn.answered && matches!(conn.phase, Phase::Reading { .. }) {
            // Kept alive after an answer: from now on answers may follow unacknowledged ones.
            let _ = conn.socket.set_nodelay(true);
            conn.nodelay = true;
        }
        conn.recv.release_if_empty(&mut self.pool);
        let want_writable = conn.output_pending();
        if want_writable != conn.writable_interest {
            let interest = if want_writable { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            let token = Token(CONNECTION_TOKEN_BASE + slot);
            if self.poll.registry().reregister(&mut conn.socket, token, interest).is_err() {
                self.close(conn);
                self.free_slots.push(slot);
                return;
            }
            conn.writable_interest = want_writable;
        }
        self.arm_timer(slot, &mut conn);
        self.conns[slot] = Some(conn);
    }

    pub(super) fn close(&mut self, mut conn: Connection) {
        self.release(&mut conn);
        // Closing the socket removes it from the poller; no deregister call is needed.
        conn.recv.consume(conn.recv.len());
        conn.recv.release_if_empty(&mut self.pool);
        if let Phase::Parked { ticket, .. } | Phase::Streaming { ticket, .. } = conn.phase {
            self.core.disconnected(ticket);
        }
        self.open -= 1;
        self.core.metrics_mut().connections_open = self.open as u64;
    }

    /// Parses and answers the complete requests in the receive buffer, in order.
    pub(super) fn process_input(&mut self, slot: usize, conn: &mut Connection) {
        if conn.socket.is_plain_on_tls_port() && matches!(conn.phase, Phase::Reading { .. }) {
            // Told in plain HTTP, which is what the client reads; then the connection closes.
            self.fail(conn, HttpError::Malformed(PLAIN_ON_TLS_PORT));
            return;
        }
        for _ in 0..PIPELINE_REQUESTS_PER_WAKE_MAX {
            if conn.send.len() > SEND_BACKLOG_BYTES_MAX || !self.next_request(slot, conn) {
                return;
            }
        }
        // More may be buffered; answer it next turn so other connections get theirs.
        self.serve_later(slot, conn);
    }

    /// Advances the request in progress by what is buffered. Returns true when a request was
    /// answered or parked and the next one may follow.
    pub(super) fn next_request(&mut self, slot: usize, conn: &mut Connection) -> bool {
        loop {
            let Phase::Reading { since } = &mut conn.phase else { return false };
            let step = match conn.reader.step(conn.recv.data(), conn.read_closed) {
                Ok(step) => step,
                Err(e) => {
                    self.fail(conn, e);
                    return false;
                }
            };
            match step {
                Step::More => {
                    if !conn.recv.is_empty() {
                        since.get_or_insert(Deadline(self.now.mono_ms));
                    }
                    return false;
                }
                Step::Consume(used) => conn.recv.consume(used),
                Step::Body { length, expect_continue, consume } => {
                    since.get_or_insert(Deadline(self.now.mono_ms));
                    conn.recv.consume(consume);
                    if !self.reserve(conn, length.unwrap_or(0)) {
                        self.fail(conn, HttpError::Busy);
                        return false;
                    }
                    if expect_continue {
                        conn.send.push_bytes(b"HTTP/1.1 100 Continue\r\n\r\n", &mut self.pool);
                    }
                }
                Step::Ready => {
                    let (head, body) = conn.reader.request(conn.recv.data());
                    let phase = self.dispatch(slot, conn.client, &head, body, &mut conn.send);
                    let used = conn.reader.finish();
                    conn.recv.consume(used);
                    conn.phase = phase;
                    conn.answered = true;
                    self.release(conn);
                    return true;
                }
            }
            // A chunked body grows as it is decoded: it holds the budget it takes.
            let grown = conn.reader.decoded_len().saturating_sub(conn.reserved);
            if grown > 0 && !self.reserve(conn, grown) {
                self.fail(conn, HttpError::Busy);
                return false;
            }
        }
    }

    /// Takes `bytes` more of the global body budget for this connection; false when it is spent.
    pub(super) fn reserve(&mut self, conn: &mut Connection, bytes: usize) -> bool {
        if self.bodies_reserved + bytes > BODIES_BYTES_MAX {
            return false;
        }
        self.bodies_reserved += bytes;
        conn.reserved += bytes;
        true
    }

    /// Gives back a connection's share of the body budget (its body arrived, or it closed).
    pub(super) fn release(&mut self, conn: &mut Connection) {
        self.bodies_reserved -= conn.reserved;
        conn.reserved = 0;
    }

    /// Hands one complete request to the core and queues its answer, or parks it. Each request
    /// gets its own ticket, so an answer meant for an earlier request on the same connection can
    /// never be taken for a later one's.
    pub(super) fn dispatch(
        &mut self,
        slot: usize,
        client: std::net::SocketAddr,
        head: &Head,
        body: &[u8],
        send: &mut SendQueue,
    ) -> Phase {
        // One turn of the loop may take long (a burst of accepts, a pause of the process): the
        // core must judge each request, a lease's deadline above all, by the time it is handled.
        self.tick_clock();
        self.request_serial += 1;
        let ticket = (self.request_serial << TICKET_SLOT_BITS) | slot as u64;
        let shape = AnswerShape {
            method: head.method,
            endpoint: crate::core::endpoint_of(head.target),
            head_only: head.method == Method::Head,
            keep_alive: head.keep_alive,
            http10: head.minor_version == 0,
            cors: self.cors.as_ref().and_then(|cors| cors.allowed(head.headers.origin)),
        };
        if let Some(refused) = self.host_guard.as_ref().and_then(|guard| guard.check(head.headers.host)) {
            return self.queue_answer(send, refused, shape);
        }
        let request = Request {
            method: head.method,
            target: head.target,
            headers: head.headers,
            body,
            client: Some(client),
            grant: None,
        };
        match self.core.handle(self.now, ticket, &request) {
            Reply::Now(response) => self.queue_answer(send, response, shape),
            Reply::Later => Phase::Parked { ticket, shape },
            Reply::Stream(response) => {
                self.core.metrics_mut().count_request(shape.endpoint, shape.method, response.status);
                let cors = self.cors_headers(&shape);
                send.push_stream_start(response, cors, shape.http10, &self.date, &mut self.pool);
                Phase::Streaming { ticket, chunked: !shape.http10, behind_from: send.end() }
            }
        }
    }

    /// Queues an answer and returns the phase that follows it.
    pub(super) fn queue_answer(&mut self, send: &mut SendQueue, response: Response, shape: AnswerShape) -> Phase {
        self.core.metrics_mut().count_request(shape.endpoint, shape.method, response.status);
        let keep_alive = shape.keep_alive && !response.close;
        let linger = response.close;
        let cors = self.cors_headers(&shape);
        send.push_response(response, cors, shape.head_only, keep_alive, shape.http10, &self.date, &mut self.pool);
        if keep_alive { Phase::Reading { since: None } } else { Phase::Closing { linger } }
    }

    /// Answers a request that cannot be parsed, and closes after it.
    pub(super) fn fail(&mut self, conn: &mut Connection, e: HttpError) {
        debug!("bad request: {}", e.message());
        // A head refused for its body (413, say) may still be read for its origin, so that a
        // page on an allowed origin can read why.
        let origin_allowed = || {
            let head = crate::http::parse_head(conn.recv.data(), u64::MAX).ok().flatten()?;
            self.cors?.allowed(head.headers.origin)
        };
        let shape = AnswerShape {
            method: Method::Unknown,
            endpoint: usize::MAX,
            head_only: false,
            keep_alive: false,
            http10: false,
            cors: origin_allowed(),
        };
        conn.phase = self.queue_answer(&mut conn.send, e.response(), shape);
    }

    /// The CORS header lines of an answer (none unless `--cors` allows the request's origin); a
    /// preflight (`OPTIONS`) gets the methods and headers it may use too.
    fn cors_headers(&self, shape: &AnswerShape) -> &'static [u8] {
        match (&self.cors, shape.cors) {
            (Some(cors), Some(which)) => cors.headers(which, shape.method == Method::Options),
            (Some(cors), None) => cors.headers_for_others(),
            (None, _) => b"",
        }
    }

    /// Writes queued output, up to the write budget.
    pub(super) fn flush(&mut self, slot: usize, conn: &mut Connection) -> io::Result<()> {
        if conn.send.is_empty() {
            return conn.socket.flush_records();
        }
        let written = conn.send.write_to(&mut conn.socket, WRITE_BUDGET_BYTES, &mut self.pool)?;
        if written > 0 {
            conn.last_progress = Deadline(self.now.mono_ms);
            self.core.metrics_mut().bytes_sent += written as u64;
        }
        if written >= WRITE_BUDGET_BYTES && !conn.send.is_empty() {
            self.serve_later(slot, conn);
        }
        Ok(())
    }

    pub(super) fn serve_later(&mut self, slot: usize, conn: &mut Connection) {
        if !conn.queued_again {
            conn.queued_again = true;
            self.again.push((slot, conn.generation));
        }
    }

    pub(super) fn serve_again(&mut self) {
        let mut again = std::mem::take(&mut self.again);
        for (slot, generation) in again.drain(..) {
            let Some(Some(conn)) = self.conns.get_mut(slot) else { continue };
            if conn.generation == generation {
                conn.queued_again = false;
                self.serve(slot, true, true);
            }
        }
        if self.again.is_empty() {
            self.again = again;
        }
    }
}
