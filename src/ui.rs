//! The page at `/ui`: one self-contained HTML file (`ui.html`: its script and style inline,
//! nothing fetched from elsewhere), built into the binary. It reads the document through the
//! event stream (`?changes`, building only the open levels of its tree), the cluster through
//! `/state` (or `GET /` where `/state` needs the cluster key) and the lock through `/lock`, and
//! edits, adds and deletes values with one-request writes under `If-Match`, like any other
//! client. It asks for a token when a read or a write answers 401.

use crate::http::{Bytes, Response};

const PAGE: &[u8] = include_bytes!("ui.html");

/// The page may run its own inline script and style and talk to this server, and nothing else.
const HEADERS: &[u8] = b"Content-Type: text/html; charset=utf-8\r\nCache-Control: no-cache\r\n\
    Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    connect-src 'self'; img-src data:; frame-ancestors 'self'\r\nX-Content-Type-Options: nosniff\r\n";

pub fn page() -> Response {
    Response { status: 200, headers: Bytes::Static(HEADERS), body: Bytes::Static(PAGE), close: false }
}
