//! Fast paths for the values that are large in practice: `Vec<f64>` and `Vec<f32>`.
//!
//! serde drives encoding and decoding one element at a time, and its `Vec` visitor may not
//! preallocate more than 1 MiB, so a 10-million-element vector pays for reallocation and
//! per-element dispatch. These paths produce and accept exactly the bytes of the generic
//! paths (a test compares them); anything unexpected falls back to the generic path.

use std::any::{Any, TypeId};

use super::huge_pages;
use super::ser::{f64_size, put_f64, write_f64, write_head};

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

/// The canonical encoding of a `Vec<f64>` or `Vec<f32>` produced in pieces, so that a large
/// one is hashed and written as it is encoded, never held whole: the bytes of [`encode`], cut
/// at element boundaries.
#[derive(Clone)]
pub struct FloatPieces<'a> {
    floats: Floats<'a>,
    /// Elements already encoded; the array's head is written before the first.
    next: usize,
    head_done: bool,
}

#[derive(Clone, Copy)]
enum Floats<'a> {
    Wide(&'a [f64]),
    Narrow(&'a [f32]),
}

impl Floats<'_> {
    fn len(&self) -> usize {
        match self {
            Floats::Wide(v) => v.len(),
            Floats::Narrow(v) => v.len(),
        }
    }
}

