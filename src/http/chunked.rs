//! Chunked transfer coding (RFC 9112 section 7.1): an incremental decoder for bodies that arrive in
//! pieces. (`writer::encode_chunk` frames the pieces of a streamed answer.)

use super::HttpError;
use crate::limits::{CHUNK_LINE_BYTES_MAX, CHUNK_TRAILER_BYTES_MAX};

/// Where the chunked decoder is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex digits of a chunk size.
    Size { size: u64, digits: u8 },
    /// Skipping a chunk extension up to the end of the line.
    Extension { size: u64 },
    /// After the CR of a size line.
    SizeLf { size: u64 },
    /// Copying chunk data.
    Data { remaining: u64 },
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line, or the blank line that ends the body.
    TrailerStart,
    /// Inside a trailer line, which is read and dropped.
    TrailerLine,
    /// After the CR of the final blank line.
    EndLf,
    /// The body is complete.
    Done,
}

/// Decodes a chunked body incrementally: feed it whatever bytes have arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Bytes of the current size line or of the trailer section so far, to bound them.
    line_bytes: usize,
    /// Decoded bytes so far.
    body_bytes: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> ChunkedDecoder {
        ChunkedDecoder { state: ChunkState::Size { size: 0, digits: 0 }, line_bytes: 0, body_bytes: 0 }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input`, appending data to `body`. Returns how many input bytes were used;
    /// fewer than given only when the body ended (the rest is the next request).
    pub fn decode(&mut self, input: &[u8], body: &mut Vec<u8>, body_bytes_max: u64) -> Result<usize, HttpError> {
        const BAD: HttpError = HttpError::Malformed("malformed chunked body");
        let mut i = 0;
        while i < input.len() && self.state != ChunkState::Done {
            if let ChunkState::Data { remaining } = self.state {
                let available = input.len() - i;
                let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
                body.extend_from_slice(&input[i..i + take]);
                i += take;
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 { ChunkState::DataCr } else { ChunkState::Data { remaining } };
                continue;
            }
            let byte = input[i];
            i += 1;
            self.line_bytes += 1;
            self.state = match self.state {
                ChunkState::Size { size, digits } => match (byte, char::from(byte).to_digit(16)) {
                    (_, Some(digit)) if digits < 16 => {
                        ChunkState::Size { size: size * 16 + u64::from(digit), digits: digits + 1 }
                    }
                    (_, Some(_)) => return Err(HttpError::BodyTooLarge),
                    (b';' | b' ' | b'\t', None) if digits > 0 => ChunkState::Extension { size },
                    (b'\r', None) if digits > 0 => ChunkState::SizeLf { size },
                    _ => return Err(BAD),
                },
                ChunkState::Extension { size } => match byte {
                    b'\r' => ChunkState::SizeLf { size },
                    b'\n' => return Err(BAD),
                    _ if self.line_bytes > CHUNK_LINE_BYTES_MAX => return Err(BAD),
                    _ => ChunkState::Extension { size },
                },
                ChunkState::SizeLf { size } if byte == b'\n' => {
                    self.line_bytes = 0;
                    if size == 0 {
                        ChunkState::TrailerStart
                    } else {
                        self.body_bytes = self.body_bytes.saturating_add(size);
                        if self.body_bytes > body_bytes_max {
                            return Err(HttpError::BodyTooLarge);
                        }
                        ChunkState::Data { remaining: size }
                    }
                }
                ChunkState::DataCr if byte == b'\r' => ChunkState::DataLf,
                ChunkState::DataLf if byte == b'\n' => {
                    self.line_bytes = 0;
                    ChunkState::Size { size: 0, digits: 0 }
                }
                ChunkState::TrailerStart if byte == b'\r' => ChunkState::EndLf,
                ChunkState::TrailerStart | ChunkState::TrailerLine => match byte {
                    _ if self.line_bytes > CHUNK_TRAILER_BYTES_MAX => return Err(HttpError::HeadTooLarge),
                    b'\n' => ChunkState::TrailerStart,
                    _ => ChunkState::TrailerLine,
                },
                ChunkState::EndLf if byte == b'\n' => ChunkState::Done,
                _ => return Err(BAD),
            };
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1 << 20;

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), HttpError> {
        let mut decoder = ChunkedDecoder::default();
        let mut body = Vec::new();
        let mut used = 0;
        while !decoder.is_done() && used < input.len() {
            let end = (used + step).min(input.len());
            used += decoder.decode(&input[used..end], &mut body, MAX)?;
        }
        assert!(decoder.is_done(), "body incomplete");
        Ok((body, used))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_split() {
        let input = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for step in 1..input.len() {
            let (body, used) = decode_all(input, step).unwrap();
            assert_eq!(body, b"hello, world");
            assert_eq!(&input[used..], b"NEXT", "step {step}");
        }
    }

    #[test]
    fn bad_chunks_are_refused() {
        for input in [&b"x\r\n"[..], b"5\r\nhelloXX", b"\r\n", b"5\nhello\r\n0\r\n\r\n", b"11111111111111111\r\n"] {
            assert!(decode_all(input, 64).is_err(), "{input:?}");
        }
        let mut decoder = ChunkedDecoder::default();
        let too_big = format!("{:x}\r\n", MAX + 1);
        assert_eq!(decoder.decode(too_big.as_bytes(), &mut Vec::new(), MAX), Err(HttpError::BodyTooLarge));
    }
}
