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

use crate::core::clock::Deadline;
use crate::core::clock::{Now, http_date};
use crate::core::{Effect, Node, Ticket};
use crate::http::{HttpError, Response};
use crate::limits::{
    ACCEPT_BUDGET, ACCEPT_PAUSE_MS, CONNECTION_TOKEN_BASE, EVENTS_CAPACITY, OVER_CAPACITY_SCRATCH_BYTES,
    PEER_TOKEN_BASE, TICKET_SLOT_BITS, WRITE_BUDGET_BYTES,
};
use crate::shell::buffer::Pool;
use crate::shell::connection::{Connection, NEVER, Phase};
use crate::shell::peers::{Peers, Work};
use crate::shell::system_clock::SystemClock;
use crate::shell::tls::Tls;
use crate::shell::transport::Transport;

mod serve;
use crate::shell::workers::{Report, Workers};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const SIGNALS: Token = Token(2);
const TICKET_SLOT_MASK: u64 = (1 << TICKET_SLOT_BITS) - 1;

/// The answer sent to a connection over `--max-connections`, before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nServer: lighthouse\r\nContent-Type: application/json\r\n\
Content-Length: 57\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{\"error\": \"too many connections, see --max-connections\"}\n";

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
    timers: BinaryHeap<Reverse<(Deadline, usize, u64)>>,
    /// Connections to serve again this turn without an event: (slot, generation).
    again: Vec<(usize, u64)>,
    /// The listener used its budget, or rests after EMFILE until this time.
    accept_more: bool,
    accept_paused_until: Option<Deadline>,
    effects: Vec<Effect>,
    /// Bytes of request bodies being received, across connections (at most `BODIES_BYTES_MAX`).
    bodies_reserved: usize,
    /// Numbers the requests handed to the core, for their tickets.
    request_serial: u64,
    peers: Peers,
    max_body: u64,
    max_connections: usize,
    /// The origins allowed to use this server from a browser (`--cors`).
    cors: Option<&'static crate::http::Cors>,
    /// The `Host` names served, on a node bound to loopback (DNS rebinding).
    host_guard: Option<crate::http::HostGuard>,
    /// The token files and the cluster key, read again on SIGHUP.
    secret_files: crate::shell::tokens::SecretFiles,
    /// HTTPS for new connections (`--tls-cert`), re-read on SIGHUP.
    tls: Option<Tls>,
}

