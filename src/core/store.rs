//! The current store (its version and tree) and the reads of it.
//!
//! Reads are the hot path, so each answer is rendered once per version: the first GET of a path
//! renders the subtree and its header block into shared buffers, and every later GET of the same
//! path (until the store changes) answers from them without rendering or allocating.

use std::collections::HashMap;
use std::sync::Arc;

use crate::core::lineage::Lineage;
use crate::core::path::{self, PathError};
use crate::core::sealed::Sealed;
use crate::core::value::Value;
use crate::core::version::{Checksum, Version};
use crate::http::{Bytes, Response};
use crate::limits::{RENDER_CACHE_BYTES_MAX, RENDER_CACHE_ENTRIES_MAX};

/// The ways a subtree can be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Pretty JSON (the default).
    Json,
    /// `?raw`: a string without quotes as text; numbers, booleans and null as their text;
    /// objects and arrays as JSON.
    Raw,
    /// `?keys`: an object's keys as a JSON array, or an array's length.
    Keys,
}

impl Format {
    /// The format a query asks for (`?keys` wins over `?raw`).
    pub fn of(query: &path::Query) -> Format {
        match (query.raw, query.keys) {
            (_, true) => Format::Keys,
            (true, false) => Format::Raw,
            (false, false) => Format::Json,
        }
    }
}

/// A rendered answer for one path of one version.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `Content-Type`, `ETag` and `X-Lighthouse-Version` lines.
    pub headers: Arc<[u8]>,
    pub body: Arc<[u8]>,
    /// The entity tag with its quotes, as `If-None-Match` sends it back.
    pub etag: Arc<str>,
}

/// Why a read has no subtree to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    BadPath(PathError),
    NotFound,
    /// `?keys` on a string, number, boolean or null.
    NoKeys,
}

impl ReadError {
    pub fn response(&self, path: &str) -> Response {
        match self {
            ReadError::BadPath(e) => Response::error(e.status(), e.message()),
            ReadError::NotFound => Response::error(404, &format!("no such path: {path}")),
            ReadError::NoKeys => Response::error(400, "?keys applies to objects and arrays only"),
        }
    }
}

/// The store being served: a sealed copy (tree, version, lineage, body) and its rendered answers.
pub struct Store {
    sealed: Sealed,
    cache: RenderCache,
    /// Versions replaced since the core last handed them to a worker to free (`retired`).
    retired: Vec<Sealed>,
    /// Counts the versions served: a body rendered off the loop is kept only if the store is
    /// still the one it was rendered from. The version alone does not tell: a version stamped
    /// in a later term has the same sequence and checksum, and another body.
    generation: u64,
}

impl Store {
    pub fn new(sealed: Sealed) -> Store {
        Store { sealed, cache: RenderCache::default(), retired: Vec::new(), generation: 0 }
    }

    /// A version decoded and not taken (older, equal, or refused): freed off the loop too, since
    /// a copy from a peer shares no node with the store.
    pub fn retire(&mut self, sealed: Sealed) {
        self.retired.push(sealed);
    }

