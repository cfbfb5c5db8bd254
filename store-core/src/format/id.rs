//! Ids: 32-byte BLAKE3 hashes, domain-separated by what they identify.
//!
//! Every id is `BLAKE3-derive_key(context, preimage)` with one context string per kind
//! (see [`Kind`]), so a value id can never equal a call id even over the same bytes, and any id
//! of a stored object can be re-checked with `b3sum --derive-key CONTEXT`.
//! Ids display as 64 lowercase hex characters; [`IdPrefix`] parses the abbreviations users type.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 32-byte BLAKE3 hash identifying a value, a call, a record or a version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 32]);

/// What an id identifies; each kind hashes under its own BLAKE3 derive-key context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The content of a value: its canonical CBOR bytes.
    Value,
    /// The history id of a value passed in from outside: its cid.
    SourceHid,
    /// A call's content id: op name, input cids, semantic version.
    CallCid,
    /// A call's history id: op name, input hids, semantic version.
    CallHid,
    /// A call's key: op name and input cids, without any version.
    CallKey,
    /// The history id of one output of a call: call hid and output name.
    OutputHid,
    /// The id of a stored call record: its canonical CBOR bytes.
    CallRecord,
    /// The semantic version used while versioning is off.
    Unversioned,
    /// The content of a function or op: its tokens as printed by the macro.
    Source,
    /// A semantic version: the dependency set of a call.
    Semver,
    /// A version record of a component's history.
    Version,
}

impl Kind {
    /// The BLAKE3 derive-key context string of this kind. Frozen: changing one is a format break.
    pub const fn context(self) -> &'static str {
        match self {
            Kind::Value => "mandala v1 value",
            Kind::SourceHid => "mandala v1 source hid",
            Kind::CallCid => "mandala v1 call cid",
            Kind::CallHid => "mandala v1 call hid",
            Kind::CallKey => "mandala v1 call key",
            Kind::OutputHid => "mandala v1 output hid",
            Kind::CallRecord => "mandala v1 call record",
            Kind::Unversioned => "mandala v1 unversioned",
            Kind::Source => "mandala v1 source",
            Kind::Semver => "mandala v1 semantic version",
            Kind::Version => "mandala v1 version",
        }
    }

    /// A fresh hasher in this kind's derive-key mode. The context is hashed once per process
    /// (blake3's `hazmat` context keys), so each id costs only the hashing of its preimage.
    fn hasher(self) -> blake3::Hasher {
        use blake3::hazmat::HasherExt;
        blake3::Hasher::new_from_context_key(self.context_key())
    }

    /// This kind's derive-key context key, computed once per process.
    fn context_key(self) -> &'static blake3::hazmat::ContextKey {
        use blake3::hazmat::{hash_derive_key_context, ContextKey};
        macro_rules! key {
            ($k:expr) => {{
                static K: LazyLock<ContextKey> =
                    LazyLock::new(|| hash_derive_key_context($k.context()));
                &*K
            }};
        }
        match self {
            Kind::Value => key!(Kind::Value),
            Kind::SourceHid => key!(Kind::SourceHid),
            Kind::CallCid => key!(Kind::CallCid),
            Kind::CallHid => key!(Kind::CallHid),
            Kind::CallKey => key!(Kind::CallKey),
            Kind::OutputHid => key!(Kind::OutputHid),
            Kind::CallRecord => key!(Kind::CallRecord),
            Kind::Unversioned => key!(Kind::Unversioned),
            Kind::Source => key!(Kind::Source),
            Kind::Semver => key!(Kind::Semver),
            Kind::Version => key!(Kind::Version),
        }
    }
}

/// Inputs at least this long are hashed on two threads (the two subtrees of BLAKE3's root,
/// merged: the same hash as one thread's). Below it a thread costs more than it saves.
const PARALLEL_HASH: usize = 4 << 20;

impl Id {
    /// Hashes `bytes` under `kind`'s context: `BLAKE3-derive_key(kind.context(), bytes)`.
    ///
    /// ```
    /// use mandala::{Id, Kind};
    /// let a = Id::hash(Kind::Value, b"x");
    /// assert_ne!(a, Id::hash(Kind::CallCid, b"x"));
    /// assert_eq!(a.to_string().len(), 64);
    /// ```
    pub fn hash(kind: Kind, bytes: &[u8]) -> Id {
        if bytes.len() >= PARALLEL_HASH {
            return Id::hash_on_two_threads(kind, bytes);
        }
        let mut h = kind.hasher();
        h.update(bytes);
        Id(*h.finalize().as_bytes())
    }