/// What the loop needs to start: everything else it builds.
pub struct Parts {
    pub listener: TcpListener,
    pub core: Node,
    pub disk: crate::shell::data_dir::DiskConfig,
    pub clock: SystemClock,
    pub max_body: u64,
    pub max_connections: usize,
    pub cors: Option<crate::http::Cors>,
    /// On a node bound to a loopback address: the `Host` names it serves (DNS rebinding).
    pub host_guard: Option<crate::http::HostGuard>,
    /// Header lines sent with every request to a peer (the cluster key).
    pub peer_headers: String,
    /// The token files and the cluster key, read again on SIGHUP.
    pub secret_files: crate::shell::tokens::SecretFiles,
    /// Clients and peers over TLS (`--tls-cert`).
    pub tls: Option<Tls>,
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
            accept_paused_until: None,
            effects: Vec::new(),
            bodies_reserved: 0,
            request_serial: 0,
            peers: Peers::new(parts.max_body, parts.peer_headers, parts.tls.as_ref().map(Tls::connector)),
            max_body: parts.max_body,
            max_connections: parts.max_connections,
            // Lives as long as the process: answers borrow its header blocks without a copy.
            cors: parts.cors.map(|cors| &*Box::leak(Box::new(cors))),
            host_guard: parts.host_guard,
            secret_files: parts.secret_files,
            tls: parts.tls,
        })
    }

    /// Serves until SIGTERM or SIGINT, then finishes the snapshot write in flight and returns.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        // What the core asked for while it started (a write of its state, a first sync) goes out
        // before the first wait.
        self.before_sleep();
        loop {
            if let Err(e) = self.poll.poll(&mut events, self.poll_timeout()) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.tick_clock();
            let stop = self.handle_events(&events);
            self.before_sleep();
            if stop {
                return self.stop();
            }
        }
    }

    /// Serves what the poller reported ready; true when a stop signal arrived.
    fn handle_events(&mut self, events: &Events) -> bool {
        let mut stop = false;
        for event in events.iter() {
            match event.token() {
                LISTENER => self.accept(),
                WAKER => self.take_reports(),
                SIGNALS => stop |= self.take_signals(),
                Token(t) if t >= PEER_TOKEN_BASE => {
                    let mut work = Work::default();
                    self.peers.ready(t, self.now, self.poll.registry(), &mut self.pool, &mut work);
                    self.peer_work(work);
                }
                Token(t) => {
                    let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                    self.serve(t - CONNECTION_TOKEN_BASE, readable, event.is_writable());
                }
            }
        }
        stop
    }

    /// What every turn of the loop does after its events, in this order (Redis's `beforeSleep`):
    /// serve again the connections and peer links that used their budget (edge-triggered events
    /// would not come back for bytes already waiting), accept more if the listener used its
    /// budget or its pause is over, run the core's timers (leases, sync rounds, retries, watches),
    /// fail overdue peer requests, carry out what the core asked for, and time out connections.
    fn before_sleep(&mut self) {
        self.serve_again();
        let mut work = Work::default();
        self.peers.serve_again(self.now, self.poll.registry(), &mut self.pool, &mut work);
        self.peer_work(work);
        if self.accept_more || self.accept_paused_until.is_some_and(|t| t.fired(self.now)) {
            self.accept();
        }
        self.core.tick(self.now);
        let mut work = Work::default();
        self.peers.expire(self.now, &mut self.pool, &mut work);
        self.peer_work(work);
        self.apply_effects();
        self.expire_timers();
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
            self.timers.peek().map(|Reverse((at, _, _))| at.0),
            self.core.next_deadline().map(|d| d.0),
            self.peers.next_deadline().map(|d| d.0),
            self.accept_paused_until.map(|t| t.0),
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(Duration::from_millis(next.saturating_sub(self.now.mono_ms)))
    }

    // ---- Accepting ------------------------------------------------------------------------------

    fn accept(&mut self) {
        self.accept_more = false;
        self.accept_paused_until = None;
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
                    self.accept_paused_until = Some(Deadline::after(self.now, ACCEPT_PAUSE_MS));
                    return;
                }
                Err(e) => debug!("accept failed: {e}"),
            }
        }
        self.accept_more = true;
    }

    fn add_connection(&mut self, socket: TcpStream, client: std::net::SocketAddr) -> io::Result<usize> {
        let mut socket = match &self.tls {
            Some(tls) => tls.accept(socket)?,
            None => Transport::Plain(socket),
        };
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
        let mut conn = Connection::new(socket, client, generation, Deadline(self.now.mono_ms), self.max_body);
        self.arm_timer(slot, &mut conn);
        self.conns[slot] = Some(conn);
        self.open += 1;
        let metrics = self.core.metrics_mut();
        metrics.connections_accepted += 1;
        metrics.connections_open = self.open as u64;
        Ok(slot)
    }

    // ---- Answers from the core and reports from the writer ----------------------------------------

    fn take_reports(&mut self) {
        while let Some(report) = self.workers.try_report() {
            match report {
                Report::Resolved { address, result } => {
                    let mut work = Work::default();
                    let registry = self.poll.registry();
                    self.peers.resolved(&address, result, self.now, registry, &mut self.pool, &mut work);
                    self.peer_work(work);
                }
                Report::Job(done) => self.core.job_done(self.now, *done),
            }
        }
    }

    /// Hands peer outcomes to the core and name lookups to the workers.
    fn peer_work(&mut self, work: Work) {
        self.core.metrics_mut().peer_bytes_sent += work.sent_bytes;
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
                    Effect::Event { ticket, bytes } => self.stream_event(ticket, bytes),
                    Effect::Job(job) if !self.workers.is_shut_down() => self.workers.submit(job),
                    Effect::Job(_) => debug!("stopping: a job queued after shutdown is dropped"),
                    Effect::Peer(request) => {
                        let mut work = Work::default();
                        let registry = self.poll.registry();
                        self.peers.send(request, self.now, registry, &mut self.pool, &mut work);
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
    fn stream_event(&mut self, ticket: Ticket, bytes: crate::http::Bytes) {
        let slot = (ticket & TICKET_SLOT_MASK) as usize;
        let Some(Some(conn)) = self.conns.get_mut(slot) else { return };
        let Phase::Streaming { ticket: streaming, chunked, behind_from } = &mut conn.phase else { return };
        if *streaming != ticket {
            return;
        }
        let caught_up = conn.send.is_empty();
        conn.send.push_chunk(bytes, *chunked, &mut self.pool);
        if caught_up {
            // The reader took everything before this event: it is not behind, however large
            // the event (a whole large subtree); what queues after it counts.
            *behind_from = conn.send.end();
        }
        let mut conn = self.conns[slot].take().expect("checked above");
        let verdict = self.drive(slot, &mut conn, false, true);
        self.settle(slot, conn, verdict);
    }

    // ---- Timers ----------------------------------------------------------------------------------

    fn arm_timer(&mut self, slot: usize, conn: &mut Connection) {
        conn.deadline = conn.timer();
        if conn.deadline < conn.armed {
            conn.armed = conn.deadline;
            self.timers.push(Reverse((conn.deadline, slot, conn.generation)));
        }
    }

    fn expire_timers(&mut self) {
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if !at.fired(self.now) {
                return;
            }
            self.timers.pop();
            let Some(Some(conn)) = self.conns.get_mut(slot) else { continue };
            if conn.generation != generation {
                continue;
            }
            if conn.armed == at {
                conn.armed = NEVER;
            }
            let mut conn = self.conns[slot].take().expect("checked above");
            if !conn.deadline.fired(self.now) {
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
        if conn.request_in_progress() && conn.send.is_empty() {
            self.fail(&mut conn, HttpError::Timeout);
            let _ = conn.send.write_to(&mut conn.socket, WRITE_BUDGET_BYTES, &mut self.pool);
            let _ = conn.socket.flush_records();
        }
        self.close(conn);
        self.free_slots.push(slot);
    }

    // ---- Signals ---------------------------------------------------------------------------------

    /// Takes the bytes the signal handler wrote (the pipe is edge-triggered: read until it is
    /// empty); true when one says stop. SIGHUP reads again the token files and the cluster key,
    /// and the TLS certificates: a file that cannot be used leaves the one in use in place.
    fn take_signals(&mut self) -> bool {
        let (mut stop, mut reload) = (false, false);
        let mut bytes = [0u8; 64];
        loop {
            match self.signals.read(&mut bytes) {
                Ok(0) => break,
                Ok(n) => {
                    stop |= bytes[..n].contains(&crate::shell::sys::SIGNAL_STOP);
                    reload |= bytes[..n].contains(&crate::shell::sys::SIGNAL_RELOAD);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if reload && !stop {
            self.reload_secrets();
            self.reload_tls();
        }
        stop
    }

    /// SIGHUP: the token files and the cluster key again, so a token is rotated without a
    /// restart. A file that cannot be read or is malformed keeps the secrets in use.
    fn reload_secrets(&mut self) {
        match self.secret_files.read() {
            Ok(secrets) => {
                self.core.set_access(secrets.access());
                self.peers.set_headers(secrets.peer_headers());
                info!("SIGHUP: the token files were read again: {} tokens", secrets.count());
            }
            Err(e) => error!("SIGHUP: {e}; the tokens in use are kept"),
        }
    }

    /// SIGHUP: the certificate and key again (`--tls-cert`); new connections get them.
    fn reload_tls(&mut self) {
        if let Some(tls) = &mut self.tls {
            match tls.reload() {
                Ok(()) => {
                    info!("SIGHUP: re-read the TLS certificate and key; new connections use them");
                    self.peers.set_connector(tls.connector());
                }
                Err(why) => error!("SIGHUP: {why}; still serving the certificate read before"),
            }
        }
    }

    // ---- Stopping --------------------------------------------------------------------------------

    /// Before the workers stop: the write in flight ends, and so does every write the core asks
    /// for after it, until none is in flight. A version served while an older one was being
    /// written (a copy taken from a peer, a commit waiting for the disk) is on disk when a clean
    /// stop ends, so the next start serves it, not the older one. The answers are sent by `stop`.
    fn finish_writes(&mut self) {
        let mut effects = std::mem::take(&mut self.effects);
        loop {
            effects.extend(self.core.drain_effects());
            for effect in effects.drain(..) {
                match effect {
                    Effect::Job(job) if job.writes() => self.workers.submit(job),
                    answer @ Effect::Answer { .. } => self.effects.push(answer),
                    // Peers, streams and renders: nobody is served any more.
                    _ => {}
                }
            }
            if !self.core.is_writing() {
                return;
            }
            match self.workers.wait_report() {
                Some(Report::Job(done)) => self.core.job_done(self.now, *done),
                Some(Report::Resolved { .. }) => {}
                None => return,
            }
        }
    }

    /// Stops accepting, lets the writer finish the writes the store needs (`finish_writes`) and
    /// a full snapshot, sends the answers that produced, and returns.
    fn stop(mut self) -> io::Result<()> {
        if self.core.is_writing() {
            info!("stopping: finishing the snapshot write in flight");
        } else {
            info!("stopping");
        }
        self.listener = None;
        let mut byte = [0u8; 64];
        let _ = self.signals.read(&mut byte);
        self.finish_writes();
        if let Some(job) = self.core.closing_snapshot() {
            info!("stopping: writing a full snapshot of the store, so that the next start reads one file");
            self.workers.submit(job);
        }
        self.workers.shutdown();
        while let Some(report) = self.workers.try_report() {
            if let Report::Job(done) = report {
                self.core.job_done(self.now, *done);
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
                // An event stream ends as a chunked answer ends, so its client sees a whole
                // answer (curl exits 0) rather than a cut connection, and reconnects elsewhere.
                if let Phase::Streaming { chunked: true, .. } = conn.phase {
                    conn.send.push_bytes(b"0\r\n\r\n", &mut self.pool);
                }
                let _ = conn.send.write_to(&mut conn.socket, WRITE_BUDGET_BYTES, &mut self.pool);
                let _ = conn.socket.flush_records();
            }
        }
        info!("stopped");
        Ok(())
    }
}

/// Answers a connection over the limit with 503 and closes it, without registering it.
fn refuse(mut socket: TcpStream) {
    // Reading what the client already sent avoids a reset that would hide the answer.
    let mut scratch = [0u8; OVER_CAPACITY_SCRATCH_BYTES];
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
