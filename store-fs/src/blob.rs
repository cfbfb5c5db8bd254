//! Blobs: one zstd frame (with its content size and checksum) of canonical CBOR bytes.

use std::cell::RefCell;
use std::path::Path;

use store_core::{Error, Result};
use zstd::stream::raw::CParameter;

/// The largest decompressed size a blob may claim (a damaged header must not make us try to
/// allocate exabytes).
const MAX_BLOB: u64 = 1 << 40;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
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

/// Decompresses a blob read from `path`, checking that it is exactly one complete frame whose
/// checksum matches.
pub fn decompress(data: &[u8], path: &Path) -> Result<Vec<u8>> {
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
    let size = match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) if n <= MAX_BLOB => n as usize,
        Ok(Some(n)) => {
            return Err(corrupt(format!(
                "frame claims {n} bytes, more than a blob may hold"
            )))
        }
        _ => return Err(corrupt("zstd frame without a content size".into())),
    };
    let mut out = Vec::new();
    out.try_reserve_exact(size)
        .map_err(|_| corrupt(format!("cannot allocate the {size} bytes the frame claims")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let z = compress(&data, 3).unwrap();
        let p = Path::new("values/ab/cd");
        assert_eq!(decompress(&z, p).unwrap(), data);

        let e = decompress(&z[..z.len() - 3], p).unwrap_err().to_string();
        assert!(
            e.starts_with("corrupt object values/ab/cd: not a complete zstd frame"),
            "{e}"
        );

        let mut flipped = z.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(decompress(&flipped, p).is_err());

        let mut two = z.clone();
        two.extend_from_slice(&z);
        let e = decompress(&two, p).unwrap_err().to_string();
        assert!(e.contains("after the zstd frame"), "{e}");
    }
}
