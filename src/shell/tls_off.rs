//! TLS in a build without the `tls` feature: there is none. The types exist so that the loop and
//! the peer links read the same in both builds, and have no values, so every path that would use
//! them is unreachable. `--tls-cert` and friends are refused at start (`config::BUILT_WITHOUT_TLS`).

use std::io::{self, IoSlice, Read, Write};

use mio::net::TcpStream;

use crate::config::{BUILT_WITHOUT_TLS, Config};
use crate::shell::transport::Transport;

/// What the error of a failed TLS session starts with (there is none in this build).
pub const TLS_FAILURE: &str = "TLS: ";

pub enum Tls {}

/// Never handed out: only a `Tls`, which has no values here, makes one.
#[derive(Clone)]
pub struct Connector;

pub enum TlsStream {}

impl Tls {
    pub fn from_config(config: &Config) -> io::Result<Option<Tls>> {
        if config.wants_tls() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, BUILT_WITHOUT_TLS));
        }
        Ok(None)
    }

    pub fn reload(&mut self) -> Result<(), String> {
        match *self {}
    }

    pub fn accept(&self, _socket: TcpStream) -> io::Result<Transport> {
        match *self {}
    }

    pub fn connector(&self) -> Connector {
        match *self {}
    }
}

impl Connector {
    pub fn connect(&self, _socket: TcpStream, _address: &str) -> Result<Transport, String> {
        Err(BUILT_WITHOUT_TLS.to_string())
    }
}

impl TlsStream {
    pub fn tcp(&self) -> &TcpStream {
        match *self {}
    }

    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        match *self {}
    }

    pub fn wants_write(&self) -> bool {
        match *self {}
    }

    pub fn is_plain(&self) -> bool {
        match *self {}
    }

    pub fn close_notify(&mut self) {
        match *self {}
    }

    pub fn send_records(&mut self) -> io::Result<()> {
        match *self {}
    }
}

impl Read for TlsStream {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        match *self {}
    }
}

impl Write for TlsStream {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        match *self {}
    }

    fn write_vectored(&mut self, _bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match *self {}
    }

    fn flush(&mut self) -> io::Result<()> {
        match *self {}
    }
}
