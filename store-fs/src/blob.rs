//! Blobs: one zstd frame (with its content size and checksum) of canonical CBOR bytes.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use store_core::{Error, Id, Kind, Result};

use crate::raw_frame;
pub use crate::raw_frame::RawFrame;
use zstd::stream::raw::CParameter;

/// The largest decompressed size a blob may claim (a damaged header must not make us try to
/// allocate exabytes).
pub const MAX_BLOB: u64 = 1 << 40;

/// The largest decompressed size a call record may claim: records name ops, inputs and
/// outputs, a few hundred bytes each.
pub const MAX_RECORD: u64 = 16 << 20;

/// A frame that claims more than this many bytes, and more than [`SUSPICIOUS_RATIO`] times
/// its compressed size, is verified in a streaming pass (constant memory) before its content
/// is loaded: a small file that decompresses to gigabytes must not be allocated to find out
/// that it does not hash to its name. Legitimate data this compressible is rare and
/// decompresses fast, so the second pass costs little.
pub const SUSPICIOUS_SIZE: u64 = 16 << 20;

/// See [`SUSPICIOUS_SIZE`].
pub const SUSPICIOUS_RATIO: u64 = 16;

/// Whether a frame that claims `claimed` bytes from a file of `file_len` bytes is verified in
/// a streaming pass before it is loaded (see [`SUSPICIOUS_SIZE`]).
pub fn suspicious(claimed: u64, file_len: u64) -> bool {
    claimed > SUSPICIOUS_SIZE && claimed > SUSPICIOUS_RATIO.saturating_mul(file_len)
}

/// The content size the zstd frame starting with `head` claims.
pub fn claimed_size(head: &[u8], path: &Path) -> Result<u64> {
    match zstd::zstd_safe::get_frame_content_size(head) {
        Ok(Some(n)) => Ok(n),
        _ => Err(Error::corrupt(path, "not a zstd frame with a content size")),
    }
}

/// Decompresses the frame `reader` yields in pieces, feeding `hasher` and keeping nothing:
/// constant memory whatever the frame claims (a few mebibyte buffers, passed between this
/// thread and the hashing one). Returns the content's length and hash.
pub fn hash_stream(
    reader: impl Read,
    path: &Path,
    hasher: blake3::Hasher,
) -> Result<(u64, blake3::Hash)> {
    stream_frame(reader, path, hasher, &mut |_| {}, false)
}

/// [`hash_stream`], also handing each piece of the content to `sink` (a mebibyte at a time,
/// in order, while it is in cache). With `whole`, bytes after the frame are an error (a blob
/// is exactly one frame).
pub fn stream_frame(
    reader: impl Read,
    path: &Path,
    hasher: blake3::Hasher,
    sink: &mut dyn FnMut(&[u8]),
    whole: bool,
) -> Result<(u64, blake3::Hash)> {
    let mut dec = zstd::stream::read::Decoder::new(reader)
        .map_err(|e| Error::io("decompress", path, e))?
        .single_frame();
    // The frame's XXH64 checksum is not checked: every caller checks the content's BLAKE3
    // against its id, and XXH64 was a tenth of a large load.
    dec.set_parameter(zstd::stream::raw::DParameter::ForceIgnoreChecksum(true))
        .map_err(|e| Error::io("decompress", path, e))?;
    let (n, hash) = hash_pieces(hasher, sink, |buf| {
        let mut k = 0;
        while k < buf.len() {
            match dec.read(&mut buf[k..]) {
                Ok(0) => break,
                Ok(got) => k += got,
                Err(e) => return Err(Error::corrupt(path, format!("zstd: {e}"))),
            }
        }
        Ok(k)
    })?;
    if whole {
        let mut probe = [0u8; 1];
        if dec
            .finish()
            .read(&mut probe)
            .map_err(|e| Error::io("read", path, e))?
            != 0
        {
            return Err(Error::corrupt(
                path,
                "bytes after the zstd frame (a blob is exactly one frame)",
            ));
        }
    }
    Ok((n, hash))
}

/// The size of the pieces a streamed blob is handed over in.
const PIECE: usize = 1 << 20;

