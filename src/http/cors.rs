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

use crate::limits::{CORS_MAX_AGE_S, CORS_ORIGINS_MAX};

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
    /// scheme and a host with an optional port, as a browser sends it in `Origin`. Origins are
    /// kept as a browser writes them: scheme and host in lower case, no default port.
    pub fn parse(flag: &str) -> Result<Cors, String> {
        if flag.trim() == "*" {
            return Ok(Cors::new(None));
        }
        let origins: Vec<&str> = flag.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
        if origins.is_empty() || origins.len() > CORS_ORIGINS_MAX {
            return Err(format!("takes * or 1 to {CORS_ORIGINS_MAX} origins separated by commas"));
        }
        let origins = origins.into_iter().map(origin).collect::<Result<Vec<String>, String>>()?;
        Ok(Cors::new(Some(origins)))
    }

    fn new(origins: Option<Vec<String>>) -> Cors {
        let block = |allow: &str| {
            let answer = format!(
                "Access-Control-Allow-Origin: {allow}\r\nVary: Origin\r\nAccess-Control-Expose-Headers: {EXPOSED}\r\n"
            );
            let preflight = format!(
                "{answer}Access-Control-Allow-Methods: {METHODS}\r\nAccess-Control-Allow-Headers: {HEADERS}\r\n\
                 Access-Control-Max-Age: {CORS_MAX_AGE_S}\r\n"
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
            Some(origins) => origins.iter().position(|o| o == origin).map(|i| i as u16),
        }
    }

    /// The header lines for an answer to allowed origin `which`.
    pub fn headers(&self, which: u16, preflight: bool) -> &[u8] {
        let (answer, preflight_answer) = &self.blocks[usize::from(which)];
        if preflight { preflight_answer } else { answer }
    }

    /// The header lines for an answer to a request from no allowed origin: with a list of
    /// origins, `Vary: Origin` still, so that a shared cache never gives this answer (without
    /// `Access-Control-Allow-Origin`) to a page on an allowed origin.
    pub fn headers_for_others(&self) -> &[u8] {
        if self.origins.is_some() { b"Vary: Origin\r\n" } else { b"" }
    }
}

/// One origin as a browser serializes it, or why `text` is none.
fn origin(text: &str) -> Result<String, String> {
    let lower = text.to_ascii_lowercase();
    let not = |why: &str| format!("'{text}' is not an origin ({why}; like https://config.example:8443)");
    if lower == "*" {
        return Err("* stands alone: --cors=* allows every origin".into());
    }
    let (scheme, rest) = lower.split_once("://").ok_or_else(|| not("it needs http:// or https://"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return Err(not("the scheme is http or https")),
    };
    let (host, port) = match rest.rsplit_once(':').filter(|(_, p)| !p.contains(']')) {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host_ok = !host.is_empty() && !host.contains(['/', '?', '#', '@', ' ', '%']);
    if !host_ok {
        return Err(not("it needs a host, and no path, user or query"));
    }
    match port {
        None => Ok(format!("{scheme}://{host}")),
        Some(port) if port == default_port => Ok(format!("{scheme}://{host}")),
        Some(port) => match port.parse::<u16>() {
            Ok(number) if number > 0 && !port.starts_with('0') => Ok(format!("{scheme}://{host}:{port}")),
            _ => Err(not("the port is a number from 1 to 65535")),
        },
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
        for bad in [
            "",
            ",",
            "example.com",
            "http://",
            "https://a.example/path",
            "ftp://a.example",
            "http://a.example:",
            "http://user@a.example",
            "http://a.example:08080",
            "http://a.example:99999",
            "http://a.example:0",
            "*,http://a.example",
        ] {
            assert!(Cors::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_are_kept_as_browsers_send_them() {
        let cors = Cors::parse("HTTP://A.Example, https://b.example:443, http://c.example:80/").unwrap();
        assert_eq!(cors.allowed(Some("http://a.example")), Some(0));
        assert_eq!(cors.allowed(Some("https://b.example")), Some(1));
        assert_eq!(cors.allowed(Some("http://c.example")), Some(2));
        let text = String::from_utf8(cors.headers(0, false).to_vec()).unwrap();
        assert!(text.starts_with("Access-Control-Allow-Origin: http://a.example\r\n"), "{text}");
        assert_eq!(cors.allowed(Some("http://[::1]:3000")), None);
        assert_eq!(Cors::parse("http://[::1]:3000").unwrap().allowed(Some("http://[::1]:3000")), Some(0));
    }
}
