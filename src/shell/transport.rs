//! What a connection's bytes travel over: a plain TCP socket, or TLS over one (`--tls-cert`, with
//! the `tls` cargo feature). Both are `Read` and `Write` of the plain bytes, and a poller source,
//! so the HTTP reader, the send queue and the loop's budgets work the same over either: only this
//! file and `tls.rs` know that records, handshakes and alerts exist.
//!
//! Under TLS the session may hold encrypted bytes the socket did not take yet (a handshake
//! answer, the end of an answer): `wants_write` says so, and the owner keeps its writable
//! interest and does not close until `flush_records` has sent them.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::shell::tls::TlsStream;

pub enum Transport {
    Plain(TcpStream),
    /// Boxed: a TLS session is a few kilobytes, a plain connection should not pay for it.
    Tls(Box<TlsStream>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(socket) => socket,
            Transport::Tls(stream) => stream.tcp(),
        }
    }

    fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(socket) => socket,
            Transport::Tls(stream) => stream.tcp_mut(),
        }
    }

    /// Encrypted bytes wait for the socket (never for a plain one).
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(stream) => stream.wants_write(),
        }
    }

    /// Sends what the session holds, until the socket takes no more.
    pub fn flush_records(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(stream) => stream.send_records(),
        }
    }

    /// A client spoke plain HTTP to this TLS port: its bytes now pass through unencrypted, so
    /// that it can be told to use `https://`.
    pub fn is_plain_on_tls_port(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(stream) => stream.is_plain(),
        }
    }

    /// Shuts a side of the socket; under TLS, the write side says `close_notify` first.
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if let (Transport::Tls(stream), Shutdown::Write | Shutdown::Both) = (&mut *self, how) {
            stream.close_notify();
        }
        self.tcp().shutdown(how)
    }

    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.tcp().set_nodelay(nodelay)
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.tcp().take_error()
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.read(buf),
            Transport::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.write(buf),
            Transport::Tls(stream) => stream.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.write_vectored(bufs),
            Transport::Tls(stream) => stream.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_records()
    }
}

impl Source for Transport {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.tcp_mut().register(registry, token, interests)
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.tcp_mut().reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.tcp_mut().deregister(registry)
    }
}
