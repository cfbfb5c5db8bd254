//! Memory hints for large buffers: loading a large value fills fresh buffers of tens of
//! megabytes, whose first touches (one page fault per 4 KiB page, twenty thousand for 80 MB)
//! cost more than the copying itself.

/// Buffers smaller than this are left alone (a huge page is 2 MiB).
const HUGE_FROM: usize = 4 << 20;

/// Advises the kernel to back the 2 MiB-aligned interior of `v`'s allocation (its whole
/// capacity) with huge pages: Linux's transparent huge pages in `madvise` mode, the usual
/// default. numpy does the same for its arrays of 4 MiB or more (since 1.16): loading an
/// 80 MB vector then takes a few dozen page faults instead of twenty thousand (0.125 ->
/// 0.044 s here). The cost: on a machine whose memory is fragmented the kernel may compact
/// it first, which can make such a load slower than without the hint for a while (seen right
/// after a large build: up to 0.33 s). A hint only: it changes no content, and nothing
/// happens for small buffers, on other systems, or when the kernel declines.
///
/// ```
/// let mut v: Vec<f64> = Vec::with_capacity(1 << 20);
/// store_core::mem::advise_huge_pages(&mut v);
/// v.extend((0..1 << 20).map(|i| i as f64));
/// assert_eq!(v[1000], 1000.0);
/// ```
pub fn advise_huge_pages<T>(v: &mut Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < HUGE_FROM {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let base = v.as_mut_ptr() as usize;
        let start = base.next_multiple_of(HUGE);
        let end = (base + bytes) & !(HUGE - 1);
        if end > start {
            // SAFETY: the range lies inside `v`'s allocation, which `v` borrows mutably;
            // MADV_HUGEPAGE changes neither content nor mapping, only how the kernel backs
            // the pages.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
}
