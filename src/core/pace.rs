//! Pacing of the workers' long passes over a large store (render, hash, write to disk): a writer
//! that hands its inner writer at most `PACE_PIECE_BYTES` at a time and calls a hook after each
//! piece. The workers' hook yields the core: on a core shared with the event loop, a loop that the
//! scheduler preempted for a worker would otherwise wait for the next tick (4 ms at 250 Hz), and a
//! single write(2) of 10 MiB runs unpreempted on a kernel built without preemption; a piece takes
//! well under a millisecond. The simulation's hook does nothing.

use std::io::{self, Write};

use crate::limits::PACE_PIECE_BYTES;

pub struct Paced<'a, W> {
    inner: W,
    since_pace: usize,
    pace: &'a mut dyn FnMut(),
}

impl<'a, W> Paced<'a, W> {
    pub fn new(inner: W, pace: &'a mut dyn FnMut()) -> Paced<'a, W> {
        Paced { inner, since_pace: 0, pace }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Paced<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = PACE_PIECE_BYTES - self.since_pace;
        let written = self.inner.write(&bytes[..bytes.len().min(room)])?;
        self.since_pace += written;
        if self.since_pace >= PACE_PIECE_BYTES {
            self.since_pace = 0;
            (self.pace)();
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_write_goes_through_in_pieces_with_the_hook_between_them() {
        let mut paces = 0;
        let mut hook = || paces += 1;
        let mut out = Vec::new();
        let mut paced = Paced::new(&mut out, &mut hook);
        let big = vec![7u8; 3 * PACE_PIECE_BYTES + 5];
        paced.write_all(&big).unwrap();
        let _ = paced.into_inner();
        assert_eq!(out, big);
        assert_eq!(paces, 3);
    }
}
