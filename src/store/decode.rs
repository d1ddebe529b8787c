//! Turning a pack entry into an object: walking delta chains (OFS and REF), inflating, applying
//! deltas, and resolving the final type and size without inflating whole objects.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::format::pack::{self, EntryKind, ObjectKind};
use crate::format::{delta, pack::Entry};
use crate::oid::{HASH_LEN, ObjectId};
use crate::zlib;

use super::Store;
use super::cache::CachedObject;
use super::pack::{DataRef, Pack, PackData};
use super::packset::{Location, PackSet};

/// Where the decoded object goes. The FFI layer hands out a buffer from the host's allocator so
/// the common case (a whole object) is inflated straight into memory libgit2 will own.
pub trait ObjectSink {
    /// Returns a writable buffer of exactly `len` bytes for an object of type `kind`.
    fn buffer(&mut self, kind: ObjectKind, len: usize) -> Result<&mut [u8]>;

    /// Stores a copy of `bytes` as the object, of type `kind`: a cache hit. A sink whose buffers
    /// cost something to hand out (the FFI one zeroes them) can write the copy directly.
    fn copy(&mut self, kind: ObjectKind, bytes: &[u8]) -> Result<()> {
        self.buffer(kind, bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }
}

/// An [`ObjectSink`] into a `Vec`, for Rust callers and tests.
#[derive(Debug, Default)]
pub struct VecSink {
    /// The object's type, once decoded.
    pub kind: Option<ObjectKind>,
    /// The object's body.
    pub data: Vec<u8>,
}

impl ObjectSink for VecSink {
    fn buffer(&mut self, kind: ObjectKind, len: usize) -> Result<&mut [u8]> {
        self.kind = Some(kind);
        self.data.clear();
        self.data
            .try_reserve_exact(len)
            .map_err(|_| Error::OutOfMemory(len))?;
        self.data.resize(len, 0);
        Ok(&mut self.data)
    }
}

/// Longest delta chain followed before giving up: git's chains are at most `--depth` (default
/// 50, at most 4095), so this only stops REF_DELTA loops in hostile packs.
const MAX_CHAIN: usize = 10_000;

/// One delta waiting to be applied. Its pack's data is fetched again when it is applied: the
/// links of a chain share one pack almost always, and one hold on it serves them all.
struct Link<'a> {
    pack: &'a Arc<Pack>,
    found: Found,
}

/// An entry a chain walk found: where it is, its header, and where its zlib stream is.
struct Found {
    offset: u64,
    entry: Entry,
    stream: Stream,
}

/// Where an entry's zlib stream is, as the walk of its chain found it.
#[derive(Clone, Debug)]
enum Stream {
    /// In its pack's mapping, from the entry's data offset to the end of the pack body.
    Mapped,
    /// Read through the file into [`Scratch::reads`], at this range: up to the most zlib
    /// writes for the entry's size ([`stream_bound`]) or to the end of the body, or only what
    /// the header's window held of it (see [`READ_BUDGET`]). An inflate that runs out of it
    /// short of the body's end goes on from the mapping.
    Read(Range<usize>),
}

/// Bytes read at an entry's offset through the file: its header and, usually, all of a
/// delta's stream, in one `pread`.
const ENTRY_WINDOW: u64 = 4096;

/// Bytes one decode reads through the file at most: a stream that would take more (a large
/// object, a long chain of large deltas) is inflated from the mapping instead, so a young
/// pack's reads never copy more than this, and a large object pays for its own mapping.
const READ_BUDGET: usize = 4 << 20;

/// The most compressed bytes a zlib stream inflating to `size` bytes takes when written by
/// zlib (git's encoder): stored blocks add 5 bytes per 64 KiB, fixed Huffman codes at most an
/// eighth. A longer stream is valid zlib all the same; the decoder then maps the pack and reads
/// it there.
fn stream_bound(size: u64) -> u64 {
    size.saturating_add(size / 8).saturating_add(64)
}

/// The start of a chain: what the deltas apply to.
enum Root {
    Cached(CachedObject),
    /// A whole object in the pack the walk ended in.
    Whole {
        found: Found,
        kind: ObjectKind,
    },
}

/// Only results at every `CHECKPOINT_SPACING`-th depth of a chain are admitted to the delta-base
/// cache (roots always are). Caching every level of 50-deep chains makes the working set larger
/// than any sensible budget and the cache thrashes; with checkpoints a read is at most one extra
/// delta away from a cached base, and twice as many chains fit. Measured by changing this constant
/// and running `ODBPACK_BENCH_BACKENDS=odbpack ODBPACK_BENCH_CORPORA=MIDX ODBPACK_BENCH_OPS='read
/// (random)' ODBPACK_BENCH_STRICT=off cargo bench --bench read` (50 packs + MIDX, 256 MiB, 1 / 2
/// threads): 1 → 102k / 329k reads/s, 2 → 153k / 569k, 3 → 149k / 566k (measured while the cache
/// was an LRU, before CLOCK).
///
/// The rule holds from the first read, not only once the cache is full: admitting every level
/// while there is room filled the cache with intermediates no read came back for, and a cold
/// cache's fill is paid in fresh pages (a page fault per 4 KiB; while the cache was on the heap,
/// a thread's malloc arena also grew by an `mprotect` each time; measured then).
/// `ODBPACK_BENCH_STRICT=off ODBPACK_BENCH_OPS='read (random),read_prefix 40 hex,read every
/// object' cargo bench --bench read`, two runs each, alternated: read every
/// object (cold caches) against libgit2 went from 1.60x, 1.59x to 1.70x, 1.82x (50 packs + MIDX,
/// 1 thread), 2.22x, 2.28x to 2.64x, 2.63x (50 packs, 2 threads), 4.92x, 5.54x to 6.34x, 5.88x
/// (1 pack, 2 threads); the other rows within the runs' spread.
const CHECKPOINT_SPACING: u32 = 2;

