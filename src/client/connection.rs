//! The client's side of the wire: one blocking HTTP/1.1 exchange over `std::net::TcpStream`, read
//! with the crate's own push reader (`http::Reader`, the one the server reads its peers' answers
//! with), and event streams read piece by piece with its chunked decoder. The server is named by
//! a URL (`http://host:port`); a token goes in `Authorization: Bearer`, as `core::auth` expects.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::http::{ChunkedDecoder, Framing, Reader, Side, Step, parse_response_head};
use crate::limits::{
    CLIENT_ANSWER_BYTES_MAX, CLIENT_ANSWER_TIMEOUT_MS, CLIENT_CONNECT_TIMEOUT_MS, REQUEST_HEADERS_COUNT_MAX,
};

/// Bytes read from the socket at a time.
const READ_PIECE_BYTES: usize = 64 * 1024;

/// The server the client talks to, and the token it shows.
#[derive(Debug, Clone)]
pub struct Server {
    /// The URL as given (`http://127.0.0.1:8001`), for messages and for commands run by `lock`.
    pub url: String,
    /// `host:port`, for the `Host` header and for connecting.
    authority: String,
    /// `Authorization: Bearer TOKEN` when a token was given.
    token: Option<String>,
}

/// Why an exchange did not give an answer: the server cannot be reached (exit status 3).
#[derive(Debug)]
pub struct Unreachable(pub String);

/// One answer: status, header lines, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The one line the server said why in: the `error` of its JSON body, else the body's text.
    pub fn message(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&self.body).ok();
        match parsed.as_ref().and_then(|v| v.get("error")).and_then(|e| e.as_str()) {
            Some(error) => format!("{error} ({})", self.status),
            None if text.trim().is_empty() => format!("the server answered {}", self.status),
            None => format!("{} ({})", text.trim(), self.status),
        }
    }
}

impl Server {
    /// Reads `http://HOST[:PORT][/]` (the scheme may be left out; the port defaults to 80).
    pub fn new(url: &str, token: Option<String>) -> Result<Server, String> {
        if url.starts_with("https://") {
            return Err(format!("--server {url}: this build speaks plain HTTP; put a TLS proxy beside the client"));
        }
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || !path.is_empty() || authority.contains('@') {
            return Err(format!("--server {url}: expected http://HOST:PORT"));
        }
        let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| !p.ends_with(']'));
        let authority = if has_port { authority.to_string() } else { format!("{authority}:80") };
        Ok(Server { url: url.to_string(), authority, token })
    }

    fn connect(&self) -> Result<TcpStream, Unreachable> {
        let unreachable = |why: String| Unreachable(format!("cannot reach the server at {}: {why}", self.url));
        let addrs: Vec<SocketAddr> =
            self.authority.to_socket_addrs().map_err(|e| unreachable(e.to_string()))?.collect();
        let mut last = String::from("no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(CLIENT_CONNECT_TIMEOUT_MS)) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(unreachable(last))
    }

    /// The request's bytes: its line, `Host`, the token, `headers`, the body's length, the body.
    fn request_bytes(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.authority);
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// One request on a new connection, and its whole answer.
    pub fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, Unreachable> {
        let mut stream = self.connect()?;
        let lost = |why: String| Unreachable(format!("the server at {} did not answer: {why}", self.url));
        let _ = stream.set_read_timeout(Some(Duration::from_millis(CLIENT_ANSWER_TIMEOUT_MS)));
        let written = stream.write_all(&self.request_bytes(method, target, headers, body));
        // A server that refuses a body (413, 401) may answer and close before reading it all:
        // its answer says more than the broken pipe.
        let answer = read_answer(&mut stream, Vec::new());
        match (written, answer) {
            (_, Ok(answer)) => Ok(answer),
            (Err(e), Err(_)) => Err(lost(e.to_string())),
            (Ok(()), Err(why)) => Err(lost(why)),
        }
    }

    /// Opens an event stream on `target` (`Accept: text/event-stream`, `Last-Event-ID` when
    /// given). An answer that is not a stream (a refusal) comes back whole as `Err(Ok(answer))`.
    pub fn open_stream(
        &self,
        target: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, Result<Answer, Unreachable>> {
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(id) = last_event_id {
            headers.push(("Last-Event-ID", id));
        }
        let mut stream = self.connect().map_err(Err)?;
        let lost = |why: String| Unreachable(format!("the stream from {} broke: {why}", self.url));
        let write = stream.write_all(&self.request_bytes("GET", target, &headers, b""));
        write.map_err(|e| Err(lost(e.to_string())))?;
        let _ = stream.set_read_timeout(Some(Duration::from_millis(crate::limits::WATCH_SILENCE_MS)));
        let mut buf = Vec::new();
        let head = loop {
            let parsed = parse_response_head(&buf, CLIENT_ANSWER_BYTES_MAX);
            match parsed.map_err(|e| Err(lost(e.message().to_string())))? {
                Some(head) if (100..200).contains(&head.status) => drop(buf.drain(..head.len)),
                Some(head) => break head,
                None if read_more(&mut stream, &mut buf).map_err(|e| Err(lost(e.to_string())))? => {
                    return Err(Err(lost("closed before the answer".into())));
                }
                None => {}
            }
        };
        let streaming = head.status == 200
            && header_lines(&buf[..head.len])
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.starts_with("text/event-stream"));
        if !streaming {
            // A refusal: read it whole, with the reader that knows every framing.
            return Err(read_answer(&mut stream, buf).map_err(lost));
        }
        let chunked = (head.framing == Framing::Chunked).then(ChunkedDecoder::default);
        buf.drain(..head.len);
        Ok(EventStream { stream, raw: buf, chunked, text: Vec::new() })
    }
}

