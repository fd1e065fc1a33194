//! Access control: bearer tokens for changes (`--token-file`), for reads (`--read-token-file`), and
//! a key shared by the nodes of a cluster for the peer endpoints (`--cluster-key-file`).
//!
//! One rule covers every way of changing the store: a request that changes something needs the
//! write token. The peer endpoints `/copy` and `/state` take the cluster key when there is one;
//! without one they are guarded like the rest (reading them needs read access, and `PUT /copy`,
//! which replaces the store, needs the write token), and a node sends its write token (else its
//! read token) to its peers, so a cluster whose nodes share their tokens works without a key.
//!
//! Secrets are compared through their SHA-1 digests, byte by byte without an early exit, so the time
//! a comparison takes says nothing about how much of a guess was right, not even its length.
//! A `Secret` never prints itself: its `Debug` is a placeholder, and no log line carries one.

use std::fmt;

use super::Shared;
use super::grant::{Grant, Scope, TokenLine};
use crate::http::{Method, Response};

/// A token or key, kept as its digest.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 20]);

impl Secret {
    pub fn new(text: &str) -> Secret {
        Secret(crate::sha1::Sha1::digest(text.as_bytes()))
    }

    /// True when `candidate` is this secret, in time that does not depend on where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let other = Secret::new(candidate);
        self.0.iter().zip(other.0.iter()).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One token of a token file, kept as its digest, and what it grants (`grant.rs`).
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    pub grant: Grant,
}

impl Token {
    pub fn of(line: &TokenLine) -> Token {
        Token { secret: Secret::new(&line.token), grant: line.grant.clone() }
    }
}

/// Who may do what. Each `None` leaves that kind of request open.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `--token-file`: needed for every request that changes something (any method but `GET` and
    /// `HEAD`), by a token of scope `write`.
    pub write: Option<Vec<Token>>,
    /// `--read-token-file`: needed to read anything but `/health` and `/ready`; the tokens of
    /// `--token-file` read too.
    pub read: Option<Vec<Token>>,
    /// Needed for the peer endpoints, `/copy` and `/state`, every method.
    pub cluster: Option<Secret>,
}

/// What a request needs, by its resource and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Nothing,
    Read,
    Write,
    Cluster,
}

impl Access {
    /// What the request may do, or the 401 to answer.
    pub fn check(&self, resource: &str, method: Method, authorization: Option<&str>) -> Result<Grant, Response> {
        self.check_forwarded(resource, method, authorization, false)
    }

    /// As `check`; a request another node `forwarded` to this one (the coordinator) comes with
    /// that node's key: with a cluster key, it must be that key (the forwarding node checked the
    /// client's token, and sends what it grants along: `forwarded_grant`).
    pub fn check_forwarded(
        &self,
        resource: &str,
        method: Method,
        authorization: Option<&str>,
        forwarded: bool,
    ) -> Result<Grant, Response> {
        let changes = !matches!(method, Method::Get | Method::Head);
        let need = match resource {
            _ if forwarded && self.cluster.is_some() => Need::Cluster,
            // The page holds no data: it asks for a token before it reads any.
            "health" | "ready" | "ui" => Need::Nothing,
            "copy" | "state" | "cluster" if self.cluster.is_some() => Need::Cluster,
            _ if changes => Need::Write,
            _ => Need::Read,
        };
        let token = authorization.and_then(bearer);
        let find = |tokens: &Option<Vec<Token>>| {
            let tokens = tokens.as_deref().unwrap_or_default();
            token.and_then(|t| tokens.iter().find(|k| k.secret.matches(t))).map(|k| k.grant.clone())
        };
        let granted = match need {
            Need::Nothing => Some(Grant::full()),
            Need::Read if self.read.is_none() => Some(Grant::full()),
            Need::Read => find(&self.read).or_else(|| find(&self.write)),
            Need::Write if self.write.is_none() => Some(Grant::full()),
            Need::Write => find(&self.write).filter(|g| g.scope == Scope::Write),
            Need::Cluster => {
                let allowed = self.cluster.as_ref().is_none_or(|key| token.is_some_and(|t| key.matches(t)));
                allowed.then(Grant::full)
            }
        };
        if let Some(grant) = granted {
            return Ok(grant);
        }
        let what = match (need, token.is_some()) {
            (Need::Cluster, _) => "this peer endpoint needs the cluster key: Authorization: Bearer KEY",
            (Need::Write, false) => "changes need a token: Authorization: Bearer TOKEN",
            (Need::Write, true) => "this token does not allow changes: they need a write token",
            (_, false) => "reads need a token: Authorization: Bearer TOKEN",
            (_, true) => "this token does not allow reads: they need a read or a write token",
        };
        Err(Response::error(401, what).with_header("WWW-Authenticate", "Bearer realm=\"lighthouse\""))
    }

    /// What a forwarded request may do: what its credential grants, narrowed to what the node that
    /// forwarded it says its client's token grants (`X-Lighthouse-Grant`). Only a credential that
    /// may do everything (the cluster key, or a write token without prefixes) can be narrowed: a
    /// scoped token that sends the header itself keeps its own grant, so the header never widens.
    pub fn forwarded_grant(granted: Grant, header: Option<&str>) -> Result<Grant, Response> {
        match header {
            Some(header) if granted.is_unscoped_write() => Grant::from_header(header)
                .map_err(|why| Response::error(400, &format!("X-Lighthouse-Grant is malformed: {why}"))),
            _ => Ok(granted),
        }
    }
}

