//! Room for a large decoded array, backed by transparent huge pages where the kernel has them.
//!
//! A fresh buffer is zeroed by the kernel a page at the time it is first touched; on a virtual
//! machine each 4 KiB fault costs about 1.5 µs, which was most of loading a large `Vec<f64>`
//! (20 000 faults for 80 MB). A 2 MiB page is one fault: numpy advises every array of 4 MiB
//! or more this way (`madvise(MADV_HUGEPAGE)`), and so does this for the arrays a load
//! decodes. It is a hint: where transparent huge pages are off (`never`), not on Linux, or
//! the kernel refuses, the buffer is the same, only slower to fill.

/// The size from which an array's buffer is advised (numpy's threshold).
pub(crate) const HUGE_PAGES_FROM: usize = 4 << 20;

/// Reserves room for exactly `additional` more elements in `out` and, if the room is large,
/// advises it as huge pages.
pub(crate) fn reserve_exact<T>(out: &mut Vec<T>, additional: usize) {
    out.reserve_exact(additional);
    let spare = out.spare_capacity_mut();
    let bytes = std::mem::size_of_val(spare);
    if bytes >= HUGE_PAGES_FROM {
        advise(spare.as_mut_ptr().cast(), bytes);
    }
}

#[cfg(target_os = "linux")]
fn advise(start: *mut u8, len: usize) {
    // madvise wants a page-aligned start; the pages the range covers whole are advised.
    const PAGE: usize = 4096;
    let at = start as usize;
    let aligned = at.next_multiple_of(PAGE);
    let end = (at + len) & !(PAGE - 1);
    if end > aligned {
        // SAFETY: [aligned, end) lies inside `out`'s own allocation (its spare capacity), and
        // MADV_HUGEPAGE only changes how the kernel backs those pages, never their contents
        // or the mapping's permissions. An error (an old kernel, THP compiled out) is ignored.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_start: *mut u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_reservation_is_exact_and_usable() {
        let mut v: Vec<f64> = vec![1.0];
        reserve_exact(&mut v, HUGE_PAGES_FROM / 8 + 3);
        assert!(v.capacity() >= 1 + HUGE_PAGES_FROM / 8 + 3);
        v.extend((0..HUGE_PAGES_FROM / 8 + 3).map(|i| i as f64));
        assert_eq!(v[0], 1.0);
        assert_eq!(v[v.len() - 1], (HUGE_PAGES_FROM / 8 + 2) as f64);
        let mut small: Vec<u8> = Vec::new();
        reserve_exact(&mut small, 10);
        assert!(small.capacity() >= 10);
    }

    /// The mapping that holds a large reservation carries the kernel's huge-page advice (`hg`
    /// in its `VmFlags`), and a small one's does not.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_reservation_is_advised_as_huge_pages() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            eprintln!("SKIPPED: this kernel has no transparent huge pages");
            return;
        }
        let flags_at = |addr: usize| -> String {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            let mut inside = false;
            for line in smaps.lines() {
                if let Some((range, _)) = line.split_once(' ') {
                    if let Some((lo, hi)) = range.split_once('-') {
                        if let (Ok(lo), Ok(hi)) =
                            (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                        {
                            inside = (lo..hi).contains(&addr);
                            continue;
                        }
                    }
                }
                if inside {
                    if let Some(flags) = line.strip_prefix("VmFlags:") {
                        return flags.to_string();
                    }
                }
            }
            panic!("no mapping holds {addr:#x}");
        };
        let mut large: Vec<f64> = Vec::new();
        reserve_exact(&mut large, 2 * HUGE_PAGES_FROM / 8);
        let middle = large.as_ptr() as usize + HUGE_PAGES_FROM;
        assert!(
            flags_at(middle).split_whitespace().any(|f| f == "hg"),
            "{}",
            flags_at(middle)
        );
        // Below the threshold: no advice (a small buffer shares the heap's mapping).
        let mut small: Vec<f64> = Vec::new();
        reserve_exact(&mut small, 1000);
        let flags = flags_at(small.as_ptr() as usize);
        assert!(!flags.split_whitespace().any(|f| f == "hg"), "{flags}");
    }
}
