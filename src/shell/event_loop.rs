//! The event loop: the only code that touches sockets, and the only thread that touches the core.
//!
//! One thread polls (mio, edge-triggered) a listener, the client connections, a waker for the
//! writer thread's reports, and the signal pipe. Each connection is a small state machine
//! (`Phase`) with a receive buffer and a send queue taken from a shared pool. Reads and writes
//! go until `WouldBlock` within a budget per wake-up; a connection that used its budget is served
//! again on the next turn without waiting for an event, so one busy client cannot starve others.
//! Requests go to the core; answers go out in request order. Timers (idle, head, body, send
//! stall, linger) live in one heap with at most a couple of entries per connection.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, error, info, warn};
use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::core::clock::{Now, http_date};
use crate::core::{Effect, Node, Reply, Request, Ticket};
use crate::http::{self, ChunkedDecoder, Framing, Head, HttpError, Method, Response};
use crate::limits::{
    ACCEPT_BUDGET, ACCEPT_PAUSE_MS, BODIES_BYTES_MAX, BODY_STALL_TIMEOUT_MS, BUFFER_BYTES, CHUNK_RAW_COMPACT_BYTES,
    EVENTS_CAPACITY, HEAD_TIMEOUT_MS, IDLE_TIMEOUT_MS, LINGER_BYTES_MAX, LINGER_MS, PIPELINE_REQUESTS_PER_WAKE_MAX,
    READ_BUDGET_BYTES, REQUEST_HEAD_BYTES_MAX, SEND_BACKLOG_BYTES_MAX, SEND_STALL_TIMEOUT_MS, STREAM_BACKLOG_BYTES_MAX,
    WRITE_BUDGET_BYTES,
};
use crate::shell::buffer::{Pool, Received, RecvBuffer, SendQueue};
use crate::shell::clock::SystemClock;
use crate::shell::peers::{PEER_TOKEN_BASE, Peers, Work};
use crate::shell::workers::{Report, Workers};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const SIGNALS: Token = Token(2);
/// Connection `i` has token `CONNECTION_TOKEN_BASE + i`.
const CONNECTION_TOKEN_BASE: usize = 16;
/// A ticket is a request serial number above these bits and the connection's slot below them.
const TICKET_SLOT_BITS: u32 = 24;
const TICKET_SLOT_MASK: u64 = (1 << TICKET_SLOT_BITS) - 1;