impl<'a> FloatPieces<'a> {
    /// The pieces of `value` if its type has a fast path.
    pub fn of<T: Any>(value: &'a T) -> Option<FloatPieces<'a>> {
        let any = value as &dyn Any;
        let floats = if let Some(v) = any.downcast_ref::<Vec<f64>>() {
            Floats::Wide(v)
        } else {
            Floats::Narrow(any.downcast_ref::<Vec<f32>>()?)
        };
        Some(FloatPieces {
            floats,
            next: 0,
            head_done: false,
        })
    }

    /// The size of the whole encoding, in bytes (a pass over the elements, without encoding
    /// them; for a million elements or more, its halves on two threads: ~6 ms for ten million
    /// here, where the pass reads memory at a few GB/s).
    pub fn encoded_len(&self) -> u64 {
        let mut head = Vec::with_capacity(9);
        write_head(&mut head, 4, self.floats.len() as u64);
        let body = match self.floats {
            Floats::Wide(v) => in_halves(v, |v| v.chunks(RUN).map(run_size).sum()),
            Floats::Narrow(v) => in_halves(v, |v| v.iter().map(|f| f64_size(f64::from(*f))).sum()),
        };
        (head.len() + body) as u64
    }

    /// Moves to the element whose encoding holds byte `offset` of the whole (past the head),
    /// so that the next pieces start with it; returns how many of its bytes come before
    /// `offset` (for the caller to skip).
    pub fn seek_byte(&mut self, offset: u64) -> usize {
        let mut head = Vec::with_capacity(9);
        write_head(&mut head, 4, self.floats.len() as u64);
        let size = |i: usize| match self.floats {
            Floats::Wide(v) => f64_size(v[i]),
            Floats::Narrow(v) => f64_size(f64::from(v[i])),
        };
        let mut at = head.len() as u64;
        let mut i = 0;
        // Whole runs at once, then element by element.
        if let Floats::Wide(v) = self.floats {
            while i + RUN <= v.len() {
                let bytes = run_size(&v[i..i + RUN]) as u64;
                if at + bytes > offset {
                    break;
                }
                at += bytes;
                i += RUN;
            }
        }
        while i < self.floats.len() && at + size(i) as u64 <= offset {
            at += size(i) as u64;
            i += 1;
        }
        self.head_done = true;
        self.next = i;
        (offset - at) as usize
    }

    /// Appends the next elements' encoding to `out` until it holds at least `at_least` bytes
    /// (or the elements run out; at most 8 bytes more). Whether anything was appended.
    pub fn next_into(&mut self, out: &mut Vec<u8>, at_least: usize) -> bool {
        let before = out.len();
        if !self.head_done {
            write_head(out, 4, self.floats.len() as u64);
            self.head_done = true;
        }
        // Elements in runs of the fewest that can reach `at_least` (9 bytes each at most),
        // so that the loop inside is a plain one.
        while out.len() < at_least && self.next < self.floats.len() {
            let run = (at_least - out.len())
                .div_ceil(9)
                .min(self.floats.len() - self.next);
            let range = self.next..self.next + run;
            // Into room made at once (9 bytes an element), cut back to what was written.
            let mut at = out.len();
            out.resize(at + 9 * run, 0);
            match self.floats {
                Floats::Wide(v) => at = put_doubles(out, at, &v[range]),
                Floats::Narrow(v) => v[range]
                    .iter()
                    .for_each(|f| at += put_f64(out, at, f64::from(*f))),
            }
            out.truncate(at);
            self.next += run;
        }
        out.len() > before
    }
}

/// `size` of `v`, a sum over its elements: for a million elements or more, its two halves on
/// two threads.
fn in_halves<T: Sync>(v: &[T], size: impl Fn(&[T]) -> usize + Sync) -> usize {
    if v.len() < 1 << 20 {
        return size(v);
    }
    let (first, second) = v.split_at(v.len() / 2);
    std::thread::scope(|s| {
        let sizing = std::thread::Builder::new()
            .name("mandala-size".into())
            .spawn_scoped(s, || size(first));
        let second = size(second);
        // (If no thread could be started, the first half is sized here too.)
        let first = match sizing {
            Ok(thread) => thread.join().expect("sizing does not panic"),
            Err(_) => size(first),
        };
        first + second
    })
}

/// How many of `run` need all 9 bytes (neither exact as an `f32` nor NaN), counted in a loop
/// the compiler vectorizes.
fn wide_count(run: &[f64]) -> usize {
    run.iter()
        .filter(|x| f64::from(**x as f32).to_bits() != x.to_bits() && !x.is_nan())
        .count()
}

/// Encodes `v` into `out` from `at` (which has room for 9 bytes an element); returns where
/// the encoding ends. A run of [`RUN`] doubles that all need 9 bytes (the common case) is
/// written in a loop without a test per element.
fn put_doubles(out: &mut [u8], mut at: usize, v: &[f64]) -> usize {
    for run in v.chunks(RUN) {
        if wide_count(run) == run.len() {
            let room = &mut out[at..at + 9 * run.len()];
            for (to, x) in room.chunks_exact_mut(9).zip(run) {
                to[0] = 0xfb;
                to[1..].copy_from_slice(&x.to_bits().to_be_bytes());
            }
            at += 9 * run.len();
        } else {
            run.iter().for_each(|f| at += put_f64(out, at, *f));
        }
    }
    at
}

/// How many doubles [`run_size`] sizes at once.
const RUN: usize = 1024;

/// The size of the encoding of the doubles `run`: those that need all 9 bytes are counted in
/// a loop the compiler vectorizes (the common case: all of them); a run with others in it is
/// then sized element by element.
fn run_size(run: &[f64]) -> usize {
    match wide_count(run) {
        n if n == run.len() => 9 * n,
        _ => run.iter().map(|x| f64_size(*x)).sum(),
    }
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
    // One piece, whose size bounds the array's length (at least 3 bytes an element).
    decode_fed(Some(bytes.len() / 3), |sink| sink(bytes))
}

/// Decodes `T` from the pieces `feed` hands the sink it is given (the bytes of [`decode`], cut
/// anywhere): `None` if `T` has no such path (then `feed` is not called) or the bytes are not
/// what it expects.
pub fn decode_pieces<T: Any>(feed: impl FnOnce(&mut dyn FnMut(&[u8]))) -> Option<T> {
    decode_fed(None, feed)
}

/// [`decode_pieces`], with at most `most` elements when that is known.
fn decode_fed<T: Any>(most: Option<usize>, feed: impl FnOnce(&mut dyn FnMut(&[u8]))) -> Option<T> {
    fn floats<F: Float>(
        most: Option<usize>,
        feed: impl FnOnce(&mut dyn FnMut(&[u8])),
    ) -> Option<Vec<F>> {
        let mut stream = FloatStream::<F>::new(most);
        feed(&mut |piece| stream.feed(piece));
        stream.finish()
    }
    let tid = TypeId::of::<T>();
    let boxed: Box<dyn Any> = if tid == TypeId::of::<Vec<f64>>() {
        Box::new(floats::<f64>(most, feed)?)
    } else if tid == TypeId::of::<Vec<f32>>() {
        Box::new(floats::<f32>(most, feed)?)
    } else {
        return None;
    };
    boxed.downcast::<T>().ok().map(|b| *b)
}

/// An element type of the arrays decoded here: `f64`, or `f32` (whose encodings hold only
/// half and single precision floats).
pub trait Float: Copy + 'static {
    /// Whether double precision elements are accepted.
    const WIDE: bool;
    /// A double precision element (only when [`Float::WIDE`]).
    fn from_f64(v: f64) -> Self;
    /// A single (or half) precision element.
    fn from_f32(v: f32) -> Self;
}

