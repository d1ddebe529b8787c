//! The shared object store of one objects directory.
//!
//! Every backend instance opened on the same directory with the same options shares one
//! [`Store`] (libgit2 apps get parallelism by giving each thread its own `git_odb`, hence its own
//! backend): the mapped files, parsed indexes and the delta-base cache are built once. Readers
//! load the current [`PackSet`] snapshot without a lock; `refresh` is serialised by its own lock
//! and swaps in a new snapshot, so a reader never sees a half-built one and keeps its old
//! snapshot (with its mappings) alive for as long as it needs it.

pub mod cache;
pub mod decode;
pub mod headers;
pub mod listing;
pub mod merged;
pub mod midx;
pub mod pack;
pub mod packset;
pub mod watch;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::fanout::SortedIds;
use crate::format::pack::ObjectKind;
use crate::oid::{HASH_LEN, ObjectId, Prefix};

use cache::DeltaBaseCache;
pub use decode::{ObjectSink, VecSink};
use headers::HeaderMemo;
use pack::MapCounter;
use packset::Scanner;
pub use packset::{Location, MidxProblem, PackSet};
use watch::{DirWatch, EventsWhen};

/// Tuning and limits of a store. Backends on the same directory share a store only when their
/// options are equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Read MIDX files (git's `core.multiPackIndex`, default true).
    pub use_midx: bool,
    /// Bytes of decoded delta bases kept for reuse, each entry's bookkeeping included, and of
    /// the types and sizes `read_header` has resolved (a 16th of it); 0 disables both.
    pub delta_cache_bytes: usize,
    /// Soft limit on bytes of pack data mapped at once; least-recently-used packs are unmapped
    /// beyond it (a pack being read stays mapped even if it alone exceeds the limit).
    pub max_mapped_bytes: u64,
    /// Limit on pack data files open at once, least-recently-used closed beyond it. Mapped
    /// files hold no file descriptor, so thousands of packs never exhaust descriptors; a young
    /// pack is read through its descriptor until it has served a few hundred entries, at most
    /// 64 packs of a store at once.
    pub max_mapped_packs: u64,
    /// Largest object (or delta) the store will inflate, like libgit2's
    /// `GIT_OPT_SET_PACK_MAX_OBJECT_SIZE`; larger ones fail with a clear error.
    pub max_object_size: u64,
    /// Learn of directory changes from kernel change events where the system offers them
    /// (Linux, local file systems; see [`watch`]) from the store's first refresh on; otherwise,
    /// or when false, by re-stamping the directories on every refresh.
    pub change_events: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            use_midx: true,
            // Steady-state random reads live or die by this: 96 MiB (git's default) thrashes on
            // a 370 MB history where libgit2's per-pack caches hold it all (see benches/read.rs).
            delta_cache_bytes: 256 << 20,
            max_mapped_bytes: if cfg!(target_pointer_width = "64") {
                8 << 30
            } else {
                256 << 20
            },
            max_mapped_packs: 4096,
            max_object_size: if cfg!(target_pointer_width = "64") {
                (1 << 40) - 1
            } else {
                (1 << 31) - 1
            },
            change_events: true,
        }
    }
}

/// The header memo takes 1/`HEADER_MEMO_SHARE` of the cache budget (16 MiB of the default 256:
/// about 260k entries, more than the objects of a 200k-object history), the delta-base cache
/// the rest.
const HEADER_MEMO_SHARE: usize = 16;

/// The shared store of one objects directory.
pub struct Store {
    objects_dir: PathBuf,
    pack_dir: PathBuf,
    options: Options,
    snapshot: ArcSwap<PackSet>,
    /// Serialises snapshot rebuilds; readers never take it.
    refresh_lock: Mutex<()>,
    cache: DeltaBaseCache,
    /// Types and sizes `read_header` has resolved.
    headers: HeaderMemo,
    /// Delta chains decoded so far, counted up to [`decode::CHAINS_BEFORE_CACHE`].
    chains_decoded: AtomicUsize,
    maps: Arc<MapCounter>,
    next_pack_number: AtomicU64,
    /// Advances whenever a pack is mapped; packs remember the epoch of their last read.
    epoch: AtomicU64,
    last_midx_problems: Mutex<Vec<MidxProblem>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("objects_dir", &self.objects_dir)
            .finish_non_exhaustive()
    }
}

/// Stores alive in this process: (objects directory, options, store).
type Registry = Mutex<Vec<(DirKey, Options, Weak<Store>)>>;