/// The delta-base cache takes entries only once a store has decoded this many delta chains
/// (the ones before are rebuilt in scratch buffers, like chains whose bases the cache refuses).
/// A cached base pays only when a later read comes back to it, and the first entries cost
/// fresh memory: a segment mapped, a page fault for every page written, the `munmap` when the
/// store closes. A program that opens a repository for a few reads (a command-line tool, a
/// server opening it per request: the read bench's `open, read 1, close`) pays that and gets
/// nothing back; a store that lives on loses a few re-decoded bases, once. Like the merged
/// index and the fine fanout, the cache is earned.
pub(super) const CHAINS_BEFORE_CACHE: usize = 16;

/// Buffers a thread reuses from one chain to the next, so applying a delta allocates nothing
/// (the results the cache keeps go into its segments): the inflated delta, and the two
/// intermediate results in between that it does not keep (it admits only every
/// [`CHECKPOINT_SPACING`]-th, and nothing larger than half its budget).
#[derive(Default)]
struct Scratch {
    delta: Vec<u8>,
    base: Vec<u8>,
    target: Vec<u8>,
    /// The entries of packs read through the file (see [`Stream::Read`]), of one decode.
    reads: Vec<u8>,
}

/// Scratch buffers larger than this are freed after use: one huge object in a chain must not
/// pin its size in every thread that ever decoded it.
const SCRATCH_KEEP: usize = 1 << 20;

impl Scratch {
    fn release_large(&mut self) {
        for buffer in [
            &mut self.delta,
            &mut self.base,
            &mut self.target,
            &mut self.reads,
        ] {
            if buffer.capacity() > SCRATCH_KEEP {
                *buffer = Vec::new();
            }
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `decode` with this thread's scratch buffers, emptied of the last decode's reads.
fn with_scratch<R>(decode: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.reads.clear();
            let result = decode(&mut scratch);
            scratch.release_large();
            result
        }
        // Re-entrant use (not expected): fresh buffers instead of a borrow panic.
        Err(_) => decode(&mut Scratch::default()),
    })
}

/// The first `len` bytes of `buffer`, growing it (fallibly: sizes come from the pack) when it is
/// shorter. Bytes past the old length are zeroed once; after that a reused buffer costs nothing.
fn grow(buffer: &mut Vec<u8>, len: usize) -> Result<&mut [u8]> {
    if buffer.len() < len {
        buffer
            .try_reserve_exact(len - buffer.len())
            .map_err(|_| Error::OutOfMemory(len))?;
        buffer.resize(len, 0);
    }
    Ok(&mut buffer[..len])
}

impl Store {
    /// The data of `pack`, opening it (and enforcing the map budget) on first use.
    fn pack_data(&self, pack: &Arc<Pack>) -> Result<DataRef> {
        let (data, newly_opened) = pack.data(&self.maps)?;
        if newly_opened {
            self.enforce_map_budget(pack);
        }
        pack.touch(self.epoch());
        Ok(data)
    }