impl Float for f64 {
    const WIDE: bool = true;
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn from_f32(v: f32) -> f64 {
        f64::from(v)
    }
}

impl Float for f32 {
    const WIDE: bool = false;
    fn from_f64(v: f64) -> f32 {
        v as f32 // never called: a double is refused in an `f32` array
    }
    fn from_f32(v: f32) -> f32 {
        v
    }
}

/// An array of floats decoded from pieces of its bytes as they come (a large value read a
/// mebibyte at a time), so that its reader never holds the whole encoding: the same values,
/// and the same refusals, as the one-slice fast path. Elements are decoded straight into
/// an array of their final type.
pub struct FloatStream<F: Float> {
    /// The most elements the bytes can hold, when their size is known (one slice): a head
    /// that claims more is refused, and the array is allocated at its length at once.
    most: Option<usize>,
    /// The array's length, once its head is read.
    len: Option<usize>,
    /// Bytes of the head or of an element cut by the end of a piece.
    carry: Vec<u8>,
    out: Vec<F>,
    failed: bool,
}

impl<F: Float> FloatStream<F> {
    fn new(most: Option<usize>) -> FloatStream<F> {
        FloatStream {
            most,
            len: None,
            carry: Vec::with_capacity(9),
            out: Vec::new(),
            failed: false,
        }
    }

    /// The size of the item starting with byte `b`: the head of an array (the length's bytes
    /// included), or a float of an accepted width.
    fn item_size(&self, b: u8) -> Option<usize> {
        match self.len {
            None => match b {
                0x80..=0x97 => Some(1),
                0x98 => Some(2),
                0x99 => Some(3),
                0x9a => Some(5),
                0x9b => Some(9),
                _ => None,
            },
            Some(_) => match b {
                0xfb if F::WIDE => Some(9),
                0xfa => Some(5),
                0xf9 => Some(3),
                _ => None,
            },
        }
    }

    /// The element a whole float item encodes (`bytes` is exactly its size; its first byte
    /// one [`item_size`](Self::item_size) accepts).
    fn element(bytes: &[u8]) -> Option<F> {
        Some(match bytes[0] {
            0xfb => F::from_f64(f64::from_bits(u64::from_be_bytes(
                bytes[1..9].try_into().ok()?,
            ))),
            0xfa => F::from_f32(f32::from_bits(u32::from_be_bytes(
                bytes[1..5].try_into().ok()?,
            ))),
            _ => F::from_f32(super::de::f16_to_f32(u16::from_be_bytes(
                bytes[1..3].try_into().ok()?,
            ))),
        })
    }

