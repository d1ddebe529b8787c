//! An immutable snapshot of the pack directory: the packs, the MIDX (a single file or the
//! layers of an incremental chain) and which packs it covers. Readers load the current snapshot
//! lock-free; `refresh` builds a new one and swaps it in.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::format::PrefixMatch;
use crate::format::midx::{self, MultiPackIndex};
use crate::mmap::Mmap;
use crate::oid::{HASH_LEN, ObjectId, Prefix};

use super::listing::{self, DirListing};
use super::merged::{MERGE_AT_PACKS, MergedIndex, PendingMerge};
use super::pack::{IndexHit, Pack, PackFileInfo};
use super::watch::DirWatch;

/// Name of the single-file MIDX inside the pack directory.
pub const MIDX_NAME: &str = "multi-pack-index";
/// Directory of an incremental MIDX chain inside the pack directory.
pub const MIDX_CHAIN_DIR: &str = "multi-pack-index.d";
/// The chain file inside [`MIDX_CHAIN_DIR`].
pub const MIDX_CHAIN_FILE: &str = "multi-pack-index-chain";

/// One loaded MIDX file: a whole MIDX, or one layer of a chain.
#[derive(Debug)]
pub struct MidxLayer {
    /// The parsed file.
    pub file: MultiPackIndex<Mmap>,
    /// Where it was read from.
    pub path: PathBuf,
    /// Its packs, by the layer's local pack id.
    pub packs: Vec<Arc<Pack>>,
}

impl MidxLayer {
    /// Where the object at MIDX position `index` lives. `pack_and_offset` checks the pack id
    /// against the layer's pack count and the layer holds exactly that many packs, so a failure
    /// here is a corrupt chunk, reported with the file.
    pub fn location(&self, index: usize) -> Result<Location<'_>> {
        let corrupt = |source| Error::Midx {
            path: self.path.clone(),
            source,
        };
        let (pack_id, offset) = self.file.pack_and_offset(index).map_err(corrupt)?;
        let pack = self
            .packs
            .get(pack_id as usize)
            .ok_or_else(|| Error::Inconsistent {
                path: self.path.clone(),
                what: format!("pack id {pack_id} out of range"),
            })?;
        Ok(Location { pack, offset })
    }
}

/// Where an object lives, borrowed from the snapshot that found it: a read holds its snapshot
/// anyway, and a borrow costs no shared reference count.
#[derive(Clone, Copy, Debug)]
pub struct Location<'a> {
    /// The pack.
    pub pack: &'a Arc<Pack>,
    /// Offset of the entry in the pack.
    pub offset: u64,
}

/// Tells snapshots apart for the life of the process: an address may be reused once a
/// snapshot is freed, an identity never is. Every snapshot draws a new one (0 is never drawn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotId(u64);

impl Default for SnapshotId {
    fn default() -> SnapshotId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SnapshotId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

thread_local! {
    /// The last id this thread looked up in vain, and the snapshot it was missing from.
    /// libgit2 asks again after every miss (lookup, `refresh`, lookup); when the refresh kept
    /// the snapshot, which is immutable, the answer is already known, and the second search of
    /// every index, a cache miss or more each, is saved.
    static LAST_MISS: Cell<(u64, [u8; HASH_LEN])> = const { Cell::new((0, [0; HASH_LEN])) };
}

/// Where [`PackSet::search`] found an id.
enum Hit<'a> {
    /// At this position of a MIDX layer.
    Layer(&'a MidxLayer, usize),
    /// At this position of the merged index.
    Merged(&'a MergedIndex, usize),
    /// In a pack probed on its own, where its index says; `position` is the pack's place in
    /// `uncovered` (`None` for a pack waiting to be merged).
    Probed {
        pack: &'a Arc<Pack>,
        position: Option<usize>,
        entry: IndexHit<'a>,
    },
}

/// Probes `packs` in the order of `positions` for `oid`. A pack whose index is unusable holds
/// nothing we can serve (libgit2 does the same); its objects may still be found in another
/// pack. Not a clean miss: a failure to map it (no memory, no descriptor) may pass by the next
/// lookup, so it clears `every_index_searched`.
fn probe<'a>(
    packs: &'a [Arc<Pack>],
    positions: impl Iterator<Item = usize>,
    in_uncovered: bool,
    oid: &ObjectId,
    every_index_searched: &mut bool,
) -> Option<Hit<'a>> {
    for position in positions {
        let pack = &packs[position];
        match pack.find(oid) {
            Ok(found) => {
                if let Some(entry) = found {
                    return Some(Hit::Probed {
                        pack,
                        position: in_uncovered.then_some(position),
                        entry,
                    });
                }
            }
            // The error is moved here, not matched as `_`: then a hit drops nothing.
            Err(error) => {
                drop(error);
                *every_index_searched = false;
            }
        }
    }
    None
}