    /// The versions this store no longer serves, to be freed off the loop: freeing a large tree
    /// takes milliseconds (a copy from a peer shares no node with the store it replaces).
    pub fn retired(&mut self) -> std::vec::Drain<'_, Sealed> {
        self.retired.drain(..)
    }

    pub fn version(&self) -> Version {
        self.sealed.copy.version
    }

    pub fn root(&self) -> &Value {
        &self.sealed.copy.root
    }

    pub fn lineage(&self) -> &Lineage {
        &self.sealed.copy.lineage
    }

    /// Bytes of the store's compact JSON.
    pub fn data_len(&self) -> usize {
        self.sealed.data_len
    }

    /// The copy body if it is at hand (it is set aside on a node without peers).
    pub fn body_at_hand(&self) -> Option<Arc<[u8]>> {
        (!self.sealed.body.is_empty()).then(|| self.sealed.body.clone())
    }

    /// Which store this is: it changes with every version served, and with every stamp.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Keeps a copy body rendered off the loop from the store of `generation`, if it still is.
    pub fn keep_body(&mut self, generation: u64, body: Arc<[u8]>, data_len: usize) {
        if generation == self.generation && self.sealed.body.is_empty() {
            (self.sealed.body, self.sealed.data_len) = (body, data_len);
        }
    }

    /// Lets go of the copy body: a node without peers needs it only for `GET /copy`, and it is as
    /// large as the store's JSON.
    pub fn forget_body(&mut self) {
        self.sealed.body = Arc::from(Vec::new());
    }

    /// Replaces the store with a newer version; every cached answer is of the old one.
    pub fn install(&mut self, sealed: Sealed) {
        assert!(sealed.copy.version > self.version(), "the store never goes back to an older version");
        self.retired.push(std::mem::replace(&mut self.sealed, sealed));
        self.generation += 1;
        self.cache.clear();
    }

    /// Serves a version committed in coordinated mode: newer than the store, or the same version
    /// stamped in a later term (then the cached answers still hold).
    pub fn promote(&mut self, sealed: Sealed) {
        assert!(sealed.copy.version.sequence >= self.version().sequence, "a committed version never goes back");
        if sealed.copy.version != self.version() {
            self.cache.clear();
        }
        self.retired.push(std::mem::replace(&mut self.sealed, sealed));
        self.generation += 1;
    }

    /// Replaces a store that was never served (loaded at start without knowing it was committed)
    /// with the committed one, whatever their order.
    pub fn reset(&mut self, sealed: Sealed) {
        self.cache.clear();
        self.retired.push(std::mem::replace(&mut self.sealed, sealed));
        self.generation += 1;
    }

    /// The store as sealed: version, tree, lineage, coordination and body.
    pub fn sealed(&self) -> &Sealed {
        &self.sealed
    }

    /// The answer for `GET {data_path}` where `data_path` is the raw path below `/data`.
    pub fn read(&mut self, raw_path: &str, format: Format) -> Result<Rendered, ReadError> {
        if let Some(hit) = self.cache.get(format, raw_path) {
            return Ok(hit.clone());
        }
        // `raw_path` is what follows `/data`: empty for the whole store.
        let segments =
            if raw_path.is_empty() { Vec::new() } else { path::segments(raw_path).map_err(ReadError::BadPath)? };
        let subtree = self.root().resolve(&segments).ok_or(ReadError::NotFound)?;
        let rendered = render(subtree, format, self.version(), segments.is_empty())?;
        self.cache.insert(format, raw_path, rendered.clone());
        Ok(rendered)
    }
}

/// A subtree as `format` shows it: its content type and body (for the store and for staged reads).
pub fn body_of(subtree: &Value, format: Format) -> Result<(&'static str, Vec<u8>), ReadError> {
    Ok(match (format, subtree) {
        (Format::Json, _) | (Format::Raw, Value::Array(_) | Value::Object(_) | Value::Chunked(_)) => {
            ("application/json", subtree.to_pretty_line())
        }
        (Format::Raw, Value::String(s)) => ("text/plain; charset=utf-8", s.as_bytes().to_vec()),
        (Format::Raw, scalar) => ("text/plain; charset=utf-8", scalar.to_compact()),
        (Format::Keys, object @ (Value::Object(_) | Value::Chunked(_))) => {
            ("application/json", keys_of(object).to_pretty_line())
        }
        (Format::Keys, Value::Array(items)) => ("application/json", format!("{}\n", items.len()).into_bytes()),
        (Format::Keys, _) => return Err(ReadError::NoKeys),
    })
}

/// An object's keys, as `?keys` shows them.
fn keys_of(object: &Value) -> Value {
    Value::Array(object.entries().map(|(k, _)| Value::String(k.clone())).collect())
}