    /// Takes one whole item (`bytes` is exactly its size).
    fn take(&mut self, bytes: &[u8]) -> Option<()> {
        match self.len {
            None => {
                let len = match bytes.len() {
                    1 => u64::from(bytes[0] & 0x1f),
                    2 => u64::from(bytes[1]),
                    3 => u64::from(u16::from_be_bytes(bytes[1..].try_into().ok()?)),
                    5 => u64::from(u32::from_be_bytes(bytes[1..].try_into().ok()?)),
                    _ => u64::from_be_bytes(bytes[1..].try_into().ok()?),
                };
                let len = usize::try_from(len).ok()?;
                match self.most {
                    Some(most) if len > most => return None,
                    Some(_) => huge_pages::reserve_exact(&mut self.out, len),
                    // Pieces of a size not known: room for what a large value usually holds,
                    // more as it comes (a damaged head must not make us allocate what it
                    // claims).
                    None => huge_pages::reserve_exact(&mut self.out, len.min(1 << 24)),
                }
                self.len = Some(len);
            }
            Some(len) => {
                if self.out.len() == len {
                    return None; // more elements than the head said
                }
                self.out.push(Self::element(bytes)?);
            }
        }
        Some(())
    }

    /// Decodes what `piece` completes and keeps an item it cuts for the next piece.
    pub fn feed(&mut self, mut piece: &[u8]) {
        if self.failed {
            return;
        }
        self.failed = self.feed_inner(&mut piece).is_none();
    }

    fn feed_inner(&mut self, piece: &mut &[u8]) -> Option<()> {
        // An item cut by the end of the last piece.
        if !self.carry.is_empty() {
            let size = self.item_size(self.carry[0])?;
            let want = (size - self.carry.len()).min(piece.len());
            self.carry.extend_from_slice(&piece[..want]);
            *piece = &piece[want..];
            if self.carry.len() < size {
                return Some(());
            }
            let item = std::mem::take(&mut self.carry);
            self.take(&item)?;
            self.carry = item;
            self.carry.clear();
        }
        self.take_whole_elements(piece);
        while let Some(&b) = piece.first() {
            let size = self.item_size(b)?;
            if piece.len() < size {
                self.carry.extend_from_slice(piece);
                return Some(());
            }
            let (item, rest) = piece.split_at(size);
            self.take(item)?;
            *piece = rest;
        }
        Some(())
    }

    /// Decodes the elements at the start of `piece` that are whole and within the array's
    /// length, a run of one width at a time in a tight loop (the item-by-item path below was
    /// most of a large load's decoding); leaves the rest (the head, a cut element, whatever
    /// is refused) to it.
    fn take_whole_elements(&mut self, piece: &mut &[u8]) {
        let Some(len) = self.len else {
            return;
        };
        let bytes = *piece;
        self.out
            .reserve((len - self.out.len()).min(bytes.len() / 3));
        let mut at = 0;
        loop {
            let size = match bytes.get(at) {
                Some(0xfb) if F::WIDE => 9,
                Some(0xfa) => 5,
                Some(0xf9) => 3,
                _ => break, // the end, or what the item-by-item path refuses
            };
            let room = len - self.out.len();
            let most = ((bytes.len() - at) / size).min(room);
            if most == 0 {
                break; // a cut element, or one more than the head said
            }
            // The run of elements of this width, converted in one loop straight into the
            // array's room.
            let tag = bytes[at];
            let items = bytes[at..at + size * most].chunks_exact(size);
            let mut run = 0;
            for (slot, item) in self.out.spare_capacity_mut().iter_mut().zip(items) {
                if item[0] != tag {
                    break;
                }
                match Self::element(item) {
                    Some(v) => slot.write(v),
                    None => break,
                };
                run += 1;
            }
            // SAFETY: the `run` slots after the array's length were written just above.
            unsafe { self.out.set_len(self.out.len() + run) };
            if run == 0 {
                break;
            }
            at += size * run;
        }
        *piece = &bytes[at..];
    }