/// Hands the content `fill` produces (a piece at a time: it fills the buffer it is given,
/// and returns how much it filled, 0 at the end) to `sink`, and hashes each piece on a thread
/// of its own while the next is produced; the pieces' buffers go back and forth. Returns the
/// content's length and hash.
fn hash_pieces(
    mut hasher: blake3::Hasher,
    sink: &mut dyn FnMut(&[u8]),
    mut fill: impl FnMut(&mut [u8]) -> Result<usize>,
) -> Result<(u64, blake3::Hash)> {
    let (to_hasher, pieces) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let (give_back, returned) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| -> Result<(u64, blake3::Hash)> {
        let hashing = s.spawn(move || {
            for piece in pieces {
                hasher.update(&piece);
                let _ = give_back.send(piece);
            }
            hasher.finalize()
        });
        let mut to_hasher = Some(to_hasher);
        let read = (|| -> Result<u64> {
            let mut n = 0u64;
            loop {
                let mut buf = returned.try_recv().unwrap_or_default();
                buf.resize(PIECE, 0);
                let k = fill(&mut buf)?;
                if k == 0 {
                    return Ok(n);
                }
                buf.truncate(k);
                sink(&buf);
                n += k as u64;
                let _ = to_hasher.as_ref().expect("until the end").send(buf);
            }
        })();
        drop(to_hasher.take());
        let hash = hashing.join().expect("hashing does not panic");
        read.map(|n| (n, hash))
    })
}

/// [`stream_frame`] of the blob `file` (`len` bytes) if its frame holds only raw blocks (what
/// mandala writes for content that compresses poorly, such as most arrays of floats), with
/// the content's id under `kind`: the file is mapped, and its blocks are handed to `sink` and
/// hashed where the page cache holds them, without a copy — BLAKE3's left subtree on a thread
/// of its own, the rest on this one, beside `sink`. `None`, with nothing handed to `sink`,
/// for any other frame (compressed blocks, no content size, a dictionary, a size that does
/// not add up, bytes after it) or a file that cannot be mapped: the decoder reads those, and
/// reports what is wrong with them.
pub fn stream_raw_frame(
    file: &File,
    len: u64,
    kind: Kind,
    sink: &mut dyn FnMut(&[u8]),
) -> Option<(u64, Id)> {
    // SAFETY: a blob is never changed in place (it is written to a temp file, renamed into
    // place and later removed whole), so the mapping holds the bytes it had when mapped. As
    // with the packs, another program truncating the file under a reader would fault it.
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    if map.len() as u64 != len {
        return None;
    }
    // The whole file is read: mapped at once rather than a page fault at a time.
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::PopulateRead);
    let blocks = raw_blocks(len, |buf, at| {
        let at = at as usize;
        match map.get(at..at + buf.len()) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    })?;
    let total: u64 = blocks.iter().map(|(_, size)| size).sum();
    if total <= 1024 {
        return None; // (no halves to hash apart; frames this small are not streamed)
    }
    // The content's bytes `from..to`, a block (or the part of one in range) at a time.
    let content = |from: u64, to: u64, each: &mut dyn FnMut(&[u8])| {
        let mut start = 0u64;
        for &(at, size) in &blocks {
            let (lo, hi) = (from.max(start), to.min(start + size));
            if lo < hi {
                each(&map[(at + lo - start) as usize..(at + hi - start) as usize]);
            }
            start += size;
        }
    };
    let id = Id::hash_halves(
        kind,
        total,
        |split, hasher| {
            content(0, split, &mut |bytes| {
                hasher.update(bytes);
            })
        },
        |split, hasher| {
            let mut start = 0u64;
            content(0, total, &mut |bytes| {
                sink(bytes);
                hasher.update(Id::split_piece(bytes, start, split).1);
                start += bytes.len() as u64;
            });
        },
    );
    Some((total, id))
}