/// The packs and MIDX of one moment.
#[derive(Debug, Default)]
pub struct PackSet {
    /// This snapshot's identity, for the per-thread memory of the last miss.
    pub id: SnapshotId,
    /// MIDX layers, tip first (a single-file MIDX is one layer). Empty without a MIDX.
    pub midx: Vec<MidxLayer>,
    /// The packs no MIDX layer covers, to be merged into one in-memory index once there are
    /// enough of them and lookups have earned it (see [`super::merged`]).
    pub merged: Option<Arc<PendingMerge>>,
    /// Packs neither a MIDX layer nor `merged` covers, probed one by one, newest mtime first
    /// (recent packs are likelier to be hit).
    pub uncovered: Vec<Arc<Pack>>,
    /// Every pack, by `.idx` name.
    pub by_name: HashMap<String, Arc<Pack>>,
    /// Tells whether the directory changed since this snapshot was built (`None`: build it
    /// again next time).
    pub watch: Option<DirWatch>,
}

impl PackSet {
    /// Searches for an object: MIDX layers first, then the merged index, then the uncovered
    /// packs starting at `hint` (the last pack this caller found something in).
    fn search(&self, oid: &ObjectId, hint: usize) -> Option<Hit<'_>> {
        if self.missed_last(oid) {
            return None;
        }
        for layer in &self.midx {
            if let Some(position) = layer.file.find(oid) {
                return Some(Hit::Layer(layer, position));
            }
        }
        let mut every_index_searched = true;
        if let Some(merge) = &self.merged {
            let (merged, probed) = merge.for_lookup();
            if let Some(merged) = merged
                && let Some(position) = merged.find(oid)
            {
                return Some(Hit::Merged(merged, position));
            }
            let positions = 0..probed.len();
            if let Some(hit) = probe(probed, positions, false, oid, &mut every_index_searched) {
                return Some(hit);
            }
        }
        // The packs from `hint` to the end, then from the start to `hint`: no division per step.
        let start = if hint < self.uncovered.len() { hint } else { 0 };
        let (from_start, before_start) = (start..self.uncovered.len(), 0..start);
        let positions = from_start.chain(before_start);
        if let Some(hit) = probe(
            &self.uncovered,
            positions,
            true,
            oid,
            &mut every_index_searched,
        ) {
            return Some(hit);
        }
        if every_index_searched {
            self.remember_miss(oid);
        }
        None
    }

    /// Finds an object (MIDX layers, merged index, uncovered packs). On a hit returns the location
    /// and the position of the pack in `uncovered` (for the caller's next hint).
    pub fn locate(
        &self,
        oid: &ObjectId,
        hint: usize,
    ) -> Result<Option<(Location<'_>, Option<usize>)>> {
        let Some(hit) = self.search(oid, hint) else {
            return Ok(None);
        };
        let position = match hit {
            Hit::Probed { position, .. } => position,
            Hit::Layer(..) | Hit::Merged(..) => None,
        };
        Ok(Some((self.location_of(hit)?, position)))
    }

    /// The pack and offset of a hit: for a MIDX or merged-index hit its offset table is read,
    /// for an uncovered pack its `.idx`.
    fn location_of<'a>(&'a self, hit: Hit<'a>) -> Result<Location<'a>> {
        match hit {
            Hit::Layer(layer, position) => layer.location(position),
            Hit::Merged(merged, position) => merged.location(position),
            Hit::Probed { pack, entry, .. } => Ok(Location {
                pack,
                offset: pack.offset_of(entry)?,
            }),
        }
    }

    /// Whether `oid` is in the snapshot, without touching pack data (like libgit2, a MIDX hit
    /// counts without opening the pack): `Some(position)` when it was found in
    /// `uncovered[position]`, `Some(usize::MAX)` when anywhere else.
    pub fn contains(&self, oid: &ObjectId, hint: usize) -> Option<usize> {
        self.search(oid, hint).map(|hit| match hit {
            Hit::Probed { position, .. } => position.unwrap_or(usize::MAX),
            Hit::Layer(..) | Hit::Merged(..) => usize::MAX,
        })
    }

    /// Whether `oid` is the last id this thread searched this snapshot for in vain.
    fn missed_last(&self, oid: &ObjectId) -> bool {
        let (snapshot, id) = LAST_MISS.get();
        snapshot == self.id.0 && id == oid.0
    }

    /// Remembers that every index of this snapshot was searched for `oid` in vain.
    fn remember_miss(&self, oid: &ObjectId) {
        LAST_MISS.set((self.id.0, oid.0));
    }

    /// Resolves a prefix across the whole snapshot: `Ok(None)` if nothing matches, the single
    /// matching id and where it was found, or [`Error::Ambiguous`] when two distinct ids match
    /// (one id in several places is one object).
    fn search_prefix<'a>(&'a self, prefix: &Prefix) -> Result<Option<(ObjectId, Hit<'a>)>> {
        let mut found: Option<(ObjectId, Hit<'a>)> = None;
        let mut accept = |oid: ObjectId, hit: Hit<'a>| -> Result<()> {
            match &found {
                Some((existing, _)) if *existing != oid => Err(ambiguous(prefix)),
                Some(_) => Ok(()),
                None => {
                    found = Some((oid, hit));
                    Ok(())
                }
            }
        };
        for layer in &self.midx {
            match layer.file.find_prefix(prefix) {
                PrefixMatch::None => {}
                PrefixMatch::Ambiguous => return Err(ambiguous(prefix)),
                PrefixMatch::One(index) => {
                    accept(layer.file.oid_at(index), Hit::Layer(layer, index))?;
                }
            }
        }
        let (merged, probed) = match &self.merged {
            Some(merge) => merge.for_lookup(),
            None => (None, &[][..]),
        };
        if let Some(merged) = merged {
            match merged.find_prefix(prefix) {
                PrefixMatch::None => {}
                PrefixMatch::Ambiguous => return Err(ambiguous(prefix)),
                PrefixMatch::One(position) => {
                    accept(merged.oid_at(position), Hit::Merged(merged, position))?;
                }
            }
        }
        let probed = probed.iter().map(|pack| (pack, None));
        let uncovered = self
            .uncovered
            .iter()
            .enumerate()
            .map(|(position, pack)| (pack, Some(position)));
        for (pack, position) in probed.chain(uncovered) {
            let Ok(index) = pack.index() else { continue };
            match index.find_prefix(prefix) {
                PrefixMatch::None => {}
                PrefixMatch::Ambiguous => return Err(ambiguous(prefix)),
                PrefixMatch::One(index_position) => {
                    let hit = Hit::Probed {
                        pack,
                        position,
                        entry: IndexHit::Mapped(index, index_position),
                    };
                    accept(index.oid_at(index_position), hit)?;
                }
            }
        }
        Ok(found)
    }

    /// The one id that starts with `prefix` (`Ok(None)` if none does, [`Error::Ambiguous`] if
    /// several do), without reading where it lives: `exists_prefix` needs only the id.
    pub fn resolve_prefix(&self, prefix: &Prefix) -> Result<Option<ObjectId>> {
        Ok(self.search_prefix(prefix)?.map(|(oid, _)| oid))
    }

    /// The one id that starts with `prefix` and where it lives (see [`PackSet::resolve_prefix`]).
    pub fn locate_prefix(&self, prefix: &Prefix) -> Result<Option<(ObjectId, Location<'_>)>> {
        match self.search_prefix(prefix)? {
            None => Ok(None),
            Some((oid, hit)) => Ok(Some((oid, self.location_of(hit)?))),
        }
    }

    /// Every pack of the snapshot (covered or not).
    pub fn packs(&self) -> impl Iterator<Item = &Arc<Pack>> {
        self.by_name.values()
    }
}

