//! Large blobs that compress poorly, written as zstd frames of raw blocks by mandala itself
//! ([`RawFrame`]): the frame zstd's fast mode makes of such content, without running a
//! compressor that finds nothing to compress.

use std::io::{self, Write};

use xxhash_rust::xxh64::Xxh64;

/// zstd's largest block (RFC 8878 §3.1.1.2.4): a raw frame cuts its content into blocks of
/// this size, the last one shorter.
pub const BLOCK: u64 = 128 << 10;

/// zstd's multi-threaded mode compresses content in jobs of this size at its fast levels, and
/// ends a frame whose content fills whole jobs with an empty last block.
const JOB: u64 = 2 << 20;

/// The window descriptor of the frames written: a 512 KiB window (exponent 9, mantissa 0),
/// what zstd's fast levels announce for content of 256 KiB or more.
const WINDOW_DESCRIPTOR: u8 = 0x48;

/// The 3-byte header of a raw block of `size` bytes (RFC 8878 §3.1.1.2.1, little-endian): bit 0
/// the last block, bits 1-2 the type (0: raw), bits 3-23 the size.
pub fn raw_block_header(size: u64, last: bool) -> [u8; 3] {
    let header = ((size as u32) << 3) | u32::from(last);
    let b = header.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// A zstd frame of `len` bytes of content in raw blocks, written to `out` as the content
/// arrives: the frame header (magic, descriptor, window descriptor, content size), a 3-byte
/// header before every [`BLOCK`] bytes of content (and an empty last block after content of
/// a multiple of 2 MiB), and the low 4 bytes of the content's XXH64 (seed 0) after it. Byte
/// for byte the frame zstd (1.5, multi-threaded) writes at `--fast=10` for content none of
/// whose blocks it can shrink (a test holds it to that), and an ordinary frame for any zstd
/// decoder. Writing more than `len` bytes, or finishing with fewer, is an error.
pub struct RawFrame<W: Write> {
    out: W,
    checksum: Xxh64,
    /// The content size announced, and how much of it was written.
    len: u64,
    written: u64,
}

impl<W: Write> RawFrame<W> {
    /// Writes the frame header for `len` bytes of content (more than 64 KiB: the 4- or 8-byte
    /// content size field zstd writes for such sizes).
    pub fn new(mut out: W, len: u64) -> io::Result<RawFrame<W>> {
        let mut head = Vec::with_capacity(14);
        head.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
        // Frame header descriptor: bits 7-6 the content size field (2: 4 bytes, 3: 8 bytes),
        // bit 2 a checksum; not single segment, so a window descriptor follows.
        if len < u64::from(u32::MAX) {
            head.extend_from_slice(&[0x84, WINDOW_DESCRIPTOR]);
            head.extend_from_slice(&(len as u32).to_le_bytes());
        } else {
            head.extend_from_slice(&[0xC4, WINDOW_DESCRIPTOR]);
            head.extend_from_slice(&len.to_le_bytes());
        }
        out.write_all(&head)?;
        Ok(RawFrame {
            out,
            checksum: Xxh64::new(0),
            len,
            written: 0,
        })
    }

    /// Writes the checksum and returns the writer, once all `len` bytes were written.
    pub fn finish(mut self) -> io::Result<W> {
        if self.written != self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a frame announced as {} bytes was given {}",
                    self.len, self.written
                ),
            ));
        }
        if self.len.is_multiple_of(JOB) {
            // An empty raw block, the last.
            self.out.write_all(&raw_block_header(0, true))?;
        }
        let sum = self.checksum.digest() as u32;
        self.out.write_all(&sum.to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for RawFrame<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.len - self.written {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("more than the {} bytes the frame announced", self.len),
            ));
        }
        let n = buf.len();
        self.checksum.update(buf);
        while !buf.is_empty() {
            let within = self.written % BLOCK;
            if within == 0 {
                let size = (self.len - self.written).min(BLOCK);
                let last = self.written + size == self.len && !self.len.is_multiple_of(JOB);
                self.out.write_all(&raw_block_header(size, last))?;
            }
            let take = ((BLOCK - within) as usize).min(buf.len());
            self.out.write_all(&buf[..take])?;
            self.written += take as u64;
            buf = &buf[take..];
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
