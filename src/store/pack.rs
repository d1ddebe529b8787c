//! One pack of the store: its paths, and its index and data opened lazily on first use.
//!
//! Nothing is opened when a pack is discovered (a directory of thousands of packs costs one
//! `readdir`, and a `stat` for each pack no MIDX covers). The index is read through the file
//! for its first [`PROBES_BEFORE_MAP`] lookups, then mapped; the data is opened on the first
//! read, read with `pread` for its first [`READS_BEFORE_MAP`] entries, then mapped (see
//! [`PackData`]). Neither takes a lock once mapped. The index is set once and lent out by
//! reference (the pack outlives every lookup through a snapshot). The data lives behind
//! `ArcSwapOption`: a reader holds a guard of it ([`DataRef`]) that keeps it valid for as long
//! as it decodes, even if the store drops it (budget eviction, pack removed by a repack, the
//! file replaced by its mapping) in the meantime.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::idx::{self, FileLookup, FileLookupError, PackIndex};
use crate::format::pack;
use crate::mmap::Mmap;
use crate::oid::{HASH_LEN, ObjectId};

/// A mapped `.idx`.
pub type IndexMap = PackIndex<Mmap>;

/// A reader's hold on a pack's mapped data, keeping the mapping alive while it decodes. Usually
/// a guard of the pack's slot, which (unlike cloning the `Arc`) writes no reference count that
/// other threads' reads of the same pack share.
pub struct DataRef(DataHold);

enum DataHold {
    /// A guard of the pack's slot, taken only while the slot held a mapping.
    Guarded(arc_swap::Guard<Option<Arc<PackData>>>),
    /// The mapping this reader has just made.
    Owned(Arc<PackData>),
}

impl DataRef {
    fn load(slot: &ArcSwapOption<PackData>) -> Option<DataRef> {
        let guard = slot.load();
        guard.is_some().then(|| DataRef(DataHold::Guarded(guard)))
    }
}

impl std::ops::Deref for DataRef {
    type Target = PackData;

    fn deref(&self) -> &PackData {
        match &self.0 {
            DataHold::Guarded(guard) => guard
                .as_deref()
                .expect("DataRef::load keeps only guards holding a mapping"),
            DataHold::Owned(data) => data,
        }
    }
}

/// Entries a pack serves through `pread` before its data is mapped.
///
/// A mapping is paid for in page faults (each maps up to 16 pages around it, the kernel's
/// fault-around) and, when the store closes, in an `munmap` that clears every page mapped; a
/// `pread` of an entry costs one system call. A program that opens a repository for a few
/// reads (the read bench's `open, read 1, close`: about a dozen entries a read) reads faster
/// without the mapping; a store that keeps reading a pack has it mapped soon, and from then on
/// an entry costs no system call.
pub const READS_BEFORE_MAP: u32 = 256;

/// Lookups in a pack that read its index through the file, before the index is mapped.
///
/// Like a young pack's entries (see [`READS_BEFORE_MAP`]): a store that probes packs one by one
/// (no MIDX, and too few lookups yet to earn the merged index) pays for a mapped index in an
/// `mmap`, page faults of the fanout and of the search, and an `munmap` when it closes; reading
/// the file is the fanout once, then the ids of one first byte and an offset per lookup, each
/// one `pread` of the file opened for it. A program that opens a repository of many packs for a
/// read maps none of their indexes; a store that keeps looking them up maps them soon.
pub const PROBES_BEFORE_MAP: u32 = 8;

/// Where [`Pack::find`] found an id.
#[derive(Clone, Copy, Debug)]
pub enum IndexHit<'a> {
    /// At this position of the mapped index.
    Mapped(&'a IndexMap, usize),
    /// Read through the file: the object's pack offset.
    Read(u64),
}

/// Packs of a store read through a descriptor at once, at most: beyond them packs are mapped
/// from the start, as mappings hold no descriptor and thousands of packs must not exhaust them.
const MAX_READ_DESCRIPTORS: u64 = 64;

/// A `.pack`, header and trailer checked against its index: mapped, or (while young, see
/// [`READS_BEFORE_MAP`]) an open file read with `pread`.
#[derive(Debug)]
pub struct PackData {
    source: Source,
    /// Length of the file.
    len: u64,
    _ticket: MapTicket,
}

#[derive(Debug)]
enum Source {
    Mapped(Mmap),
    File(File),
}

