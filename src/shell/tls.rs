//! TLS for clients and peers (`--tls-cert`, `--tls-key`, `--peer-ca`; built with `--features tls`):
//! the certificates read from their PEM files into rustls configurations, re-read on SIGHUP, and
//! one TLS session over one non-blocking socket, as rustls's mio example drives it (`read_tls`,
//! `process_new_packets`, `write_tls`), behind the `Read` and `Write` of the plain bytes that
//! `transport.rs` gives the loop.
//!
//! A server session looks at the first byte a client sends before anything else: every TLS client
//! starts with a handshake record (0x16), so anything else is plain HTTP sent to the TLS port, and
//! the session steps aside so that the loop can answer it a plain 400 saying to use `https://`.
//!
//! Peers' certificates are checked against `--peer-ca`, else the system's roots, read from the
//! PEM bundle the system keeps (`SSL_CERT_FILE`, else the first of `SYSTEM_ROOTS_FILES`): one
//! file read, rather than a crate (rustls-native-certs) and its own dependencies for the same.

use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use crate::config::Config;
use crate::limits::TLS_BUFFER_BYTES_MAX;
use crate::shell::transport::Transport;

/// Where Debian, Ubuntu and Alpine, then Fedora and RHEL, keep the system's roots as one PEM file.
const SYSTEM_ROOTS_FILES: [&str; 2] = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];
/// The first byte of every TLS connection: the content type of a handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;
/// What the error of a failed TLS session starts with, so that a peer link can tell it apart.
pub const TLS_FAILURE: &str = "TLS: ";
/// The only protocol served: told in ALPN so that a client offering HTTP/2 does not wait for it.
const HTTP11: &[u8] = b"http/1.1";

/// The node's TLS: the files the flags name and the configurations read from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    peer_ca: Option<PathBuf>,
    server: Arc<ServerConfig>,
    connector: Connector,
}

/// Makes the TLS client sessions of peer links, verifying the peers' certificates.
#[derive(Clone)]
pub struct Connector(Arc<ClientConfig>);

impl Tls {
    /// The TLS the flags ask for, read from its files; `None` without `--tls-cert`.
    pub fn from_config(config: &Config) -> io::Result<Option<Tls>> {
        let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else { return Ok(None) };
        let (server, connector) = read_files(cert, key, config.peer_ca.as_deref())
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why))?;
        Ok(Some(Tls { cert: cert.clone(), key: key.clone(), peer_ca: config.peer_ca.clone(), server, connector }))
    }

    /// Reads the files again; on an error the configurations in use stay, and the error says why.
    pub fn reload(&mut self) -> Result<(), String> {
        let (server, connector) = read_files(&self.cert, &self.key, self.peer_ca.as_deref())?;
        self.server = server;
        self.connector = connector;
        Ok(())
    }

    /// A client connection just accepted, under TLS with the certificate in use now.
    pub fn accept(&self, socket: TcpStream) -> io::Result<Transport> {
        let session = ServerConnection::new(self.server.clone()).map_err(io::Error::other)?;
        Ok(Transport::Tls(Box::new(TlsStream::new(socket, session.into(), Mode::Sniffing))))
    }

    pub fn connector(&self) -> Connector {
        self.connector.clone()
    }
}

impl Connector {
    /// A connection to the peer at `address` (`HOST:PORT`), whose certificate must name HOST.
    pub fn connect(&self, socket: TcpStream, address: &str) -> Result<Transport, String> {
        let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("TLS: peer name {host}: {e}"))?;
        let session = ClientConnection::new(self.0.clone(), name).map_err(|e| format!("TLS: {e}"))?;
        Ok(Transport::Tls(Box::new(TlsStream::new(socket, session.into(), Mode::Tls))))
    }
}

/// Reads the certificate chain, its key and the roots that verify peers.
fn read_files(cert: &Path, key: &Path, peer_ca: Option<&Path>) -> Result<(Arc<ServerConfig>, Connector), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("--tls-cert: cannot read {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert: no certificate in {}", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key: cannot read a private key in {}: {e}", key.display()))?;
    let mut server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("--tls-cert and --tls-key: {e}"))?;
    server.alpn_protocols = vec![HTTP11.to_vec()];
    let mut client = ClientConfig::builder().with_root_certificates(read_roots(peer_ca)?).with_no_client_auth();
    client.alpn_protocols = vec![HTTP11.to_vec()];
    Ok((Arc::new(server), Connector(Arc::new(client))))
}

