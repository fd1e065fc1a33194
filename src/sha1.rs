//! SHA-1 with the processor's SHA extensions when it has them, `sha1_smol` when it does not.
//!
//! Every checksum Lighthouse computes is a SHA-1 (the contract's version checksums, the file
//! checksum of a snapshot), and loading a snapshot hashes the whole file twice: with `sha1_smol`
//! alone that was a third of a start-up. x86-64 processors since about 2017 (Intel Goldmont and
//! Ice Lake, AMD Zen) compute four rounds of SHA-1 in one instruction (`sha1rnds4`), with the
//! message schedule in two more (`sha1msg1`, `sha1msg2`), several times faster. Only the block
//! function uses them; the padding and buffering around it are plain Rust, and the result is
//! checked against `sha1_smol` in the tests below on every length up to a few blocks. The two
//! hashes of a start-up run side by side (`digest_pair`), each filling the other's waits.
//!
//! This module is outside `core` because it needs `unsafe` to call the intrinsics; it does no I/O.
//! With `shell::sys`, it is one of the two places the crate allows `unsafe`.

#![allow(unsafe_code)]

/// A SHA-1 computation fed in pieces.
#[derive(Clone)]
pub enum Sha1 {
    Hardware(Blocks),
    Software(sha1_smol::Sha1),
}

/// The state of the hardware computation: the chaining value, a partial block, the length so far.
#[derive(Clone)]
pub struct Blocks {
    state: [u32; 5],
    buffer: [u8; 64],
    buffered: usize,
    length: u64,
}

impl Default for Sha1 {
    fn default() -> Sha1 {
        if hardware::available() {
            Sha1::Hardware(Blocks {
                state: [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476, 0xc3d2_e1f0],
                buffer: [0; 64],
                buffered: 0,
                length: 0,
            })
        } else {
            Sha1::Software(sha1_smol::Sha1::new())
        }
    }
}

impl Sha1 {
    /// The SHA-1 of `bytes`.
    pub fn digest(bytes: &[u8]) -> [u8; 20] {
        let mut sha1 = Sha1::default();
        sha1.update(bytes);
        sha1.finish()
    }

    /// The SHA-1s of two inputs, computed together: with the extensions, in one pass that costs
    /// little more than the longer input alone (`hardware::compress_pair`).
    pub fn digest_pair(first: &[u8], second: &[u8]) -> ([u8; 20], [u8; 20]) {
        let (mut one, mut two) = (Sha1::default(), Sha1::default());
        if let (Sha1::Hardware(a), Sha1::Hardware(b)) = (&mut one, &mut two) {
            let (first_whole, second_whole) = (first.len() / 64 * 64, second.len() / 64 * 64);
            hardware::compress_pair((&mut a.state, &first[..first_whole]), (&mut b.state, &second[..second_whole]));
            (a.length, b.length) = (first_whole as u64, second_whole as u64);
            one.update(&first[first_whole..]);
            two.update(&second[second_whole..]);
            return (one.finish(), two.finish());
        }
        (Sha1::digest(first), Sha1::digest(second))
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        let blocks = match self {
            Sha1::Software(sha1) => return sha1.update(bytes),
            Sha1::Hardware(blocks) => blocks,
        };
        blocks.length += bytes.len() as u64;
        if blocks.buffered > 0 {
            let taken = bytes.len().min(64 - blocks.buffered);
            blocks.buffer[blocks.buffered..blocks.buffered + taken].copy_from_slice(&bytes[..taken]);
            blocks.buffered += taken;
            bytes = &bytes[taken..];
            if blocks.buffered < 64 {
                return;
            }
            hardware::compress(&mut blocks.state, &blocks.buffer);
            blocks.buffered = 0;
        }
        let whole = bytes.len() / 64 * 64;
        hardware::compress(&mut blocks.state, &bytes[..whole]);
        let rest = &bytes[whole..];
        blocks.buffer[..rest.len()].copy_from_slice(rest);
        blocks.buffered = rest.len();
    }

