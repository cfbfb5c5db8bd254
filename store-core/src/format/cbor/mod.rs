//! Canonical CBOR: the one byte encoding of a value that its content id is computed from.
//!
//! [`to_canonical`] is a serde serializer that follows RFC 8949 §4.2.1 (core deterministic
//! encoding) and ciborium's data model (structs and maps as CBOR maps, enums as
//! `{variant: content}` or a text string for unit variants, `None` and `()` as null), so that
//! [`from_slice`] (ciborium) reads back everything it writes and any CBOR decoder can read a
//! stored value.
//!
//! # Guarantees
//! - Map keys (of structs, `HashMap`s, `BTreeMap`s alike) are sorted by the bytewise order of
//!   their encodings, so iteration order never reaches the bytes; duplicate keys are an error.
//! - Integers, lengths and tags use the shortest form; lengths are always definite.
//! - Floats use the shortest of half, single and double precision that keeps the exact value;
//!   every NaN is encoded as the half-precision quiet NaN `f9 7e00`; `-0.0` stays distinct from
//!   `0.0` (`f9 8000` vs `f9 0000`).
//!
//! # Limitations
//! - Integers beyond 64 bits are encoded as bignum tags 2/3 (as ciborium does).
//! - An integer and a float of equal numeric value have different encodings and ids
//!   (`1` vs `1.0`), as their Rust types differ.

mod de;
pub(crate) mod fast;
mod huge_pages;
mod ser;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use de::DecodeError;
pub use ser::{write_head, EncodeError};

/// Encodes `value` as canonical CBOR.
///
/// ```
/// use std::collections::HashMap;
/// let a: HashMap<&str, u8> = [("b", 2), ("a", 1)].into_iter().collect();
/// let b: HashMap<&str, u8> = [("a", 1), ("b", 2)].into_iter().collect();
/// let bytes = store_core::format::cbor::to_canonical(&a).unwrap();
/// assert_eq!(bytes, store_core::format::cbor::to_canonical(&b).unwrap());
/// assert_eq!(bytes, [0xa2, 0x61, b'a', 1, 0x61, b'b', 2]);
/// ```
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    ser::append(&mut out, value)?;
    Ok(out)
}

/// Encodes a value as canonical CBOR, through a fast path for large numeric vectors
/// (`Vec<f64>`, `Vec<f32>`) when `T` is one. The bytes are those of [`to_canonical`].
pub fn encode_value<T: Serialize + 'static>(value: &T) -> Result<Vec<u8>, EncodeError> {
    match fast::encode(value) {
        Some(bytes) => Ok(bytes),
        None => to_canonical(value),
    }
}

/// Decodes a value, through a fast path for large numeric vectors when `T` is one.
pub fn decode_value<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, DecodeError> {
    match fast::decode(bytes) {
        Some(v) => Ok(v),
        None => from_slice(bytes),
    }
}

/// Decodes CBOR bytes into `T`. Accepts any well-formed CBOR of definite lengths (what
/// mandala writes); a trailing byte after the item is an error.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    de::from_slice(bytes)
}