/// What makes two paths the same objects directory for the registry: its device and inode,
/// however the path names it (relative, through symbolic links). One `stat`, where a canonical
/// path costs a `readlink` per component on every open. A directory that does not exist (yet)
/// is known by its absolute path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DirKey {
    Inode { dev: u64, ino: u64 },
    Missing(PathBuf),
}

impl DirKey {
    fn of(absolute: &Path) -> DirKey {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(absolute) {
            Ok(meta) => DirKey::Inode {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            Err(_) => DirKey::Missing(absolute.to_owned()),
        }
    }
}

/// Stores alive in this process, so backends on one directory share one.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

/// Every live store of `objects_dir` in this process, whatever its options (so a MIDX write can
/// make all of them switch to the new file).
pub fn stores_of(objects_dir: &Path) -> Vec<Arc<Store>> {
    let absolute = std::path::absolute(objects_dir).unwrap_or_else(|_| objects_dir.to_owned());
    let key = DirKey::of(&absolute);
    registry()
        .lock()
        .iter()
        .filter(|(dir, _, _)| *dir == key)
        .filter_map(|(_, _, store)| store.upgrade())
        .collect()
}

impl Store {
    /// The store of `objects_dir` (e.g. `repo.git/objects`), shared with every other user of the
    /// same directory and options in this process; scanned on first open.
    pub fn open(objects_dir: &Path, options: Options) -> Result<Arc<Store>> {
        let absolute = std::path::absolute(objects_dir).map_err(|e| Error::io(objects_dir, e))?;
        let key = DirKey::of(&absolute);
        let mut registry = registry().lock();
        registry.retain(|(_, _, store)| store.strong_count() > 0);
        if let Some(store) = registry
            .iter()
            .find(|(dir, opts, _)| *dir == key && *opts == options)
            .and_then(|(_, _, store)| store.upgrade())
        {
            // A new backend sees the directory as it is now, like libgit2's constructor; for a
            // shared store that is a few `stat`s.
            drop(registry);
            store.refresh()?;
            return Ok(store);
        }
        let store = Arc::new(Store::new_unshared(absolute, options));
        store.refresh()?;
        registry.push((key, store.options.clone(), Arc::downgrade(&store)));
        Ok(store)
    }

    /// A store nobody else shares (tests; callers wanting isolation). Not scanned yet.
    pub fn new_unshared(objects_dir: PathBuf, options: Options) -> Store {
        Store {
            pack_dir: objects_dir.join("pack"),
            objects_dir,
            cache: DeltaBaseCache::new(
                options.delta_cache_bytes - options.delta_cache_bytes / HEADER_MEMO_SHARE,
            ),
            headers: HeaderMemo::new(options.delta_cache_bytes / HEADER_MEMO_SHARE),
            options,
            snapshot: ArcSwap::from_pointee(PackSet::default()),
            refresh_lock: Mutex::new(()),
            maps: Arc::new(MapCounter::default()),
            next_pack_number: AtomicU64::new(1),
            epoch: AtomicU64::new(1),
            chains_decoded: AtomicUsize::new(0),
            last_midx_problems: Mutex::new(Vec::new()),
        }
    }

    /// The objects directory.
    pub fn objects_dir(&self) -> &Path {
        &self.objects_dir
    }