    /// [`Id::hash`] of `len` bytes (more than 1 KiB) that two producers make in pieces, on
    /// two threads: `left` feeds its hasher the first `split` bytes and `right` (on this
    /// thread) the rest, where `split` is BLAKE3's left subtree (given to both). The same id
    /// as hashing the bytes in one piece.
    ///
    /// ```
    /// use mandala::{Id, Kind};
    /// let bytes = vec![7u8; 10_000];
    /// let id = Id::hash_halves(
    ///     Kind::Value,
    ///     bytes.len() as u64,
    ///     |split, h| {
    ///         h.update(&bytes[..split as usize]);
    ///     },
    ///     |split, h| {
    ///         h.update(&bytes[split as usize..]);
    ///     },
    /// );
    /// assert_eq!(id, Id::hash(Kind::Value, &bytes));
    /// ```
    pub fn hash_halves(
        kind: Kind,
        len: u64,
        left: impl FnOnce(u64, &mut blake3::Hasher) + Send,
        right: impl FnOnce(u64, &mut blake3::Hasher),
    ) -> Id {
        use blake3::hazmat::{left_subtree_len, merge_subtrees_root, HasherExt, Mode};
        let split = left_subtree_len(len);
        let (l, r) = std::thread::scope(|s| {
            let l = std::thread::Builder::new()
                .name("mandala-hash".into())
                .spawn_scoped(s, move || {
                    let mut h = kind.hasher();
                    left(split, &mut h);
                    h.finalize_non_root()
                })
                .expect("a thread to hash on (as `std::thread::scope`'s `spawn`)");
            let mut h = kind.hasher();
            h.set_input_offset(split);
            right(split, &mut h);
            (
                l.join().expect("hashing does not panic"),
                h.finalize_non_root(),
            )
        });
        Id(*merge_subtrees_root(&l, &r, Mode::DeriveKeyMaterial(kind.context_key())).as_bytes())
    }

    /// The parts of `piece`, the content's bytes from offset `at`, before and from `split`
    /// (the boundary [`Id::hash_halves`] gives its two producers): what each feeds its hasher.
    pub fn split_piece(piece: &[u8], at: u64, split: u64) -> (&[u8], &[u8]) {
        piece.split_at(split.saturating_sub(at).min(piece.len() as u64) as usize)
    }

    /// [`Id::hash`] of a large input: its left and right subtrees on two threads, merged into
    /// the root (blake3's `hazmat` API; the same bytes as hashing on one thread).
    fn hash_on_two_threads(kind: Kind, bytes: &[u8]) -> Id {
        Id::hash_halves(
            kind,
            bytes.len() as u64,
            |split, h| {
                h.update(&bytes[..split as usize]);
            },
            |split, h| {
                h.update(&bytes[split as usize..]);
            },
        )
    }

    /// A BLAKE3 hasher in `kind`'s derive-key mode, for hashing data that arrives in pieces;
    /// `Id(*hasher.finalize().as_bytes())` equals [`Id::hash`] of the concatenation.
    pub fn hasher(kind: Kind) -> blake3::Hasher {
        kind.hasher()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The full 64-character lowercase hex form.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// The first `n` hex characters (at most 64), for display.
    pub fn short(&self, n: usize) -> String {
        let mut s = self.to_string();
        s.truncate(n.min(64));
        s
    }

    /// The semantic version every call carries while versioning is off.
    pub fn unversioned() -> Id {
        static U: LazyLock<Id> = LazyLock::new(|| Id::hash(Kind::Unversioned, b""));
        *U
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Id {
    /// Writes the 64 hex digits into `buf` and returns them as a `&str`, without allocating.
    pub fn hex_into<'b>(&self, buf: &'b mut [u8; 64]) -> &'b str {
        for (i, b) in self.0.iter().enumerate() {
            buf[2 * i] = HEX[(b >> 4) as usize];
            buf[2 * i + 1] = HEX[(b & 15) as usize];
        }
        std::str::from_utf8(buf).expect("hex is ascii")
    }
}

/// A hasher for maps keyed by ids: ids are uniformly random already, so their first eight
/// bytes are a perfect hash (SipHash over 32 bytes would only cost time).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only ids (32 bytes, written whole by the derived Hash) reach this hasher.
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
    }
}

/// `HashMap` keyed by [`Id`] with [`IdHasher`].
pub type IdMap<V> = std::collections::HashMap<Id, V, std::hash::BuildHasherDefault<IdHasher>>;
/// `HashMap` keyed by tuples of ids (a call's full name) with [`IdHasher`].
pub type IdsMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
/// `HashSet` of [`Id`] with [`IdHasher`].
pub type IdSet = std::collections::HashSet<Id, std::hash::BuildHasherDefault<IdHasher>>;

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex_into(&mut [0u8; 64]))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short(12))
    }
}

/// Why a string is not an id or an id prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// A character outside `0-9a-f` (upper case is accepted and folded).
    #[error("'{input}' is not a hash: '{bad}' at position {pos} is not a hex digit")]
    NotHex {
        input: String,
        bad: char,
        pos: usize,
    },
    /// Too short to be a useful prefix, or too long to be an id.
    #[error("'{input}' has {len} hex digits; a hash prefix needs {min} to 64")]
    BadLength {
        input: String,
        len: usize,
        min: usize,
    },
}