/// The answer sent to a connection over `--max-connections`, before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nServer: lighthouse\r\nContent-Type: application/json\r\n\
Content-Length: 57\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{\"error\": \"too many connections, see --max-connections\"}\n";

/// How an answer is framed, remembered while its request waits in the core.
#[derive(Debug, Clone, Copy)]
struct AnswerShape {
    method: Method,
    /// The endpoint family, for the request counters.
    endpoint: usize,
    head_only: bool,
    keep_alive: bool,
    http10: bool,
}

/// Where a connection is in its request cycle.
#[derive(Debug)]
enum Phase {
    /// Waiting for a request head; `since_ms` is when its first byte arrived (`None`: idle).
    Head { since_ms: Option<u64> },
    /// Head parsed; waiting until `body_len` bytes follow its `head_len` bytes.
    Body { head_len: usize, body_len: usize },
    /// Head parsed; `raw` bytes after it have gone through the chunked decoder into `body`.
    Chunked { head_len: usize, raw: usize, decoder: ChunkedDecoder },
    /// The core answers later; later requests wait in the receive buffer, in order.
    Parked { ticket: Ticket, shape: AnswerShape },
    /// An event stream: the core sends events until the client goes. Input is read only to see
    /// the client close; `chunked` is false for an HTTP/1.0 client (the stream ends at close).
    Streaming { ticket: Ticket, chunked: bool },
    /// The last answer is queued; close once it is sent. `linger` drains unread input first, so
    /// the client reads the answer instead of a reset.
    Closing { linger: bool },
    /// Write side shut after the last answer; discarding input until EOF or the deadline.
    Lingering { until_ms: u64, drained: usize },
}

struct Connection {
    socket: TcpStream,
    /// The client's address, for the audit lines of the lock.
    client: std::net::SocketAddr,
    /// Distinguishes this connection from earlier ones in the same slot, for tickets and timers.
    generation: u64,
    phase: Phase,
    recv: RecvBuffer,
    /// A chunked body, decoded.
    body: Vec<u8>,
    send: SendQueue,
    writable_interest: bool,
    /// The peer closed its side; finish what was asked, then close.
    read_closed: bool,
    /// Already in the loop's serve-again list.
    queued_again: bool,
    /// Last time bytes moved either way; idle, body and send timeouts count from it.
    last_progress_ms: u64,
    /// When this connection's timer fires, and the earliest entry it has in the timer heap.
    deadline_ms: u64,
    armed_ms: u64,
    /// Bytes of the global body budget held for the body being received.
    reserved: usize,
    /// TCP_NODELAY is set. Only connections kept alive past their first answer need it: one
    /// answer is one write, and Nagle's algorithm holds nothing back while nothing is unacknowledged.
    nodelay: bool,
    /// At least one request was answered (or parked) on this connection.
    answered: bool,
}

/// What to do with a connection after serving it.
enum Verdict {
    Keep,
    Close,
}

pub struct EventLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    signals: UnixStream,
    clock: SystemClock,
    now: Now,
    date: String,
    date_second: u64,
    core: Node,
    workers: Workers,
    pool: Pool,
    conns: Vec<Option<Connection>>,
    free_slots: Vec<usize>,
    open: usize,
    next_generation: u64,
    timers: BinaryHeap<Reverse<(u64, usize, u64)>>,
    /// Connections to serve again this turn without an event: (slot, generation).
    again: Vec<(usize, u64)>,
    /// The listener used its budget, or rests after EMFILE until this time.
    accept_more: bool,
    accept_paused_until_ms: Option<u64>,
    effects: Vec<Effect>,
    /// Bytes of request bodies being received, across connections (at most `BODIES_BYTES_MAX`).
    bodies_reserved: usize,
    /// Numbers the requests handed to the core, for their tickets.
    request_serial: u64,
    peers: Peers,
    max_body: u64,
    max_connections: usize,
}

/// What the loop needs to start: everything else it builds.
pub struct Parts {
    pub listener: TcpListener,
    pub core: Node,
    pub disk: crate::shell::data_dir::DiskConfig,
    pub clock: SystemClock,
    pub max_body: u64,
    pub max_connections: usize,
    /// Header lines sent with every request to a peer (the cluster key).
    pub peer_headers: String,
}