    /// The pack directory (`<objects>/pack`).
    pub fn pack_dir(&self) -> &Path {
        &self.pack_dir
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<PackSet> {
        self.snapshot.load_full()
    }

    /// Why the last rescan did not use a MIDX file it found (empty when all were used).
    pub fn midx_problems(&self) -> Vec<String> {
        self.last_midx_problems
            .lock()
            .iter()
            .map(|problem| format!("{}: {}", problem.path.display(), problem.what))
            .collect()
    }

    /// Bytes of pack data mapped now, and the number of mapped packs.
    pub fn mapped(&self) -> (u64, u64) {
        (
            self.maps.bytes.load(Ordering::Relaxed),
            self.maps.files.load(Ordering::Relaxed),
        )
    }

    /// Bytes held by the delta-base cache.
    pub fn cached_bytes(&self) -> usize {
        self.cache.bytes()
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Brings the snapshot up to date with the directory. When nothing changed this is one
    /// poll of a change-event queue, or where there is none one `fstat` of the pack directory
    /// held open (two with an incremental MIDX chain; see [`DirWatch`]); a change, or one too
    /// recent to trust timestamps, rescans: one `readdir`, re-reading the MIDX, reusing every
    /// pack that is still there.
    pub fn refresh(&self) -> Result<()> {
        // Unchanged: no lock, so concurrent misses on many threads don't queue up. A guard, not
        // an `Arc` clone: this runs on every miss, and a shared count would bounce between the
        // cores of threads that miss together.
        if self.unchanged(&self.snapshot.load())? {
            return Ok(());
        }
        let _guard = self.refresh_lock.lock();
        let current = self.snapshot.load_full();
        // Another thread may have rescanned while this one waited for the lock.
        if self.unchanged(&current)? {
            return Ok(());
        }
        self.rescan_locked(&current)
    }

    /// Rescans unconditionally (after this process itself changed the directory).
    pub fn rescan(&self) -> Result<()> {
        let _guard = self.refresh_lock.lock();
        let current = self.snapshot.load_full();
        self.rescan_locked(&current)
    }

    /// Whether the directory is as it was when `set` was built.
    fn unchanged(&self, set: &PackSet) -> Result<bool> {
        match &set.watch {
            Some(watch) => watch.unchanged().map_err(|e| Error::io(&self.pack_dir, e)),
            None => Ok(false),
        }
    }

    fn rescan_locked(&self, current: &PackSet) -> Result<()> {
        // The first scan (`current` is the empty snapshot, never scanned) is watched by stamps
        // until a refresh: change events cost an inotify instance, set up now and closed later
        // on another thread, that a store opened for a read or two never uses.
        let events = if !self.options.change_events {
            EventsWhen::Never
        } else if current.watch.is_none() {
            EventsWhen::FirstCheck
        } else {
            EventsWhen::Now
        };
        // Started before the directory is read: a change made during the scan shows next time.
        let watch = DirWatch::start(&self.objects_dir, &self.pack_dir, events)
            .map_err(|e| Error::io(&self.pack_dir, e))?;
        let next_number = || self.next_pack_number.fetch_add(1, Ordering::Relaxed);
        let scanner = Scanner {
            pack_dir: &self.pack_dir,
            use_midx: self.options.use_midx,
            next_number: &next_number,
        };
        let (set, problems) = scanner.scan(current, watch, SystemTime::now())?;
        // Packs that left the directory: their cached bases can go now; their mappings go when
        // the last reader of the old snapshot drops it.
        for (name, pack) in &current.by_name {
            if set
                .by_name
                .get(name)
                .is_none_or(|kept| !Arc::ptr_eq(kept, pack))
            {
                self.cache.forget_pack(pack.number);
                self.headers.forget_pack(pack.number);
            }
        }
        *self.last_midx_problems.lock() = problems;
        self.snapshot.store(Arc::new(set));
        Ok(())
    }

    /// Closes least-recently-used packs' data (other than `keep`) while over the mapping limits.
    fn enforce_map_budget(&self, keep: &Arc<pack::Pack>) {
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        keep.touch(epoch);
        let over = || {
            self.maps.bytes.load(Ordering::Relaxed) > self.options.max_mapped_bytes
                || self.maps.files.load(Ordering::Relaxed) > self.options.max_mapped_packs
        };
        if !over() {
            return;
        }
        let set = self.snapshot.load_full();
        let mut open: Vec<&Arc<pack::Pack>> = set
            .packs()
            .filter(|pack| !Arc::ptr_eq(pack, keep) && pack.is_data_open())
            .collect();
        open.sort_by_key(|pack| pack.last_used.load(Ordering::Relaxed));
        for pack in open {
            if !over() {
                break;
            }
            pack.close_data();
        }
    }

    /// Whether `oid` is in a pack. `hint` is the caller's last-hit position among packs not
    /// covered by a MIDX; it is updated on a hit.
    pub fn exists(&self, oid: &ObjectId, hint: &AtomicUsize) -> Result<bool> {
        let set = self.snapshot.load();
        Ok(match set.contains(oid, hint.load(Ordering::Relaxed)) {
            Some(usize::MAX) => true,
            Some(position) => {
                hint.store(position, Ordering::Relaxed);
                true
            }
            None => false,
        })
    }

    /// Finds `oid` in `set`, remembering in `hint` the pack it was found in.
    fn locate<'a>(
        &self,
        set: &'a PackSet,
        oid: &ObjectId,
        hint: &AtomicUsize,
    ) -> Result<Location<'a>> {
        // `let else`, not `ok_or`: that builds (and drops) the error on every hit.
        let Some((location, position)) = set.locate(oid, hint.load(Ordering::Relaxed))? else {
            return Err(Error::NotFound);
        };
        if let Some(position) = position {
            hint.store(position, Ordering::Relaxed);
        }
        Ok(location)
    }