impl PackData {
    /// Length of the pack file.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// The whole file when it is mapped.
    pub fn mapped(&self) -> Option<&[u8]> {
        match &self.source {
            Source::Mapped(bytes) => Some(bytes),
            Source::File(_) => None,
        }
    }

    /// Reads the file's bytes `range` (within the file) with `pread`, appended to `buffer`;
    /// returns where in `buffer` they are. Mapped data is read in place, not through this.
    pub fn read_into(
        &self,
        range: std::ops::Range<u64>,
        buffer: &mut Vec<u8>,
    ) -> std::io::Result<std::ops::Range<usize>> {
        let len = usize::try_from(range.end.saturating_sub(range.start))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        let start = buffer.len();
        buffer
            .try_reserve(len)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        let Source::File(file) = &self.source else {
            return Err(std::io::Error::other("pack data is mapped: read in place"));
        };
        buffer.resize(start + len, 0);
        if let Err(error) = file.read_exact_at(&mut buffer[start..], range.start) {
            buffer.truncate(start);
            return Err(error);
        }
        Ok(start..start + len)
    }
}

/// Live pack data of a store: what the mapped-bytes and mapped-files limits bound.
#[derive(Debug, Default)]
pub struct MapCounter {
    /// Bytes mapped.
    pub bytes: AtomicU64,
    /// Packs open, mapped or read through a descriptor.
    pub files: AtomicU64,
    /// Packs read through a descriptor.
    descriptors: AtomicU64,
}

/// Accounts one pack's open data in a [`MapCounter`] for as long as it lives, including while
/// a reader still holds it after the store let go.
#[derive(Debug)]
struct MapTicket {
    counter: Arc<MapCounter>,
    /// Bytes mapped (0 for a file read through its descriptor).
    len: u64,
    descriptor: bool,
}

impl MapTicket {
    fn new(counter: &Arc<MapCounter>, len: u64, descriptor: bool) -> MapTicket {
        counter.bytes.fetch_add(len, Ordering::Relaxed);
        counter.files.fetch_add(1, Ordering::Relaxed);
        counter
            .descriptors
            .fetch_add(u64::from(descriptor), Ordering::Relaxed);
        MapTicket {
            counter: counter.clone(),
            len,
            descriptor,
        }
    }
}

impl Drop for MapTicket {
    fn drop(&mut self) {
        self.counter.bytes.fetch_sub(self.len, Ordering::Relaxed);
        self.counter.files.fetch_sub(1, Ordering::Relaxed);
        self.counter
            .descriptors
            .fetch_sub(u64::from(self.descriptor), Ordering::Relaxed);
    }
}

/// Reads a file's first `head.len()` bytes into `head` and its last `tail.len()` into `tail`
/// (the two may overlap; the caller checked that the file's `len` holds each): a pack's header
/// and trailer, an index's header, fanout and trailer.
///
/// Read through the file, not the mapping: a page fault in a file mapping maps the pages around
/// it too (the kernel's fault-around, up to 16), which the `munmap` then clears again, where a
/// `pread` of a few bytes is one system call (libgit2 reads them so too). A process that opens a
/// repository for a read or two pays for every page it maps: `open, read 1, close` in the read
/// bench.
fn read_ends(file: &File, len: u64, head: &mut [u8], tail: &mut [u8]) -> std::io::Result<()> {
    file.read_exact_at(head, 0)?;
    file.read_exact_at(tail, len.saturating_sub(tail.len() as u64))
}

/// A pack's header and trailer: a minimal pack's whole content, so [`pack::parse_header`]
/// reads the header from them.
const ENDS_LEN: usize = pack::HEADER_LEN + pack::TRAILER_LEN;

/// What is known about a pack from the directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackFileInfo {
    /// Size of the `.pack` in bytes.
    pub size: u64,
    /// Modification time of the `.pack`.
    pub mtime: SystemTime,
}

