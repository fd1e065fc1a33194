//! Node addresses: `HOST:PORT`, as `--seeds`, `--advertise` and the cluster table give them.

/// Checks a `HOST:PORT` address (a name or an IP, then a port).
pub fn parse_host_port(s: &str) -> Result<String, String> {
    let bad = || format!("'{s}' is not HOST:PORT");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() || host.contains(['/', ' ', ',']) {
        return Err(bad());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_a_host_and_a_port() {
        for good in ["node1:8001", "127.0.0.1:1", "[::1]:8001"] {
            assert_eq!(parse_host_port(good).as_deref(), Ok(good));
        }
        for bad in ["node1", ":8001", "node1:", "node1:70000", "a b:1", "a/b:1", "a,b:1"] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }
}