impl Shared {
    /// The secrets read again (SIGHUP): the one change of the configuration after start.
    pub(super) fn set_access(&mut self, access: Access) {
        self.config.access = access;
    }
}

/// A read's `?access_token=TOKEN` as the header it stands for (RFC 6750, section 2.3), for
/// clients that cannot send one (a browser's `EventSource`). Only reads take it, and only without
/// a header: a token in a URL ends up in proxy and browser logs, so it must never carry the power
/// to change anything.
pub fn url_token(method: Method, authorization: Option<&str>, access_token: Option<&str>) -> Option<String> {
    let read = matches!(method, Method::Get | Method::Head);
    let token = access_token.filter(|_| read && authorization.is_none())?;
    Some(format!("Bearer {}", crate::core::path::decode(token).ok()?))
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unscoped tokens, one a file, as before scopes.
    fn tokens(token: &str, scope: Scope) -> Option<Vec<Token>> {
        let flag = if scope == Scope::Write { "--token-file" } else { "--read-token-file" };
        let lines = crate::core::grant::parse_token_file(token, scope, flag).unwrap();
        Some(lines.iter().map(Token::of).collect())
    }

    #[test]
    fn secrets_match_only_themselves() {
        let secret = Secret::new("s3cret");
        assert!(secret.matches("s3cret"));
        assert!(!secret.matches("s3cre"));
        assert!(!secret.matches("s3cret "));
        assert!(!secret.matches(""));
        assert_eq!(format!("{secret:?}"), "Secret(..)", "a secret never prints itself");
    }

    #[test]
    fn each_kind_of_request_needs_its_own_secret() {
        let access = Access {
            write: tokens("w", Scope::Write),
            read: tokens("r", Scope::Read),
            cluster: Some(Secret::new("k")),
        };
        let status = |resource: &str, method: Method, auth: Option<&str>| {
            access.check(resource, method, auth).err().map(|r| r.status)
        };
        assert_eq!(status("health", Method::Get, None), None);
        assert_eq!(status("ready", Method::Get, None), None);
        assert_eq!(status("data", Method::Get, None), Some(401));
        assert_eq!(status("data", Method::Get, Some("Bearer r")), None);
        assert_eq!(status("data", Method::Get, Some("bearer w")), None, "the write token reads too");
        assert_eq!(status("data", Method::Get, Some("Bearer k")), Some(401));
        assert_eq!(status("lock", Method::Put, Some("Bearer r")), Some(401));
        assert_eq!(status("lock", Method::Put, Some("Bearer w")), None);
        assert_eq!(status("update", Method::Delete, Some("Basic w")), Some(401));
        assert_eq!(status("copy", Method::Put, Some("Bearer w")), Some(401));
        assert_eq!(status("state", Method::Get, Some("Bearer k")), None);
        let unauthorized = access.check("lock", Method::Put, None).unwrap_err();
        assert!(String::from_utf8_lossy(unauthorized.headers.as_slice()).contains("WWW-Authenticate: Bearer"));
    }

    #[test]
    fn without_a_cluster_key_the_peer_endpoints_need_the_tokens() {
        let access = Access { write: tokens("w", Scope::Write), read: None, cluster: None };
        let status = |resource: &str, method: Method, auth: Option<&str>| {
            access.check(resource, method, auth).err().map(|r| r.status)
        };
        assert_eq!(status("copy", Method::Put, None), Some(401), "a copy replaces the store: it needs the token");
        assert_eq!(status("state", Method::Put, None), Some(401));
        assert_eq!(status("copy", Method::Put, Some("Bearer w")), None);
        assert_eq!(status("copy", Method::Get, None), None, "reads stay open without a read token");
        assert_eq!(status("data", Method::Delete, None), Some(401), "every change needs it");
        let reads = Access { write: None, read: tokens("r", Scope::Read), cluster: None };
        assert_eq!(
            reads.check("copy", Method::Get, None).err().map(|r| r.status),
            Some(401),
            "the copy is the whole store"
        );
        assert_eq!(reads.check("state", Method::Get, Some("Bearer r")).err().map(|r| r.status), None);
    }

    #[test]
    fn without_secrets_everything_is_open() {
        let access = Access::default();
        for resource in ["data", "lock", "update", "copy", "state", "metrics"] {
            assert_eq!(access.check(resource, Method::Put, None).ok(), Some(Grant::full()), "{resource}");
        }
    }

    #[test]
    fn a_token_brings_its_grant_and_a_forwarded_grant_only_narrows() {
        let lines = "w\nscoped label=web prefixes=/web\nreader scope=read\n";
        let write = crate::core::grant::parse_token_file(lines, Scope::Write, "--token-file").unwrap();
        let access = Access { write: Some(write.iter().map(Token::of).collect()), read: None, cluster: None };
        let scoped = access.check("data", Method::Put, Some("Bearer scoped")).unwrap();
        assert_eq!(scoped.label.as_deref(), Some("web"));
        let refused = access.check("data", Method::Put, Some("Bearer reader")).unwrap_err();
        assert_eq!(refused.status, 401, "a read token of --token-file changes nothing");
        let header = scoped.to_header();
        let full = access.check("data", Method::Put, Some("Bearer w")).unwrap();
        assert_eq!(Access::forwarded_grant(full, Some(&header)).unwrap(), scoped, "narrowed");
        let wider = Grant::full().to_header();
        assert_eq!(Access::forwarded_grant(scoped.clone(), Some(&wider)).unwrap(), scoped, "never widened");
    }
}
