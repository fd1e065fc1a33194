//! A small tmpfs mounted for one test: a real full disk or a real read-only directory, which
//! permissions cannot give a test that runs as root.

use std::path::Path;
use std::process::Command;

use super::TempDir;

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
pub struct Tmpfs {
    pub dir: TempDir,
}

impl Tmpfs {
    /// `None` when this process may not mount (not root, or no mount namespace rights): the test
    /// then says so and skips.
    pub fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = TempDir::new(name);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            eprintln!("skipping: cannot mount a tmpfs here (tests of a full or read-only disk need root)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `mount -o remount,MODE` (`ro`, `rw`).
    pub fn remount(&self, mode: &str) {
        let status =
            Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(self.dir.path()).status().unwrap();
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