/// Splits the packs no MIDX covers (newest first) into packs to merge and the rest. The
/// previous snapshot's merge (built or pending) is kept while every pack of it is still here and
/// uncovered, and fewer than [`MERGE_AT_PACKS`] packs arrived since; otherwise all of them are
/// to be merged anew (if there are enough).
fn merge(
    previous: Option<&Arc<PendingMerge>>,
    uncovered: Vec<Arc<Pack>>,
) -> (Option<Arc<PendingMerge>>, Vec<Arc<Pack>>) {
    if let Some(previous) = previous
        && previous
            .packs
            .iter()
            .all(|old| uncovered.iter().any(|pack| Arc::ptr_eq(pack, old)))
    {
        let rest: Vec<Arc<Pack>> = uncovered
            .iter()
            .filter(|pack| !previous.packs.iter().any(|old| Arc::ptr_eq(pack, old)))
            .cloned()
            .collect();
        if rest.len() < MERGE_AT_PACKS {
            return (Some(previous.clone()), rest);
        }
    }
    if uncovered.len() < MERGE_AT_PACKS {
        return (None, uncovered);
    }
    (Some(Arc::new(PendingMerge::new(uncovered))), Vec::new())
}

fn ambiguous(prefix: &Prefix) -> Error {
    let hex = prefix.id().to_hex();
    Error::Ambiguous(hex[..prefix.hex_len()].to_owned())
}