/// One pack of the store.
#[derive(Debug)]
pub struct Pack {
    /// Store-unique number (cache keys; never reused within a process).
    pub number: u64,
    /// The `.idx` basename, as the MIDX names it (`pack-<hash>.idx`).
    pub idx_name: String,
    idx_path: PathBuf,
    pack_path: PathBuf,
    /// Size and mtime of the `.pack` when it was discovered; `None` when a MIDX covered it
    /// then (such a pack is not stat'ed, see the scanner).
    pub info: Option<PackFileInfo>,
    /// Set once, never replaced: a pack's index does not change while the pack is in a
    /// snapshot, and a lookup borrows it without touching a shared reference count.
    index: OnceLock<IndexMap>,
    /// The index's head, read through the file while the index is not mapped.
    head: OnceLock<Box<idx::Head>>,
    /// Lookups in this pack before its index was mapped, up to [`PROBES_BEFORE_MAP`].
    probes: AtomicU32,
    data: ArcSwapOption<PackData>,
    /// Serialises opening (two threads must not both map the same file) and remembers a
    /// permanent failure so a broken file is not re-read on every lookup.
    open_lock: Mutex<OpenState>,
    /// Entries read through the file, up to [`READS_BEFORE_MAP`]: then the data is mapped.
    entries_read: AtomicU32,
    /// Store epoch of the last read, for least-recently-used unmapping.
    pub last_used: AtomicU64,
    /// Unix seconds of the last `freshen`, to touch at most once per two seconds like libgit2.
    pub last_freshened: AtomicI64,
}

#[derive(Debug, Default)]
struct OpenState {
    index_error: Option<String>,
}

impl Pack {
    /// A pack not yet opened.
    pub fn new(number: u64, pack_dir: &Path, idx_name: String, info: Option<PackFileInfo>) -> Pack {
        let idx_path = pack_dir.join(&idx_name);
        let pack_path = idx_path.with_extension("pack");
        Pack {
            number,
            idx_name,
            idx_path,
            pack_path,
            info,
            index: OnceLock::new(),
            head: OnceLock::new(),
            probes: AtomicU32::new(0),
            data: ArcSwapOption::empty(),
            open_lock: Mutex::new(OpenState::default()),
            entries_read: AtomicU32::new(0),
            last_used: AtomicU64::new(0),
            last_freshened: AtomicI64::new(0),
        }
    }

    /// Path of the `.pack`.
    pub fn pack_path(&self) -> &Path {
        &self.pack_path
    }

    /// Path of the `.idx`.
    pub fn idx_path(&self) -> &Path {
        &self.idx_path
    }

    /// The index, mapped and validated on first use.
    #[inline]
    pub fn index(&self) -> Result<&IndexMap> {
        match self.index.get() {
            Some(index) => Ok(index),
            None => self.open_index(),
        }
    }

    /// [`Pack::index`]'s first use: kept out of line, so every lookup after it inlines to a load.
    #[cold]
    fn open_index(&self) -> Result<&IndexMap> {
        let mut state = self.open_lock.lock();
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        if let Some(what) = &state.index_error {
            return Err(Error::Inconsistent {
                path: self.idx_path.clone(),
                what: what.clone(),
            });
        }
        let (map, _) =
            Mmap::open(&self.idx_path).map_err(|e| self.open_error(&self.idx_path, e))?;
        let index = match PackIndex::from_bytes(map) {
            Ok(index) => index,
            Err(source) => {
                // The file will not change in place: remember, don't re-validate on every miss.
                state.index_error = Some(format!("corrupt pack index: {source}"));
                return Err(Error::Index {
                    path: self.idx_path.clone(),
                    source,
                });
            }
        };
        Ok(self.index.get_or_init(|| index))
    }

