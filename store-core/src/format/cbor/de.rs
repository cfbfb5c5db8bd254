//! A serde deserializer for CBOR byte slices: fast on large arrays, strict about definite
//! lengths, and borrowing strings and bytes from the input where it can.

use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

/// Why bytes cannot be decoded into the requested type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError(msg.to_string())
    }
}

/// Nesting deeper than this is refused (damaged or hostile input must not overflow the stack).
const MAX_DEPTH: u32 = 512;

pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = De {
        input: bytes,
        pos: 0,
        depth: 0,
    };
    let v = T::deserialize(&mut de)
        .map_err(|e| DecodeError(format!("{} (at byte {})", e.0, de.pos)))?;
    if de.pos != bytes.len() {
        return Err(DecodeError(format!(
            "{} trailing bytes after the CBOR item",
            bytes.len() - de.pos
        )));
    }
    Ok(v)
}

struct De<'a> {
    input: &'a [u8],
    pos: usize,
    depth: u32,
}

type Result<T> = std::result::Result<T, DecodeError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(DecodeError(msg.into()))
}

/// Decodes an IEEE half-precision float.
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: m × 2^-24, exact in f32.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

impl<'a> De<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.input.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) if self.pos.checked_add(n).is_some() => {
                self.pos += n;
                Ok(s)
            }
            _ => err(format!("unexpected end of input: {n} more bytes needed")),
        }
    }

    #[inline]
    fn peek(&self) -> Result<u8> {
        match self.input.get(self.pos) {
            Some(b) => Ok(*b),
            None => err("unexpected end of input"),
        }
    }

    /// Reads an item head: (major type, additional info, argument).
    #[inline]
    fn head(&mut self) -> Result<(u8, u8, u64)> {
        let b = self.take(1)?[0];
        let (major, info) = (b >> 5, b & 0x1f);
        let arg =
            match info {
                0..=23 => u64::from(info),
                24 => u64::from(self.take(1)?[0]),
                25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().expect("2"))),
                26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().expect("4"))),
                27 => u64::from_be_bytes(self.take(8)?.try_into().expect("8")),
                31 if major >= 2 && major != 6 => return err(
                    "indefinite-length items are not supported (mandala writes definite lengths)",
                ),
                _ => return err(format!("malformed item head 0x{b:02x}")),
            };
        Ok((major, info, arg))
    }

    fn len(&self, arg: u64) -> Result<usize> {
        let n =
            usize::try_from(arg).map_err(|_| DecodeError(format!("length {arg} is too large")))?;
        if n > self.input.len() - self.pos {
            // Every element takes at least one byte: a larger count is a damaged length.
            return err(format!(
                "length {n} exceeds the {} bytes left",
                self.input.len() - self.pos
            ));
        }
        Ok(n)
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(format!("nesting deeper than {MAX_DEPTH}"));
        }
        Ok(())
    }

    fn bignum(&mut self, tag: u64) -> Result<u128> {
        let (major, _, arg) = self.head()?;
        if major != 2 {
            return err(format!("tag {tag} must hold a byte string"));
        }
        let n = self.len(arg)?;
        let bytes = self.take(n)?;
        if bytes.len() > 16 {
            return err("bignum wider than 128 bits");
        }
        Ok(bytes
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b)))
    }
}

impl<'de> de::Deserializer<'de> for &mut De<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let (major, info, arg) = self.head()?;
        match major {
            0 => visitor.visit_u64(arg),
            1 => match i64::try_from(arg) {
                Ok(n) => visitor.visit_i64(-1 - n),
                Err(_) => visitor.visit_i128(-1 - i128::from(arg)),
            },
            2 => {
                let n = self.len(arg)?;
                visitor.visit_borrowed_bytes(self.take(n)?)
            }
            3 => {
                let n = self.len(arg)?;
                let s = std::str::from_utf8(self.take(n)?)
                    .map_err(|e| DecodeError(format!("text is not UTF-8: {e}")))?;
                visitor.visit_borrowed_str(s)
            }
            4 => {
                let n = self.len(arg)?;
                self.enter()?;
                let v = visitor.visit_seq(Seq {
                    de: &mut *self,
                    left: n,
                })?;
                self.depth -= 1;
                Ok(v)
            }
            5 => {
                let n = self.len(arg)?;
                self.enter()?;
                let v = visitor.visit_map(Seq {
                    de: &mut *self,
                    left: n,
                })?;
                self.depth -= 1;
                Ok(v)
            }
            6 => match arg {
                2 => {
                    let n = self.bignum(2)?;
                    visitor.visit_u128(n)
                }
                3 => {
                    let n = self.bignum(3)?;
                    match i128::try_from(n) {
                        Ok(n) => visitor.visit_i128(-1 - n),
                        Err(_) => err("negative bignum below i128::MIN"),
                    }
                }
                // Other tags are transparent: the tagged item is the value.
                _ => {
                    self.enter()?;
                    let v = self.deserialize_any(visitor)?;
                    self.depth -= 1;
                    Ok(v)
                }
            },
            _ => match info {
                20 => visitor.visit_bool(false),
                21 => visitor.visit_bool(true),
                22 | 23 => visitor.visit_unit(),
                25 => visitor.visit_f32(f16_to_f32(arg as u16)),
                26 => visitor.visit_f32(f32::from_bits(arg as u32)),
                27 => visitor.visit_f64(f64::from_bits(arg)),
                _ => err(format!("unsupported simple value {arg}")),
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if matches!(self.peek()?, 0xf6 | 0xf7) {
            self.pos += 1;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.peek()? >> 5 {
            3 => {
                let (_, _, arg) = self.head()?;
                let n = self.len(arg)?;
                let s = std::str::from_utf8(self.take(n)?)
                    .map_err(|e| DecodeError(format!("text is not UTF-8: {e}")))?;
                visitor.visit_enum(s.into_deserializer())
            }
            5 => {
                let (_, _, arg) = self.head()?;
                if arg != 1 {
                    return err(format!("an enum variant is a map of one entry, not {arg}"));
                }
                self.enter()?;
                let v = visitor.visit_enum(Variant { de: &mut *self })?;
                self.depth -= 1;
                Ok(v)
            }
            _ => err("expected an enum: a text string or a map of one entry"),
        }
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct Seq<'a, 'de> {
    de: &'a mut De<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de> {
    type Error = DecodeError;

    #[inline]
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Seq<'_, 'de> {
    type Error = DecodeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

struct Variant<'a, 'de> {
    de: &'a mut De<'de>,
}

impl<'a, 'de> de::EnumAccess<'de> for Variant<'a, 'de> {
    type Error = DecodeError;
    type Variant = Self;

    fn variant_seed<V: de::DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let v = seed.deserialize(&mut *self.de)?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = DecodeError;

    fn unit_variant(self) -> Result<()> {
        de::Deserialize::deserialize(&mut *self.de)
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_any(&mut *self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_any(&mut *self.de, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_decode_exactly() {
        assert_eq!(f16_to_f32(0x3e00), 1.5);
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
    }

    #[test]
    fn damaged_input_is_an_error_not_a_panic() {
        assert!(
            from_slice::<Vec<u8>>(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
        assert!(from_slice::<String>(&[0x62, 0xff, 0xfe]).is_err());
        assert!(from_slice::<u8>(&[0x19, 0x01]).is_err());
        assert!(
            from_slice::<u8>(&[0x19, 0x01, 0x00]).is_err(),
            "256 does not fit u8"
        );
        let deep = vec![0x81u8; 100_000];
        assert!(from_slice::<ciborium::Value>(&deep).is_err());
    }
}