impl EventLoop {
    pub fn new(parts: Parts) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let mut listener = parts.listener;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let workers = Workers::spawn(
            parts.disk,
            Arc::new(move || {
                if let Err(e) = waker.wake() {
                    error!("cannot wake the event loop: {e}");
                }
            }),
        )?;
        let mut signals = crate::shell::sys::shutdown_signals()?;
        poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
        assert!(parts.max_connections < (1 << TICKET_SLOT_BITS), "slots must fit a ticket");
        let now = parts.clock.now();
        Ok(EventLoop {
            poll,
            listener: Some(listener),
            signals,
            clock: parts.clock,
            now,
            date: http_date(now.unix_ms / 1000),
            date_second: now.unix_ms / 1000,
            core: parts.core,
            workers,
            pool: Pool::default(),
            conns: Vec::new(),
            free_slots: Vec::new(),
            open: 0,
            next_generation: 1,
            timers: BinaryHeap::new(),
            again: Vec::new(),
            accept_more: false,
            accept_paused_until_ms: None,
            effects: Vec::new(),
            bodies_reserved: 0,
            request_serial: 0,
            peers: Peers::new(parts.max_body, parts.peer_headers),
            max_body: parts.max_body,
            max_connections: parts.max_connections,
        })
    }

    /// Serves until SIGTERM or SIGINT, then finishes the snapshot write in flight and returns.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.tick_clock();
            let mut stop = false;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => self.take_reports(),
                    SIGNALS => stop = true,
                    Token(t) if t >= PEER_TOKEN_BASE => {
                        let mut work = Work::default();
                        self.peers.ready(t, self.now.mono_ms, self.poll.registry(), &mut self.pool, &mut work);
                        self.peer_work(work);
                    }
                    Token(t) => {
                        let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                        self.serve(t - CONNECTION_TOKEN_BASE, readable, event.is_writable());
                    }
                }
            }
            self.serve_again();
            let mut work = Work::default();
            self.peers.serve_again(self.now.mono_ms, self.poll.registry(), &mut self.pool, &mut work);
            self.peer_work(work);
            if self.accept_more || self.accept_paused_until_ms.is_some_and(|t| self.now.mono_ms >= t) {
                self.accept();
            }
            self.core.tick(self.now);
            let mut work = Work::default();
            self.peers.expire(self.now.mono_ms, &mut self.pool, &mut work);
            self.peer_work(work);
            self.apply_effects();
            self.expire_timers();
            if stop {
                return self.stop();
            }
        }
    }

    fn tick_clock(&mut self) {
        self.now = self.clock.now();
        let second = self.now.unix_ms / 1000;
        if second != self.date_second {
            self.date_second = second;
            self.date = http_date(second);
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() || self.accept_more || self.peers.has_work_waiting() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.timers.peek().map(|Reverse((at, _, _))| *at),
            self.core.next_deadline().map(|d| d.0),
            self.peers.next_deadline(),
            self.accept_paused_until_ms,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(Duration::from_millis(next.saturating_sub(self.now.mono_ms)))
    }

    // ---- Accepting ------------------------------------------------------------------------------

    fn accept(&mut self) {
        self.accept_more = false;
        self.accept_paused_until_ms = None;
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((socket, _)) if self.open >= self.max_connections => {
                    self.core.metrics_mut().connections_refused += 1;
                    refuse(socket);
                }
                Ok((socket, client)) => match self.add_connection(socket, client) {
                    // The listener defers accepts until the request's first bytes are in, so
                    // reading at once saves a round through the poller.
                    Ok(slot) => self.serve(slot, true, false),
                    Err(e) => warn!("cannot register a new connection: {e}"),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_out_of_resources(&e) => {
                    // Retrying at once would spin: the pending connection stays in the backlog
                    // until a descriptor frees up. Rest, then try again.
                    warn!("cannot accept connections: {e}; pausing {ACCEPT_PAUSE_MS} ms");
                    self.accept_paused_until_ms = Some(self.now.mono_ms + ACCEPT_PAUSE_MS);
                    return;
                }
                Err(e) => debug!("accept failed: {e}"),
            }
        }
        self.accept_more = true;
    }

    fn add_connection(&mut self, mut socket: TcpStream, client: std::net::SocketAddr) -> io::Result<usize> {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        if let Err(e) =
            self.poll.registry().register(&mut socket, Token(CONNECTION_TOKEN_BASE + slot), Interest::READABLE)
        {
            self.free_slots.push(slot);
            return Err(e);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let mut conn = Connection {
            socket,
            client,
            generation,
            phase: Phase::Head { since_ms: None },
            recv: RecvBuffer::default(),
            body: Vec::new(),
            send: SendQueue::default(),
            writable_interest: false,
            read_closed: false,
            queued_again: false,
            last_progress_ms: self.now.mono_ms,
            deadline_ms: u64::MAX,
            armed_ms: u64::MAX,
            reserved: 0,
            nodelay: false,
            answered: false,
        };
        self.arm_timer(slot, &mut conn);
        self.conns[slot] = Some(conn);
        self.open += 1;
        let metrics = self.core.metrics_mut();
        metrics.connections_accepted += 1;
        metrics.connections_open = self.open as u64;
        Ok(slot)
    }

    // ---- Serving a connection --------------------------------------------------------------------

    /// Serves one connection: writes what is queued, reads and answers what arrived, writes again.
    fn serve(&mut self, slot: usize, readable: bool, writable: bool) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else { return };
        let verdict = self.drive(slot, &mut conn, readable, writable);
        self.settle(slot, conn, verdict);
    }

    /// `readable` is informational: a read is always tried, since with edge-triggered events an
    /// untried read could strand bytes that arrived while the connection was parked or busy.
    fn drive(&mut self, slot: usize, conn: &mut Connection, _readable: bool, writable: bool) -> Verdict {
        if (writable || !conn.send.is_empty()) && self.flush(slot, conn).is_err() {
            return Verdict::Close;
        }
        let mut budget = READ_BUDGET_BYTES;
        loop {
            self.process_input(slot, conn);
            let Some(held_max) = conn.phase.receive_limit() else { break };
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
                    conn.last_progress_ms = self.now.mono_ms;
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
    fn verdict(&mut self, slot: usize, conn: &mut Connection) -> Verdict {
        let output_done = conn.send.is_empty();
        match conn.phase {
            Phase::Closing { linger } if output_done => {
                let unread = !conn.recv.is_empty();
                if (linger || unread) && !conn.read_closed {
                    let _ = conn.socket.shutdown(Shutdown::Write);
                    let all = conn.recv.len();
                    conn.recv.consume(all);
                    conn.phase = Phase::Lingering { until_ms: self.now.mono_ms + LINGER_MS, drained: 0 };
                    // Read at once: the client's close may have arrived already.
                    self.serve_later(slot, conn);
                    Verdict::Keep
                } else {
                    Verdict::Close
                }
            }
            Phase::Lingering { drained, .. } if conn.read_closed || drained > LINGER_BYTES_MAX => Verdict::Close,
            Phase::Streaming { .. } if conn.read_closed || conn.send.len() > STREAM_BACKLOG_BYTES_MAX => Verdict::Close,
            // A watcher whose client left is dropped; a parked commit still gets its answer.
            Phase::Parked { ticket, .. } if conn.read_closed && self.core.disconnected(ticket) => Verdict::Close,
            // The client closed its side and everything it asked for is answered (requests still
            // buffered are answered first: the connection is queued to be served again).
            Phase::Head { .. } | Phase::Body { .. } | Phase::Chunked { .. }
                if conn.read_closed && output_done && !conn.queued_again =>
            {
                Verdict::Close
            }
            _ => Verdict::Keep,
        }
    }

    /// Puts a served connection back (with its interest and timer brought up to date) or closes it.
    fn settle(&mut self, slot: usize, mut conn: Connection, verdict: Verdict) {
        if let Verdict::Close = verdict {
            self.close(conn);
            self.free_slots.push(slot);
            return;
        }
        if !conn.nodelay && conn.answered && matches!(conn.phase, Phase::Head { .. }) {
            // Kept alive after an answer: from now on answers may follow unacknowledged ones.
            let _ = conn.socket.set_nodelay(true);
            conn.nodelay = true;
        }
        conn.recv.release_if_empty(&mut self.pool);
        if conn.body.capacity() > 0 && !matches!(conn.phase, Phase::Chunked { .. }) {
            conn.body = Vec::new();
        }
        let want_writable = !conn.send.is_empty();
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

    fn close(&mut self, mut conn: Connection) {
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
    fn process_input(&mut self, slot: usize, conn: &mut Connection) {
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
    fn next_request(&mut self, slot: usize, conn: &mut Connection) -> bool {
        match &mut conn.phase {
            Phase::Head { since_ms } => {
                if conn.recv.is_empty() {
                    return false;
                }
                let head = match http::parse_head(conn.recv.data(), self.max_body) {
                    Ok(Some(head)) => head,
                    Ok(None) => {
                        since_ms.get_or_insert(self.now.mono_ms);
                        return false;
                    }
                    Err(e) => {
                        self.fail(conn, e);
                        return false;
                    }
                };
                let (head_len, framing, expect_continue) = (head.len, head.framing, head.expect_continue);
                match framing {
                    Framing::None => {
                        let phase = self.dispatch(slot, conn.client, &head, &[], &mut conn.send);
                        conn.recv.consume(head_len);
                        conn.phase = phase;
                        conn.answered = true;
                        true
                    }
                    Framing::Length(length) => {
                        let body_len = usize::try_from(length).expect("bounded by --max-body");
                        if conn.recv.len() >= head_len + body_len {
                            let body = &conn.recv.data()[head_len..head_len + body_len];
                            let phase = self.dispatch(slot, conn.client, &head, body, &mut conn.send);
                            conn.recv.consume(head_len + body_len);
                            conn.phase = phase;
                            conn.answered = true;
                            return true;
                        }
                        if !self.reserve(conn, body_len) {
                            self.fail(conn, HttpError::Busy);
                            return false;
                        }
                        if expect_continue {
                            conn.send.push_bytes(b"HTTP/1.1 100 Continue\r\n\r\n", &mut self.pool);
                        }
                        conn.phase = Phase::Body { head_len, body_len };
                        false
                    }
                    Framing::Chunked => {
                        if expect_continue {
                            conn.send.push_bytes(b"HTTP/1.1 100 Continue\r\n\r\n", &mut self.pool);
                        }
                        conn.phase = Phase::Chunked { head_len, raw: 0, decoder: ChunkedDecoder::default() };
                        true
                    }
                }
            }
            Phase::Body { head_len, body_len } => {
                let (head_len, body_len) = (*head_len, *body_len);
                if conn.recv.len() < head_len + body_len {
                    return false;
                }
                let head = reparse(conn.recv.data(), self.max_body);
                let body = &conn.recv.data()[head_len..head_len + body_len];
                let phase = self.dispatch(slot, conn.client, &head, body, &mut conn.send);
                conn.recv.consume(head_len + body_len);
                conn.phase = phase;
                conn.answered = true;
                self.release(conn);
                true
            }
            Phase::Chunked { head_len, raw, decoder } => {
                let (head_len, used_before) = (*head_len, *raw);
                let input = &conn.recv.data()[head_len + used_before..];
                if input.is_empty() {
                    return false;
                }
                match decoder.decode(input, &mut conn.body, self.max_body) {
                    Err(e) => {
                        self.fail(conn, e);
                        false
                    }
                    Ok(used) if decoder.is_done() => {
                        let head = reparse(conn.recv.data(), self.max_body);
                        let body = std::mem::take(&mut conn.body);
                        let phase = self.dispatch(slot, conn.client, &head, &body, &mut conn.send);
                        conn.recv.consume(head_len + used_before + used);
                        conn.phase = phase;
                        conn.answered = true;
                        self.release(conn);
                        true
                    }
                    Ok(used) => {
                        let grown = conn.body.len().saturating_sub(conn.reserved);
                        if !self.reserve(conn, grown) {
                            self.fail(conn, HttpError::Busy);
                            return false;
                        }
                        let Phase::Chunked { raw, .. } = &mut conn.phase else { unreachable!("still chunked") };
                        *raw += used;
                        if *raw > CHUNK_RAW_COMPACT_BYTES {
                            // The decoded bytes are in `body`; keep only the head and the rest.
                            conn.recv.remove(head_len..head_len + *raw);
                            *raw = 0;
                        }
                        false
                    }
                }
            }
            Phase::Parked { .. } | Phase::Streaming { .. } | Phase::Closing { .. } | Phase::Lingering { .. } => false,
        }
    }

    /// Takes `bytes` more of the global body budget for this connection; false when it is spent.
    fn reserve(&mut self, conn: &mut Connection, bytes: usize) -> bool {
        if self.bodies_reserved + bytes > BODIES_BYTES_MAX {
            return false;
        }
        self.bodies_reserved += bytes;
        conn.reserved += bytes;
        true
    }

    /// Gives back a connection's share of the body budget (its body arrived, or it closed).
    fn release(&mut self, conn: &mut Connection) {
        self.bodies_reserved -= conn.reserved;
        conn.reserved = 0;
    }

    /// Hands one complete request to the core and queues its answer, or parks it. Each request
    /// gets its own ticket, so an answer meant for an earlier request on the same connection can
    /// never be taken for a later one's.
    fn dispatch(
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
        };
        let request =
            Request { method: head.method, target: head.target, headers: head.headers, body, client: Some(client) };
        match self.core.handle(self.now, ticket, &request) {
            Reply::Now(response) => self.queue_answer(send, response, shape),
            Reply::Later => Phase::Parked { ticket, shape },
            Reply::Stream(response) => {
                self.core.metrics_mut().count_request(shape.endpoint, shape.method, response.status);
                send.push_stream_start(response, shape.http10, &self.date, &mut self.pool);
                Phase::Streaming { ticket, chunked: !shape.http10 }
            }
        }
    }

    /// Queues an answer and returns the phase that follows it.
    fn queue_answer(&mut self, send: &mut SendQueue, response: Response, shape: AnswerShape) -> Phase {
        self.core.metrics_mut().count_request(shape.endpoint, shape.method, response.status);
        let keep_alive = shape.keep_alive && !response.close;
        let linger = response.close;
        send.push_response(response, shape.head_only, keep_alive, shape.http10, &self.date, &mut self.pool);
        if keep_alive { Phase::Head { since_ms: None } } else { Phase::Closing { linger } }
    }

    /// Answers a request that cannot be parsed, and closes after it.
    fn fail(&mut self, conn: &mut Connection, e: HttpError) {
        debug!("bad request: {}", e.message());
        let shape = AnswerShape {
            method: Method::Unknown,
            endpoint: usize::MAX,
            head_only: false,
            keep_alive: false,
            http10: false,
        };
        conn.phase = self.queue_answer(&mut conn.send, e.response(), shape);
    }

    /// Writes queued output, up to the write budget.
    fn flush(&mut self, slot: usize, conn: &mut Connection) -> io::Result<()> {
        if conn.send.is_empty() {
            return Ok(());
        }
        let written = conn.send.write_to(&mut conn.socket, WRITE_BUDGET_BYTES, &mut self.pool)?;
        if written > 0 {
            conn.last_progress_ms = self.now.mono_ms;
            self.core.metrics_mut().bytes_sent += written as u64;
        }
        if written >= WRITE_BUDGET_BYTES && !conn.send.is_empty() {
            self.serve_later(slot, conn);
        }
        Ok(())
    }

    fn serve_later(&mut self, slot: usize, conn: &mut Connection) {
        if !conn.queued_again {
            conn.queued_again = true;
            self.again.push((slot, conn.generation));
        }
    }

    fn serve_again(&mut self) {
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

    // ---- Answers from the core and reports from the writer ----------------------------------------

    fn take_reports(&mut self) {
        while let Some(report) = self.workers.try_report() {
            match report {
                Report::Resolved { address, result } => {
                    let mut work = Work::default();
                    let registry = self.poll.registry();
                    self.peers.resolved(&address, result, self.now.mono_ms, registry, &mut self.pool, &mut work);
                    self.peer_work(work);
                }
                Report::Job(done) => self.core.job_done(self.now, done),
            }
        }
    }

    /// Hands peer outcomes to the core and name lookups to the workers.
    fn peer_work(&mut self, work: Work) {
        for (id, outcome) in work.outcomes {
            self.core.peer_reply(self.now, id, outcome);
        }
        for address in work.resolve {
            self.workers.resolve(address);
        }
    }

    /// Carries out what the core asked for, until it asks for nothing more (a peer request that
    /// fails at once gives the core an outcome, which may ask for more).
    fn apply_effects(&mut self) {
        let mut effects = std::mem::take(&mut self.effects);
        loop {
            effects.extend(self.core.drain_effects());
            if effects.is_empty() {
                break;
            }
            for effect in effects.drain(..) {
                match effect {
                    Effect::Answer { ticket, response } => self.answer_parked(ticket, response),
                    Effect::Event { ticket, bytes } => self.stream_event(ticket, &bytes),
                    Effect::Job(job) if !self.workers.is_shut_down() => self.workers.submit(job),
                    Effect::Job(_) => debug!("stopping: a job queued after shutdown is dropped"),
                    Effect::Peer(request) => {
                        let mut work = Work::default();
                        let registry = self.poll.registry();
                        self.peers.send(request, self.now.mono_ms, registry, &mut self.pool, &mut work);
                        self.peer_work(work);
                    }
                }
            }
        }
        self.effects = effects;
    }

    /// Sends the answer to a parked request, then goes on with the requests behind it.
    fn answer_parked(&mut self, ticket: Ticket, response: Response) {
        let slot = (ticket & TICKET_SLOT_MASK) as usize;
        let Some(Some(conn)) = self.conns.get_mut(slot) else { return };
        let shape = match conn.phase {
            Phase::Parked { ticket: parked, shape } if parked == ticket => shape,
            // The connection closed and its slot was reused; the answer has nowhere to go.
            _ => return,
        };
        let mut conn = self.conns[slot].take().expect("checked above");
        conn.phase = self.queue_answer(&mut conn.send, response, shape);
        let verdict = self.drive(slot, &mut conn, true, true);
        self.settle(slot, conn, verdict);
    }

    /// Sends one event on a stream; a reader too slow to keep up is disconnected.
    fn stream_event(&mut self, ticket: Ticket, bytes: &crate::http::Bytes) {
        let slot = (ticket & TICKET_SLOT_MASK) as usize;
        let Some(Some(conn)) = self.conns.get_mut(slot) else { return };
        let Phase::Streaming { ticket: streaming, chunked } = conn.phase else { return };
        if streaming != ticket {
            return;
        }
        let mut conn = self.conns[slot].take().expect("checked above");
        conn.send.push_chunk(bytes.as_slice(), chunked, &mut self.pool);
        let verdict = self.drive(slot, &mut conn, false, true);
        self.settle(slot, conn, verdict);
    }

    // ---- Timers ----------------------------------------------------------------------------------

    fn arm_timer(&mut self, slot: usize, conn: &mut Connection) {
        conn.deadline_ms = self.deadline(conn);
        if conn.deadline_ms < conn.armed_ms {
            conn.armed_ms = conn.deadline_ms;
            self.timers.push(Reverse((conn.deadline_ms, slot, conn.generation)));
        }
    }

    fn deadline(&self, conn: &Connection) -> u64 {
        if !conn.send.is_empty() {
            return conn.last_progress_ms + SEND_STALL_TIMEOUT_MS;
        }
        match conn.phase {
            Phase::Head { since_ms: None } => conn.last_progress_ms + IDLE_TIMEOUT_MS,
            Phase::Head { since_ms: Some(since) } => since + HEAD_TIMEOUT_MS,
            Phase::Body { .. } | Phase::Chunked { .. } => conn.last_progress_ms + BODY_STALL_TIMEOUT_MS,
            Phase::Parked { .. } | Phase::Streaming { .. } => u64::MAX,
            Phase::Closing { .. } => conn.last_progress_ms + SEND_STALL_TIMEOUT_MS,
            Phase::Lingering { until_ms, .. } => until_ms,
        }
    }

    fn expire_timers(&mut self) {
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if at > self.now.mono_ms {
                return;
            }
            self.timers.pop();
            let Some(Some(conn)) = self.conns.get_mut(slot) else { continue };
            if conn.generation != generation {
                continue;
            }
            if conn.armed_ms == at {
                conn.armed_ms = u64::MAX;
            }
            let mut conn = self.conns[slot].take().expect("checked above");
            if conn.deadline_ms > self.now.mono_ms {
                self.arm_timer(slot, &mut conn);
                self.conns[slot] = Some(conn);
                continue;
            }
            self.time_out(slot, conn);
        }
    }

    /// A connection's deadline passed: a request that was on its way gets 408; anything else
    /// (idle, stalled output, lingering) just closes.
    fn time_out(&mut self, slot: usize, mut conn: Connection) {
        let request_in_progress = match conn.phase {
            Phase::Head { since_ms } => since_ms.is_some(),
            Phase::Body { .. } | Phase::Chunked { .. } => true,
            _ => false,
        };
        if request_in_progress && conn.send.is_empty() {
            self.fail(&mut conn, HttpError::Timeout);
            let _ = conn.send.write_to(&mut conn.socket, WRITE_BUDGET_BYTES, &mut self.pool);
        }
        self.close(conn);
        self.free_slots.push(slot);
    }

    // ---- Stopping --------------------------------------------------------------------------------

    /// Stops accepting, lets the writer finish the snapshot in flight, sends the answers that
    /// produced, and returns.
    fn stop(mut self) -> io::Result<()> {
        if self.core.is_writing() {
            info!("stopping: finishing the snapshot write in flight");
        } else {
            info!("stopping");
        }
        self.listener = None;
        let mut byte = [0u8; 64];
        let _ = self.signals.read(&mut byte);
        self.workers.shutdown();
        while let Some(report) = self.workers.try_report() {
            if let Report::Job(done) = report {
                self.core.job_done(self.now, done);
            }
        }
        let mut effects = std::mem::take(&mut self.effects);
        effects.extend(self.core.drain_effects());
        for effect in effects {
            if let Effect::Answer { ticket, response } = effect {
                self.answer_parked(ticket, response);
            }
        }
        for slot in 0..self.conns.len() {
            if let Some(conn) = self.conns[slot].as_mut() {
                let _ = conn.send.write_to(&mut conn.socket, WRITE_BUDGET_BYTES, &mut self.pool);
            }
        }
        info!("stopped");
        Ok(())
    }
}

impl Phase {
    /// How many bytes a connection in this phase may hold unparsed; `None`: do not read now.
    fn receive_limit(&self) -> Option<usize> {
        match *self {
            Phase::Head { .. } => Some(REQUEST_HEAD_BYTES_MAX + BUFFER_BYTES),
            Phase::Body { head_len, body_len } => Some(head_len + body_len + BUFFER_BYTES),
            Phase::Chunked { head_len, raw, .. } => Some(head_len + raw + CHUNK_RAW_COMPACT_BYTES + BUFFER_BYTES),
            Phase::Lingering { .. } | Phase::Streaming { .. } => Some(BUFFER_BYTES),
            // Read while parked, to see a client that leaves; requests behind wait unparsed.
            Phase::Parked { .. } => Some(REQUEST_HEAD_BYTES_MAX + BUFFER_BYTES),
            Phase::Closing { .. } => None,
        }
    }
}

/// Parses a head that parsed before (its body has now arrived).
fn reparse(data: &[u8], max_body: u64) -> Head<'_> {
    match http::parse_head(data, max_body) {
        Ok(Some(head)) => head,
        other => unreachable!("a head that parsed once parses again: {other:?}"),
    }
}

/// Answers a connection over the limit with 503 and closes it, without registering it.
fn refuse(mut socket: TcpStream) {
    // Reading what the client already sent avoids a reset that would hide the answer.
    let mut scratch = [0u8; 4096];
    let _ = socket.read(&mut scratch);
    let _ = socket.write(OVER_CAPACITY);
    let _ = socket.shutdown(Shutdown::Write);
}

fn is_out_of_resources(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_over_capacity_answer_has_the_right_length() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }
}
