//! Writing, verifying and expiring the `multi-pack-index` of a pack directory (git-formats.md §7),
//! on top of the pure format code in [`crate::format::midx_write`] and [`crate::format::midx`].
//!
//! **Atomicity.** A write goes to `pack/multi-pack-index.lock`, created exclusively (an existing
//! lock is [`Error::Locked`]: someone else is writing), is fsync'd, and is renamed over
//! `multi-pack-index`; the directory is fsync'd after the rename. A `.rev` sidecar is written to
//! `pack/tmp_rev_*` and renamed to `multi-pack-index-<checksum>.rev` *before* the MIDX is
//! committed, as git does. On any failure every file this write created is removed (git may leave
//! a stray `.rev`; we do not), so the previous MIDX keeps serving. Readers keep their mapped
//! snapshot; they never see a partial file because the final name only ever appears by rename.
//!
//! **After a commit**, like git: every `multi-pack-index-*.{bitmap,rev}` of another checksum, and
//! every `multi-pack-index.d/multi-pack-index-*.{midx,bitmap,rev}` plus the chain file, are
//! deleted; then every store of this directory in the process rescans, so backends switch to the
//! new file at once.
//!
//! **Selection.** [`write()`] always rebuilds from the pack set (a "fresh" write: git with no MIDX
//! or `core.multiPackIndex=false`), passing packs sorted by name with their current `.pack`
//! mtimes, so the result is byte-identical to git's fresh write whenever mtimes differ or the
//! directory order agrees. [`expire`] reuses the current MIDX's selection exactly as git does
//! (carried-over copies count as mtime 0), so it matches `git multi-pack-index expire` too.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::format::chunk;
use crate::format::idx::PackIndex;
use crate::format::midx::{self, MultiPackIndex, PackEntries};
use crate::format::midx_write::{self, PackInput, WriteOptions, Written};
use crate::mmap::Mmap;
use crate::oid::ObjectId;

use super::Store;
use super::pack::{IndexMap, Pack};
use super::packset::{MIDX_CHAIN_DIR, MIDX_CHAIN_FILE, MIDX_NAME};

/// Name of the lock file a MIDX write holds.
pub const MIDX_LOCK_NAME: &str = "multi-pack-index.lock";

/// A point where a test can make a write fail, to check that nothing is left behind.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailPoint {
    /// After the lock file was created and written, before the `.rev` sidecar.
    AfterMidxWritten,
    /// After the `.rev` sidecar was put in place, before the MIDX is committed.
    AfterRevCommitted,
    /// Right before the lock is renamed over `multi-pack-index`.
    BeforeCommit,
}

thread_local! {
    static FAIL_AT: Cell<Option<FailPoint>> = const { Cell::new(None) };
}

/// Makes the next MIDX write on this thread fail at `point` (tests only).
#[doc(hidden)]
pub fn inject_failure(point: Option<FailPoint>) {
    FAIL_AT.with(|fail| fail.set(point));
}

fn fail_point(point: FailPoint, path: &Path) -> Result<()> {
    if FAIL_AT.with(|fail| fail.get()) == Some(point) {
        FAIL_AT.with(|fail| fail.set(None));
        return Err(Error::io(
            path,
            io::Error::other(format!("injected failure at {point:?}")),
        ));
    }
    Ok(())
}

/// A file this write created; removed on drop unless [`Created::keep`] was called.
struct Created {
    path: PathBuf,
    kept: bool,
}

