//! Outbound HTTP/1.1 connections to peers, on the event loop next to the client connections.
//!
//! One link per peer address: a non-blocking connect with a timeout, then a keep-alive
//! connection that carries up to `PEER_IN_FLIGHT_MAX` pipelined requests and parses the answers
//! with httparse, in order. A link that fails (refused, reset, timed out, garbage) fails every
//! request on it. A failed *connect* also makes the link rest before the next attempt, doubling
//! the rest up to a cap, and requests that arrive while it rests fail at once: an unreachable
//! peer costs the clients nothing, just one failed connect every few seconds. A connection that
//! was up and then broke is simply reconnected by the next request (the sync period already
//! spaces them), so a healed link is used again within one sync period.
//!
//! Host names are resolved on a worker thread (a DNS lookup can block), numeric addresses at once.

use crate::core::NOT_SENT;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use log::{debug, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::core::clock::{Deadline, Now};
use crate::core::{PeerReply, PeerRequest};
use crate::http::{self, Reader, Side, Step};
use crate::limits::{
    PEER_BACKOFF_MAX_MS, PEER_BACKOFF_MIN_MS, PEER_CONNECT_TIMEOUT_MS, PEER_IN_FLIGHT_MAX, PEER_QUEUE_MAX,
    PEER_RESPONSE_STALL_MS, PEER_TOKEN_BASE, PEERS_MAX, READ_BUDGET_BYTES, WRITE_BUDGET_BYTES,
};
use crate::shell::buffer::{Pool, Received, RecvBuffer, SendQueue};
use crate::shell::tls::{Connector, TLS_FAILURE};
use crate::shell::transport::Transport;

/// The outcome of one request to a peer.
pub type Outcome = (u64, Result<PeerReply, String>);

/// Where a link's address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Unresolved,
    /// A worker is looking the name up.
    Resolving,
    Resolved(SocketAddr),
}

struct PeerConnection {
    /// The socket, under TLS when this node speaks TLS.
    socket: Transport,
    connected: bool,
    send: SendQueue,
    recv: RecvBuffer,
    reader: Reader,
    writable_interest: bool,
}

struct Link {
    address: String,
    target: Target,
    conn: Option<PeerConnection>,
    /// Requests waiting to be written, oldest first.
    queue: VecDeque<PeerRequest>,
    /// Ids of requests written and not yet answered, in order.
    sent: VecDeque<u64>,
    /// Resting after a failure until this time.
    resting_until: Deadline,
    backoff_ms: u64,
    /// A TLS failure was logged as a warning since the link last worked: a certificate the
    /// peer does not accept, or that `--peer-ca` does not sign, is told once, not at every retry.
    tls_failure_told: bool,
    /// The connect deadline, or when an awaited answer counts as stalled.
    deadline: Deadline,
}

/// All peer links.
pub struct Peers {
    links: Vec<Link>,
    /// Links that stopped reading or writing on their budget, to serve again next turn: with
    /// edge-triggered events, no new event would come for bytes already waiting.
    again: Vec<usize>,
    max_body: u64,
    /// Sent with every request (the cluster key, with the hardening work).
    extra_headers: String,
    /// Makes TLS sessions for new connections when this node speaks TLS (`--tls-cert`).
    connector: Option<Connector>,
}

/// What the loop must do for the links after a call.
#[derive(Default)]
pub struct Work {
    pub outcomes: Vec<Outcome>,
    /// Names to resolve on a worker thread.
    pub resolve: Vec<String>,
    /// Bytes written to peers (requests' heads and bodies), for `lighthouse_peer_sent_bytes_total`.
    pub sent_bytes: u64,
}

impl Peers {
    pub fn new(max_body: u64, extra_headers: String, connector: Option<Connector>) -> Peers {
        Peers { links: Vec::new(), again: Vec::new(), max_body, extra_headers, connector }
    }

    /// New connections verify peers with this (the certificates were re-read); open ones go on.
    pub fn set_connector(&mut self, connector: Connector) {
        self.connector = Some(connector);
    }

    /// The header lines sent with every request from now on (the secrets were read again).
    pub fn set_headers(&mut self, extra_headers: String) {
        self.extra_headers = extra_headers;
    }

