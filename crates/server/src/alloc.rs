//! The process allocator: the system's, except that very large requests are mapped lazily.
//!
//! A request may announce an array of 2^31 elements in four bytes; the `kafka-protocol` codec
//! reserves room for all of them before it finds the frame far too short. The system allocator
//! refuses such a reservation and the process aborts. Mapped with `MAP_NORESERVE`, the untouched
//! reservation costs no memory, the decode fails as it should, and the mapping is returned.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Allocations at least this large are mapped lazily.
const LAZY_BYTES_MIN: usize = 1 << 30;
/// `mmap` returns page-aligned memory; larger alignments go to the system allocator.
const PAGE_BYTES: usize = 4096;

pub struct Allocator;

fn lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_BYTES_MIN && layout.align() <= PAGE_BYTES
}

// SAFETY: every pointer is released by the allocator that made it, chosen by the same `lazy`
// test on the same layout; mapped memory is zeroed, page-aligned and `size` bytes long.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !lazy(&layout) {
            return unsafe { System.alloc(layout) };
        }
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if lazy(&layout) {
            // Fresh anonymous mappings are zeroed.
            unsafe { self.alloc(layout) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if lazy(&layout) {
            unsafe { libc::munmap(p.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !lazy(&layout) && !lazy(&new_layout) {
            return unsafe { System.realloc(p, layout, new_size) };
        }
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            unsafe {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_huge_untouched_reservation_is_cheap() {
        // 256 GiB: far beyond this machine's memory, fine as a lazy mapping.
        let v: Vec<u64> = Vec::with_capacity(32 << 30);
        assert!(v.capacity() >= 32 << 30);
        let mut small: Vec<u8> = Vec::with_capacity(16);
        small.extend_from_slice(b"still works");
        assert_eq!(&small, b"still works");
    }
}