    /// Reads a whole object into `sink`; [`Error::NotFound`] if no pack has it.
    pub fn read(
        &self,
        oid: &ObjectId,
        hint: &AtomicUsize,
        sink: &mut dyn ObjectSink,
    ) -> Result<ObjectKind> {
        let set = self.snapshot.load();
        let location = self.locate(&set, oid, hint)?;
        self.decode(&set, &location, sink)
    }

    /// Type and size of an object without inflating it.
    pub fn read_header(&self, oid: &ObjectId, hint: &AtomicUsize) -> Result<(ObjectKind, u64)> {
        let set = self.snapshot.load();
        let location = self.locate(&set, oid, hint)?;
        self.decode_header(&set, &location)
    }

    /// The one object whose id starts with `prefix`.
    pub fn resolve_prefix(&self, prefix: &Prefix) -> Result<ObjectId> {
        let set = self.snapshot.load();
        match set.resolve_prefix(prefix)? {
            Some(oid) => Ok(oid),
            None => Err(Error::NotFound),
        }
    }

    /// Reads the one object whose id starts with `prefix`; returns its id and type.
    pub fn read_prefix(
        &self,
        prefix: &Prefix,
        hint: &AtomicUsize,
        sink: &mut dyn ObjectSink,
    ) -> Result<(ObjectId, ObjectKind)> {
        if prefix.is_full() {
            // A full id cannot be ambiguous: take the exact path (pygit2 reads everything
            // through read_prefix).
            let oid = *prefix.id();
            return self.read(&oid, hint, sink).map(|kind| (oid, kind));
        }
        let set = self.snapshot.load();
        let Some((oid, location)) = set.locate_prefix(prefix)? else {
            return Err(Error::NotFound);
        };
        let kind = self.decode(&set, &location, sink)?;
        Ok((oid, kind))
    }

    /// Calls `each` for every object of every pack (objects in a MIDX once, objects in several
    /// uncovered packs once per pack) with the raw id as it lies in the mapped index: no copy.
    /// Stops when `each` breaks and returns its value. Generic, not `dyn`: per id the loop
    /// then costs one call, the caller's callback, as libgit2's does.
    pub fn for_each(
        &self,
        mut each: impl FnMut(&[u8; HASH_LEN]) -> ControlFlow<i32>,
    ) -> Result<Option<i32>> {
        let set = self.snapshot.load_full();
        let mut visit = |ids: SortedIds<'_>| {
            for id in ids.iter() {
                if let ControlFlow::Break(value) = each(id) {
                    return Some(value);
                }
            }
            None
        };
        for layer in &set.midx {
            if let Some(value) = visit(layer.file.ids()) {
                return Ok(Some(value));
            }
        }
        let merged_packs = set.merged.iter().flat_map(|merged| merged.packs.iter());
        for pack in merged_packs.chain(&set.uncovered) {
            let index = match pack.index() {
                Ok(index) => index,
                Err(Error::NotFound) => continue,
                Err(error) => return Err(error),
            };
            if let Some(value) = visit(index.ids()) {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// Marks the pack holding `oid` as recently used by setting its mtime to now, at most once
    /// every two seconds per pack (libgit2's `FRESHEN_FREQUENCY`), so `git gc` keeps it.
    pub fn freshen(&self, oid: &ObjectId, hint: &AtomicUsize) -> Result<()> {
        let set = self.snapshot.load();
        let pack = self.locate(&set, oid, hint)?.pack;
        let now = SystemTime::now();
        let now_secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs() as i64;
        let last = pack.last_freshened.load(Ordering::Relaxed);
        if now_secs - last < 2 {
            return Ok(());
        }
        // Packs are read-only (0444); futimens through a read-only descriptor is allowed to the
        // owner, as utime(2) on the path is for libgit2.
        let file =
            std::fs::File::open(pack.pack_path()).map_err(|e| Error::io(pack.pack_path(), e))?;
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(now)
                .set_modified(now),
        )
        .map_err(|e| Error::io(pack.pack_path(), e))?;
        pack.last_freshened.store(now_secs, Ordering::Relaxed);
        Ok(())
    }
}
