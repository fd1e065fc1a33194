//! Puts the git commit the binary is built from in `LIGHTHOUSE_COMMIT`, for `lighthouse
//! --version`: `git rev-parse --short HEAD`, or `unknown` outside a git checkout (a source
//! tarball, a machine without git). No dependency: git is run as a command.

use std::path::Path;
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let commit = git(&dir, &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LIGHTHOUSE_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    // Run again when HEAD moves: a commit, a checkout. Only files that exist are named (cargo
    // runs the script on every build for a path that does not), which a worktree's HEAD, its
    // branch's ref or the packed refs are.
    let mut watched = vec![git(&dir, &["rev-parse", "--git-path", "HEAD"])];
    watched.push(git(&dir, &["rev-parse", "--git-path", "packed-refs"]));
    if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&dir, &["rev-parse", "--git-path", &branch]));
    }
    for path in watched.into_iter().flatten() {
        let path = Path::new(&dir).join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// What a git command prints, trimmed; `None` when git is missing, fails or prints nothing.
fn git(dir: &str, args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).current_dir(dir).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !text.is_empty()).then_some(text)
}
