//! glibc malloc, tuned for a process that runs for hours: the operator and `seedsweep run`.

/// Serves every allocation of 128 KiB or more from its own mapping, given back to the system when freed. By
/// default glibc raises that threshold each time such a block is freed (up to 32 MiB), and from then on the
/// MB-sized buffers a large sweep churns through (a chunk's JSON, a status body, an apiserver answer) come from
/// the heap arenas, where they fragment and stay resident. Half-way through a 10,000-trial sweep, the operator's
/// high-water mark was 49.9 MiB with the threshold fixed, 58.8 MiB without (docs/benchmarks.md).
pub fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets one of malloc's parameters, under malloc's own lock (so also from a test thread);
    // main calls it first, before any large block is allocated.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// Whether glibc mapped `block` on its own: its chunk's size word, just before it, has bit 1 (IS_MMAPPED) set.
    fn mapped_on_its_own(block: &[u8]) -> bool {
        // SAFETY: a block from glibc's malloc (Rust's System allocator) is preceded by its chunk's size word.
        let size_word = unsafe { *block.as_ptr().cast::<usize>().sub(1) };
        size_word & 2 != 0
    }

    /// Without the fixed threshold, freeing the 4 MiB block raises glibc's threshold to 4 MiB, and the 256 KiB block
    /// after it comes from the heap (checked by hand with a program that skips the call).
    #[test]
    fn a_large_block_freed_leaves_the_next_ones_mapped_on_their_own() {
        return_large_buffers_to_the_system();
        drop(black_box(vec![1u8; 4 << 20]));
        let block = black_box(vec![1u8; 256 << 10]);
        assert!(mapped_on_its_own(&block));
    }
}