    /// Finds the base of a REF_DELTA: in the same pack first (where git puts it), then anywhere
    /// in the store (robust against packs that rely on a sibling, as gitoxide allows).
    fn locate_ref_base<'a>(
        &self,
        set: &'a PackSet,
        pack: &'a Arc<Pack>,
        base: &ObjectId,
    ) -> Result<Location<'a>> {
        if let Ok(Some(hit)) = pack.find(base) {
            let offset = pack.offset_of(hit)?;
            return Ok(Location { pack, offset });
        }
        match set.locate(base, 0)? {
            Some((location, _)) => Ok(location),
            None => Err(Error::Inconsistent {
                path: pack.pack_path().to_owned(),
                what: format!("delta base {base} is missing"),
            }),
        }
    }

    fn check_size(&self, pack: &Pack, size: u64, what: &str) -> Result<usize> {
        if size > self.options.max_object_size {
            return Err(Error::Limit {
                path: pack.pack_path().to_owned(),
                what: format!(
                    "{what} of {size} bytes exceeds the maximum object size of {} bytes",
                    self.options.max_object_size
                ),
            });
        }
        usize::try_from(size).map_err(|_| Error::OutOfMemory(usize::MAX))
    }

    /// Parses the entry at `offset` and finds its zlib stream: in the mapping, or read through
    /// the file into `reads` (the header and, with `whole_stream`, all of the stream up to its
    /// [`stream_bound`]; else what the header's window holds of it).
    fn read_entry(
        &self,
        pack: &Pack,
        data: &PackData,
        offset: u64,
        whole_stream: bool,
        reads: &mut Vec<u8>,
    ) -> Result<Found> {
        let corrupt = |source| Error::Pack {
            path: pack.pack_path().to_owned(),
            offset,
            source,
        };
        if let Some(bytes) = data.mapped() {
            let entry = pack::parse_entry(bytes, offset).map_err(corrupt)?;
            return Ok(Found {
                offset,
                entry,
                stream: Stream::Mapped,
            });
        }
        let body_end = data.file_len() - pack::TRAILER_LEN as u64;
        if offset < pack::HEADER_LEN as u64 || offset >= body_end {
            return Err(corrupt(pack::Error::OffsetOutOfRange { offset }));
        }
        let read_error = |error| Error::io(pack.pack_path(), error);
        // Past the budget, only the header: the stream is then inflated from the mapping.
        let window_len = if reads.len() < READ_BUDGET {
            ENTRY_WINDOW
        } else {
            (pack::MAX_ENTRY_HEADER_LEN + HASH_LEN) as u64
        };
        let window_end = body_end.min(offset.saturating_add(window_len));
        let window = data
            .read_into(offset..window_end, reads)
            .map_err(read_error)?;
        pack.count_read();
        let entry = pack::parse_entry_header(&reads[window.clone()], offset).map_err(corrupt)?;
        let stream_start = window.start + (entry.data_offset - offset) as usize;
        let mut stream_end = window.end;
        let wanted_end = body_end.min(entry.data_offset.saturating_add(stream_bound(entry.size)));
        let within_budget = wanted_end
            .checked_sub(window_end)
            .and_then(|rest| usize::try_from(rest).ok())
            .is_some_and(|rest| reads.len().saturating_add(rest) <= READ_BUDGET);
        if whole_stream && wanted_end > window_end && within_budget {
            // Right after the window in `reads`: the stream's bytes stay contiguous.
            stream_end = data
                .read_into(window_end..wanted_end, reads)
                .map_err(read_error)?
                .end;
        }
        Ok(Found {
            offset,
            entry,
            stream: Stream::Read(stream_start..stream_end),
        })
    }

    /// The bytes an entry's zlib stream starts at, as far as they are known: to the end of the
    /// pack body in the mapping, or the range of `reads` the walk read.
    fn stream_bytes<'b>(
        &self,
        pack: &Pack,
        data: &'b PackData,
        entry: &Entry,
        stream: &Stream,
        reads: &'b [u8],
    ) -> Result<&'b [u8]> {
        let bytes = match stream {
            Stream::Read(range) => reads.get(range.clone()),
            // A pack once mapped is mapped whenever it is reopened (`Pack::data`).
            Stream::Mapped => data.mapped().and_then(|bytes| {
                let start = usize::try_from(entry.data_offset).ok()?;
                bytes.get(start..bytes.len() - HASH_LEN)
            }),
        };
        bytes.ok_or_else(|| Error::Inconsistent {
            path: pack.pack_path().to_owned(),
            what: format!(
                "entry data at offset {} is past the end of the pack",
                entry.data_offset
            ),
        })
    }

    /// Whether a stream read through the file stopped short of the pack body's end: a zlib
    /// error running out of input there asks for the rest, not for the pack to be corrupt.
    fn read_short(data: &PackData, entry: &Entry, stream: &Stream) -> bool {
        match stream {
            Stream::Read(range) => {
                let end = entry.data_offset + range.len() as u64;
                end < data.file_len() - pack::TRAILER_LEN as u64
            }
            Stream::Mapped => false,
        }
    }

    /// The pack's data mapped, for a stream its read through the file cut short.
    fn mapped_pack_data(&self, pack: &Arc<Pack>) -> Result<DataRef> {
        let (data, newly_mapped) = pack.mapped_data(&self.maps)?;
        if newly_mapped {
            self.enforce_map_budget(pack);
        }
        Ok(data)
    }

    /// Inflates an entry's zlib stream into `out` (exactly `out.len()` bytes).
    fn inflate_entry(
        &self,
        pack: &Arc<Pack>,
        data: &PackData,
        found: &Found,
        reads: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        let Found {
            offset,
            entry,
            stream,
        } = found;
        let input = self.stream_bytes(pack, data, entry, stream, reads)?;
        let mut result = zlib::inflate_exact(input, out);
        if matches!(result, Err(zlib::Error::Truncated)) && Self::read_short(data, entry, stream) {
            let mapped = self.mapped_pack_data(pack)?;
            let input = self.stream_bytes(pack, &mapped, entry, &Stream::Mapped, reads)?;
            result = zlib::inflate_exact(input, out);
        }
        result.map(|_| ()).map_err(|source| Error::Zlib {
            path: pack.pack_path().to_owned(),
            offset: *offset,
            source,
        })
    }

    /// Decodes the object at `location` into `sink`; returns its type.
    pub(crate) fn decode<'a>(
        &self,
        set: &'a PackSet,
        location: &Location<'a>,
        sink: &mut dyn ObjectSink,
    ) -> Result<ObjectKind> {
        with_scratch(|scratch| self.decode_with(set, location, sink, scratch))
    }

    fn decode_with<'a>(
        &self,
        set: &'a PackSet,
        location: &Location<'a>,
        sink: &mut dyn ObjectSink,
        scratch: &mut Scratch,
    ) -> Result<ObjectKind> {
        let mut pack = location.pack;
        let mut data = self.pack_data(pack)?;
        let mut offset = location.offset;
        let mut chain: Vec<Link> = Vec::new();
        let root = loop {
            // The requested object itself may be cached as another chain's base: then it is a
            // copy, not an inflate.
            if let Some(cached) = self.cache.get(&(pack.number, offset)) {
                break Root::Cached(cached);
            }
            let found = self.read_entry(pack, &data, offset, true, &mut scratch.reads)?;
            match found.entry.kind {
                EntryKind::Base(kind) => break Root::Whole { found, kind },
                EntryKind::OfsDelta { base_offset } => {
                    chain.push(Link { pack, found });
                    offset = base_offset;
                }
                EntryKind::RefDelta { base } => {
                    chain.push(Link { pack, found });
                    let next = self.locate_ref_base(set, pack, &base)?;
                    if !Arc::ptr_eq(next.pack, pack) {
                        data = self.pack_data(next.pack)?;
                        pack = next.pack;
                    }
                    offset = next.offset;
                }
            }
            if chain.len() > MAX_CHAIN {
                return Err(Error::Limit {
                    path: pack.pack_path().to_owned(),
                    what: format!(
                        "delta chain longer than {MAX_CHAIN} (a loop?) at offset {offset}"
                    ),
                });
            }
        };

        // No delta: inflate straight into the caller's buffer, or copy the cached object.
        if chain.is_empty() {
            return match root {
                Root::Whole { found, kind } => {
                    let len = self.check_size(pack, found.entry.size, "object")?;
                    let out = sink.buffer(kind, len)?;
                    self.inflate_entry(pack, &data, &found, &scratch.reads, out)?;
                    Ok(kind)
                }
                Root::Cached(cached) => {
                    sink.copy(cached.kind, &cached.data)?;
                    Ok(cached.kind)
                }
            };
        }
        self.apply_chain(chain, pack, data, root, sink, scratch)
    }

    /// Whether this store has decoded [`CHAINS_BEFORE_CACHE`] delta chains, counting this one:
    /// a load once it has (the count stops there, so its cache line stays shared).
    fn cache_earned(&self) -> bool {
        self.chains_decoded.load(Ordering::Relaxed) >= CHAINS_BEFORE_CACHE
            || self.chains_decoded.fetch_add(1, Ordering::Relaxed) >= CHAINS_BEFORE_CACHE
    }

    /// Applies the deltas of `chain` base-first onto `root` (in `pack`, whose data is `data`),
    /// writing the requested object into `sink`. Each result is written once, into its final
    /// place: the host's buffer for the requested object, a new cache entry for a root or a
    /// checkpoint the cache admits, and a reused scratch buffer for the rest.
    fn apply_chain<'a>(
        &self,
        mut chain: Vec<Link<'a>>,
        mut pack: &'a Arc<Pack>,
        mut data: DataRef,
        root: Root,
        sink: &mut dyn ObjectSink,
        scratch: &mut Scratch,
    ) -> Result<ObjectKind> {
        let Scratch {
            delta: delta_buffer,
            base: scratch_base,
            target: scratch_target,
            reads,
        } = scratch;
        let caching = self.cache_earned();
        // The base of the next delta: `shared` with the cache, or else the first `scratch_len`
        // bytes of `scratch_base`.
        let (kind, mut depth, mut shared, mut scratch_len) = match root {
            Root::Cached(CachedObject { kind, data, depth }) => (kind, depth, Some(data), 0),
            Root::Whole { found, kind } => {
                let len = self.check_size(pack, found.entry.size, "entry")?;
                match caching.then(|| self.cache.new_entry(len)).flatten() {
                    Some(mut bytes) => {
                        self.inflate_entry(pack, &data, &found, reads, &mut bytes)?;
                        let key = (pack.number, found.offset);
                        let cached = self.cache.insert(key, bytes, kind, 0);
                        (kind, 0, Some(cached.data), 0)
                    }
                    None => {
                        let out = grow(scratch_base, len)?;
                        self.inflate_entry(pack, &data, &found, reads, out)?;
                        (kind, 0, None, len)
                    }
                }
            }
        };
        while let Some(link) = chain.pop() {
            let delta_error = |source| Error::Delta {
                path: link.pack.pack_path().to_owned(),
                offset: link.found.offset,
                source,
            };
            if !Arc::ptr_eq(link.pack, pack) {
                data = self.pack_data(link.pack)?;
                pack = link.pack;
            }
            let delta_len = self.check_size(pack, link.found.entry.size, "entry")?;
            let delta_bytes = grow(delta_buffer, delta_len)?;
            self.inflate_entry(pack, &data, &link.found, reads, delta_bytes)?;
            let current: &[u8] = match &shared {
                Some(bytes) => bytes,
                None => &scratch_base[..scratch_len],
            };
            let header = delta::check(current, delta_bytes, self.options.max_object_size)
                .map_err(delta_error)?;
            let len =
                usize::try_from(header.result_size).map_err(|_| Error::OutOfMemory(usize::MAX))?;
            if chain.is_empty() {
                let out = sink.buffer(kind, len)?;
                delta::apply_into(current, delta_bytes, &header, out).map_err(delta_error)?;
                return Ok(kind);
            }
            depth = depth.saturating_add(1);
            let entry = if caching && depth.is_multiple_of(CHECKPOINT_SPACING) {
                self.cache.new_entry(len)
            } else {
                None
            };
            if let Some(mut result) = entry {
                delta::apply_into(current, delta_bytes, &header, &mut result)
                    .map_err(delta_error)?;
                let cached =
                    self.cache
                        .insert((link.pack.number, link.found.offset), result, kind, depth);
                shared = Some(cached.data);
            } else {
                let out = grow(scratch_target, len)?;
                delta::apply_into(current, delta_bytes, &header, out).map_err(delta_error)?;
                std::mem::swap(scratch_base, scratch_target);
                scratch_len = len;
                shared = None;
            }
        }
        unreachable!("a chain with deltas returns from inside the loop")
    }

    /// Final type and size of the object at `location`, reading only entry headers and the
    /// first bytes of one delta (libgit2 #3759: never inflate whole objects for a header).
    ///
    /// What it learns goes to the header memo: the size of the requested entry, and the type of
    /// every entry walked, so no chain is walked twice while the memo holds it.
    pub(crate) fn decode_header<'a>(
        &self,
        set: &'a PackSet,
        location: &Location<'a>,
    ) -> Result<(ObjectKind, u64)> {
        let requested = (location.pack.number, location.offset);
        let remembered = self.headers.get(&requested);
        if let Some((kind, Some(size))) = remembered {
            return Ok((kind, size));
        }
        with_scratch(|scratch| self.decode_header_with(set, location, remembered, scratch))
    }

    fn decode_header_with<'a>(
        &self,
        set: &'a PackSet,
        location: &Location<'a>,
        remembered: Option<(ObjectKind, Option<u64>)>,
        scratch: &mut Scratch,
    ) -> Result<(ObjectKind, u64)> {
        let requested = (location.pack.number, location.offset);
        let reads = &mut scratch.reads;
        let mut pack = location.pack;
        let mut data = self.pack_data(pack)?;
        let mut offset = location.offset;
        if let Some((kind, None)) = remembered {
            // A walk through this entry taught its type: only the size is left to read.
            let found = self.read_entry(pack, &data, offset, false, reads)?;
            let size = self.result_size(pack, &data, &found, reads)?;
            self.headers.remember(requested, kind, Some(size));
            return Ok((kind, size));
        }
        let mut size = None;
        // Delta entries walked below the requested one: they share its type.
        let mut walked = Vec::new();
        let mut kind = None;
        for _ in 0..=MAX_CHAIN {
            let key = (pack.number, offset);
            if size.is_some() {
                if let Some((known_kind, _)) = self.headers.get(&key) {
                    kind = Some(known_kind);
                    break;
                }
                if let Some(cached) = self.cache.get(&key) {
                    kind = Some(cached.kind);
                    break;
                }
            }
            let found = self.read_entry(pack, &data, offset, false, reads)?;
            if size.is_none() {
                size = Some(self.result_size(pack, &data, &found, reads)?);
            } else if !matches!(found.entry.kind, EntryKind::Base(_)) {
                walked.push(key);
            }
            let base_location = match found.entry.kind {
                EntryKind::Base(base_kind) => {
                    kind = Some(base_kind);
                    break;
                }
                EntryKind::OfsDelta { base_offset } => Location {
                    pack,
                    offset: base_offset,
                },
                EntryKind::RefDelta { base } => self.locate_ref_base(set, pack, &base)?,
            };
            if !Arc::ptr_eq(base_location.pack, pack) {
                data = self.pack_data(base_location.pack)?;
                pack = base_location.pack;
            }
            offset = base_location.offset;
        }
        let (Some(kind), Some(size)) = (kind, size) else {
            return Err(Error::Limit {
                path: pack.pack_path().to_owned(),
                what: format!("delta chain longer than {MAX_CHAIN} (a loop?) at offset {offset}"),
            });
        };
        self.headers.remember(requested, kind, Some(size));
        for key in walked {
            self.headers.remember(key, kind, None);
        }
        Ok((kind, size))
    }

    /// The size of the object an entry yields: its own for a whole object, else the one its
    /// delta declares in the first bytes of its stream.
    fn result_size(
        &self,
        pack: &Arc<Pack>,
        data: &PackData,
        found: &Found,
        reads: &[u8],
    ) -> Result<u64> {
        let Found {
            offset,
            entry,
            stream,
        } = found;
        if let EntryKind::Base(_) = entry.kind {
            return Ok(entry.size);
        }
        // Two varints of at most 10 bytes each.
        let mut head = [0u8; 20];
        let want = head
            .len()
            .min(usize::try_from(entry.size).unwrap_or(usize::MAX));
        let input = self.stream_bytes(pack, data, entry, stream, reads)?;
        let mut result = zlib::inflate_prefix(input, &mut head[..want]);
        if !matches!(result, Ok(produced) if produced == want)
            && Self::read_short(data, entry, stream)
        {
            let mapped = self.mapped_pack_data(pack)?;
            let input = self.stream_bytes(pack, &mapped, entry, &Stream::Mapped, reads)?;
            result = zlib::inflate_prefix(input, &mut head[..want]);
        }
        let produced = result.map_err(|source| Error::Zlib {
            path: pack.pack_path().to_owned(),
            offset: *offset,
            source,
        })?;
        let header = delta::parse_header(&head[..produced]).map_err(|source| Error::Delta {
            path: pack.pack_path().to_owned(),
            offset: *offset,
            source,
        })?;
        Ok(header.result_size)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::store::Options;
    use crate::store::pack::READS_BEFORE_MAP;

    fn git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
        let stdout = crate::test_git::git_bytes(dir, args, stdin.unwrap_or_default());
        String::from_utf8(stdout).expect("utf-8")
    }

    /// One pack holding a single delta chain: 12 versions of one blob, each a small edit of the
    /// previous. Returns the store and (id, offset, depth) of every blob, from `git verify-pack`.
    fn single_chain(budget: usize) -> (tempfile::TempDir, Store, Vec<(ObjectId, u64, u32)>) {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q", "--bare", "."], None);
        let mut stream = Vec::new();
        for version in 0..12 {
            let body: String = (0..200)
                // Each version edits one more line: the smallest delta is to its neighbour.
                .map(|line| {
                    let state = if line / 7 < version {
                        "edited"
                    } else {
                        "original"
                    };
                    format!("line {line} {state}\n")
                })
                .collect();
            stream.extend_from_slice(
                format!(
                    "commit refs/heads/main\ncommitter C <c@example.com> {} +0000\ndata 0\n\
                     M 100644 inline f\ndata {}\n{body}\n",
                    1_700_000_000 + version,
                    body.len()
                )
                .as_bytes(),
            );
        }
        git(dir.path(), &["fast-import", "--quiet"], Some(&stream));
        git(
            dir.path(),
            &["repack", "-adfq", "--depth=50", "--window=50"],
            None,
        );
        let pack_dir = dir.path().join("objects/pack");
        let idx = std::fs::read_dir(&pack_dir)
            .expect("pack dir")
            .map(|entry| entry.expect("entry").path())
            .find(|path| path.extension().is_some_and(|ext| ext == "idx"))
            .expect("an idx");
        let listing = git(
            dir.path(),
            &["verify-pack", "-v", idx.to_str().expect("utf-8")],
            None,
        );
        let blobs: Vec<(ObjectId, u64, u32)> = listing
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| fields.len() >= 5 && fields[1] == "blob")
            .map(|fields| {
                let depth = fields
                    .get(5)
                    .map_or(0, |depth| depth.parse().expect("depth"));
                let id = ObjectId::from_hex(fields[0]).expect("id");
                (id, fields[4].parse().expect("offset"), depth)
            })
            .collect();
        let options = Options {
            delta_cache_bytes: budget,
            ..Options::default()
        };
        let store = Store::new_unshared(dir.path().join("objects"), options);
        store.refresh().expect("scan");
        (dir, store, blobs)
    }

    /// Depths of the chain members the cache holds, sorted.
    fn cached_depths(store: &Store, blobs: &[(ObjectId, u64, u32)]) -> Vec<u32> {
        let pack = store.snapshot().packs().next().expect("one pack").number;
        let mut depths: Vec<u32> = blobs
            .iter()
            .filter_map(|(_, offset, depth)| {
                let cached = store.cache.get(&(pack, *offset))?;
                assert_eq!(cached.depth, *depth, "recorded depth at offset {offset}");
                Some(*depth)
            })
            .collect();
        depths.sort_unstable();
        depths
    }

    fn read(store: &Store, id: &ObjectId) -> Vec<u8> {
        let mut sink = VecSink::default();
        store
            .read(id, &AtomicUsize::new(0), &mut sink)
            .expect("read");
        sink.data
    }

    /// Decodes the deepest chain [`CHAINS_BEFORE_CACHE`] times, which earns the store its
    /// cache and leaves it empty; returns the deepest blob.
    fn earn_cache(store: &Store, blobs: &[(ObjectId, u64, u32)]) -> (ObjectId, u32) {
        let &(deepest, _, depth) = blobs.iter().max_by_key(|blob| blob.2).expect("blobs");
        assert!(depth >= 6, "git built a chain (depth {depth})");
        for _ in 0..CHAINS_BEFORE_CACHE {
            assert_eq!(read(store, &deepest), git_object(store, &deepest));
        }
        assert_eq!(store.cache.len(), 0, "nothing cached before it is earned");
        assert_eq!(
            store.cached_bytes(),
            0,
            "no segment mapped before it is earned"
        );
        (deepest, depth)
    }

    /// The depths below `depth` that a read of the object at `depth` leaves in the cache.
    fn checkpoints_below(depth: u32) -> Vec<u32> {
        (0..depth).filter(|d| d % CHECKPOINT_SPACING == 0).collect()
    }

    #[test]
    fn caches_the_checkpoints_of_a_chain() {
        let (_dir, store, blobs) = single_chain(64 << 20);
        let (deepest, depth) = earn_cache(&store, &blobs);
        let body = read(&store, &deepest);
        // The root and every second intermediate, even with room for all of them; never the
        // requested object itself.
        assert_eq!(cached_depths(&store, &blobs), checkpoints_below(depth));
        // A read of an object that is itself a cached base is served from its own entry, not
        // rebuilt from its base's.
        let base_depth = *checkpoints_below(depth).last().expect("a checkpoint");
        let &(base, base_offset, _) = blobs
            .iter()
            .find(|blob| blob.2 == base_depth)
            .expect("base");
        let pack = store.snapshot().packs().next().expect("one pack").number;
        let entries_before = store.cache.len();
        assert_eq!(read(&store, &base), git_object(&store, &base));
        assert_eq!(*store.cache.last_hit.lock(), Some((pack, base_offset)));
        assert_eq!(
            store.cache.len(),
            entries_before,
            "no new entries for a cached object"
        );
        assert_eq!(body, git_object(&store, &deepest));
    }

    #[test]
    fn a_full_cache_takes_checkpoints_within_its_budget() {
        let budget = 256 << 10;
        let (_dir, store, blobs) = single_chain(budget);
        let (deepest, depth) = earn_cache(&store, &blobs);
        // Fill the budget with tiny entries of a pack number no real pack has: from now on the
        // cache takes an entry only by evicting.
        for offset in 0..(budget / 100) as u64 {
            let entry = store.cache.new_entry(1).expect("room");
            store.cache.insert((0, offset), entry, ObjectKind::Blob, 0);
        }
        assert_eq!(read(&store, &deepest), git_object(&store, &deepest));
        assert_eq!(cached_depths(&store, &blobs), checkpoints_below(depth));
        assert!(store.cached_bytes() <= budget);
    }

    #[test]
    fn reads_chains_whose_bases_the_cache_refuses() {
        // A 4 KiB budget cannot hold three segments, so the cache takes nothing: neither the
        // root nor any checkpoint gets an entry and every chain is rebuilt in scratch buffers.
        let (_dir, store, blobs) = single_chain(4 << 10);
        for (id, _, _) in blobs.iter().rev() {
            assert_eq!(read(&store, id), git_object(&store, id), "blob {id}");
        }
        assert_eq!(store.cached_bytes(), 0);
    }

    #[test]
    fn headers_teach_the_memo_the_whole_chain() {
        let (_dir, store, blobs) = single_chain(64 << 20);
        let pack = store.snapshot().packs().next().expect("one pack").number;
        let header = |id: &ObjectId| {
            store
                .read_header(id, &AtomicUsize::new(0))
                .expect("read_header")
        };
        let &(deepest, deepest_offset, depth) =
            blobs.iter().max_by_key(|blob| blob.2).expect("blobs");
        let expected = |id: &ObjectId| (ObjectKind::Blob, git_object(&store, id).len() as u64);
        assert_eq!(header(&deepest), expected(&deepest));
        // The requested entry with its size, the deltas walked below it with their type only.
        for &(_, offset, blob_depth) in &blobs {
            let remembered = store.headers.get(&(pack, offset));
            let wanted = match blob_depth {
                0 => None,
                d if d == depth => Some((ObjectKind::Blob, Some(expected(&deepest).1))),
                _ => Some((ObjectKind::Blob, None)),
            };
            assert_eq!(remembered, wanted, "memo at depth {blob_depth}");
        }
        assert!(store.headers.get(&(pack, deepest_offset)).is_some());
        // Every header, asked twice (learnt, then remembered), is git's.
        for _ in 0..2 {
            for (id, offset, _) in &blobs {
                assert_eq!(header(id), expected(id), "header of {id}");
                assert_eq!(
                    store.headers.get(&(pack, *offset)),
                    Some((ObjectKind::Blob, Some(expected(id).1)))
                );
            }
        }
    }

    fn git_object(store: &Store, id: &ObjectId) -> Vec<u8> {
        let git_dir = store.objects_dir().parent().expect("git dir");
        git(git_dir, &["cat-file", "blob", &id.to_string()], None).into_bytes()
    }

    #[test]
    fn a_young_pack_is_read_through_its_file_then_mapped() {
        // No cache: every read walks the whole chain, a known number of entries.
        let (_dir, store, blobs) = single_chain(0);
        let &(deepest, _, depth) = blobs.iter().max_by_key(|blob| blob.2).expect("blobs");
        let entries_per_read = depth + 1;
        let size = git(
            store.objects_dir().parent().expect("git dir"),
            &["cat-file", "-s", &deepest.to_string()],
            None,
        );
        let header = store
            .read_header(&deepest, &AtomicUsize::new(0))
            .expect("read_header");
        assert_eq!(
            header,
            (ObjectKind::Blob, size.trim().parse().expect("size"))
        );
        let mut entries = 1;
        while entries + entries_per_read < READS_BEFORE_MAP {
            assert_eq!(read(&store, &deepest), git_object(&store, &deepest));
            entries += entries_per_read;
            assert_eq!(
                store.mapped(),
                (0, 1),
                "open, not mapped, after {entries} entries"
            );
        }
        for _ in 0..2 {
            assert_eq!(read(&store, &deepest), git_object(&store, &deepest));
        }
        let (mapped_bytes, open_files) = store.mapped();
        assert_eq!(open_files, 1);
        assert!(
            mapped_bytes > 0,
            "mapped after {} entries",
            READS_BEFORE_MAP
        );
    }

    #[test]
    fn a_large_object_is_read_from_the_mapping_of_a_young_pack() {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q", "--bare", "."], None);
        // Incompressible: the pack is larger than the budget too.
        let body = crate::test_git::incompressible_bytes(0x9E37_79B9_7F4A_7C15, READ_BUDGET + 4096);
        let id = git(dir.path(), &["hash-object", "-w", "--stdin"], Some(&body));
        let pack_base = dir.path().join("objects/pack/pack");
        let pack_base = pack_base.to_str().expect("utf-8");
        git(
            dir.path(),
            &["pack-objects", "-q", pack_base],
            Some(id.as_bytes()),
        );
        let store = Store::new_unshared(dir.path().join("objects"), Options::default());
        store.refresh().expect("scan");
        let id = ObjectId::from_hex(id.trim()).expect("id");
        assert_eq!(read(&store, &id), body);
        assert!(
            store.mapped().0 > 0,
            "mapped for an object over the read budget"
        );
    }

    /// A zlib stream of `body` padded with `padding` empty stored blocks in front: valid zlib
    /// (git reads it), far longer than any encoder writes for the body.
    fn padded_zlib(body: &[u8], padding: usize) -> Vec<u8> {
        let mut stream = vec![0x78, 0x01];
        for _ in 0..padding {
            stream.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        }
        let len = u16::try_from(body.len()).expect("one stored block");
        stream.push(0x01);
        stream.extend_from_slice(&len.to_le_bytes());
        stream.extend_from_slice(&(!len).to_le_bytes());
        stream.extend_from_slice(body);
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in body {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        stream.extend_from_slice(&((b << 16) | a).to_be_bytes());
        stream
    }

    #[test]
    fn streams_longer_than_any_encoder_writes_are_read_from_the_mapping() {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q", "--bare", "."], None);
        let base = b"a base blob, read through a stream of empty blocks\n".to_vec();
        let result = [&base[..], b"and a line more\n"].concat();
        // A delta: copy the whole base, insert the new line.
        let mut delta = vec![base.len() as u8, result.len() as u8, 0x90, base.len() as u8];
        delta.push((result.len() - base.len()) as u8);
        delta.extend_from_slice(&result[base.len()..]);
        // Both streams padded past the entry window the file reads are made of.
        let padding = ENTRY_WINDOW as usize / 5 + 10;
        let mut bytes = b"PACK\0\0\0\x02\0\0\0\x02".to_vec();
        pack::encode_entry_header(3, base.len() as u64, &mut bytes);
        bytes.extend_from_slice(&padded_zlib(&base, padding));
        let delta_offset = bytes.len() as u64;
        pack::encode_entry_header(6, delta.len() as u64, &mut bytes);
        pack::encode_ofs_delta_offset(delta_offset - pack::HEADER_LEN as u64, &mut bytes);
        bytes.extend_from_slice(&padded_zlib(&delta, padding));
        let mut checksum = crate::hash::Sha1::new();
        checksum.update(&bytes);
        bytes.extend_from_slice(checksum.finalize().expect("sha-1").as_bytes());
        let pack_path = dir.path().join("objects/pack/pack-padded.pack");
        std::fs::write(&pack_path, &bytes).expect("write pack");
        git(
            dir.path(),
            &["index-pack", pack_path.to_str().expect("utf-8")],
            None,
        );

        // A fresh store for each read: the first read that finds a stream cut short maps the
        // pack, and the reads after it would not read through the file.
        let fresh_store = || {
            let store = Store::new_unshared(dir.path().join("objects"), Options::default());
            store.refresh().expect("scan");
            assert_eq!(store.mapped().0, 0, "nothing mapped yet");
            store
        };
        let result_id = crate::hash::object_id(ObjectKind::Blob, &result).expect("id");
        let store = fresh_store();
        let header = store
            .read_header(&result_id, &AtomicUsize::new(0))
            .expect("read_header");
        assert_eq!(header, (ObjectKind::Blob, result.len() as u64));
        assert!(
            store.mapped().0 > 0,
            "the delta's size was read from the mapping"
        );
        for body in [&base, &result] {
            let id = crate::hash::object_id(ObjectKind::Blob, body).expect("id");
            let store = fresh_store();
            assert_eq!(&read(&store, &id), body);
            assert!(store.mapped().0 > 0, "read from the mapping");
            assert_eq!(&git_object(&store, &id), body, "git reads the pack alike");
        }
    }
}