/// A staged subtree as `format` shows it (`GET /update/NAME/path`), without tags or version.
pub fn staged_response(subtree: &Value, format: Format) -> Response {
    match body_of(subtree, format) {
        Ok(("application/json", body)) => Response::json(200, body),
        Ok((_, body)) => Response::text(200, body),
        Err(e) => e.response(""),
    }
}

/// Renders a subtree with its headers. The ETag is the SHA-1 of the compact JSON of what the
/// answer shows, so the same content has the same tag on every node and across restarts; the
/// whole store's tag is its checksum, which is already known.
fn render(subtree: &Value, format: Format, version: Version, is_root: bool) -> Result<Rendered, ReadError> {
    let (content_type, body) = body_of(subtree, format)?;
    let etag = match (format, subtree) {
        (Format::Raw, Value::Array(_) | Value::Object(_) | Value::Chunked(_)) | (Format::Json, _) => {
            format!("\"{}\"", content_checksum(subtree, version, is_root))
        }
        (Format::Raw, _) => format!("\"{}.raw\"", content_checksum(subtree, version, is_root)),
        (Format::Keys, object @ (Value::Object(_) | Value::Chunked(_))) => {
            format!("\"{}.keys\"", Checksum::of(&keys_of(object)))
        }
        (Format::Keys, _) => format!("\"{}.keys\"", Checksum::of(subtree)),
    };
    let headers =
        format!("Content-Type: {content_type}\r\nETag: {etag}\r\nX-Lighthouse-Version: {}\r\n", version.to_header());
    Ok(Rendered { headers: Arc::from(headers.into_bytes()), body: Arc::from(body), etag: Arc::from(etag) })
}

/// What a subtree's entity tag is made of: the SHA-1 of its compact JSON, which for the whole
/// store is its version's checksum, already known. Reads and write preconditions use the same.
pub fn content_checksum(subtree: &Value, version: Version, is_root: bool) -> Checksum {
    if is_root { version.checksum } else { Checksum::of(subtree) }
}

impl Rendered {
    /// The 200 answer, or 304 when the client already has this content.
    pub fn response(&self, if_none_match: Option<&str>) -> Response {
        let not_modified = if_none_match.is_some_and(|tags| etag_matches(tags, &self.etag));
        Response {
            status: if not_modified { 304 } else { 200 },
            headers: Bytes::Shared(self.headers.clone()),
            body: if not_modified { Bytes::EMPTY } else { Bytes::Shared(self.body.clone()) },
            close: false,
        }
    }
}

/// `If-None-Match` holds `*` or a list of tags, possibly weak (`W/"..."`).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// Rendered answers of the current version, keyed by format and raw path. Cleared on each new
/// version; bounded in entries and bytes, and simply stops caching when full.
#[derive(Default)]
struct RenderCache {
    by_format: [HashMap<Box<str>, Rendered>; 3],
    bytes: usize,
}

impl RenderCache {
    fn get(&self, format: Format, raw_path: &str) -> Option<&Rendered> {
        self.by_format[format as usize].get(raw_path)
    }

    fn insert(&mut self, format: Format, raw_path: &str, rendered: Rendered) {
        let entries: usize = self.by_format.iter().map(HashMap::len).sum();
        let size = rendered.body.len() + rendered.headers.len() + raw_path.len();
        if entries >= RENDER_CACHE_ENTRIES_MAX || self.bytes + size > RENDER_CACHE_BYTES_MAX {
            return;
        }
        self.bytes += size;
        self.by_format[format as usize].insert(Box::from(raw_path), rendered);
    }