    /// The floats, if the pieces made exactly one array of them.
    fn finish(self) -> Option<Vec<F>> {
        (!self.failed && self.carry.is_empty() && self.len == Some(self.out.len()))
            .then_some(self.out)
    }
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
        // From pieces cut anywhere (an element or the head split between two): the same.
        for cut in [1, 2, 5, 7, 8, 9, 1000, 1 << 20] {
            let pieces = |s: &mut dyn FnMut(&[u8])| fast.chunks(cut).for_each(s);
            let back: Vec<f64> = decode_pieces(pieces).unwrap();
            assert!(back
                .iter()
                .zip(&v64)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())));
            let pieces32 = |s: &mut dyn FnMut(&[u8])| fast32.chunks(cut).for_each(s);
            let back32: Vec<f32> = decode_pieces(pieces32).unwrap();
            assert!(back32
                .iter()
                .zip(&v32)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())));
        }
        // Encoded in pieces of any size: the same bytes, and the length said before.
        for at_least in [1, 9, 10, 1000, 1 << 20] {
            for (value, whole) in [(&v64 as &dyn Any, &fast), (&v32, &fast32)] {
                let mut pieces = match value.downcast_ref::<Vec<f64>>() {
                    Some(v) => FloatPieces::of(v).unwrap(),
                    None => FloatPieces::of(value.downcast_ref::<Vec<f32>>().unwrap()).unwrap(),
                };
                assert_eq!(pieces.encoded_len(), whole.len() as u64);
                let (mut all, mut piece) = (Vec::new(), Vec::new());
                while pieces.next_into(&mut piece, at_least) {
                    assert!(piece.len() >= at_least || all.len() + piece.len() == whole.len());
                    assert!(piece.len() < at_least + 9);
                    all.append(&mut piece);
                }
                assert_eq!(&all, whole);
            }
        }
        // A million elements or more are sized in two halves: each half mixed.
        let big: Vec<f64> = (0..1_500_001u32)
            .map(|i| match i % 3 {
                0 => f64::from(i),
                1 => f64::from(i).sqrt(),
                _ => f64::NAN,
            })
            .collect();
        let narrow: Vec<f32> = big.iter().map(|x| *x as f32).collect();
        assert_eq!(
            FloatPieces::of(&big).unwrap().encoded_len(),
            encode(&big).unwrap().len() as u64
        );
        assert_eq!(
            FloatPieces::of(&narrow).unwrap().encoded_len(),
            encode(&narrow).unwrap().len() as u64
        );
        // Runs of doubles that all take 9 bytes are written without a test per element; a
        // run with one that does not (a NaN, an f32, an f16) element by element: the same
        // bytes as the generic path either way.
        let mut mixed: Vec<f64> = (0..5000u32).map(|i| f64::from(i).sqrt() + 0.1).collect();
        mixed[1500] = f64::NAN;
        mixed[2600] = 0.5;
        mixed[4999] = 1e10;
        let generic = crate::format::cbor::to_canonical(&mixed).unwrap();
        let mut pieces = FloatPieces::of(&mixed).unwrap();
        let mut all = Vec::new();
        while pieces.next_into(&mut all, usize::MAX) {}
        assert_eq!(all, generic);
        assert!(FloatPieces::of(&vec![1u8]).is_none());
        let refused = |bytes: &[u8]| decode_pieces::<Vec<f64>>(|s| s(bytes)).is_none();
        assert!(refused(&fast[..fast.len() - 1]), "an element short");
        assert!(
            refused(&[&fast[..], &[0xf9, 0, 0]].concat()),
            "an element more"
        );
        assert!(refused(&[0x81, 0x01]), "not a float");
        assert!(
            refused(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            "a head that claims 2^64"
        );
        assert!(
            decode_pieces::<Vec<u8>>(|s| s(&fast)).is_none(),
            "no fast path"
        );
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