/// Where the contents of the raw blocks of a frame of `len` bytes lie (offset, size), if the
/// frame is one whose content [`stream_raw_frame`] reads itself (see there): its header and
/// block headers are read with `read_at` (false: not readable).
fn raw_blocks(
    len: u64,
    mut read_at: impl FnMut(&mut [u8], u64) -> bool,
) -> Option<Vec<(u64, u64)>> {
    // Frame header (RFC 8878 §3.1.1): magic, descriptor, window descriptor unless single
    // segment, no dictionary id, a content size field.
    let mut head = [0u8; 14];
    if len < head.len() as u64 || !read_at(&mut head, 0) {
        return None;
    }
    if head[..4] != 0xFD2F_B528u32.to_le_bytes() {
        return None;
    }
    let descriptor = head[4];
    let (size_flag, single, checksum) =
        (descriptor >> 6, descriptor & 0x20 != 0, descriptor & 4 != 0);
    if descriptor & 0x0b != 0 || (size_flag == 0 && !single) {
        return None; // reserved bit, a dictionary id, or no content size
    }
    let mut at = 5 + usize::from(!single);
    let size_len = [1, 2, 4, 8][usize::from(size_flag)];
    let mut field = [0u8; 8];
    field[..size_len].copy_from_slice(&head[at..at + size_len]);
    let claimed = u64::from_le_bytes(field) + if size_len == 2 { 256 } else { 0 };
    at += size_len;
    let mut at = at as u64;
    let (mut blocks, mut total) = (Vec::new(), 0u64);
    loop {
        let mut header = [0u8; 4];
        if at + 3 > len || !read_at(&mut header[..3], at) {
            return None;
        }
        let header = u32::from_le_bytes(header);
        let (last, raw, size) = (header & 1 == 1, header & 0b110 == 0, u64::from(header >> 3));
        // (A frame cut into tiny blocks — zstd writes them of up to 128 KiB — would cost a
        // read each: the decoder reads it instead.)
        if !raw || at + 3 + size > len || blocks.len() as u64 > 16 + len / 1024 {
            return None;
        }
        blocks.push((at + 3, size));
        total += size;
        at += 3 + size;
        if last {
            break;
        }
    }
    (at + 4 * u64::from(checksum) == len && total == claimed).then_some(blocks)
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Blobs at least this large are compressed and decompressed as streams, by zstd's worker
/// threads, overlapping compression with file I/O. Their frames differ from those of the
/// one-shot path (which is single-threaded), so the threshold is part of the format's
/// byte-for-byte determinism: the same value always takes the same path.
pub const STREAM_THRESHOLD: usize = 1 << 20;

fn workers() -> u32 {
    // zstd's multi-threaded output does not depend on the number of workers (>= 1).
    std::thread::available_parallelism()
        .map(|n| n.get().min(4) as u32)
        .unwrap_or(1)
}

/// How much of a large blob [`level_for`] compresses to judge it.
const SAMPLE: usize = 1 << 20;

/// The zstd level a blob that compresses poorly was written at by zstd itself until
/// December 2026 (`zstd --fast=10`), which kept its blocks raw. Such blobs are now written as
/// [`RawFrame`]s, the same frames for content none of whose blocks that level could shrink.
#[cfg(test)]
const POOR_LEVEL: i32 = -10;

/// The level a large blob (at least [`STREAM_THRESHOLD`] bytes) is compressed at: the store's
/// `level`, unless its first MiB compresses at that level to more than nine tenths of its
/// size — then `None`: saving less than a tenth of the space is not worth compressing and
/// decompressing it at a few hundred MB/s (numeric arrays rarely compress better), and the
/// blob is written in raw blocks. Decided by the content alone, so the same bytes always make
/// the same file.
pub fn level_for(data: &[u8], level: i32) -> Result<Option<i32>> {
    let sample = &data[..data.len().min(SAMPLE)];
    let z = compress(sample, level)?;
    Ok((z.len() * 10 <= sample.len() * 9).then_some(level))
}

/// Compresses `data` (at least [`STREAM_THRESHOLD`] bytes) into `file` as one zstd frame, at
/// the level [`level_for`] chooses.
pub fn compress_to(data: &[u8], level: i32, file: impl Write, path: &Path) -> Result<()> {
    let mut enc = large_encoder(data, data.len() as u64, level, file, path)?;
    enc.write_all(data)
        .map_err(|e| Error::io("compress into", path, e))?;
    enc.finish()
        .map_err(|e| Error::io("compress into", path, e))?;
    Ok(())
}

/// The stream a large blob is written through: zstd's, or raw blocks.
pub enum LargeEncoder<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Raw(RawFrame<W>),
}