    fn clear(&mut self) {
        self.by_format.iter_mut().for_each(HashMap::clear);
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sealed::seal;

    fn store(text: &str) -> Store {
        Store::new(seal(Value::parse(text.as_bytes()).unwrap(), 1, None))
    }

    fn body(rendered: &Rendered) -> String {
        String::from_utf8(rendered.body.to_vec()).unwrap()
    }

    #[test]
    fn reads_render_pretty_json_with_a_final_newline() {
        let mut s = store(r#"{"providers": {"beta": ["192.168.2.1", "192.168.2.2"]}, "size": 1024}"#);
        assert_eq!(
            body(&s.read("/providers/beta", Format::Json).unwrap()),
            "[\n  \"192.168.2.1\",\n  \"192.168.2.2\"\n]\n"
        );
        assert_eq!(body(&s.read("/size", Format::Json).unwrap()), "1024\n");
        assert_eq!(body(&s.read("/providers/beta/0", Format::Json).unwrap()), "\"192.168.2.1\"\n");
        assert_eq!(s.read("/nope", Format::Json).unwrap_err(), ReadError::NotFound);
        assert_eq!(s.read("/%zz", Format::Json).unwrap_err(), ReadError::BadPath(PathError::BadEscape));
    }

    #[test]
    fn raw_and_keys_formats() {
        let mut s = store(
            r#"{"file": "/var/log/a b.log", "size": 1024, "on": true, "list": [1, 2, 3], "o": {"b": 1, "a": 2}}"#,
        );
        assert_eq!(body(&s.read("/file", Format::Raw).unwrap()), "/var/log/a b.log");
        assert_eq!(body(&s.read("/size", Format::Raw).unwrap()), "1024");
        assert_eq!(body(&s.read("/on", Format::Raw).unwrap()), "true");
        assert_eq!(body(&s.read("/list", Format::Raw).unwrap()), "[\n  1,\n  2,\n  3\n]\n");
        assert_eq!(body(&s.read("/o", Format::Keys).unwrap()), "[\n  \"a\",\n  \"b\"\n]\n");
        assert_eq!(body(&s.read("/list", Format::Keys).unwrap()), "3\n");
        assert_eq!(s.read("/size", Format::Keys).unwrap_err(), ReadError::NoKeys);
    }

    #[test]
    fn etags_follow_content_not_version_and_root_tag_is_the_checksum() {
        let mut a = store(r#"{"x": [1, 2], "y": 1}"#);
        let mut b = store(r#"{"x": [1, 2], "y": 2}"#);
        let tag = |s: &mut Store, p: &str| s.read(p, Format::Json).unwrap().etag.to_string();
        assert_eq!(tag(&mut a, "/x"), tag(&mut b, "/x"));
        assert_ne!(tag(&mut a, "/y"), tag(&mut b, "/y"));
        assert_eq!(tag(&mut a, ""), format!("\"{}\"", a.version().checksum));
        assert_ne!(tag(&mut a, "/x"), a.read("/x", Format::Keys).unwrap().etag.to_string());
    }

    #[test]
    fn if_none_match_answers_304_without_a_body() {
        let mut s = store(r#"{"x": 1}"#);
        let rendered = s.read("/x", Format::Json).unwrap();
        let etag = rendered.etag.to_string();
        assert_eq!(rendered.response(Some(&etag)).status, 304);
        assert!(rendered.response(Some(&etag)).body.is_empty());
        assert_eq!(rendered.response(Some(&format!("\"other\", W/{etag}"))).status, 304);
        assert_eq!(rendered.response(Some("*")).status, 304);
        assert_eq!(rendered.response(Some("\"other\"")).status, 200);
        assert_eq!(rendered.response(None).status, 200);
    }

    #[test]
    fn a_new_version_drops_cached_answers() {
        let mut s = store(r#"{"x": 1}"#);
        assert_eq!(body(&s.read("/x", Format::Json).unwrap()), "1\n");
        s.install(seal(Value::parse(br#"{"x": 2}"#).unwrap(), 2, None));
        assert_eq!(body(&s.read("/x", Format::Json).unwrap()), "2\n");
    }
}
