//! The counter the cluster tests increment: one read-modify-write of `/counter` by the lock dance
//! (acquire, read, stage value + 1, commit), and what it came to. The values answered 200 must be
//! distinct and all counted in the final store.

use std::net::SocketAddr;
use std::time::Instant;

use super::{try_request, try_request_with};

/// What one increment came to.
pub enum Increment {
    /// Answered 200: it wrote `value`; its lock was granted at `started`.
    Committed { value: u64, started: Instant },
    /// Answered 504 (or the connection broke at the commit): it may or may not be in the store.
    Unknown,
    /// Refused before the commit (lock held elsewhere, no majority, lock lost): nothing written.
    Refused,
}

/// One compare-and-set increment of `/counter` through the node at `address`: read it and its
/// ETag, `PUT` the next value with `If-Match`. A 412 (someone else wrote first) is a refusal.
pub fn cas_increment(address: SocketAddr) -> Increment {
    let Ok(read) = try_request(address, "GET", "/data/counter", b"") else { return Increment::Refused };
    let (Some(tag), 200) = (read.header("etag").map(str::to_string), read.status) else { return Increment::Refused };
    let value = read.json().as_u64().expect("the counter is a number") + 1;
    let started = Instant::now();
    let headers = [("If-Match", tag.as_str())];
    match try_request_with(address, "PUT", "/data/counter", &headers, value.to_string().as_bytes()) {
        Ok(written) if written.status == 200 => Increment::Committed { value, started },
        Ok(written) if written.status == 504 => Increment::Unknown,
        Err(_) => Increment::Unknown,
        Ok(_) => Increment::Refused,
    }
}

/// One read-modify-write of `/counter` under the lock `name`, through the node at `address`.
pub fn increment(address: SocketAddr, name: &str) -> Increment {
    let Ok(acquired) = try_request(address, "PUT", "/lock", name.as_bytes()) else { return Increment::Refused };
    if acquired.status != 200 {
        return Increment::Refused;
    }
    let started = Instant::now();
    let abort = || {
        let _ = try_request(address, "DELETE", &format!("/lock/{name}"), b"");
        Increment::Refused
    };
    let current = match try_request(address, "GET", &format!("/update/{name}/counter"), b"") {
        Ok(read) if read.status == 200 => read.json().as_u64().expect("the counter is a number"),
        _ => return abort(),
    };
    let value = current + 1;
    match try_request(address, "PUT", &format!("/update/{name}/counter"), value.to_string().as_bytes()) {
        Ok(staged) if staged.status == 201 => {}
        _ => return abort(),
    }
    match try_request(address, "PUT", &format!("/lock/{name}"), b"") {
        Ok(committed) if committed.status == 200 => Increment::Committed { value, started },
        Ok(committed) if committed.status == 504 => {
            assert_eq!(committed.json()["outcome"], "unknown", "a 504 says the outcome is unknown");
            Increment::Unknown
        }
        Err(_) => Increment::Unknown,
        Ok(committed) => {
            assert_ne!(committed.status, 201, "a commit answers 200, 504 or an error");
            abort()
        }
    }
}