impl Created {
    /// Creates `path` exclusively (git's lock files: mode 0666 minus the umask).
    fn create_new(path: PathBuf) -> Result<(Created, File)> {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&path)
        {
            Ok(file) => Ok((Created { path, kept: false }, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::Locked { path }),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Renames the file to `target`; from then on `target` is what a failure removes.
    fn rename_to(&mut self, target: PathBuf) -> Result<()> {
        fs::rename(&self.path, &target).map_err(|e| Error::io(&target, e))?;
        self.path = target;
        Ok(())
    }

    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Fsyncs a file written through a [`crate::hash::HashingWriter`] (which buffers, and flushed
/// when it wrote the trailer).
fn finish_file(file: File, path: &Path) -> Result<()> {
    file.sync_all().map_err(|e| Error::io(path, e))
}

fn format_error(pack_dir: &Path, error: midx_write::Error) -> Error {
    match error {
        midx_write::Error::Io(source) => Error::io(pack_dir.join(MIDX_LOCK_NAME), source),
        midx_write::Error::Chunk(chunk::WriteError::Io(source)) => {
            Error::io(pack_dir.join(MIDX_LOCK_NAME), source)
        }
        midx_write::Error::PreferredPackEmpty(_) => Error::InvalidArgument(error.to_string()),
        other => Error::Inconsistent {
            path: pack_dir.to_owned(),
            what: other.to_string(),
        },
    }
}

/// Writes `multi-pack-index` for `packs` in `pack_dir` under the lock, with the `.rev` sidecar
/// when `options.write_reverse_index` is set, then removes stale sidecars and chain files.
/// `packs` must be sorted by name.
pub fn write_packs(
    pack_dir: &Path,
    packs: &[PackInput<'_>],
    options: WriteOptions<'_>,
) -> Result<Written> {
    let lock_path = pack_dir.join(MIDX_LOCK_NAME);
    let (mut lock, file) = Created::create_new(lock_path.clone())?;
    let preferred_pack = options.preferred_pack;
    let want_rev = options.write_reverse_index;
    let (written, out) =
        midx_write::write_midx(packs, options, file).map_err(|e| format_error(pack_dir, e))?;
    finish_file(out, &lock_path)?;
    fail_point(FailPoint::AfterMidxWritten, &lock_path)?;

    // git drops the reverse index (and bitmap) of an empty MIDX.
    let mut rev = None;
    if want_rev && written.num_objects > 0 {
        static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp_path = pack_dir.join(format!(
            "tmp_rev_{}_{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let (mut tmp, file) = Created::create_new(tmp_path.clone())?;
        let rev_options = WriteOptions {
            preferred_pack,
            write_reverse_index: true,
            progress: None,
        };
        let (_, out) = midx_write::write_rev_file(packs, rev_options, &written.checksum, file)
            .map_err(|e| format_error(pack_dir, e))?;
        finish_file(out, &tmp_path)?;
        tmp.rename_to(pack_dir.join(format!("multi-pack-index-{}.rev", written.checksum)))?;
        rev = Some(tmp);
        fail_point(FailPoint::AfterRevCommitted, &lock_path)?;
    }
    fail_point(FailPoint::BeforeCommit, &lock_path)?;
    lock.rename_to(pack_dir.join(MIDX_NAME))?;
    lock.keep();
    if let Some(rev) = rev {
        rev.keep();
    }
    // Make the rename durable; failure here does not undo a committed write.
    if let Ok(dir) = File::open(pack_dir) {
        let _ = dir.sync_all();
    }
    remove_stale_files(pack_dir, Some(&written.checksum));
    Ok(written)
}

/// Deletes `multi-pack-index-<other>.{bitmap,rev}` in `pack_dir` (all of them when `keep` is
/// `None`) and the incremental chain (`multi-pack-index.d/`'s layers and chain file), as git does
/// after writing a non-incremental MIDX. Errors are ignored, as in git.
fn remove_stale_files(pack_dir: &Path, keep: Option<&ObjectId>) {
    let keep = keep.map(ObjectId::to_hex);
    if let Ok(entries) = fs::read_dir(pack_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix("multi-pack-index-") else {
                continue;
            };
            let hash = rest
                .strip_suffix(".bitmap")
                .or_else(|| rest.strip_suffix(".rev"));
            if let Some(hash) = hash
                && keep.as_deref() != Some(hash)
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let chain_dir = pack_dir.join(MIDX_CHAIN_DIR);
    if let Ok(entries) = fs::read_dir(&chain_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let layer = name.starts_with("multi-pack-index-")
                && [".midx", ".bitmap", ".rev"]
                    .iter()
                    .any(|ext| name.ends_with(ext));
            if layer || name == MIDX_CHAIN_FILE {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// `st_mtime` of a `.pack` in whole seconds (what git compares).
fn pack_mtime(pack_path: &Path) -> Result<i64> {
    let meta = fs::metadata(pack_path).map_err(|e| Error::io(pack_path, e))?;
    let mtime = meta.modified().map_err(|e| Error::io(pack_path, e))?;
    Ok(match mtime.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs_f64().ceil() as i64),
    })
}

/// Checks every offset of a pack index (the trait's `offset_at` cannot report a bad
/// large-offset slot).
fn validate_offsets(index: &IndexMap, path: &Path) -> Result<()> {
    for i in 0..index.num_objects() {
        index.offset_at(i).map_err(|source| Error::Index {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// One pack of the directory, loaded for writing.
struct Loaded {
    idx_name: String,
    mtime: i64,
    pack: Arc<Pack>,
}

impl Loaded {
    /// Its input to the writer (the index is already loaded: this does not fail in practice).
    fn input(&self) -> Result<PackInput<'_>> {
        Ok(PackInput {
            idx_name: &self.idx_name,
            mtime: self.mtime,
            entries: self.pack.index()?,
        })
    }
}

/// Every pack of the store's current snapshot (`exclude` left out), sorted by name, with fresh
/// mtimes and validated indexes (git: "could not load pack").
fn load_packs(store: &Store, exclude: &dyn Fn(&str) -> bool) -> Result<Vec<Loaded>> {
    let set = store.snapshot();
    let mut names: Vec<&String> = set.by_name.keys().filter(|n| !exclude(n)).collect();
    names.sort();
    let mut loaded = Vec::with_capacity(names.len());
    for name in names {
        let Some(pack) = set.by_name.get(name) else {
            continue;
        };
        validate_offsets(pack.index()?, pack.idx_path())?;
        loaded.push(Loaded {
            idx_name: name.clone(),
            mtime: pack_mtime(pack.pack_path())?,
            pack: pack.clone(),
        });
    }
    Ok(loaded)
}

/// Rescans every store of this objects directory in the process (so their backends use the new
/// MIDX at once); returns the first error of `store`'s own rescan.
fn rescan_all(store: &Store) -> Result<()> {
    for other in super::stores_of(store.objects_dir()) {
        if !std::ptr::eq(Arc::as_ptr(&other), store) {
            let _ = other.rescan();
        }
    }
    store.rescan()
}

/// `git multi-pack-index write` (fresh, non-incremental) for the store's directory: refreshes,
/// writes `multi-pack-index` covering every pack (`.keep`, cruft and promisor packs included),
/// and makes every store of the directory use it.
pub fn write(store: &Store, options: WriteOptions<'_>) -> Result<Written> {
    store.refresh()?;
    let loaded = load_packs(store, &|_| false)?;
    let inputs = loaded
        .iter()
        .map(Loaded::input)
        .collect::<Result<Vec<_>>>()?;
    let written = write_packs(store.pack_dir(), &inputs, options)?;
    rescan_all(store)?;
    Ok(written)
}

/// Opens the shared store of `objects_dir` (default options) and writes its MIDX.
pub fn write_dir(objects_dir: &Path, options: WriteOptions<'_>) -> Result<Written> {
    let store = Store::open(objects_dir, super::Options::default())?;
    write(&store, options)
}

/// `git multi-pack-index verify` for `objects_dir`: every problem found, as git words it (empty
/// when the MIDX verifies, or when there is none). The `multi-pack-index` file if there is one,
/// otherwise every layer of the incremental chain (`multi-pack-index.d/`), each message then
/// prefixed with the layer's file name. A file that does not parse gives one problem; the other
/// checks follow [`midx::verify`].
pub fn verify_dir(objects_dir: &Path) -> Result<Vec<String>> {
    let pack_dir = objects_dir.join("pack");
    let path = pack_dir.join(MIDX_NAME);
    if let Some(messages) = verify_file(&pack_dir, &path)? {
        return Ok(messages);
    }
    let chain_dir = pack_dir.join(MIDX_CHAIN_DIR);
    let chain_path = chain_dir.join(MIDX_CHAIN_FILE);
    let bytes = match fs::read(&chain_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(chain_path, e)),
    };
    let mut messages = Vec::new();
    let layers = match midx::parse_chain(&bytes) {
        Ok(layers) => layers,
        Err(midx::Error::ChainLine { line, valid }) => {
            messages.push(format!(
                "{MIDX_CHAIN_FILE}: invalid chain: line {line} not a hash"
            ));
            valid
        }
        Err(error) => return Ok(vec![format!("{MIDX_CHAIN_FILE}: {error}")]),
    };
    for hash in layers {
        let name = format!("multi-pack-index-{hash}.midx");
        match verify_file(&pack_dir, &chain_dir.join(&name))? {
            Some(problems) => messages.extend(problems.iter().map(|p| format!("{name}: {p}"))),
            None => messages.push(format!("{name}: layer file is missing")),
        }
    }
    Ok(messages)
}

/// Verifies one MIDX file (a whole MIDX or a layer, whose pack ids are its own); `None` if it
/// does not exist.
fn verify_file(pack_dir: &Path, path: &Path) -> Result<Option<Vec<String>>> {
    let map = match Mmap::open(path) {
        Ok((map, _)) => map,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let file = match MultiPackIndex::from_bytes(map) {
        Ok(file) => file,
        Err(error) => return Ok(Some(vec![error.to_string()])),
    };
    let mut messages: Vec<String> = file.ignored().iter().map(ToString::to_string).collect();
    let mut indexes = Vec::with_capacity(file.num_packs());
    for pack_id in 0..file.num_packs() {
        indexes.push(load_index(pack_dir, file.pack_name(pack_id)));
    }
    let entries: Vec<Option<&dyn PackEntries>> = indexes
        .iter()
        .map(|index| index.as_ref().map(|index| index as &dyn PackEntries))
        .collect();
    messages.extend(
        midx::verify(&file, &entries)
            .iter()
            .map(ToString::to_string),
    );
    Ok(Some(messages))
}

/// Loads a pack's index the way git's `prepare_midx_pack` does: the `.pack` must exist and the
/// `.idx` must parse.
fn load_index(pack_dir: &Path, idx_name: &str) -> Option<PackIndex<Mmap>> {
    let idx_path = pack_dir.join(idx_name);
    let pack_path = idx_path.with_extension("pack");
    if !fs::metadata(pack_path).is_ok_and(|meta| meta.is_file()) {
        return None;
    }
    let (map, _) = Mmap::open(&idx_path).ok()?;
    PackIndex::from_bytes(map).ok()
}

/// The objects a MIDX selects from one of its packs, as [`PackEntries`]: the pack's entries as
/// git's writer carries them over when it reuses the MIDX.
struct Selected<'m> {
    midx: &'m MultiPackIndex<Mmap>,
    /// OIDL positions, ascending (so ids are sorted).
    positions: Vec<u32>,
}

impl PackEntries for Selected<'_> {
    fn len(&self) -> usize {
        self.positions.len()
    }

    fn oid_at(&self, i: usize) -> ObjectId {
        self.midx.oid_at(self.positions[i] as usize)
    }

    fn offset_at(&self, i: usize) -> u64 {
        // Validated in `expire` before the write.
        self.midx
            .pack_and_offset(self.positions[i] as usize)
            .map_or(u64::MAX, |(_, offset)| offset)
    }
}

/// What [`expire`] did.
#[derive(Debug, Default)]
pub struct Expired {
    /// `.idx` names of the packs deleted.
    pub dropped: Vec<String>,
    /// The new MIDX, if one was written (nothing is written when no pack could be dropped).
    pub written: Option<Written>,
}

/// `git multi-pack-index expire`: deletes every pack of the MIDX from which it selects no object
/// (except `.keep` and cruft packs, and packs that fail to load), and rewrites the MIDX without
/// them (and without RIDX/BTMP, as git). The new MIDX is committed *before* the packs are deleted,
/// so a failure leaves the old MIDX and every pack in place.
pub fn expire(store: &Store, progress: Option<&mut dyn FnMut(u64, u64)>) -> Result<Expired> {
    store.refresh()?;
    let pack_dir = store.pack_dir();
    let path = pack_dir.join(MIDX_NAME);
    let map = match Mmap::open(&path) {
        Ok((map, _)) => map,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if pack_dir.join(MIDX_CHAIN_DIR).join(MIDX_CHAIN_FILE).exists() {
                return Err(Error::InvalidArgument(
                    "cannot expire packs from an incremental multi-pack-index".into(),
                ));
            }
            return Ok(Expired::default());
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let midx_error = |source| Error::Midx {
        path: path.clone(),
        source,
    };
    let file = MultiPackIndex::from_bytes(map).map_err(midx_error)?;
    if !file.verify_checksum() {
        return Err(Error::Inconsistent {
            path: path.clone(),
            what: "checksum mismatch; refusing to expire packs".into(),
        });
    }
    let mut selected: Vec<Vec<u32>> = vec![Vec::new(); file.num_packs()];
    for position in 0..file.num_objects() {
        let (pack_id, _) = file.pack_and_offset(position).map_err(midx_error)?;
        selected[pack_id as usize].push(position as u32);
    }
    let mut dropped = Vec::new();
    for (pack_id, positions) in selected.iter().enumerate() {
        let name = file.pack_name(pack_id);
        let idx_path = pack_dir.join(name);
        let protected = ["keep", "mtimes"]
            .iter()
            .any(|ext| idx_path.with_extension(ext).exists());
        if positions.is_empty() && !protected && load_index(pack_dir, name).is_some() {
            dropped.push(name.to_owned());
        }
    }
    if dropped.is_empty() {
        return Ok(Expired::default());
    }

    // Packs of the MIDX keep exactly their selected objects, as mtime 0 (git's reuse); packs in
    // the directory that the MIDX does not list come after them with their own entries.
    let reused: Vec<(usize, Selected<'_>)> = selected
        .into_iter()
        .enumerate()
        .filter(|(pack_id, _)| !dropped.iter().any(|d| d == file.pack_name(*pack_id)))
        .map(|(pack_id, positions)| {
            (
                pack_id,
                Selected {
                    midx: &file,
                    positions,
                },
            )
        })
        .collect();
    let new = load_packs(store, &|name| file.find_pack(name).is_some())?;
    let mut inputs: Vec<PackInput<'_>> = reused
        .iter()
        .map(|(pack_id, entries)| PackInput {
            idx_name: file.pack_name(*pack_id),
            mtime: 0,
            entries,
        })
        .collect();
    for pack in &new {
        inputs.push(pack.input()?);
    }
    let options = WriteOptions {
        preferred_pack: None,
        write_reverse_index: false,
        progress,
    };
    let written = write_packs(pack_dir, &inputs, options)?;

    let mut first_error = None;
    for name in &dropped {
        if let Err(error) = delete_pack(pack_dir, name) {
            first_error.get_or_insert(error);
        }
    }
    rescan_all(store)?;
    match first_error {
        Some(error) => Err(error),
        None => Ok(Expired {
            dropped,
            written: Some(written),
        }),
    }
}

/// Opens the shared store of `objects_dir` (default options) and expires its MIDX.
pub fn expire_dir(
    objects_dir: &Path,
    progress: Option<&mut dyn FnMut(u64, u64)>,
) -> Result<Expired> {
    let store = Store::open(objects_dir, super::Options::default())?;
    expire(&store, progress)
}

/// Deletes a pack and its sidecars like git's `unlink_pack_path` (not its `.keep`); the `.idx`
/// goes last, so a concurrent scan never sees an index without its pack's other files vanishing
/// first.
fn delete_pack(pack_dir: &Path, idx_name: &str) -> Result<()> {
    let idx_path = pack_dir.join(idx_name);
    for ext in ["bitmap", "rev", "mtimes", "promisor", "pack", "idx"] {
        let path = idx_path.with_extension(ext);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(())
}