    /// The digest of everything fed so far (the computation can go on after).
    pub fn finish(&self) -> [u8; 20] {
        let mut blocks = match self {
            Sha1::Software(sha1) => return sha1.digest().bytes(),
            Sha1::Hardware(blocks) => blocks.clone(),
        };
        // Padding: a one bit, zeros up to 8 bytes short of a block, the length in bits.
        let bits = blocks.length.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..blocks.buffered].copy_from_slice(&blocks.buffer[..blocks.buffered]);
        tail[blocks.buffered] = 0x80;
        let tail_len = if blocks.buffered < 56 { 64 } else { 128 };
        tail[tail_len - 8..tail_len].copy_from_slice(&bits.to_be_bytes());
        hardware::compress(&mut blocks.state, &tail[..tail_len]);
        let mut digest = [0u8; 20];
        for (word, out) in blocks.state.iter().zip(digest.chunks_exact_mut(4)) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

#[cfg(target_arch = "x86_64")]
mod hardware {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    /// Whether this processor has the SHA extensions (and the SSE levels the code around uses).
    pub fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            is_x86_feature_detected!("sha")
                && is_x86_feature_detected!("sse2")
                && is_x86_feature_detected!("ssse3")
                && is_x86_feature_detected!("sse4.1")
        })
    }

    /// Runs the block function over whole 64-byte blocks. Called only once `available()` said so.
    pub fn compress(state: &mut [u32; 5], blocks: &[u8]) {
        assert!(available() && blocks.len().is_multiple_of(64));
        // SAFETY: the processor has every feature `compress_blocks` is compiled for (checked
        // above, at run time), and it reads only within `blocks` and `state`.
        unsafe { compress_blocks(state, blocks) }
    }

    /// Runs the block function over two inputs of whole 64-byte blocks at once, a block of each
    /// in turn. The rounds of one block depend each on the one before, so a single input keeps
    /// the SHA unit waiting on its own results; two independent inputs fill those gaps, and the
    /// pair costs little more than the longer of the two alone.
    pub fn compress_pair(first: (&mut [u32; 5], &[u8]), second: (&mut [u32; 5], &[u8])) {
        assert!(available() && first.1.len().is_multiple_of(64) && second.1.len().is_multiple_of(64));
        let together = first.1.len().min(second.1.len());
        // SAFETY: as in `compress`.
        unsafe { compress_two(first.0, &first.1[..together], second.0, &second.1[..together]) };
        compress(first.0, &first.1[together..]);
        compress(second.0, &second.1[together..]);
    }

    /// The SHA-1 block function, four rounds per `sha1rnds4`. The state is kept as A B C D in
    /// one register (A in the highest lane) and E in the highest lane of another; each group of
    /// four message words is loaded big-endian with the first word highest. `sha1nexte` derives
    /// the next group's E (A of four rounds ago, rotated) and adds it to the words; `sha1msg1`,
    /// a XOR and `sha1msg2` compute the next four words of the schedule from the last sixteen.
    macro_rules! block {
        ($abcd:ident, $e:ident, $block:expr) => {{
            let block: &[u8] = $block;
            let byte_order = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
            let (abcd_before, e_before) = ($abcd, $e);
            // SAFETY: four loads of 16 bytes within the 64-byte block.
            let load =
                |i: usize| _mm_shuffle_epi8(unsafe { _mm_loadu_si128(block.as_ptr().add(16 * i).cast()) }, byte_order);
            let (mut w0, mut w1, mut w2, mut w3) = (load(0), load(1), load(2), load(3));
            let mut previous = $abcd;
            $abcd = _mm_sha1rnds4_epu32($abcd, _mm_add_epi32($e, w0), 0);
            // Four rounds with the words `$w` and function `$f`; the words four groups later are
            // computed from these and the next three, fully unrolled so all stays in registers.
            macro_rules! rounds {
                ($w:ident, $f:literal) => {{
                    let e_and_words = _mm_sha1nexte_epu32(previous, $w);
                    previous = $abcd;
                    $abcd = _mm_sha1rnds4_epu32($abcd, e_and_words, $f);
                }};
            }
            macro_rules! schedule {
                ($oldest:ident, $older:ident, $old:ident, $last:ident) => {
                    $oldest = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32($oldest, $older), $old), $last)
                };
            }
            rounds!(w1, 0);
            rounds!(w2, 0);
            rounds!(w3, 0);
            schedule!(w0, w1, w2, w3);
            rounds!(w0, 0);
            schedule!(w1, w2, w3, w0);
            rounds!(w1, 1);
            schedule!(w2, w3, w0, w1);
            rounds!(w2, 1);
            schedule!(w3, w0, w1, w2);
            rounds!(w3, 1);
            schedule!(w0, w1, w2, w3);
            rounds!(w0, 1);
            schedule!(w1, w2, w3, w0);
            rounds!(w1, 1);
            schedule!(w2, w3, w0, w1);
            rounds!(w2, 2);
            schedule!(w3, w0, w1, w2);
            rounds!(w3, 2);
            schedule!(w0, w1, w2, w3);
            rounds!(w0, 2);
            schedule!(w1, w2, w3, w0);
            rounds!(w1, 2);
            schedule!(w2, w3, w0, w1);
            rounds!(w2, 2);
            schedule!(w3, w0, w1, w2);
            rounds!(w3, 3);
            schedule!(w0, w1, w2, w3);
            rounds!(w0, 3);
            schedule!(w1, w2, w3, w0);
            rounds!(w1, 3);
            schedule!(w2, w3, w0, w1);
            rounds!(w2, 3);
            schedule!(w3, w0, w1, w2);
            rounds!(w3, 3);
            $e = _mm_sha1nexte_epu32(previous, e_before);
            $abcd = _mm_add_epi32($abcd, abcd_before);
        }};
    }

    /// A state in registers: A B C D in one (A highest), E in the highest lane of another.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn load_state(state: &[u32; 5]) -> (__m128i, __m128i) {
        // SAFETY: an unaligned load of 16 bytes from a 20-byte array.
        let abcd = _mm_shuffle_epi32(unsafe { _mm_loadu_si128(state.as_ptr().cast()) }, 0x1b);
        (abcd, _mm_set_epi32(state[4] as i32, 0, 0, 0))
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn store_state(state: &mut [u32; 5], abcd: __m128i, e: __m128i) {
        // SAFETY: an unaligned store of 16 bytes into the 20-byte state.
        unsafe { _mm_storeu_si128(state.as_mut_ptr().cast(), _mm_shuffle_epi32(abcd, 0x1b)) };
        state[4] = _mm_extract_epi32(e, 3) as u32;
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress_blocks(state: &mut [u32; 5], blocks: &[u8]) {
        let (mut abcd, mut e) = load_state(state);
        for block in blocks.chunks_exact(64) {
            block!(abcd, e, block);
        }
        store_state(state, abcd, e);
    }

    /// Two inputs of the same length, a block of each in turn (`compress_pair`).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress_two(first: &mut [u32; 5], first_blocks: &[u8], second: &mut [u32; 5], second_blocks: &[u8]) {
        let ((mut abcd, mut e), (mut abcd2, mut e2)) = (load_state(first), load_state(second));
        for (block, block2) in first_blocks.chunks_exact(64).zip(second_blocks.chunks_exact(64)) {
            block!(abcd, e, block);
            block!(abcd2, e2, block2);
        }
        store_state(first, abcd, e);
        store_state(second, abcd2, e2);
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod hardware {
    pub fn available() -> bool {
        false
    }

    pub fn compress(_: &mut [u32; 5], _: &[u8]) {
        unreachable!("never called without the SHA extensions")
    }

    pub fn compress_pair(_: (&mut [u32; 5], &[u8]), _: (&mut [u32; 5], &[u8])) {
        unreachable!("never called without the SHA extensions")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(bytes: &[u8]) -> [u8; 20] {
        sha1_smol::Sha1::from(bytes).digest().bytes()
    }

    /// Bytes that are not all alike, so that a word read out of order shows.
    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 + i / 7) as u8).collect()
    }

    #[test]
    fn every_length_hashes_as_sha1_smol_does() {
        for len in 0..=300 {
            let input = bytes(len);
            assert_eq!(Sha1::digest(&input), reference(&input), "length {len}");
        }
        let large = bytes(1 << 20);
        assert_eq!(Sha1::digest(&large), reference(&large));
        assert_eq!(Sha1::digest(b"abc")[..4], [0xa9, 0x99, 0x3e, 0x36], "the FIPS 180 example");
    }

    #[test]
    fn pieces_of_any_size_give_the_digest_of_the_whole() {
        let input = bytes(1000);
        for piece in [1, 3, 63, 64, 65, 127, 200] {
            let mut sha1 = Sha1::default();
            let mut fed = 0;
            for chunk in input.chunks(piece) {
                sha1.update(chunk);
                fed += chunk.len();
                assert_eq!(sha1.finish(), reference(&input[..fed]), "piece {piece}");
            }
            assert_eq!(sha1.finish(), reference(&input), "piece {piece}");
        }
    }

    #[test]
    fn a_pair_hashes_as_each_alone() {
        let input = bytes(5000);
        for (first, second) in [(0, 0), (1, 200), (64, 63), (4999, 130), (128, 4096), (3000, 3000)] {
            let (a, b) = (&input[..first], &input[input.len() - second..]);
            assert_eq!(Sha1::digest_pair(a, b), (reference(a), reference(b)), "lengths {first} and {second}");
        }
    }

    #[test]
    #[ignore = "timing, run by hand"]
    fn timing_of_a_pair_against_two_apart() {
        let input = bytes(64 << 20);
        let started = std::time::Instant::now();
        let two = (Sha1::digest(&input), Sha1::digest(&input[1000..]));
        let apart = started.elapsed();
        let started = std::time::Instant::now();
        let pair = Sha1::digest_pair(&input, &input[1000..]);
        let together = started.elapsed();
        assert_eq!(two, pair);
        println!("64 MiB twice: apart {apart:?}, as a pair {together:?}");
    }

    /// On a machine with the extensions (this project's CI and benchmark machines have them), the
    /// tests above exercised them, not the fallback.
    #[test]
    fn the_extensions_are_used_where_the_processor_has_them() {
        let detected = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| info.contains(" sha_ni"));
        assert_eq!(matches!(Sha1::default(), Sha1::Hardware(_)), detected && cfg!(target_arch = "x86_64"));
    }
}