    /// Queues a request for its peer, connecting if needed.
    pub fn send(&mut self, request: PeerRequest, now: Now, registry: &Registry, pool: &mut Pool, work: &mut Work) {
        let index = match self.links.iter().position(|l| l.address == request.peer) {
            Some(index) => index,
            None if self.links.len() >= PEERS_MAX * 2 => {
                work.outcomes.push((request.id, Err(format!("{NOT_SENT}too many peer links"))));
                return;
            }
            None => {
                self.links.push(Link::new(&request.peer));
                self.links.len() - 1
            }
        };
        let link = &mut self.links[index];
        if !link.resting_until.fired(now) {
            let wait = link.resting_until.remaining_ms(now);
            work.outcomes.push((request.id, Err(format!("{NOT_SENT}unreachable; next attempt in {wait} ms"))));
            return;
        }
        if link.queue.len() >= PEER_QUEUE_MAX {
            work.outcomes.push((request.id, Err(format!("{NOT_SENT}too many requests waiting for this peer"))));
            return;
        }
        link.queue.push_back(request);
        self.advance(index, now, registry, pool, work);
    }

    /// A worker resolved (or failed to resolve) a name.
    pub fn resolved(
        &mut self,
        address: &str,
        result: Result<SocketAddr, String>,
        now: Now,
        registry: &Registry,
        pool: &mut Pool,
        work: &mut Work,
    ) {
        let Some(index) = self.links.iter().position(|l| l.address == address) else { return };
        match result {
            Ok(socket_address) => {
                self.links[index].target = Target::Resolved(socket_address);
                self.advance(index, now, registry, pool, work);
            }
            Err(e) => {
                self.links[index].target = Target::Unresolved;
                self.fail(index, &format!("cannot resolve {address}: {e}"), now, pool, work);
            }
        }
    }

    /// A poller event for link token `token`.
    pub fn ready(&mut self, token: usize, now: Now, registry: &Registry, pool: &mut Pool, work: &mut Work) {
        let index = token - PEER_TOKEN_BASE;
        if index >= self.links.len() || self.links[index].conn.is_none() {
            return;
        }
        if let Err(e) = self.read(index, now, pool, work) {
            self.fail(index, &e, now, pool, work);
            return;
        }
        if self.links[index].conn.as_ref().is_some_and(|c| !c.connected)
            && let Err(e) = self.links[index].check_connected()
        {
            self.fail(index, &e, now, pool, work);
            return;
        }
        self.advance(index, now, registry, pool, work);
    }

    /// Serves the links that used their budget last turn.
    pub fn serve_again(&mut self, now: Now, registry: &Registry, pool: &mut Pool, work: &mut Work) {
        let mut again = std::mem::take(&mut self.again);
        again.sort_unstable();
        again.dedup();
        for index in again {
            self.ready(PEER_TOKEN_BASE + index, now, registry, pool, work);
        }
    }

    /// True when some link waits to be served again without an event.
    pub fn has_work_waiting(&self) -> bool {
        !self.again.is_empty()
    }

    /// Fails links whose connect or answer is overdue.
    pub fn expire(&mut self, now: Now, pool: &mut Pool, work: &mut Work) {
        for index in 0..self.links.len() {
            let link = &self.links[index];
            let waiting =
                link.conn.is_some() && (!link.sent.is_empty() || link.conn.as_ref().is_some_and(|c| !c.connected));
            if waiting && link.deadline.fired(now) {
                let what = if link.conn.as_ref().is_some_and(|c| c.connected) {
                    "no answer in time"
                } else {
                    "connect timed out"
                };
                self.fail(index, what, now, pool, work);
            }
        }
    }

    /// The earliest link deadline.
    pub fn next_deadline(&self) -> Option<Deadline> {
        self.links
            .iter()
            .filter(|l| l.conn.as_ref().is_some_and(|c| !c.connected) || !l.sent.is_empty())
            .map(|l| l.deadline)
            .min()
    }

    /// Connects, writes what is queued, and keeps the poller interest right.
    fn advance(&mut self, index: usize, now: Now, registry: &Registry, pool: &mut Pool, work: &mut Work) {
        if let Err(e) = self.try_advance(index, now, registry, pool, work) {
            self.fail(index, &e, now, pool, work);
        }
    }

