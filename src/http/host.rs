//! The `Host` a node bound to a loopback address serves: a guard against DNS rebinding.
//!
//! A page on `http://evil.example` can make its own name resolve to 127.0.0.1 a moment after it
//! loaded; the browser then sends the page's requests to this node and lets the page read the
//! answers, since to the browser they come from the page's own origin. Only the `Host` header
//! gives it away: it still names `evil.example`. So a node that listens on loopback, and is
//! therefore meant for this machine alone, serves only names an attacker cannot point at it: an
//! IP literal (a page on an IP address cannot rebind it), `localhost` (no one can register it),
//! and the host of its own `--advertise`. A request without `Host` (HTTP/1.0) is served: a browser
//! always sends one. Every endpoint is guarded, not only the peers': a rebinding page could read
//! `/data` as well as forge a beat.

use std::net::{IpAddr, Ipv6Addr};

use super::Response;

/// The names a loopback node serves besides IP literals and `localhost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGuard {
    /// The host of `--advertise` (without its port), in lower case, if it is a name.
    advertised: Option<String>,
}

impl HostGuard {
    /// The guard of a node advertised as `address` (`HOST:PORT`, or the bind address).
    pub fn new(address: &str) -> HostGuard {
        let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
        let advertised = (!is_ip_literal(host)).then(|| host.to_ascii_lowercase());
        HostGuard { advertised }
    }

    /// `None` when a request with this `Host` is served; else the 421 that refuses it.
    pub fn check(&self, host: Option<&str>) -> Option<Response> {
        let name = host?;
        if self.allows(name) {
            return None;
        }
        let why = "this node listens on a loopback address and serves only the Host names 127.0.0.1 (any IP), \
                   localhost, or its --advertise host: a page that made its own name resolve to this machine \
                   (DNS rebinding) is refused";
        Some(Response::error(421, why))
    }

    fn allows(&self, name: &str) -> bool {
        let host = host_of(name.trim());
        let Some(host) = host else { return false };
        is_ip_literal(host)
            || host.eq_ignore_ascii_case("localhost")
            || self.advertised.as_deref().is_some_and(|a| host.eq_ignore_ascii_case(a))
    }
}

/// The host of `HOST[:PORT]` (`[V6]` keeps its brackets); `None` when the port is not a number.
fn host_of(name: &str) -> Option<&str> {
    if name.starts_with('[') {
        let end = name.find(']')?;
        let rest = &name[end + 1..];
        return (rest.is_empty() || port(rest.strip_prefix(':')?)).then_some(&name[..=end]);
    }
    match name.rsplit_once(':') {
        // An unbracketed IPv6 address is no valid Host, but it is a literal all the same.
        Some(_) if name.parse::<Ipv6Addr>().is_ok() => Some(name),
        Some((host, digits)) => port(digits).then_some(host),
        None => Some(name),
    }
}

fn port(digits: &str) -> bool {
    digits.parse::<u16>().is_ok()
}

/// `127.0.0.1`, `::1`, or `[::1]`.
fn is_ip_literal(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    match bare {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
        None => host.parse::<IpAddr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_and_localhost_are_served() {
        let guard = HostGuard::new("127.0.0.1:8001");
        for host in
            ["127.0.0.1", "127.0.0.1:8001", "10.1.2.3:80", "[::1]", "[::1]:8001", "::1", "localhost", "LocalHost:8001"]
        {
            assert_eq!(guard.check(Some(host)).map(|r| r.status), None, "{host}");
        }
        assert_eq!(guard.check(None).map(|r| r.status), None, "HTTP/1.0 without Host");
    }

    #[test]
    fn other_names_are_refused_with_421() {
        let guard = HostGuard::new("127.0.0.1:8001");
        for host in [
            "evil.example",
            "evil.example:8001",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "",
            "[::1",
            "[::1]x",
            "localhost:port",
            "2130706433",
        ] {
            let refused = guard.check(Some(host)).expect(host);
            assert_eq!(refused.status, 421, "{host}");
            assert!(String::from_utf8_lossy(refused.body.as_slice()).contains("DNS rebinding"));
        }
    }

    #[test]
    fn the_advertised_name_is_served() {
        let guard = HostGuard::new("Node1.example:8002");
        assert_eq!(guard.check(Some("node1.example:8002")), None);
        assert_eq!(guard.check(Some("node1.example")), None);
        assert!(guard.check(Some("node2.example:8002")).is_some());
    }
}