impl<W: Write> LargeEncoder<W> {
    /// Ends the frame (all the announced content must have been written) and returns the
    /// writer.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            LargeEncoder::Zstd(z) => z.finish(),
            LargeEncoder::Raw(r) => r.finish(),
        }
    }
}

impl<W: Write> Write for LargeEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            LargeEncoder::Zstd(z) => z.write(buf),
            LargeEncoder::Raw(r) => r.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            LargeEncoder::Zstd(z) => z.write_all(buf),
            LargeEncoder::Raw(r) => r.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LargeEncoder::Zstd(z) => z.flush(),
            LargeEncoder::Raw(r) => r.flush(),
        }
    }
}

/// The stream that writes a large blob of `len` bytes (at least [`STREAM_THRESHOLD`]) into
/// `file` as one zstd frame, at the level [`level_for`] chooses from `start` (its first bytes,
/// at least [`STREAM_THRESHOLD`] of them or all), or in raw blocks. zstd's multi-threaded
/// frames do not depend on how the content is cut into writes, nor do raw ones, so a blob
/// written in pieces as it is encoded is the file [`compress_to`] makes of it whole (a test
/// holds it to that).
pub fn large_encoder<W: Write>(
    start: &[u8],
    len: u64,
    level: i32,
    file: W,
    path: &Path,
) -> Result<LargeEncoder<W>> {
    Ok(match level_for(start, level)? {
        None => LargeEncoder::Raw(
            RawFrame::new(file, len).map_err(|e| Error::io("compress into", path, e))?,
        ),
        Some(level) => LargeEncoder::Zstd(zstd_stream(level, len, file, path)?),
    })
}

/// zstd's multi-threaded stream for a large blob of `len` bytes at `level`, into `file`.
pub fn zstd_stream<W: Write>(
    level: i32,
    len: u64,
    file: W,
    path: &Path,
) -> Result<zstd::stream::write::Encoder<'static, W>> {
    let fail = |e: std::io::Error| Error::io("compress into", path, e);
    let mut enc = zstd::stream::write::Encoder::new(file, level).map_err(fail)?;
    enc.set_parameter(CParameter::NbWorkers(workers()))
        .map_err(fail)?;
    enc.include_checksum(true).map_err(fail)?;
    enc.include_contentsize(true).map_err(fail)?;
    enc.set_pledged_src_size(Some(len)).map_err(fail)?;
    Ok(enc)
}

/// Decompresses the large blob in `file` (at `path`) as a stream, with the same checks as
/// [`decompress`].
pub fn decompress_from(file: File, path: &Path) -> Result<Vec<u8>> {
    decompress_hashing(file, path, None).map(|(v, _)| v)
}

/// [`decompress_from`], also hashing the content as it is produced (while it is in cache)
/// with `hasher`, whose result is returned.
pub fn decompress_hashing(
    file: File,
    path: &Path,
    mut hasher: Option<blake3::Hasher>,
) -> Result<(Vec<u8>, Option<blake3::Hash>)> {
    let corrupt = |reason: String| Error::corrupt(path, reason);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let head = reader.fill_buf().map_err(|e| Error::io("read", path, e))?;
    let (mut out, size) = output_buffer(head, path, MAX_BLOB)?;
    let mut dec = zstd::stream::read::Decoder::with_buffer(reader)
        .map_err(|e| Error::io("decompress", path, e))?
        .single_frame();
    loop {
        let start = out.len();
        let n = (&mut dec)
            .take(1 << 20)
            .read_to_end(&mut out)
            .map_err(|e| corrupt(format!("zstd: {e}")))?;
        if n == 0 {
            break;
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&out[start..]);
        }
    }
    if out.len() != size {
        return Err(corrupt(format!(
            "frame holds {} bytes but claims {size}",
            out.len()
        )));
    }
    let mut rest = dec.finish();
    let mut probe = [0u8; 1];
    if rest
        .read(&mut probe)
        .map_err(|e| Error::io("read", path, e))?
        != 0
    {
        return Err(corrupt(
            "bytes after the zstd frame (a blob is exactly one frame)".into(),
        ));
    }
    Ok((out, hasher.map(|h| h.finalize())))
}