/// Hex digit values by byte; 0xff marks a non-digit.
const UNHEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        let b = s.as_bytes();
        if b.len() == 64 {
            let mut out = [0u8; 32];
            let mut bad = 0u8;
            for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
                let (h, l) = (UNHEX[pair[0] as usize], UNHEX[pair[1] as usize]);
                bad |= h | l;
                *o = (h << 4) | (l & 0x0f);
            }
            if bad & 0xf0 == 0 {
                return Ok(Id(out));
            }
        }
        // Not a well-formed id: let the prefix parser say precisely what is wrong.
        Err(IdPrefix::parse_with_min(s, 64)
            .err()
            .unwrap_or(ParseIdError::BadLength {
                input: s.to_string(),
                len: s.len(),
                min: 64,
            }))
    }
}

/// A validated, lower-cased hex prefix of an id, as users type it (`mandala show 3fa9c2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdPrefix {
    hex: String,
}

impl IdPrefix {
    /// The shortest prefix accepted: 4 hex digits, as git.
    pub const MIN_LEN: usize = 4;

    /// Parses a prefix of 4 to 64 hex digits.
    ///
    /// ```
    /// use mandala::IdPrefix;
    /// assert!(IdPrefix::parse("3FA9").is_ok());
    /// assert!(IdPrefix::parse("3fz9").is_err());
    /// assert!(IdPrefix::parse("3f").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<IdPrefix, ParseIdError> {
        Self::parse_with_min(s, Self::MIN_LEN)
    }

    fn parse_with_min(s: &str, min: usize) -> Result<IdPrefix, ParseIdError> {
        if let Some((pos, bad)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(ParseIdError::NotHex {
                input: s.to_string(),
                bad,
                pos,
            });
        }
        if s.len() < min || s.len() > 64 {
            return Err(ParseIdError::BadLength {
                input: s.to_string(),
                len: s.len(),
                min,
            });
        }
        Ok(IdPrefix {
            hex: s.to_ascii_lowercase(),
        })
    }

    /// The prefix as lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.hex
    }

    /// Whether `id` starts with this prefix.
    pub fn matches(&self, id: &Id) -> bool {
        id.to_string().starts_with(&self.hex)
    }
}

impl fmt::Display for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a 32-byte id")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Id, E> {
                let arr: [u8; 32] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Id(arr))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Id, E> {
                self.visit_bytes(&v)
            }
        }
        d.deserialize_bytes(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_inputs_hash_the_same_on_two_threads() {
        for len in [
            PARALLEL_HASH,
            PARALLEL_HASH + 1,
            PARALLEL_HASH + 1023,
            3 * PARALLEL_HASH + 77,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut one = Kind::Value.hasher();
            one.update(&bytes);
            assert_eq!(
                Id::hash(Kind::Value, &bytes),
                Id(*one.finalize().as_bytes()),
                "{len}"
            );
            assert_eq!(
                Id::hash(Kind::Version, &bytes).0,
                *blake3::derive_key(Kind::Version.context(), &bytes).as_slice()
            );
        }
    }

    #[test]
    fn hex_round_trip() {
        let id = Id::hash(Kind::Value, b"abc");
        let s = id.to_string();
        assert_eq!(s.parse::<Id>().unwrap(), id);
        assert_eq!(s.to_uppercase().parse::<Id>().unwrap(), id);
    }

    #[test]
    fn kinds_are_domain_separated() {
        let kinds = [
            Kind::Value,
            Kind::SourceHid,
            Kind::CallCid,
            Kind::CallHid,
            Kind::CallKey,
            Kind::OutputHid,
            Kind::CallRecord,
            Kind::Unversioned,
            Kind::Source,
            Kind::Semver,
            Kind::Version,
        ];
        let mut ids: Vec<Id> = kinds.iter().map(|k| Id::hash(*k, b"same bytes")).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), kinds.len());
    }

    #[test]
    fn matches_b3sum_derive_key() {
        // `printf abc | b3sum --derive-key "mandala v1 value"`
        assert_eq!(
            Id::hash(Kind::Value, b"abc").0,
            blake3::derive_key("mandala v1 value", b"abc")
        );
    }

    #[test]
    fn prefix_errors_name_the_input() {
        let e = IdPrefix::parse("12g4").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'12g4' is not a hash: 'g' at position 2 is not a hex digit"
        );
        let e = IdPrefix::parse("12").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'12' has 2 hex digits; a hash prefix needs 4 to 64"
        );
        assert!(IdPrefix::parse("abab").unwrap().matches(&Id([0xab; 32])));
        assert!(!IdPrefix::parse("abac").unwrap().matches(&Id([0xab; 32])));
    }
}
