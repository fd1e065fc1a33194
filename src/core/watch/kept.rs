//! What the watchers keep beyond their groups: the roots of recent versions, to resume a stream
//! of changes with a patch, and the last whole first event, shared by streams that open on the
//! same path and version.

use std::collections::VecDeque;

use crate::core::clock::{Deadline, Now};
use crate::core::store::Format;
use crate::core::value::Value;
use crate::core::version::Version;
use crate::http::Bytes;
use crate::limits::{STREAM_RESUME_MS, STREAM_RESUME_VERSIONS_MAX};

/// The first event of the last stream opened with the whole subtree: streams opened on a large
/// store at once (the page in several tabs, clients reconnecting after a restart) share one
/// render and one copy of it instead of each rendering the store. One is kept, and only while
/// its version is the store's.
#[derive(Debug, Default)]
pub(super) enum WholeEvent {
    #[default]
    None,
    Kept {
        version: Version,
        raw_path: String,
        format: Format,
        first: Bytes,
        etag: String,
    },
}

impl WholeEvent {
    /// The event and its tag, when the one kept is of this version, path and format.
    pub(super) fn hit(&self, at: Version, path: &str, wanted: Format) -> Option<(Bytes, String)> {
        match self {
            WholeEvent::Kept { version, raw_path, format, first, etag }
                if *version == at && raw_path == path && *format == wanted =>
            {
                Some((first.clone(), etag.clone()))
            }
            _ => None,
        }
    }
}

/// The roots of recent versions, newest last, each with the time it was kept: a stream of
/// changes that reconnects with `Last-Event-ID` of one of them (its sequence and checksum: two
/// histories may share a sequence after a restore) starts with a patch from it. At
/// most `STREAM_RESUME_VERSIONS_MAX`, none older than `STREAM_RESUME_MS`; a version holds only
/// what later ones do not share with it, but a store replaced whole is held once per version.
#[derive(Debug, Default)]
pub(super) struct Resume {
    versions: VecDeque<(Version, Value, u64)>,
    /// The clock as last seen (`keep` is called where no `now` is passed).
    pub(super) now_ms: u64,
}

impl Resume {
    pub(super) fn keep(&mut self, version: Version, root: &Value) {
        if self.versions.back().is_some_and(|(kept, _, _)| kept.sequence >= version.sequence) {
            return;
        }
        if self.versions.len() == STREAM_RESUME_VERSIONS_MAX {
            self.versions.pop_front();
        }
        self.versions.push_back((version, root.clone(), self.now_ms));
    }

    pub(super) fn root_at(&self, version: Version) -> Option<&Value> {
        self.versions.iter().find(|(kept, _, _)| *kept == version).map(|(_, root, _)| root)
    }

    pub(super) fn next_deadline(&self) -> Option<Deadline> {
        self.versions.front().map(|(_, _, at)| Deadline(at + STREAM_RESUME_MS))
    }

    pub(super) fn expire(&mut self, now: Now) {
        self.now_ms = now.mono_ms;
        while self.versions.front().is_some_and(|(_, _, at)| at + STREAM_RESUME_MS <= now.mono_ms) {
            self.versions.pop_front();
        }
    }
}