/// An empty buffer with room for the content size that the frame header at the start of
/// `head` declares (at most `max`), and that size.
fn output_buffer(head: &[u8], path: &Path, max: u64) -> Result<(Vec<u8>, usize)> {
    let corrupt = |reason: String| Error::corrupt(path, reason);
    let size = match claimed_size(head, path)? {
        n if n <= max => n as usize,
        n => {
            return Err(corrupt(format!(
                "frame claims {n} bytes, more than this kind of object may hold ({max})"
            )))
        }
    };
    let mut out = Vec::new();
    out.try_reserve_exact(size)
        .map_err(|_| corrupt(format!("cannot allocate the {size} bytes the frame claims")))?;
    Ok((out, size))
}

/// Compresses `data` into one zstd frame at `level`, with content size and checksum.
pub fn compress(data: &[u8], level: i32) -> Result<Vec<u8>> {
    let fail = |e: std::io::Error| Error::io("compress", "(blob)", e);
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(l, _)| *l) != Some(level) {
            let mut z = zstd::bulk::Compressor::new(level).map_err(fail)?;
            z.set_parameter(CParameter::ChecksumFlag(true))
                .map_err(fail)?;
            z.set_parameter(CParameter::ContentSizeFlag(true))
                .map_err(fail)?;
            *c = Some((level, z));
        }
        c.as_mut()
            .expect("set above")
            .1
            .compress(data)
            .map_err(fail)
    })
}

/// The frame of a pack entry (a record, or a value under 64 KiB): objects under
/// [`RAW_ENTRY_MAX`] bytes go into a frame of raw blocks — zstd does not shrink a few hundred
/// bytes that are mostly hashes (a call record's 287 bytes compress to 291), and building its
/// tables costs more than the rest of storing a call; larger ones are compressed unless that
/// does not make them smaller. Either way one standard zstd frame: `zstd -d` reads it.
pub fn compress_entry(data: &[u8], level: i32) -> Result<Vec<u8>> {
    if data.len() < RAW_ENTRY_MAX {
        return Ok(raw_frame(data));
    }
    let z = compress(data, level)?;
    Ok(if z.len() < data.len() {
        z
    } else {
        raw_frame(data)
    })
}

/// The content of a frame that is exactly what [`raw_frame`] writes for fewer than 65 792
/// bytes (single segment, 1- or 2-byte content size, no checksum, one raw last block of that
/// size, nothing after it): read without the decoder. `None` for any other frame, which the
/// decoder then reads (or reports).
fn single_raw_block(data: &[u8]) -> Option<&[u8]> {
    if data.len() < 9 || data[..4] != 0xFD2F_B528u32.to_le_bytes() {
        return None;
    }
    let (size, at) = match data[4] {
        0x20 => (usize::from(data[5]), 6),
        0x60 => (usize::from(u16::from_le_bytes([data[5], data[6]])) + 256, 7),
        _ => return None,
    };
    let header = data.get(at..at + 3)?;
    let block = u32::from(header[0]) | u32::from(header[1]) << 8 | u32::from(header[2]) << 16;
    // Last block (bit 0), raw (bits 1-2 zero), of the content's size.
    if block & 0b111 != 1 || (block >> 3) as usize != size {
        return None;
    }
    let content = data.get(at + 3..)?;
    (content.len() == size).then_some(content)
}

/// Pack entries shorter than this are stored in raw zstd blocks (see [`compress_entry`]).
pub const RAW_ENTRY_MAX: usize = 512;

