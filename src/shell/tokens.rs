//! The secrets the flags name: the token files (`--token-file`, `--read-token-file`, their line
//! format in `core::grant`) and the cluster key (`--cluster-key-file`, its first line). Read at
//! start, where a bad file stops the server with one line, and again on SIGHUP, where a bad file
//! keeps the secrets in use. No error or log line carries a secret.

use std::io;
use std::path::{Path, PathBuf};

use log::warn;

use crate::config::Config;
use crate::core::{Access, Scope, Secret, Token, TokenLine, parse_token_file};

/// Where the secrets are.
#[derive(Debug, Clone, Default)]
pub struct SecretFiles {
    token: Option<PathBuf>,
    read_token: Option<PathBuf>,
    cluster_key: Option<PathBuf>,
}

/// The secrets, as read.
pub struct Secrets {
    pub write: Option<Vec<TokenLine>>,
    pub read: Option<Vec<TokenLine>>,
    pub cluster: Option<String>,
}

impl SecretFiles {
    pub fn of(config: &Config) -> SecretFiles {
        SecretFiles {
            token: config.token_file.clone(),
            read_token: config.read_token_file.clone(),
            cluster_key: config.cluster_key_file.clone(),
        }
    }

    pub fn read(&self) -> io::Result<Secrets> {
        Ok(Secrets {
            write: read_tokens(self.token.as_deref(), "--token-file", Scope::Write)?,
            read: read_tokens(self.read_token.as_deref(), "--read-token-file", Scope::Read)?,
            cluster: read_key(self.cluster_key.as_deref(), "--cluster-key-file")?,
        })
    }
}

impl Secrets {
    pub fn is_empty(&self) -> bool {
        self.write.is_none() && self.read.is_none() && self.cluster.is_none()
    }

    /// What this node sends its peers: the cluster key, else a write token without prefixes (the
    /// peer endpoints then need it to change anything), else a read token without prefixes.
    pub fn for_peers(&self) -> Option<&str> {
        self.cluster.as_deref().or(unscoped(&self.write, Scope::Write)).or(unscoped(&self.read, Scope::Read))
    }

    /// The header lines sent with every request to a peer.
    pub fn peer_headers(&self) -> String {
        self.for_peers().map(|secret| format!("Authorization: Bearer {secret}\r\n")).unwrap_or_default()
    }

    pub fn access(&self) -> Access {
        let tokens = |lines: &Option<Vec<TokenLine>>| lines.as_ref().map(|l| l.iter().map(Token::of).collect());
        Access {
            write: tokens(&self.write),
            read: tokens(&self.read),
            cluster: self.cluster.as_deref().map(Secret::new),
        }
    }

    /// How many tokens, for the line that says the files were read.
    pub fn count(&self) -> usize {
        self.write.as_ref().map_or(0, Vec::len) + self.read.as_ref().map_or(0, Vec::len)
    }
}

/// The first token of `tokens` of `scope` without prefixes.
fn unscoped(tokens: &Option<Vec<TokenLine>>, scope: Scope) -> Option<&str> {
    let tokens = tokens.as_deref().unwrap_or_default();
    tokens.iter().find(|t| t.grant.prefixes.is_none() && t.grant.scope == scope).map(|t| t.token.as_str())
}

/// The text of a secret's file, with a warning when other users may read it.
fn read_file(path: &Path, flag: &str) -> io::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{flag}: cannot read {}: {e}", path.display())))?;
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            warn!("{flag}: {} can be read by other users (chmod 600 it)", path.display());
        }
    }
    Ok(text)
}

fn read_tokens(path: Option<&Path>, flag: &str, scope: Scope) -> io::Result<Option<Vec<TokenLine>>> {
    let Some(path) = path else { return Ok(None) };
    let text = read_file(path, flag)?;
    let tokens = parse_token_file(&text, scope, flag).map_err(|why| {
        let why = why.strip_prefix(flag).unwrap_or(&why).trim_start_matches(": ");
        io::Error::new(io::ErrorKind::InvalidData, format!("{flag}: {}: {why}", path.display()))
    })?;
    Ok(Some(tokens))
}

fn read_key(path: Option<&Path>, flag: &str) -> io::Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let text = read_file(path, flag)?;
    let secret = text.lines().next().unwrap_or("").trim();
    if secret.is_empty() || secret.chars().any(|c| c.is_control() || c == ' ') {
        let why = format!("{flag}: the first line of {} must be the secret: no spaces, not empty", path.display());
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    Ok(Some(secret.to_string()))
}
