//! One client connection: its socket, where it is in its request cycle (`Phase`), its buffers and
//! its timer. The event loop drives it; this file says what each phase means, how much input it
//! may hold, and when its timer fires.

use crate::core::Ticket;
use crate::core::clock::Deadline;
use crate::http::{Method, Reader, Side};
use crate::limits::{
    BODY_STALL_TIMEOUT_MS, BUFFER_BYTES, HEAD_TIMEOUT_MS, IDLE_TIMEOUT_MS, REQUEST_HEAD_BYTES_MAX,
    SEND_STALL_TIMEOUT_MS,
};
use crate::shell::buffer::{RecvBuffer, SendQueue};
use crate::shell::transport::Transport;

/// How an answer is framed, remembered while its request waits in the core.
#[derive(Debug, Clone, Copy)]
pub struct AnswerShape {
    pub method: Method,
    /// The endpoint family, for the request counters.
    pub endpoint: usize,
    pub head_only: bool,
    pub keep_alive: bool,
    pub http10: bool,
    /// The allowed origin of a cross-origin request (`--cors`), whose headers the answer carries.
    pub cors: Option<u16>,
}

/// Where a connection is in its request cycle.
#[derive(Debug)]
pub enum Phase {
    /// Reading a request (the reader knows whether a head or a body); `since` is when the first
    /// byte of its head arrived (`None`: idle between requests).
    Reading { since: Option<Deadline> },
    /// The core answers later; later requests wait in the receive buffer, in order.
    Parked { ticket: Ticket, shape: AnswerShape },
    /// An event stream: the core sends events until the client goes. Input is read only to see
    /// the client close; `chunked` is false for an HTTP/1.0 client (the stream ends at close).
    /// Output queued after position `behind_from` of the send queue counts as the reader falling
    /// behind (`STREAM_BACKLOG_BYTES_MAX`): the first event, and an event queued for a reader that
    /// had taken everything before it, may be of any size.
    Streaming { ticket: Ticket, chunked: bool, behind_from: u64 },
    /// The last answer is queued; close once it is sent. `linger` drains unread input first, so
    /// the client reads the answer instead of a reset.
    Closing { linger: bool },
    /// Write side shut after the last answer; discarding input until EOF or `until`.
    Lingering { until: Deadline, drained: usize },
}

pub struct Connection {
    /// The socket, plain or under TLS.
    pub socket: Transport,
    /// The client's address, for the audit lines of the lock.
    pub client: std::net::SocketAddr,
    /// Distinguishes this connection from earlier ones in the same slot, for tickets and timers.
    pub generation: u64,
    pub phase: Phase,
    pub reader: Reader,
    pub recv: RecvBuffer,
    pub send: SendQueue,
    pub writable_interest: bool,
    /// The peer closed its side; finish what was asked, then close.
    pub read_closed: bool,
    /// Already in the loop's serve-again list.
    pub queued_again: bool,
    /// Last time bytes moved either way; idle, body and send timeouts count from it.
    pub last_progress: Deadline,
    /// When this connection's timer fires, and the earliest entry it has in the timer heap.
    pub deadline: Deadline,
    pub armed: Deadline,
    /// Bytes of the global body budget held for the body being received.
    pub reserved: usize,
    /// TCP_NODELAY is set. Only connections kept alive past their first answer need it: one
    /// answer is one write, and Nagle's algorithm holds nothing back while nothing is unacknowledged.
    pub nodelay: bool,
    /// At least one request was answered (or parked) on this connection.
    pub answered: bool,
}

/// What to do with a connection after serving it.
pub enum Verdict {
    Keep,
    Close,
}

/// A deadline that never fires.
pub const NEVER: Deadline = Deadline(u64::MAX);

impl Connection {
    pub fn new(
        socket: Transport,
        client: std::net::SocketAddr,
        generation: u64,
        now: Deadline,
        max_body: u64,
    ) -> Connection {
        Connection {
            socket,
            client,
            generation,
            phase: Phase::Reading { since: None },
            reader: Reader::new(Side::Requests, max_body),
            recv: RecvBuffer::default(),
            send: SendQueue::default(),
            writable_interest: false,
            read_closed: false,
            queued_again: false,
            last_progress: now,
            deadline: NEVER,
            armed: NEVER,
            reserved: 0,
            nodelay: false,
            answered: false,
        }
    }

    /// How many bytes the connection may hold unparsed; `None`: do not read now.
    pub fn receive_limit(&self) -> Option<usize> {
        match self.phase {
            Phase::Reading { .. } => Some(self.reader.receive_limit()),
            Phase::Lingering { .. } | Phase::Streaming { .. } => Some(BUFFER_BYTES),
            // Read while parked, to see a client that leaves; requests behind wait unparsed.
            Phase::Parked { .. } => Some(REQUEST_HEAD_BYTES_MAX + BUFFER_BYTES),
            Phase::Closing { .. } => None,
        }
    }

    /// When the connection's timer fires: a client that stalls its output, its head or its body,
    /// an idle keep-alive connection, the end of lingering. Parked and streaming requests wait on
    /// the core, not on a timer.
    pub fn timer(&self) -> Deadline {
        let after = |ms: u64| Deadline(self.last_progress.0.saturating_add(ms));
        if self.output_pending() {
            return after(SEND_STALL_TIMEOUT_MS);
        }
        match self.phase {
            Phase::Reading { since: Some(since) } if self.reader.in_head() => Deadline(since.0 + HEAD_TIMEOUT_MS),
            Phase::Reading { .. } if !self.reader.in_head() => after(BODY_STALL_TIMEOUT_MS),
            Phase::Reading { .. } => after(IDLE_TIMEOUT_MS),
            Phase::Parked { .. } | Phase::Streaming { .. } => NEVER,
            Phase::Closing { .. } => after(SEND_STALL_TIMEOUT_MS),
            Phase::Lingering { until, .. } => until,
        }
    }

    /// Output waits: answers queued, or (under TLS) records the socket has not taken yet.
    pub fn output_pending(&self) -> bool {
        !self.send.is_empty() || self.socket.wants_write()
    }

    /// True while a request is on its way in: a head has begun, or a body is arriving.
    pub fn request_in_progress(&self) -> bool {
        matches!(self.phase, Phase::Reading { since } if since.is_some() || !self.reader.in_head())
    }
}
