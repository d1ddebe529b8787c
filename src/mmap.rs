//! Memory mappings: read-only files, and the anonymous segments the delta-base cache keeps its
//! objects in. The only `unsafe` outside the FFI layer.
//!
//! git never rewrites a pack, index or MIDX in place: new content always arrives as a new file
//! renamed over (or next to) the old one. A private read-only mapping of a file therefore keeps
//! showing the bytes it had when mapped, even after the path is replaced or unlinked, and a
//! reader holding an `Arc<Mmap>` stays valid however the directory changes. The file descriptor
//! is closed as soon as the mapping exists, so mapped files cost no descriptors.

use std::fs::File;
use std::io;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;

/// An immutable mapping of a whole file (or an empty buffer for an empty file, which cannot be
/// mapped).
#[derive(Debug)]
pub struct Mmap {
    map: Option<memmap2::Mmap>,
}

impl Mmap {
    /// Maps `path` read-only and closes the descriptor. Returns the mapping and the file's
    /// metadata as seen through the same descriptor (so size and mtime match the bytes).
    pub fn open(path: &Path) -> io::Result<(Mmap, std::fs::Metadata)> {
        let (file, metadata) = Mmap::open_file(path)?;
        Ok((Mmap::map(&file, metadata.len())?, metadata))
    }

    /// Opens `path` for [`Mmap::map`], checking that it is a regular file; a caller may read a
    /// few bytes through it first.
    pub fn open_file(path: &Path) -> io::Result<(File, std::fs::Metadata)> {
        let file = File::open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok((file, metadata))
    }

    /// Maps all of `file` (opened by [`Mmap::open_file`], whose metadata gives its `len`: no
    /// second `stat`). The descriptor may be closed afterwards.
    pub fn map(file: &File, len: u64) -> io::Result<Mmap> {
        if len == 0 {
            return Ok(Mmap { map: None });
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"))?;
        #[allow(unsafe_code)]
        // SAFETY: the mapping is private and read-only, and git never modifies these files in
        // place (module docs), so the bytes behind the slice do not change while it is alive.
        // Truncation by a foreign process would raise SIGBUS, a risk every mmap-based git
        // reader (git, libgit2, gitoxide) accepts. `len` is the length seen through this very
        // descriptor, so the mapping ends where the file does.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(len)
                .map_copy_read_only(file)?
        };
        Ok(Mmap { map: Some(map) })
    }

    /// Number of mapped bytes.
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |map| map.len())
    }

    /// Whether the file was empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Deref for Mmap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// Anonymous memory that the delta-base cache fills front to back with decoded objects, in
/// [`Block`]s, and reuses whole once nothing refers to any of them.
///
/// Why not the heap: a cache that fills hundreds of MiB of heap grows a thread's malloc arena
/// one allocation at a time (an `mprotect` per growth, then a `memset` to initialise what the
/// kernel had just zeroed), frees each evicted object into the arena of the thread that
/// allocated it, and when the top of an arena is free the allocator trims it (`madvise`) and the
/// next fill faults the same pages in again. A segment is one mapping, and a segment whose
/// objects were all evicted is filled again in place.
///
/// Huge pages are not asked for: on the virtual machine measured, a fresh 2 MiB page was slower
/// to fault in than its 512 small pages (the profile put the time in the kernel zeroing it;
/// likely memory the guest had not touched yet).
#[derive(Debug)]
pub struct Segment {
    map: memmap2::MmapRaw,
}

impl Segment {
    /// Maps `len` bytes of zeroed private memory.
    pub fn map(len: usize) -> io::Result<Segment> {
        let map = memmap2::MmapOptions::new().len(len).map_anon()?;
        Ok(Segment { map: map.into() })
    }