    /// Looks `oid` up in the index: in its mapping, or, for the first [`PROBES_BEFORE_MAP`]
    /// lookups, by reading the file (see there).
    #[inline]
    pub fn find(&self, oid: &ObjectId) -> Result<Option<IndexHit<'_>>> {
        match self.index.get() {
            Some(index) => Ok(index
                .find(oid)
                .map(|position| IndexHit::Mapped(index, position))),
            None => self.find_cold(oid),
        }
    }

    /// The pack offset of an object [`Pack::find`] found in this pack.
    pub fn offset_of(&self, hit: IndexHit<'_>) -> Result<u64> {
        match hit {
            IndexHit::Mapped(index, position) => {
                index.offset_at(position).map_err(|source| Error::Index {
                    path: self.idx_path.clone(),
                    source,
                })
            }
            IndexHit::Read(offset) => Ok(offset),
        }
    }

    /// [`Pack::find`] while the index is not mapped.
    #[cold]
    fn find_cold(&self, oid: &ObjectId) -> Result<Option<IndexHit<'_>>> {
        if self.probes.fetch_add(1, Ordering::Relaxed) < PROBES_BEFORE_MAP {
            let (head, opened) = self.head_and_file()?;
            let path = &self.idx_path;
            let file = match opened {
                Some(file) => file,
                None => File::open(path).map_err(|e| self.open_error(path, e))?,
            };
            let found = head.find(oid, |position, buffer| file.read_exact_at(buffer, position));
            match found {
                Ok(FileLookup::Found(offset)) => return Ok(Some(IndexHit::Read(offset))),
                Ok(FileLookup::Absent) => return Ok(None),
                Ok(FileLookup::BucketTooLarge) => {}
                Err(FileLookupError::Io(error)) => return Err(self.open_error(path, error)),
                Err(FileLookupError::Index(source)) => {
                    return Err(Error::Index {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        let index = self.index()?;
        Ok(index
            .find(oid)
            .map(|position| IndexHit::Mapped(index, position)))
    }

    /// The index's head and trailer, read through the file and checked once: what the pack's
    /// data is checked against, and what a lookup reads the file with, while the index is not
    /// mapped (a pack a MIDX covers is never searched; see also [`PROBES_BEFORE_MAP`]).
    #[cold]
    fn head(&self) -> Result<&idx::Head> {
        self.head_and_file().map(|(head, _)| head)
    }

    /// [`Pack::head`], and the index file when this call read the head from it: a pack's
    /// first lookup then searches the file it has open (a program that opens a repository of
    /// many packs for one read probes most of them once).
    fn head_and_file(&self) -> Result<(&idx::Head, Option<File>)> {
        if let Some(head) = self.head.get() {
            return Ok((head, None));
        }
        let mut state = self.open_lock.lock();
        if let Some(head) = self.head.get() {
            return Ok((head, None));
        }
        let path = &self.idx_path;
        if let Some(what) = &state.index_error {
            return Err(Error::Inconsistent {
                path: path.clone(),
                what: what.clone(),
            });
        }
        let (file, metadata) = Mmap::open_file(path).map_err(|e| self.open_error(path, e))?;
        let len = metadata.len();
        let mut head = [0; idx::HEAD_LEN];
        let mut tail = [0; 2 * HASH_LEN];
        let checked = if len < idx::MIN_LEN as u64 {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            Err(idx::Error::TooSmall { len })
        } else {
            read_ends(&file, len, &mut head, &mut tail).map_err(|e| self.open_error(path, e))?;
            idx::Head::check(&head, &tail, len)
        };
        match checked {
            Ok(head) => Ok((self.head.get_or_init(|| Box::new(head)), Some(file))),
            Err(source) => {
                // As for a mapped index: remember, don't re-read on every lookup.
                state.index_error = Some(format!("corrupt pack index: {source}"));
                Err(Error::Index {
                    path: path.clone(),
                    source,
                })
            }
        }
    }

    /// The pack data, opened on first use and checked against the index as git and libgit2 do
    /// (object count, trailing checksum; of an index not mapped, only its head and trailer are
    /// read), so a pack that does not belong to its index is never read: through the file while
    /// the pack is young, mapped once it has served [`READS_BEFORE_MAP`] entries. Returns the
    /// data and whether this call opened or mapped it (for the store's map budget).
    pub fn data(&self, counter: &Arc<MapCounter>) -> Result<(DataRef, bool)> {
        if let Some(data) = DataRef::load(&self.data)
            && !self.outgrown(&data)
        {
            return Ok((data, false));
        }
        self.open_data(counter)
    }

    /// Whether `data` is read through the file although the pack has earned its mapping.
    fn outgrown(&self, data: &PackData) -> bool {
        data.mapped().is_none() && self.entries_read.load(Ordering::Relaxed) >= READS_BEFORE_MAP
    }

    /// Counts an entry read through the file (see [`READS_BEFORE_MAP`]).
    pub fn count_read(&self) {
        self.entries_read.fetch_add(1, Ordering::Relaxed);
    }

    /// The pack data, mapped now whatever the pack's age: for a zlib stream longer than a
    /// read through the file expected (see the decoder).
    pub fn mapped_data(&self, counter: &Arc<MapCounter>) -> Result<(DataRef, bool)> {
        self.entries_read
            .fetch_max(READS_BEFORE_MAP, Ordering::Relaxed);
        self.data(counter)
    }

    /// [`Pack::data`]'s slow path: opening the file, or mapping a file read so far.
    #[cold]
    fn open_data(&self, counter: &Arc<MapCounter>) -> Result<(DataRef, bool)> {
        let (num_objects, pack_checksum) = match self.index.get() {
            Some(index) => (index.num_objects(), index.pack_checksum()),
            None => {
                let head = self.head()?;
                (head.num_objects(), head.pack_checksum())
            }
        };
        let _state = self.open_lock.lock();
        let open_error = |e| self.open_error(&self.pack_path, e);
        let young = self.entries_read.load(Ordering::Relaxed) < READS_BEFORE_MAP;
        if let Some(data) = DataRef::load(&self.data) {
            let Source::File(file) = &data.source else {
                return Ok((data, false));
            };
            if young {
                return Ok((data, false));
            }
            // Checked when it was opened: map the same file.
            let bytes = Mmap::map(file, data.len).map_err(open_error)?;
            return Ok((self.install(counter, Source::Mapped(bytes), data.len), true));
        }
        let (file, metadata) = Mmap::open_file(&self.pack_path).map_err(open_error)?;
        let corrupt = |source| Error::Pack {
            path: self.pack_path.clone(),
            offset: 0,
            source,
        };
        if metadata.len() < ENDS_LEN as u64 {
            let len = usize::try_from(metadata.len()).unwrap_or(usize::MAX);
            return Err(corrupt(pack::Error::TooSmall { len }));
        }
        let mut ends = [0; ENDS_LEN];
        let (head, tail) = ends.split_at_mut(pack::HEADER_LEN);
        read_ends(&file, metadata.len(), head, tail).map_err(open_error)?;
        let header = pack::parse_header(&ends).map_err(corrupt)?;
        let inconsistent = |what: String| Error::Inconsistent {
            path: self.pack_path.clone(),
            what,
        };
        if header.num_objects as usize != num_objects {
            return Err(inconsistent(format!(
                "pack has {} objects but its index lists {num_objects}",
                header.num_objects
            )));
        }
        let trailer = &ends[pack::HEADER_LEN..];
        if trailer != pack_checksum.as_bytes() {
            return Err(inconsistent(format!(
                "pack checksum does not match its index ({pack_checksum})"
            )));
        }
        let source = if young && counter.descriptors.load(Ordering::Relaxed) < MAX_READ_DESCRIPTORS
        {
            Source::File(file)
        } else {
            // Once mapped, a pack is mapped whenever it is reopened: a decode that found an
            // entry in the mapping finds it there again (`Stream::Mapped` in the decoder).
            self.entries_read
                .fetch_max(READS_BEFORE_MAP, Ordering::Relaxed);
            // Mapped only once it is known to be this index's pack; the descriptor closes here.
            Source::Mapped(Mmap::map(&file, metadata.len()).map_err(open_error)?)
        };
        Ok((self.install(counter, source, metadata.len()), true))
    }

    /// Makes `source` the pack's data, accounted in `counter`.
    fn install(&self, counter: &Arc<MapCounter>, source: Source, len: u64) -> DataRef {
        let ticket = match &source {
            Source::Mapped(bytes) => MapTicket::new(counter, bytes.len() as u64, false),
            Source::File(_) => MapTicket::new(counter, 0, true),
        };
        let data = Arc::new(PackData {
            source,
            len,
            _ticket: ticket,
        });
        self.data.store(Some(data.clone()));
        DataRef(DataHold::Owned(data))
    }

    /// Drops the store's reference to the data, mapped or open (readers holding it keep it
    /// alive).
    pub fn close_data(&self) {
        self.data.store(None);
    }

    /// Whether the data is open now, mapped or not.
    pub fn is_data_open(&self) -> bool {
        self.data.load().is_some()
    }

    /// Whether the index is mapped: after its first lookups (see [`PROBES_BEFORE_MAP`]), or a
    /// search that reads more of it (prefixes, listing, merging).
    pub fn is_index_mapped(&self) -> bool {
        self.index.get().is_some()
    }

    /// A vanished file means "not here" (a repack removed it; a refresh will drop the pack and
    /// the odb will retry), anything else is an I/O error naming the file.
    fn open_error(&self, path: &Path, error: std::io::Error) -> Error {
        if error.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound
        } else {
            Error::io(path, error)
        }
    }

    /// Records a read at `epoch` for LRU unmapping, writing only when it changes so readers of
    /// one hot pack do not bounce its cache line between cores.
    #[inline]
    pub fn touch(&self, epoch: u64) {
        if self.last_used.load(Ordering::Relaxed) != epoch {
            self.last_used.store(epoch, Ordering::Relaxed);
        }
    }
}