/// One zstd frame holding `data` uncompressed: a single-segment frame header with the content
/// size, then raw blocks of at most 128 KiB, the last one flagged; no checksum (entries are
/// verified by their BLAKE3 ids).
pub fn raw_frame(data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = raw_frame::BLOCK as usize;
    let n = data.len() as u64;
    let mut out = Vec::with_capacity(data.len() + 18 + 3 * (data.len() / BLOCK));
    out.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    // Frame header descriptor: bits 7-6 the size of the content-size field (1, 2, 4 or 8
    // bytes; the 2-byte form stores size - 256), bit 5 single segment.
    if n < 256 {
        out.extend_from_slice(&[0x20, n as u8]);
    } else if n < 256 + 65536 {
        out.push(0x60);
        out.extend_from_slice(&((n - 256) as u16).to_le_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(0xA0);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        out.push(0xE0);
        out.extend_from_slice(&n.to_le_bytes());
    }
    let blocks = data.len().div_ceil(BLOCK).max(1);
    for b in 0..blocks {
        let chunk = &data[(b * BLOCK).min(data.len())..((b + 1) * BLOCK).min(data.len())];
        out.extend_from_slice(&raw_frame::raw_block_header(
            chunk.len() as u64,
            b + 1 == blocks,
        ));
        out.extend_from_slice(chunk);
    }
    out
}

/// Decompresses a blob read from `path`, checking that it is exactly one complete frame whose
/// checksum matches and that claims at most `max` bytes.
pub fn decompress(data: &[u8], path: &Path, max: u64) -> Result<Vec<u8>> {
    if let Some(content) = single_raw_block(data) {
        if content.len() as u64 <= max {
            return Ok(content.to_vec());
        }
    }
    let corrupt = |reason: String| Error::corrupt(path, reason);
    let frame_len = zstd::zstd_safe::find_frame_compressed_size(data).map_err(|_| {
        corrupt(format!(
            "not a complete zstd frame ({} bytes; truncated?)",
            data.len()
        ))
    })?;
    if frame_len != data.len() {
        return Err(corrupt(format!(
            "{} bytes after the zstd frame (a blob is exactly one frame)",
            data.len() - frame_len
        )));
    }
    let (mut out, size) = output_buffer(data, path, max)?;
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(
                zstd::bulk::Decompressor::new().map_err(|e| Error::io("decompress", path, e))?,
            );
        }
        d.as_mut()
            .expect("set above")
            .decompress_to_buffer(data, &mut out)
            .map_err(|e| corrupt(format!("zstd: {e}")))
    })?;
    if out.len() != size {
        return Err(corrupt(format!(
            "frame holds {} bytes but claims {size}",
            out.len()
        )));
    }
    Ok(out)
}