    /// Lets the kernel take this segment's pages back whenever it needs the memory
    /// (`MADV_FREE`), while keeping them in place until it does: a segment released so and
    /// filled again later costs no page faults, unless memory ran short in between. What the
    /// segment held may read as zeroes from now on, so only a segment that will be filled again
    /// from its first byte (as [`SegmentFill`] does) is released. `Unsupported` where the
    /// system has no such advice (then the caller unmaps the segment instead).
    pub fn release_pages(&mut self) -> io::Result<()> {
        #[cfg(any(target_os = "linux", target_vendor = "apple"))]
        {
            // SAFETY: `&mut self` is the only handle on the segment: blocks of a fill hold an
            // `Arc<Segment>`, so none is alive now. The advice lets the kernel replace a page's
            // bytes with zeroes until the page is written again. A later fill hands bytes out
            // only to a writer that overwrites all of them before they are read (see
            // `SegmentFill::take`); once written, a page is the process's again.
            #[allow(unsafe_code)]
            unsafe {
                self.map.unchecked_advise(memmap2::UncheckedAdvice::Free)
            }
        }
        #[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
        {
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    /// Mapped bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the segment maps no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The one writer of a segment: hands out its unused bytes front to back, each byte once.
///
/// This is what makes [`Block`] sound. A fill is made only from a segment nothing else refers
/// to ([`SegmentFill::new`]), so no block of an earlier fill is alive; within a fill, blocks are
/// disjoint; a [`BlockMut`] is the only handle on its bytes until [`BlockMut::freeze`] turns it
/// into a shared, read-only [`Block`].
#[derive(Debug)]
pub struct SegmentFill {
    segment: Arc<Segment>,
    used: usize,
}

impl SegmentFill {
    /// Starts filling `segment` from its first byte, or gives it back when something still
    /// refers to it (a block a reader holds).
    pub fn new(mut segment: Arc<Segment>) -> Result<SegmentFill, Arc<Segment>> {
        // `get_mut` succeeds only for the last reference, and synchronises with the drops of
        // all the others: every read of the earlier fill's blocks happened before the writes
        // of this one.
        if Arc::get_mut(&mut segment).is_none() {
            return Err(segment);
        }
        Ok(SegmentFill { segment, used: 0 })
    }

    /// The segment being filled.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// Bytes not handed out yet.
    pub fn remaining(&self) -> usize {
        self.segment.len() - self.used
    }

    /// The next `len` bytes, or `None` when fewer remain. They hold whatever an earlier fill
    /// left there (zeroes in a new segment, or in pages of a released one the kernel took
    /// back, at any moment until written): the caller overwrites them before reading any.
    pub fn take(&mut self, len: usize) -> Option<BlockMut> {
        if len > self.remaining() {
            return None;
        }
        let offset = self.used;
        self.used += len;
        Some(BlockMut {
            block: Block {
                segment: Arc::clone(&self.segment),
                offset,
                len,
            },
        })
    }
}

/// Bytes of a segment being written: the only handle on them (see [`SegmentFill`]).
#[derive(Debug)]
pub struct BlockMut {
    block: Block,
}

impl BlockMut {
    /// Ends the writing: the bytes become a block any thread may read.
    pub fn freeze(self) -> Block {
        self.block
    }
}

impl Deref for BlockMut {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.block
    }
}

impl DerefMut for BlockMut {
    fn deref_mut(&mut self) -> &mut [u8] {
        let block = &self.block;
        #[allow(unsafe_code)]
        // SAFETY: `offset + len` is within the mapping (`SegmentFill::take` checked it), which
        // lives as long as the `Arc` this handle holds. No other reference to these bytes
        // exists: the fill handed them out once, to this handle, from a segment nobody else
        // referred to when the fill began; and `&mut self` makes this borrow the only one.
        unsafe {
            std::slice::from_raw_parts_mut(
                block.segment.map.as_mut_ptr().add(block.offset),
                block.len,
            )
        }
    }
}

/// Written bytes of a segment, shared and read-only; keeps the segment mapped.
#[derive(Clone, Debug)]
pub struct Block {
    segment: Arc<Segment>,
    offset: usize,
    len: usize,
}

impl Block {
    /// The segment these bytes are in.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }
}

impl Deref for Block {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        #[allow(unsafe_code)]
        // SAFETY: in bounds and kept mapped as in `BlockMut::deref_mut`. Nothing writes these
        // bytes while a `Block` exists: a `Block` outside a `BlockMut` was made by `freeze`,
        // after the writing ended, and the segment is filled again only once no handle on it
        // is left (`SegmentFill::new`).
        unsafe {
            std::slice::from_raw_parts(self.segment.map.as_ptr().add(self.offset), self.len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_filled_again_only_when_no_block_is_left() {
        let mut fill = SegmentFill::new(Arc::new(Segment::map(1 << 16).expect("map"))).unwrap();
        let mut first = fill.take(10).expect("room");
        first.copy_from_slice(b"0123456789");
        let mut second = fill.take(5).expect("room");
        second.copy_from_slice(b"abcde");
        assert!(fill.take(fill.remaining() + 1).is_none());
        let (first, second) = (first.freeze(), second.freeze());
        assert_eq!((&*first, &*second), (&b"0123456789"[..], &b"abcde"[..]));
        let segment = Arc::clone(fill.segment());
        drop(fill);
        let segment = SegmentFill::new(segment).expect_err("blocks are alive");
        drop((first, second));
        let mut fill = SegmentFill::new(segment).expect("nothing refers to it");
        assert_eq!(fill.remaining(), 1 << 16);
        // Reused bytes are the earlier fill's, for the writer to overwrite.
        assert_eq!(&*fill.take(3).expect("room"), b"012");
    }
}
