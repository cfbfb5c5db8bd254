//! Fast paths for the values that are large in practice: `Vec<f64>` and `Vec<f32>`.
//!
//! serde drives encoding and decoding one element at a time, and its `Vec` visitor may not
//! preallocate more than 1 MiB, so a 10-million-element vector pays for reallocation and
//! per-element dispatch. These paths produce and accept exactly the bytes of the generic
//! paths (a test compares them); anything unexpected falls back to the generic path.

use std::any::{Any, TypeId};

use super::ser::{write_f64, write_head};

/// The canonical encoding of `value` if its type has a fast path.
pub fn encode<T: Any>(value: &T) -> Option<Vec<u8>> {
    let any = value as &dyn Any;
    if let Some(v) = any.downcast_ref::<Vec<f64>>() {
        return Some(encode_floats(v.len(), v.iter().copied()));
    }
    if let Some(v) = any.downcast_ref::<Vec<f32>>() {
        return Some(encode_floats(v.len(), v.iter().map(|f| f64::from(*f))));
    }
    None
}

fn encode_floats(len: usize, values: impl Iterator<Item = f64>) -> Vec<u8> {
    // At most 9 bytes an element; pages of the unused tail are never touched.
    let mut out = Vec::with_capacity(9 + len * 9);
    write_head(&mut out, 4, len as u64);
    for v in values {
        write_f64(&mut out, v);
    }
    out
}

/// Decodes `bytes` as `T` if `T` has a fast path and the bytes are what it expects.
pub fn decode<T: Any>(bytes: &[u8]) -> Option<T> {
    let tid = TypeId::of::<T>();
    let boxed: Box<dyn Any> = if tid == TypeId::of::<Vec<f64>>() {
        Box::new(decode_floats(bytes, true)?)
    } else if tid == TypeId::of::<Vec<f32>>() {
        let v = decode_floats(bytes, false)?;
        Box::new(v.into_iter().map(|f| f as f32).collect::<Vec<f32>>())
    } else {
        return None;
    };
    boxed.downcast::<T>().ok().map(|b| *b)
}

/// Reads an array of floats. With `wide == false` only half and single precision are
/// accepted (a `Vec<f32>`'s encoding).
fn decode_floats(bytes: &[u8], wide: bool) -> Option<Vec<f64>> {
    let (&first, rest) = bytes.split_first()?;
    if first >> 5 != 4 {
        return None;
    }
    let (len, mut p) = match first & 0x1f {
        n @ 0..=23 => (u64::from(n), rest),
        24 => (u64::from(*rest.first()?), rest.get(1..)?),
        25 => (
            u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            rest.get(2..)?,
        ),
        26 => (
            u64::from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)),
            rest.get(4..)?,
        ),
        27 => (
            u64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
            rest.get(8..)?,
        ),
        _ => return None,
    };
    let len = usize::try_from(len).ok()?;
    if len > p.len() / 3 {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let v = match *p.first()? {
            0xfb if wide => {
                let v = f64::from_bits(u64::from_be_bytes(p.get(1..9)?.try_into().ok()?));
                p = &p[9..];
                v
            }
            0xfa => {
                let v = f32::from_bits(u32::from_be_bytes(p.get(1..5)?.try_into().ok()?));
                p = &p[5..];
                f64::from(v)
            }
            0xf9 => {
                let h = u16::from_be_bytes(p.get(1..3)?.try_into().ok()?);
                p = &p[3..];
                f64::from(super::de::f16_to_f32(h))
            }
            _ => return None,
        };
        out.push(v);
    }
    p.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_paths_equal_the_generic_ones() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut v64: Vec<f64> = vec![0.0, -0.0, 1.5, f64::NAN, f64::INFINITY, 1e-300, 65504.0];
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v64.push(f64::from_bits(x));
            v64.push((x % 1000) as f64 / 8.0);
        }
        let v32: Vec<f32> = v64.iter().map(|f| *f as f32).collect();
        let fast = encode(&v64).unwrap();
        assert_eq!(fast, super::super::ser::to_vec_generic(&v64));
        let back: Vec<f64> = decode(&fast).unwrap();
        assert!(back
            .iter()
            .zip(&v64)
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())));
        let fast32 = encode(&v32).unwrap();
        assert_eq!(fast32, super::super::ser::to_vec_generic(&v32));
        let back32: Vec<f32> = decode(&fast32).unwrap();
        assert!(back32
            .iter()
            .zip(&v32)
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())));
        // Not what the fast path expects: it declines, and the generic path decides.
        assert!(decode::<Vec<f64>>(&[0x81, 0x01]).is_none());
        assert!(
            decode::<Vec<f32>>(&fast).is_none()
                || v64
                    .iter()
                    .all(|f| f64::from(*f as f32).to_bits() == f.to_bits())
        );
        assert!(encode(&vec![1u8]).is_none());
    }
}