/// The certificates that verify peers: `--peer-ca`, else the system's roots.
fn read_roots(peer_ca: Option<&Path>) -> Result<RootCertStore, String> {
    let (path, what) = match peer_ca {
        Some(path) => (path.to_path_buf(), "--peer-ca"),
        None => (system_roots_file(), "the system's roots (see --peer-ca)"),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    // A system bundle may hold a certificate rustls cannot use; the others still count.
    let (_, unusable) = roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(format!("{what}: no usable certificate in {} ({unusable} unusable)", path.display()));
    }
    Ok(roots)
}

fn system_roots_file() -> PathBuf {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return PathBuf::from(file);
    }
    let found = SYSTEM_ROOTS_FILES.iter().find(|file| Path::new(file).exists());
    PathBuf::from(found.unwrap_or(&SYSTEM_ROOTS_FILES[0]))
}

/// What a session does with the bytes of its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A server session before the client's first byte: TLS, or plain HTTP to the wrong port?
    Sniffing,
    /// Records in, records out.
    Tls,
    /// The client spoke plain HTTP: bytes pass through, so that it can be told to use `https://`.
    Plain,
}

/// One TLS session over one non-blocking socket.
pub struct TlsStream {
    socket: TcpStream,
    session: rustls::Connection,
    mode: Mode,
}

impl TlsStream {
    fn new(socket: TcpStream, mut session: rustls::Connection, mode: Mode) -> TlsStream {
        // Plaintext waiting for the handshake and records waiting for the socket stay under this;
        // past it, writes answer `WouldBlock` as a full socket would.
        session.set_buffer_limit(Some(TLS_BUFFER_BYTES_MAX));
        TlsStream { socket, session, mode }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.socket
    }

    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    pub fn wants_write(&self) -> bool {
        self.mode != Mode::Plain && self.session.wants_write()
    }

    pub fn is_plain(&self) -> bool {
        self.mode == Mode::Plain
    }

    /// Queues `close_notify` and sends what it can, so the client sees a clean end.
    pub fn close_notify(&mut self) {
        if self.mode == Mode::Tls {
            self.session.send_close_notify();
            let _ = self.send_records();
        }
    }

    /// Writes the session's records to the socket until it takes no more.
    pub fn send_records(&mut self) -> io::Result<()> {
        while self.wants_write() {
            match self.session.write_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Looks at the first byte without taking it: a handshake record, or plain HTTP.
    fn sniff(&mut self) -> io::Result<()> {
        let mut first = [0u8; 1];
        if self.socket.peek(&mut first)? == 0 {
            return Ok(());
        }
        self.mode = if first[0] == HANDSHAKE_RECORD { Mode::Tls } else { Mode::Plain };
        Ok(())
    }

    /// The plaintext the session already decrypted: `None` when it needs more records.
    fn take_plaintext(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        match self.session.reader().read(buf) {
            Ok(n) => Some(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            // The socket closed without `close_notify`: for HTTP, whose answers carry their own
            // length, an end like any other.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Ok(0)),
            Err(e) => Some(Err(e)),
        }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.mode == Mode::Sniffing {
            self.sniff()?;
        }
        if self.mode != Mode::Tls {
            // Plain, or a client that closed before its first byte (the read sees the end).
            return self.socket.read(buf);
        }
        loop {
            if let Some(result) = self.take_plaintext(buf) {
                return result;
            }
            // The session's receive buffer is empty here, so `read_tls` takes at most one
            // record's worth: the memory a connection holds stays bounded.
            let received = self.session.read_tls(&mut self.socket)?;
            let processed = self.session.process_new_packets();
            // A handshake answer, or the alert that says why the session failed, goes out now.
            let sent = self.send_records();
            if let Err(e) = processed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{TLS_FAILURE}{e}")));
            }
            sent?;
            if received == 0 {
                return self.take_plaintext(buf).unwrap_or(Ok(0));
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.mode == Mode::Plain {
            return self.socket.write_vectored(bufs);
        }
        // Room first: records already made go out before more are made.
        self.send_records()?;
        let taken = self.session.writer().write_vectored(bufs)?;
        self.send_records()?;
        if taken == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_records()
    }
}