/// Builds snapshots: scans the pack directory and loads MIDX files, reusing whatever the
/// previous snapshot already has (pack objects with their maps, an unchanged MIDX).
pub struct Scanner<'a> {
    /// The pack directory.
    pub pack_dir: &'a Path,
    /// Whether to read MIDX files at all (`core.multiPackIndex`).
    pub use_midx: bool,
    /// Hands out store-unique pack numbers.
    pub next_number: &'a dyn Fn() -> u64,
}

/// Why a MIDX was not used (reported to whoever wants to know; the store keeps working).
#[derive(Debug)]
pub struct MidxProblem {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub what: String,
}

impl Scanner<'_> {
    /// Builds a snapshot of the directory as it is now. `previous` lends its packs and MIDX.
    pub fn scan(
        &self,
        previous: &PackSet,
        watch: DirWatch,
        now: SystemTime,
    ) -> Result<(PackSet, Vec<MidxProblem>)> {
        let mut problems = Vec::new();
        // What an earlier scan found, when the directory provably has not changed since.
        let stamp = watch.trusted_stamp(now);
        let kept = stamp
            .as_ref()
            .and_then(|stamp| listing::kept(self.pack_dir, stamp));
        let mut read = DirListing::default();
        let found = match &kept {
            Some(kept) => kept,
            None => match DirListing::read(self.pack_dir) {
                Ok(listing) => {
                    read = listing;
                    &read
                }
                // No pack directory (yet): an empty store, like libgit2, but one that notices
                // when the directory appears.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Ok((
                        PackSet {
                            watch: Some(watch.settle(now)),
                            ..PackSet::default()
                        },
                        problems,
                    ));
                }
                Err(e) => return Err(Error::io(self.pack_dir, e)),
            },
        };
        let listed = &found.names;
        // Like git and libgit2: an index counts only with its pack next to it. The names that
        // start with `<stem>.` are together in the sorted listing, and `<stem>.pack` comes
        // after `<stem>.idx` among them.
        let indexes: Vec<&str> = listed
            .iter()
            .enumerate()
            .filter_map(|(at, name)| {
                let stem = name.strip_suffix(".idx")?;
                listed[at + 1..]
                    .iter()
                    .map_while(|sibling| sibling.strip_prefix(stem)?.strip_prefix('.'))
                    .any(|extension| extension == "pack")
                    .then_some(name.as_str())
            })
            .collect();

        let midx_files = if self.use_midx {
            self.load_midx(&indexes, &mut problems)
        } else {
            Vec::new()
        };
        let covered = |name: &str| {
            midx_files
                .iter()
                .any(|(file, _)| file.find_pack(name).is_some())
        };
        let mut by_name = HashMap::with_capacity(indexes.len());
        let mut uncovered = Vec::new();
        // The packs stat'ed now: kept with the names for the next store.
        let mut pack_infos = HashMap::new();
        for &name in &indexes {
            // A pack a MIDX covers is not even stat'ed (git neither): its size and mtime order
            // nothing, and a name is its content's checksum (git 1190a1acf, 2013), so a pack
            // of the previous snapshot with this name is this pack. The others are ordered by
            // mtime, and a changed size or mtime makes a new pack (stat'ed now, or as the kept
            // scan of the unchanged directory found them: see the listing module).
            let is_covered = covered(name);
            let info = if is_covered {
                None
            } else if let Some(info) = found.pack_infos.get(name) {
                Some(info.clone())
            } else {
                let pack_path = self.pack_dir.join(name).with_extension("pack");
                let Ok(meta) = fs::metadata(&pack_path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let info = PackFileInfo {
                    size: meta.len(),
                    mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                };
                pack_infos.insert(name.to_owned(), info.clone());
                Some(info)
            };
            let pack = match previous.by_name.get(name) {
                Some(pack) if info.is_none() || pack.info == info => pack.clone(),
                _ => Arc::new(Pack::new(
                    (self.next_number)(),
                    self.pack_dir,
                    name.to_owned(),
                    info,
                )),
            };
            if !is_covered {
                uncovered.push(pack.clone());
            }
            by_name.insert(name.to_owned(), pack);
        }
        uncovered.sort_by(|a, b| {
            b.info
                .as_ref()
                .map(|info| info.mtime)
                .cmp(&a.info.as_ref().map(|info| info.mtime))
                .then(a.idx_name.cmp(&b.idx_name))
        });
        let midx = midx_files
            .into_iter()
            .map(|(file, path)| {
                // Every covered name is in `indexes` and went into `by_name` above.
                let packs = (0..file.num_packs())
                    .map(|id| by_name[file.pack_name(id)].clone())
                    .collect();
                MidxLayer { file, path, packs }
            })
            .collect();

        if kept.is_none()
            && let Some(stamp) = stamp
        {
            read.pack_infos = pack_infos;
            listing::keep(self.pack_dir, stamp, read);
        }
        let (merged, uncovered) = merge(previous.merged.as_ref(), uncovered);
        Ok((
            PackSet {
                id: SnapshotId::default(),
                midx,
                merged,
                uncovered,
                by_name,
                watch: Some(watch.settle(now)),
            },
            problems,
        ))
    }

    /// Loads `multi-pack-index`, or else the chain in `multi-pack-index.d/` (top layer first).
    /// A file that fails to parse or names a pack not among `indexes` (the usable `.idx` names,
    /// sorted) is skipped with a problem report.
    fn load_midx(
        &self,
        indexes: &[&str],
        problems: &mut Vec<MidxProblem>,
    ) -> Vec<(MultiPackIndex<Mmap>, PathBuf)> {
        let single = self.pack_dir.join(MIDX_NAME);
        match self.load_layer(&single, indexes) {
            Ok(Some(layer)) => return vec![layer],
            Ok(None) => {}
            Err(what) => problems.push(MidxProblem { path: single, what }),
        }
        let chain_dir = self.pack_dir.join(MIDX_CHAIN_DIR);
        let chain_path = chain_dir.join(MIDX_CHAIN_FILE);
        let hashes = match fs::read(&chain_path) {
            Ok(bytes) => match midx::parse_chain(&bytes) {
                Ok(hashes) => hashes,
                // Like git: a bad line ends the chain; the layers before it still serve.
                Err(midx::Error::ChainLine { line, valid }) => {
                    problems.push(MidxProblem {
                        path: chain_path,
                        what: format!("line {line} is not a layer hash"),
                    });
                    valid
                }
                Err(source) => {
                    problems.push(MidxProblem {
                        path: chain_path,
                        what: source.to_string(),
                    });
                    return Vec::new();
                }
            },
            Err(_) => return Vec::new(),
        };
        // Base first; like git, keep the layers loaded before one that fails.
        let mut layers = Vec::new();
        for hash in hashes {
            let path = chain_dir.join(format!("multi-pack-index-{hash}.midx"));
            match self.load_layer(&path, indexes) {
                Ok(Some(layer)) => layers.push(layer),
                Ok(None) => {
                    problems.push(MidxProblem {
                        path,
                        what: "layer file is missing".into(),
                    });
                    break;
                }
                Err(what) => {
                    problems.push(MidxProblem { path, what });
                    break;
                }
            }
        }
        layers.reverse();
        layers
    }

    /// Loads one MIDX file (`Ok(None)` if it does not exist). Parsing is cheap (header, chunk
    /// table, pack names), so an unchanged file is simply loaded again when the directory changed.
    fn load_layer(
        &self,
        path: &Path,
        indexes: &[&str],
    ) -> std::result::Result<Option<(MultiPackIndex<Mmap>, PathBuf)>, String> {
        let (map, _meta) = match Mmap::open(path) {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let file = MultiPackIndex::from_bytes(map).map_err(|e| e.to_string())?;
        if let Some(name) = (0..file.num_packs())
            .map(|id| file.pack_name(id))
            .find(|name| indexes.binary_search(name).is_err())
        {
            return Err(format!(
                "names pack {name}, which is not in the pack directory"
            ));
        }
        Ok(Some((file, path.to_owned())))
    }
}