    fn try_advance(
        &mut self,
        index: usize,
        now: Now,
        registry: &Registry,
        pool: &mut Pool,
        work: &mut Work,
    ) -> Result<(), String> {
        let link = &mut self.links[index];
        if link.queue.is_empty() && link.sent.is_empty() {
            return Ok(());
        }
        if link.conn.is_none() {
            let address = match link.target {
                Target::Resolved(address) => address,
                Target::Resolving => return Ok(()),
                Target::Unresolved => match link.address.parse::<SocketAddr>() {
                    Ok(address) => {
                        link.target = Target::Resolved(address);
                        address
                    }
                    Err(_) => {
                        link.target = Target::Resolving;
                        work.resolve.push(link.address.clone());
                        return Ok(());
                    }
                },
            };
            let socket = TcpStream::connect(address).map_err(|e| format!("connect: {e}"))?;
            let mut socket = match &self.connector {
                Some(connector) => connector.connect(socket, &link.address)?,
                None => Transport::Plain(socket),
            };
            registry
                .register(&mut socket, Token(PEER_TOKEN_BASE + index), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| format!("register: {e}"))?;
            link.conn = Some(PeerConnection {
                socket,
                connected: false,
                send: SendQueue::default(),
                recv: RecvBuffer::default(),
                reader: Reader::new(Side::Answers, self.max_body),
                writable_interest: true,
            });
            link.deadline = Deadline::after(now, PEER_CONNECT_TIMEOUT_MS);
            return Ok(());
        }
        if !link.check_connected()? {
            return Ok(());
        }
        let conn = link.conn.as_mut().expect("checked above");
        while link.sent.len() < PEER_IN_FLIGHT_MAX {
            let Some(request) = link.queue.pop_front() else { break };
            let mut head = Vec::with_capacity(256);
            http::encode_request_head(
                request.method,
                &request.path,
                &link.address,
                request.body.len(),
                &self.extra_headers,
                &mut head,
            );
            // The request's own header lines go before the blank line that ends the head.
            head.truncate(head.len() - 2);
            head.extend_from_slice(request.headers.as_bytes());
            head.extend_from_slice(b"\r\n");
            conn.send.push_bytes(&head, pool);
            conn.send.push_body(request.body, pool);
            if link.sent.is_empty() {
                link.deadline = Deadline::after(now, PEER_RESPONSE_STALL_MS);
            }
            link.sent.push_back(request.id);
        }
        let written =
            conn.send.write_to(&mut conn.socket, WRITE_BUDGET_BYTES, pool).map_err(|e| format!("write: {e}"))?;
        conn.socket.flush_records().map_err(|e| format!("write: {e}"))?;
        work.sent_bytes += written as u64;
        if written >= WRITE_BUDGET_BYTES && !conn.send.is_empty() {
            self.again.push(index);
        }
        let want_writable = !conn.send.is_empty() || conn.socket.wants_write();
        if want_writable != conn.writable_interest {
            let interest = if want_writable { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            registry
                .reregister(&mut conn.socket, Token(PEER_TOKEN_BASE + index), interest)
                .map_err(|e| format!("{e}"))?;
            conn.writable_interest = want_writable;
        }
        Ok(())
    }

    /// Reads and parses answers until the socket has no more.
    fn read(&mut self, index: usize, now: Now, pool: &mut Pool, work: &mut Work) -> Result<(), String> {
        let link = &mut self.links[index];
        let mut budget = READ_BUDGET_BYTES;
        loop {
            let Some(conn) = link.conn.as_mut().filter(|c| c.connected) else { return Ok(()) };
            let held_max = conn.reader.receive_limit();
            match conn.recv.read_from(&mut conn.socket, held_max, pool) {
                Received::Bytes(n) => {
                    budget = budget.saturating_sub(n);
                    link.deadline = Deadline::after(now, PEER_RESPONSE_STALL_MS);
                }
                Received::WouldBlock => break,
                Received::Eof => {
                    take_answers(link, true, work)?;
                    if !link.sent.is_empty() {
                        return Err("the peer closed the connection".into());
                    }
                    // An idle keep-alive connection the peer closed: reconnect on the next request.
                    drop_connection(link, pool);
                    return Ok(());
                }
                Received::Full => {}
                Received::Error(e) => return Err(format!("read: {e}")),
            }
            take_answers(link, false, work)?;
            if link.conn.as_ref().is_some_and(|c| c.recv.len() >= c.reader.receive_limit()) {
                return Err("answer too large".into());
            }
            if budget == 0 {
                self.again.push(index);
                break;
            }
        }
        take_answers(link, false, work)?;
        if let Some(conn) = link.conn.as_mut() {
            conn.recv.release_if_empty(pool);
        }
        Ok(())
    }

    /// Fails every request of a link and closes it. If it never connected, the link rests
    /// before the next attempt, and the rest doubles.
    fn fail(&mut self, index: usize, why: &str, now: Now, pool: &mut Pool, work: &mut Work) {
        let link = &mut self.links[index];
        if why.contains(TLS_FAILURE) && !link.tls_failure_told {
            link.tls_failure_told = true;
            warn!("peer {}: {why} (see --peer-ca, and the certificate it serves)", link.address);
        } else {
            debug!("peer {}: {why}", link.address);
        }
        for id in link.sent.drain(..) {
            work.outcomes.push((id, Err(why.to_string())));
        }
        for request in link.queue.drain(..) {
            work.outcomes.push((request.id, Err(format!("{NOT_SENT}{why}"))));
        }
        let never_connected = link.conn.as_ref().is_none_or(|c| !c.connected);
        drop_connection(link, pool);
        if never_connected {
            if link.address.parse::<SocketAddr>().is_err() {
                link.target = Target::Unresolved;
            }
            link.resting_until = Deadline::after(now, link.backoff_ms);
            link.backoff_ms = (link.backoff_ms * 2).min(PEER_BACKOFF_MAX_MS);
        }
    }
}

impl Link {
    /// Whether a pending connect has completed: `Ok(false)` while it is still under way.
    fn check_connected(&mut self) -> Result<bool, String> {
        let Some(conn) = self.conn.as_mut() else { return Ok(false) };
        if conn.connected {
            return Ok(true);
        }
        if let Ok(Some(e)) | Err(e) = conn.socket.take_error() {
            return Err(format!("connect: {e}"));
        }
        match conn.socket.peer_addr() {
            Ok(_) => {
                conn.connected = true;
                let _ = conn.socket.set_nodelay(true);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(format!("connect: {e}")),
        }
    }

    fn new(address: &str) -> Link {
        Link {
            address: address.to_string(),
            target: Target::Unresolved,
            conn: None,
            queue: VecDeque::new(),
            sent: VecDeque::new(),
            resting_until: Deadline(0),
            backoff_ms: PEER_BACKOFF_MIN_MS,
            tls_failure_told: false,
            deadline: Deadline(u64::MAX),
        }
    }
}

fn drop_connection(link: &mut Link, pool: &mut Pool) {
    if let Some(mut conn) = link.conn.take() {
        conn.recv.consume(conn.recv.len());
        conn.recv.release_if_empty(pool);
    }
}

/// Takes every complete answer out of the receive buffer; `closed`: the peer closed its side.
fn take_answers(link: &mut Link, closed: bool, work: &mut Work) -> Result<(), String> {
    loop {
        let Some(conn) = link.conn.as_mut() else { return Ok(()) };
        match conn.reader.step(conn.recv.data(), closed).map_err(|e| e.message().to_string())? {
            Step::More | Step::Body { consume: 0, .. } => return Ok(()),
            Step::Consume(used) | Step::Body { consume: used, .. } => conn.recv.consume(used),
            Step::Ready => {
                let (head, head_bytes, body) = conn.reader.answer(conn.recv.data());
                let reply =
                    PeerReply { status: head.status, headers: http::relayed_headers(head_bytes), body: body.to_vec() };
                let keep_alive = head.keep_alive;
                let used = conn.reader.finish();
                conn.recv.consume(used);
                let id = link.sent.pop_front().ok_or("an answer nobody asked for")?;
                // A complete answer: the link works, so the next failure starts the backoff afresh.
                link.backoff_ms = PEER_BACKOFF_MIN_MS;
                link.tls_failure_told = false;
                work.outcomes.push((id, Ok(reply)));
                if !keep_alive && link.sent.is_empty() {
                    link.conn = None;
                    return Ok(());
                }
            }
        }
    }
}