/// `n` pseudo-random bytes: zstd cannot shrink them (for tests).
#[cfg(test)]
pub(crate) fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_are_zstd_frames_of_every_size() {
        let p = Path::new("raw");
        for n in [0usize, 1, 255, 256, 300, 65_791, 65_792, 200_000, 300_000] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            let frame = raw_frame(&data);
            assert_eq!(claimed_size(&frame, p).unwrap(), n as u64, "{n}");
            assert_eq!(decompress(&frame, p, MAX_BLOB).unwrap(), data, "{n}");
            assert_eq!(single_raw_block(&frame).is_some(), n < 65_792, "{n}");
            // A truncated raw frame is not read by the fast path, and is reported.
            if n > 0 {
                assert!(single_raw_block(&frame[..frame.len() - 1]).is_none());
                assert!(decompress(&frame[..frame.len() - 1], p, MAX_BLOB).is_err());
            }
            assert_eq!(zstd::decode_all(&frame[..]).unwrap(), data, "{n}");
        }
        // Small entries are stored raw; large compressible ones compressed.
        assert_eq!(compress_entry(b"abc", 1).unwrap(), raw_frame(b"abc"));
        let text = vec![b'a'; 10_000];
        assert!(compress_entry(&text, 1).unwrap().len() < 100);
    }

    #[test]
    fn large_blobs_that_compress_poorly_are_written_raw() {
        let noise = noise(3 << 20);
        assert_eq!(level_for(&noise, 1).unwrap(), None);
        let repeats: Vec<u8> = (0..3u32 << 20).map(|i| (i % 97) as u8).collect();
        assert_eq!(level_for(&repeats, 3).unwrap(), Some(3));
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        compress_to(&noise, 1, File::create(&a).unwrap(), &a).unwrap();
        compress_to(&noise, 1, File::create(&b).unwrap(), &b).unwrap();
        let (za, zb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(za, zb, "the same bytes make the same file");
        // Raw blocks: the frame is its content plus a few bytes of headers.
        assert!(za.len() < noise.len() + 1024, "{} bytes", za.len());
        assert_eq!(decompress_from(File::open(&a).unwrap(), &a).unwrap(), noise);
    }

    /// The raw frames mandala writes are the frames zstd wrote for such content at
    /// `--fast=10` (multi-threaded) before, byte for byte, whatever the pieces they are
    /// written in: stores written before and after hold the same files.
    #[test]
    fn raw_frames_are_what_zstd_fast_10_wrote() {
        let zstd_fast = |data: &[u8]| {
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), POOR_LEVEL).unwrap();
            enc.set_parameter(CParameter::NbWorkers(2)).unwrap();
            enc.include_checksum(true).unwrap();
            enc.include_contentsize(true).unwrap();
            enc.set_pledged_src_size(Some(data.len() as u64)).unwrap();
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        };
        let floats: Vec<u8> = (0..400_000u32)
            .flat_map(|i| {
                let mut b = vec![0xfb];
                b.extend_from_slice(&((f64::from(i) * 0.001).sin() * 1e3).to_be_bytes());
                b
            })
            .collect();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("blob");
        for data in [
            noise(1 << 20),
            noise((1 << 20) + 1),
            noise(16 * raw_frame::BLOCK as usize),
            noise((3 << 20) + 12_345),
            noise(4 << 20),
            noise((6 << 20) - 1),
            floats,
        ] {
            assert_eq!(level_for(&data, 1).unwrap(), None, "{}", data.len());
            let want = zstd_fast(&data);
            let mut whole = Vec::new();
            compress_to(&data, 1, &mut whole, &path).unwrap();
            let differ = |a: &[u8], b: &[u8]| (a.len(), a.iter().zip(b).position(|(x, y)| x != y));
            assert_eq!(
                differ(&whole, &want),
                (want.len(), None),
                "{} bytes",
                data.len()
            );
            // In pieces of odd sizes, as a large value is encoded.
            let mut enc = large_encoder(&data, data.len() as u64, 1, Vec::new(), &path).unwrap();
            for piece in data.chunks(77_777) {
                enc.write_all(piece).unwrap();
            }
            let pieces = enc.finish().unwrap();
            assert_eq!(
                differ(&pieces, &want),
                (want.len(), None),
                "{} bytes in pieces",
                data.len()
            );
            assert_eq!(zstd::decode_all(&want[..]).unwrap(), data);
        }
        // Fewer or more bytes than announced are refused.
        let data = noise(1 << 20);
        let mut enc = large_encoder(&data, data.len() as u64 + 1, 1, Vec::new(), &path).unwrap();
        enc.write_all(&data).unwrap();
        assert!(enc.finish().is_err());
        let mut enc = large_encoder(&data, data.len() as u64 - 1, 1, Vec::new(), &path).unwrap();
        assert!(enc.write_all(&data).is_err());
    }

    /// A frame of raw blocks is read without the decoder: the same content and hash as the
    /// decoder's; any other frame, or one damaged in its structure, is declined with nothing
    /// handed on, and left to the decoder.
    #[test]
    fn frames_of_raw_blocks_are_streamed_without_the_decoder() {
        let noise = noise((5 << 20) + 12_345);
        let repeats: Vec<u8> = (0..3u32 << 20).map(|i| (i % 97) as u8).collect();
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("blob");
        let stream = |bytes: &[u8]| -> Option<(Vec<u8>, u64, Id)> {
            std::fs::write(&f, bytes).unwrap();
            let file = File::open(&f).unwrap();
            let (mut got, mut pieces) = (Vec::new(), 0);
            let read = stream_raw_frame(&file, bytes.len() as u64, Kind::Value, &mut |p| {
                got.extend_from_slice(p);
                pieces += 1;
            });
            if read.is_none() {
                assert_eq!(pieces, 0, "nothing handed on when declined");
            }
            read.map(|(n, hash)| (got, n, hash))
        };
        // What the large encoder writes for incompressible content (a window descriptor, a
        // 4-byte content size, a checksum), and what raw_frame writes (single segment, no
        // checksum): both read, in pieces of at most a mebibyte.
        let mut written = Vec::new();
        compress_to(&noise, 3, &mut written, &f).unwrap();
        for frame in [
            written.clone(),
            raw_frame(&noise),
            raw_frame(&noise[..70_000]),
        ] {
            let content = zstd::decode_all(&frame[..]).unwrap();
            let (got, n, hash) = stream(&frame).expect("raw blocks");
            assert_eq!(got, content);
            assert_eq!(n, content.len() as u64);
            assert_eq!(hash, Id::hash(Kind::Value, &content));
        }
        // Declined: compressed blocks; a byte more or less; a block that claims more than
        // the file holds; content that does not add up to the claimed size; a dictionary id.
        let mut compressed = Vec::new();
        compress_to(&repeats, 3, &mut compressed, &f).unwrap();
        assert!(stream(&compressed).is_none());
        assert!(stream(&[&written[..], &[0]].concat()).is_none());
        assert!(stream(&written[..written.len() - 1]).is_none());
        let mut claims_more = raw_frame(&noise[..70_000]);
        claims_more[5..9].copy_from_slice(&70_001u32.to_le_bytes());
        assert!(stream(&claims_more).is_none());
        let mut dictionary = raw_frame(&noise[..70_000]);
        dictionary[4] |= 1;
        assert!(stream(&dictionary).is_none());
        let mut block = raw_frame(&noise[..70_000]);
        block[9] |= 0b010; // the first block says it is RLE
        assert!(stream(&block).is_none());
        // A frame of a hundred thousand 1-byte raw blocks: left to the decoder.
        // Magic, descriptor (single segment, 4-byte content size), the content size.
        let mut tiny = 0xFD2F_B528u32.to_le_bytes().to_vec();
        tiny.push(0xA0);
        tiny.extend_from_slice(&100_000u32.to_le_bytes());
        for i in 0..100_000u32 {
            let last = u32::from(i == 99_999);
            tiny.extend_from_slice(&((1 << 3) | last).to_le_bytes()[..3]);
            tiny.push(i as u8);
        }
        let content = zstd::decode_all(&tiny[..]).unwrap();
        assert_eq!(content.len(), 100_000, "a valid frame");
        assert!(stream(&tiny).is_none());
    }

    #[test]
    fn round_trip_and_damage() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let z = compress(&data, 3).unwrap();
        let p = Path::new("values/ab/cd");
        assert_eq!(decompress(&z, p, MAX_BLOB).unwrap(), data);

        let e = decompress(&z[..z.len() - 3], p, MAX_BLOB)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("corrupt object values/ab/cd: not a complete zstd frame"),
            "{e}"
        );

        let mut flipped = z.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(decompress(&flipped, p, MAX_BLOB).is_err());

        // The streaming path: same checks.
        let big: Vec<u8> = (0..STREAM_THRESHOLD as u32 / 2)
            .flat_map(|i| (i % 1009).to_le_bytes())
            .collect();
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("big");
        compress_to(&big, 3, &mut File::create(&f).unwrap(), &f).unwrap();
        assert_eq!(decompress_from(File::open(&f).unwrap(), &f).unwrap(), big);
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
        let e = decompress_from(File::open(&f).unwrap(), &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("corrupt object") && e.contains("zstd"), "{e}");
        let mut extra = bytes.clone();
        extra.push(0);
        std::fs::write(&f, &extra).unwrap();
        let e = decompress_from(File::open(&f).unwrap(), &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bytes after the zstd frame"), "{e}");

        let mut two = z.clone();
        two.extend_from_slice(&z);
        let e = decompress(&two, p, MAX_BLOB).unwrap_err().to_string();
        assert!(e.contains("after the zstd frame"), "{e}");
    }
}
