//! Cross-origin resource sharing (`--cors`): which pages on other origins a browser lets read and
//! write this server, and the headers that say so. Without the flag no answer carries any of
//! them, so a browser keeps other origins out.
//!
//! The header blocks are rendered once at start, one per allowed origin, so an answer to an
//! allowed origin costs one more slice in its head and no allocation.

/// The headers a cross-origin page may read besides the simple ones.
const EXPOSED: &str = "ETag, X-Lighthouse-Version, Retry-After";
/// What a preflight allows.
const METHODS: &str = "GET, HEAD, PUT, PATCH, DELETE, OPTIONS";
const HEADERS: &str = "Authorization, Content-Type, If-Match, If-None-Match, Last-Event-ID, Accept";
/// How long a browser may cache a preflight's answer, in seconds.
const MAX_AGE_S: u32 = 600;
/// Origins `--cors` may list.
const ORIGINS_MAX: usize = 64;

/// The origins allowed to use this server from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// `None`: any origin (`--cors=*`).
    origins: Option<Vec<String>>,
    /// Per allowed origin (one for any): the headers of an answer, and of a preflight's.
    blocks: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Cors {
    /// `*`, or origins separated by commas (`https://a.example,http://localhost:3000`), each a
    /// scheme and a host with an optional port, as a browser sends it in `Origin`.
    pub fn parse(flag: &str) -> Result<Cors, String> {
        if flag.trim() == "*" {
            return Ok(Cors::new(None));
        }
        let origins: Vec<String> = flag
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| o.trim_end_matches('/').to_string())
            .collect();
        if origins.is_empty() || origins.len() > ORIGINS_MAX {
            return Err(format!("--cors takes * or 1 to {ORIGINS_MAX} origins separated by commas"));
        }
        for origin in &origins {
            let host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.contains(['/', ' ', '?', '#'])) {
                return Err(format!(
                    "--cors: '{origin}' is not an origin (a scheme and a host, like https://config.example:8443)"
                ));
            }
        }
        Ok(Cors::new(Some(origins)))
    }

    fn new(origins: Option<Vec<String>>) -> Cors {
        let block = |allow: &str| {
            let answer = format!(
                "Access-Control-Allow-Origin: {allow}\r\nVary: Origin\r\nAccess-Control-Expose-Headers: {EXPOSED}\r\n"
            );
            let preflight = format!(
                "{answer}Access-Control-Allow-Methods: {METHODS}\r\nAccess-Control-Allow-Headers: {HEADERS}\r\n\
                 Access-Control-Max-Age: {MAX_AGE_S}\r\n"
            );
            (answer.into_bytes(), preflight.into_bytes())
        };
        let blocks = match &origins {
            None => vec![block("*")],
            Some(origins) => origins.iter().map(|o| block(o)).collect(),
        };
        Cors { origins, blocks }
    }

    /// Which allowed origin a request's `Origin` header names, if any.
    pub fn allowed(&self, origin: Option<&str>) -> Option<u16> {
        let origin = origin?;
        match &self.origins {
            None => Some(0),
            Some(origins) => origins.iter().position(|o| o.eq_ignore_ascii_case(origin)).map(|i| i as u16),
        }
    }

    /// The header lines for an answer to allowed origin `which`.
    pub fn headers(&self, which: u16, preflight: bool) -> &[u8] {
        let (answer, preflight_answer) = &self.blocks[usize::from(which)];
        if preflight { preflight_answer } else { answer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_origin_or_a_list() {
        let any = Cors::parse("*").unwrap();
        assert_eq!(any.allowed(Some("http://evil.example")), Some(0));
        assert_eq!(any.allowed(None), None, "no Origin, no CORS headers");
        let text = String::from_utf8(any.headers(0, false).to_vec()).unwrap();
        assert!(text.starts_with("Access-Control-Allow-Origin: *\r\n"), "{text}");
        assert!(text.contains("Access-Control-Expose-Headers: ETag, X-Lighthouse-Version"), "{text}");
        assert!(!text.contains("Max-Age"));

        let list = Cors::parse("https://a.example, http://127.0.0.1:3000/").unwrap();
        assert_eq!(list.allowed(Some("https://a.example")), Some(0));
        assert_eq!(list.allowed(Some("http://127.0.0.1:3000")), Some(1));
        assert_eq!(list.allowed(Some("http://127.0.0.1:3001")), None);
        assert_eq!(list.allowed(Some("https://a.example.evil")), None);
        let preflight = String::from_utf8(list.headers(1, true).to_vec()).unwrap();
        assert!(preflight.starts_with("Access-Control-Allow-Origin: http://127.0.0.1:3000\r\nVary: Origin\r\n"));
        for needed in ["Authorization", "Content-Type", "If-Match", "If-None-Match", "Last-Event-ID"] {
            assert!(preflight.contains(needed), "{needed}");
        }
        assert!(preflight.contains("Access-Control-Allow-Methods: GET, HEAD, PUT, PATCH, DELETE, OPTIONS\r\n"));
        assert!(preflight.contains("Access-Control-Max-Age: 600\r\n"));
    }

    #[test]
    fn what_is_not_an_origin_is_refused() {
        for bad in ["", ",", "example.com", "http://", "https://a.example/path", "ftp://a.example"] {
            assert!(Cors::parse(bad).is_err(), "{bad}");
        }
    }
}
