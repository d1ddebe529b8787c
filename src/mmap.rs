//! Read-only file mapping: the only `unsafe` outside the FFI layer.
//!
//! git never rewrites a pack, index or MIDX in place: new content always arrives as a new file
//! renamed over (or next to) the old one. A private read-only mapping of a file therefore keeps
//! showing the bytes it had when mapped, even after the path is replaced or unlinked, and a
//! reader holding an `Arc<Mmap>` stays valid however the directory changes. The file descriptor
//! is closed as soon as the mapping exists, so mapped files cost no descriptors.

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::Path;

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
        let file = File::open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        if metadata.len() == 0 {
            return Ok((Mmap { map: None }, metadata));
        }
        #[allow(unsafe_code)]
        // SAFETY: the mapping is private and read-only, and git never modifies these files in
        // place (module docs), so the bytes behind the slice do not change while it is alive.
        // Truncation by a foreign process would raise SIGBUS, a risk every mmap-based git
        // reader (git, libgit2, gitoxide) accepts.
        let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file)? };
        Ok((Mmap { map: Some(map) }, metadata))
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

/// Hands memory the allocator holds but no longer uses back to the operating system.
///
/// glibc keeps freed memory in its arenas; after the delta-base cache of a closed store is
/// freed (hundreds of MiB of small objects, freed from whichever threads evicted them), it stays
/// resident, and the next store's cache fills other holes on top of it. Called when a store
/// closes; a no-op on other C libraries.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
