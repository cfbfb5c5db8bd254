//! Splitting independent work over the machine's cores: whole-store queries decode thousands
//! of records, trace thousands of histories and load thousands of values, each item on its
//! own. Small inputs stay on the calling thread.

/// `f` applied to consecutive chunks of `items`, one chunk per core (at most 8) when there
/// are at least `min` items, else to all of them at once; the results in the order of the
/// chunks.
pub fn map_chunks<T: Sync, R: Send>(
    items: &[T],
    min: usize,
    f: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if threads == 1 || items.len() < min.max(2) {
        return vec![f(items)];
    }
    let per = items.len().div_ceil(threads);
    // The last chunk is done on the calling thread: one thread fewer to start, and what it
    // allocates comes from the calling thread's heap, which grows in large steps, where a
    // new thread's glibc heap grows a page (an `mprotect`) at a time.
    let mut chunks = items.chunks(per);
    let last = chunks.next_back().expect("at least two items");
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = chunks.map(|chunk| s.spawn(move || f(chunk))).collect();
        let last = f(last);
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker does not panic"))
            .chain(std::iter::once(last))
            .collect()
    })
}

/// `f` applied to every item, on all cores when there are at least `min` items; the results
/// in the order of `items`, or the first error (in that order).
pub fn try_map<T: Sync, R: Send, E: Send>(
    items: &[T],
    min: usize,
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let chunks = map_chunks(items, min, |chunk| {
        chunk.iter().map(&f).collect::<Result<Vec<R>, E>>()
    });
    let mut out = Vec::with_capacity(items.len());
    for chunk in chunks {
        out.extend(chunk?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_come_back_in_order() {
        let items: Vec<u32> = (0..10_000).collect();
        let sums = super::map_chunks(&items, 100, |c| c.to_vec());
        assert_eq!(sums.concat(), items);
        assert_eq!(super::map_chunks(&items[..5], 100, |c| c.len()), [5]);
        assert_eq!(super::map_chunks::<u32, usize>(&[], 100, |c| c.len()), [0]);
        let doubled = super::try_map(&items, 100, |x| Ok::<u32, ()>(2 * x)).unwrap();
        assert_eq!(doubled, items.iter().map(|x| 2 * x).collect::<Vec<_>>());
        let first_error = super::try_map(&items, 100, |x| {
            if *x % 4000 == 3999 {
                Err(*x)
            } else {
                Ok(*x)
            }
        });
        assert_eq!(first_error, Err(3999));
    }
}