/// Reads one whole answer from `stream`, whose first bytes may already be in `buf`.
fn read_answer(stream: &mut TcpStream, mut buf: Vec<u8>) -> Result<Answer, String> {
    let mut reader = Reader::new(Side::Answers, CLIENT_ANSWER_BYTES_MAX);
    let mut closed = false;
    loop {
        match reader.step(&buf, closed).map_err(|e| e.message().to_string())? {
            Step::Ready => {
                let (head, head_bytes, body) = reader.answer(&buf);
                return Ok(Answer { status: head.status, headers: header_lines(head_bytes), body: body.to_vec() });
            }
            Step::Consume(n) | Step::Body { consume: n, .. } if n > 0 => {
                buf.drain(..n);
            }
            Step::More | Step::Consume(_) | Step::Body { .. } if closed => {
                return Err("the connection closed in the middle of the answer".into());
            }
            Step::More | Step::Consume(_) | Step::Body { .. } => {
                closed = read_more(stream, &mut buf).map_err(|e| e.to_string())?;
            }
        }
    }
}

/// Reads what has arrived into `buf`; true when the server closed the connection.
fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut piece = vec![0u8; READ_PIECE_BYTES];
    loop {
        match stream.read(&mut piece) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                buf.extend_from_slice(&piece[..n]);
                return Ok(false);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The header lines of a head the reader has already checked.
fn header_lines(head: &[u8]) -> Vec<(String, String)> {
    let mut lines = [httparse::EMPTY_HEADER; REQUEST_HEADERS_COUNT_MAX];
    let mut response = httparse::Response::new(&mut lines);
    if response.parse(head).is_err() {
        return Vec::new();
    }
    response.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect()
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `id:`, the store's version (`SEQUENCE-CHECKSUM`, as `X-Lighthouse-Version` says it).
    pub id: Option<String>,
    /// `event:`; `message` when absent.
    pub kind: String,
    /// The `data:` lines joined by newlines (the body the server sent, without its final newline).
    pub data: Vec<u8>,
}

/// An open event stream.
pub struct EventStream {
    stream: TcpStream,
    /// Bytes received and not yet decoded (chunk framing).
    raw: Vec<u8>,
    /// The chunked decoder, or `None` for a stream that runs to the close (HTTP/1.0).
    chunked: Option<ChunkedDecoder>,
    /// Decoded text not yet cut into events.
    text: Vec<u8>,
}

impl EventStream {
    /// The next event; an error when the stream ended or went silent.
    pub fn next_event(&mut self) -> std::io::Result<Event> {
        let mut closed = false;
        loop {
            // The bytes that came with the head, or with the last read, are decoded first.
            match &mut self.chunked {
                Some(decoder) => {
                    let used = decoder
                        .decode(&self.raw, &mut self.text, u64::MAX)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.message()))?;
                    self.raw.drain(..used);
                    closed |= decoder.is_done();
                }
                None => self.text.append(&mut self.raw),
            }
            if let Some(event) = cut_event(&mut self.text) {
                return Ok(event);
            }
            if closed {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            closed = read_more(&mut self.stream, &mut self.raw)?;
        }
    }
}

/// Cuts the first whole event (ended by a blank line) off `text`; comments and events with
/// no data are skipped, as `EventSource` does.
fn cut_event(text: &mut Vec<u8>) -> Option<Event> {
    loop {
        let end = text.windows(2).position(|w| w == b"\n\n")?;
        let block: Vec<u8> = text.drain(..end + 2).collect();
        let mut event = Event { id: None, kind: "message".into(), data: Vec::new() };
        let mut has_data = false;
        for line in block.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(0) => continue,
                Some(i) => (&line[..i], line[i + 1..].strip_prefix(b" ").unwrap_or(&line[i + 1..])),
                None => (line, &b""[..]),
            };
            match field {
                b"id" => event.id = std::str::from_utf8(value).ok().map(str::to_string),
                b"event" => event.kind = String::from_utf8_lossy(value).into_owned(),
                b"data" => {
                    if has_data {
                        event.data.push(b'\n');
                    }
                    event.data.extend_from_slice(value);
                    has_data = true;
                }
                _ => {}
            }
        }
        if has_data {
            return Some(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_and_comments_skipped() {
        let mut text = b": keep-alive\n\nid: 7-ab\ndata: {\ndata:   \"a\": 1\ndata: }\n\nid: 8\nevent: missing\ndata: {}\n\nid: 9\nda".to_vec();
        let first = cut_event(&mut text).unwrap();
        assert_eq!(
            (first.id, first.kind.as_str(), &first.data[..]),
            (Some("7-ab".to_string()), "message", &b"{\n  \"a\": 1\n}"[..])
        );
        let second = cut_event(&mut text).unwrap();
        assert_eq!((second.id.as_deref(), second.kind.as_str()), (Some("8"), "missing"));
        assert_eq!(cut_event(&mut text), None, "an event cut in the middle waits for the rest");
        assert_eq!(text, b"id: 9\nda");
    }

    #[test]
    fn server_urls_name_host_and_port() {
        assert_eq!(Server::new("http://127.0.0.1:8001", None).unwrap().authority, "127.0.0.1:8001");
        assert_eq!(Server::new("localhost:9000/", None).unwrap().authority, "localhost:9000");
        assert_eq!(Server::new("http://example.com", None).unwrap().authority, "example.com:80");
        assert_eq!(Server::new("http://[::1]:8001", None).unwrap().authority, "[::1]:8001");
        assert_eq!(Server::new("http://[::1]", None).unwrap().authority, "[::1]:80");
        assert!(Server::new("https://example.com", None).is_err());
        assert!(Server::new("http://example.com/data", None).is_err());
    }
}
