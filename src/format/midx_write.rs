//! Multi-pack-index writing (git-formats.md §5, §7), byte-identical to git's fresh writes.
//!
//! Pure: the caller hands in the packs (name, `.pack` mtime, entries) and a `Write`; locking,
//! temporary files and renaming belong to the store.
//!
//! **Selection** (git's `midx_oid_compare` for a fresh write, i.e. without reusing an old MIDX):
//! of several copies of one object, the one in the preferred pack wins, then the one in the pack
//! with the newest mtime, then the one in the pack that comes first in the input. git breaks the
//! last tie by `readdir()` order; the store passes packs sorted by name, which makes ties
//! deterministic (and equal to git's whenever mtimes differ or the directory order agrees).
//!
//! **Memory.** OIDL is produced by [`super::merge`], which merges the packs' sorted id lists one
//! fanout bucket (first id byte) at a time, as git does, so at most about 1/256 of the entries is
//! held at once. The first pass keeps its selection (8 bytes an object) up to
//! `SELECTION_CACHE_ENTRIES`; past that the merge is re-run for every chunk that needs it
//! (OIDL, OOFF, LOFF), so nothing proportional to the object count is kept for those. Only RIDX
//! needs a sort of the selected objects by offset; it keeps two `u32` per selected object.

use std::cmp::Reverse;
use std::fmt;
use std::io::{self, Write};

use super::chunk;
use super::merge::{Merge, Selected, Unsorted};
use super::midx::{
    BTMP, HASH_VERSION_SHA1, HEADER_LEN, LARGE_OFFSET_FLAG, LOFF, OIDF, OIDL, OOFF, PNAM,
    PackEntries, RIDX, SIGNATURE, idx_name_of,
};
use crate::hash::HashingWriter;
use crate::oid::{HASH_LEN, ObjectId};

/// One pack to index.
#[derive(Clone, Copy)]
pub struct PackInput<'a> {
    /// The `.idx` basename (`pack-<hex>.idx`), as it goes into PNAM.
    pub idx_name: &'a str,
    /// The `.pack` file's mtime in whole seconds (git's `st_mtime`).
    pub mtime: i64,
    /// The pack index's entries.
    pub entries: &'a dyn PackEntries,
}

impl fmt::Debug for PackInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackInput")
            .field("idx_name", &self.idx_name)
            .field("mtime", &self.mtime)
            .field("objects", &self.entries.len())
            .finish()
    }
}

/// Writer options (`git multi-pack-index write` flags).
#[derive(Default)]
pub struct WriteOptions<'a> {
    /// `--preferred-pack`: an `.idx` or `.pack` basename. An unknown name is a warning, not an
    /// error, as in git.
    pub preferred_pack: Option<&'a str>,
    /// Write RIDX and BTMP (git does with `--bitmap`); also makes the oldest non-empty pack the
    /// default preferred pack.
    pub write_reverse_index: bool,
    /// Called with (entries visited, total entries) while objects are selected.
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
}

/// Something the caller may want to show; the write went ahead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// `preferred_pack` names no input pack; no pack was preferred.
    UnknownPreferredPack(String),
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownPreferredPack(name) => write!(f, "unknown preferred pack: '{name}'"),
        }
    }
}

/// What a successful write produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The trailer checksum (names the `.bitmap`/`.rev` sidecars).
    pub checksum: ObjectId,
    /// Number of objects (N).
    pub num_objects: u32,
    /// Number of packs (P).
    pub num_packs: u32,
    /// Final pack id (PNAM position) of the preferred pack, if any.
    pub preferred_pack: Option<u32>,
    /// Warnings.
    pub warnings: Vec<Warning>,
}

/// Why a MIDX could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No packs were given (git: "no pack files to index.").
    #[error("no pack files to index.")]
    NoPacks,
    /// The preferred pack has no objects.
    #[error("cannot select preferred pack {0} with no objects")]
    PreferredPackEmpty(String),
    /// A pack name is not a plain `.idx` basename, or appears twice.
    #[error("invalid pack name '{0}'")]
    InvalidPackName(String),
    /// A pack's entries are not strictly increasing by id.
    #[error("entries of pack {name} are not sorted at position {index}")]
    UnsortedPack {
        /// The pack.
        name: String,
        /// The first entry out of order.
        index: usize,
    },
    /// More packs or objects than the format's 32-bit counts allow.
    #[error("too many packs or objects for a multi-pack-index")]
    TooLarge,
    /// Writing failed, or a chunk came out at a different size than planned.
    #[error(transparent)]
    Chunk(#[from] chunk::WriteError),
    /// Writing the trailer failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes a MIDX (v1, SHA-1) for `packs` to `out`; returns what was written and `out`.
pub fn write_midx<W: Write>(
    packs: &[PackInput<'_>],
    mut options: WriteOptions<'_>,
    out: W,
) -> Result<(Written, W), Error> {
    let mut warnings = Vec::new();
    let preferred = resolve_preferred(packs, &options, &mut warnings)?;
    let stats = Stats::collect(packs, preferred, options.progress.as_deref_mut())?;
    let with_ridx = options.write_reverse_index && stats.num_objects > 0;
    let num_packs = packs.len() as u32; // Checked in `Stats::collect`.
    let n = u64::from(stats.num_objects);

    let names_len: u64 = packs.iter().map(|p| p.idx_name.len() as u64 + 1).sum();
    let mut plan = chunk::Plan::new();
    plan.add(PNAM, names_len.next_multiple_of(chunk::ALIGNMENT));
    plan.add(OIDF, 256 * 4);
    plan.add(OIDL, n * HASH_LEN as u64);
    plan.add(OOFF, n * 8);
    let with_loff = stats.large_offsets_needed && stats.num_large_offsets > 0;
    if with_loff {
        plan.add(LOFF, u64::from(stats.num_large_offsets) * 8);
    }
    if with_ridx {
        plan.add(RIDX, n * 4);
        plan.add(BTMP, u64::from(num_packs) * 8);
    }

    let mut out = HashingWriter::new(out);
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&SIGNATURE);
    header[4] = 1; // v1: git's default; v2 only matters for compaction.
    header[5] = HASH_VERSION_SHA1;
    header[6] = plan.len() as u8; // At most 7 chunks.
    header[7] = 0; // "Number of base MIDX files": always 0, even in layers.
    header[8..].copy_from_slice(&num_packs.to_be_bytes());
    out.write_all(&header)?;
    let mut chunks = plan.write_table(&mut out, HEADER_LEN as u64)?;

    chunks.chunk(PNAM, |w| {
        for &input in &stats.by_name {
            w.write_all(packs[input as usize].idx_name.as_bytes())?;
            w.write_all(&[0])?;
        }
        let pad = names_len.next_multiple_of(chunk::ALIGNMENT) - names_len;
        w.write_all(&[0u8; 4][..pad as usize])
    })?;
    chunks.chunk(OIDF, |w| {
        let mut total = 0u32;
        for count in stats.fanout_counts {
            total += count;
            w.write_all(&total.to_be_bytes())?;
        }
        Ok(())
    })?;
    chunks.chunk(OIDL, |w| {
        for_each_selected(packs, preferred, &stats, |sel| w.write_all(&sel.oid.0))
    })?;
    chunks.chunk(OOFF, |w| {
        let mut next_large = 0u32;
        for_each_selected(packs, preferred, &stats, |sel| {
            let offset = packs[sel.pack].entries.offset_at(sel.entry);
            let stored = if stats.large_offsets_needed && offset > 0x7fff_ffff {
                next_large += 1;
                LARGE_OFFSET_FLAG | (next_large - 1)
            } else {
                // Fits: no selected offset exceeds u32 when large offsets are not needed.
                offset as u32
            };
            w.write_all(&stats.final_id[sel.pack].to_be_bytes())?;
            w.write_all(&stored.to_be_bytes())
        })
    })?;
    if with_loff {
        chunks.chunk(LOFF, |w| {
            for_each_selected(packs, preferred, &stats, |sel| {
                let offset = packs[sel.pack].entries.offset_at(sel.entry);
                if offset > 0x7fff_ffff {
                    w.write_all(&offset.to_be_bytes())
                } else {
                    Ok(())
                }
            })
        })?;
    }
    if with_ridx {
        chunks.chunk(RIDX, |w| {
            for_each_pseudo_pack_position(packs, preferred, &stats, |pos| {
                w.write_all(&pos.to_be_bytes())
            })
        })?;
        chunks.chunk(BTMP, |w| {
            for (pos, nr) in stats.bitmapped_packs(preferred) {
                w.write_all(&pos.to_be_bytes())?;
                w.write_all(&nr.to_be_bytes())?;
            }
            Ok(())
        })?;
    }
    chunks.finish()?;
    let (checksum, out) = out.finish()?;
    let written = Written {
        checksum,
        num_objects: stats.num_objects,
        num_packs,
        preferred_pack: preferred.map(|p| stats.final_id[p]),
        warnings,
    };
    Ok((written, out))
}

/// Writes git's `multi-pack-index-<checksum>.rev` sidecar (`.rev` format, git-formats.md §3.1)
/// for the MIDX that [`write_midx`] wrote from the same `packs` and `options`: N positions in
/// pseudo-pack order, then `midx_checksum`, then this file's checksum (returned).
///
/// The sidecar only exists alongside bitmaps, so the default preferred pack is chosen as with
/// `write_reverse_index` whatever `options` says.
pub fn write_rev_file<W: Write>(
    packs: &[PackInput<'_>],
    mut options: WriteOptions<'_>,
    midx_checksum: &ObjectId,
    out: W,
) -> Result<(ObjectId, W), Error> {
    options.write_reverse_index = true;
    let preferred = resolve_preferred(packs, &options, &mut Vec::new())?;
    let stats = Stats::collect(packs, preferred, options.progress.as_deref_mut())?;
    let mut out = HashingWriter::new(out);
    out.write_all(b"RIDX")?;
    out.write_all(&1u32.to_be_bytes())?;
    out.write_all(&u32::from(HASH_VERSION_SHA1).to_be_bytes())?;
    for_each_pseudo_pack_position(packs, preferred, &stats, |pos| {
        out.write_all(&pos.to_be_bytes())
    })?;
    out.write_all(&midx_checksum.0)?;
    Ok(out.finish()?)
}

/// The input index of the preferred pack (git's `preferred_pack_idx`), after validating names.
fn resolve_preferred(
    packs: &[PackInput<'_>],
    options: &WriteOptions<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<Option<usize>, Error> {
    if packs.is_empty() {
        return Err(Error::NoPacks);
    }
    let preferred = if let Some(name) = options.preferred_pack {
        let wanted = idx_name_of(name);
        let found = packs.iter().position(|p| p.idx_name == wanted);
        if found.is_none() {
            warnings.push(Warning::UnknownPreferredPack(name.to_owned()));
        }
        found
    } else if options.write_reverse_index {
        // git's loop, quirk included: an empty pack is replaced by the next pack whatever its
        // mtime, so "oldest non-empty" holds except when an empty pack is older than the
        // candidate (then the next pack wins). Kept for byte-identical output.
        let mut oldest = 0;
        for (i, pack) in packs.iter().enumerate().skip(1) {
            if packs[oldest].entries.is_empty() || pack.mtime < packs[oldest].mtime {
                oldest = i;
            }
        }
        (!packs[oldest].entries.is_empty()).then_some(oldest)
    } else {
        None
    };
    if let Some(p) = preferred
        && packs[p].entries.is_empty()
    {
        return Err(Error::PreferredPackEmpty(packs[p].idx_name.to_owned()));
    }
    Ok(preferred)
}

/// Counts from one merge pass, and the pack renumbering.
struct Stats {
    num_objects: u32,
    fanout_counts: [u32; 256],
    /// Objects selected from each pack, by input index.
    selected_per_pack: Vec<u32>,
    num_large_offsets: u32,
    large_offsets_needed: bool,
    /// Input indexes in PNAM (name) order.
    by_name: Vec<u32>,
    /// Input index → final pack id.
    final_id: Vec<u32>,
    /// (input pack, entry) of every selected object in OIDL order, kept when it is small
    /// enough ([`SELECTION_CACHE_ENTRIES`]) so later chunks need not re-run the merge.
    selection: Option<Vec<(u32, u32)>>,
}

/// Up to this many pack entries in total (128 MiB of cache at most), the first merge pass keeps
/// its selection (8 bytes per object, well under the 28+ bytes per object of the indexes);
/// beyond it every chunk re-runs the merge and memory stays at one fanout bucket.
const SELECTION_CACHE_ENTRIES: u64 = 1 << 24;

#[cfg(test)]
thread_local! {
    /// Tests write every file twice, with and without the cache, and compare.
    static NO_SELECTION_CACHE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn cache_selection(total: u64) -> bool {
    #[cfg(test)]
    if NO_SELECTION_CACHE.with(|off| off.get()) {
        return false;
    }
    total <= SELECTION_CACHE_ENTRIES
}

impl Stats {
    fn collect<'f>(
        packs: &[PackInput<'_>],
        preferred: Option<usize>,
        mut progress: Option<&mut (dyn FnMut(u64, u64) + 'f)>,
    ) -> Result<Stats, Error> {
        let num_packs = u32::try_from(packs.len()).map_err(|_| Error::TooLarge)?;
        for pack in packs {
            let name = pack.idx_name;
            let plain = !name.is_empty()
                && name.ends_with(".idx")
                && !name.bytes().any(|b| b == b'/' || b == 0);
            if !plain || u32::try_from(pack.entries.len()).is_err() {
                return Err(Error::InvalidPackName(name.to_owned()));
            }
        }
        let mut by_name: Vec<u32> = (0..num_packs).collect();
        // strcmp order = byte order for names without NUL.
        by_name.sort_by(|&a, &b| packs[a as usize].idx_name.cmp(packs[b as usize].idx_name));
        if let Some(pair) = by_name
            .windows(2)
            .find(|w| packs[w[0] as usize].idx_name == packs[w[1] as usize].idx_name)
        {
            return Err(Error::InvalidPackName(
                packs[pair[0] as usize].idx_name.to_owned(),
            ));
        }
        let mut final_id = vec![0u32; packs.len()];
        for (id, &input) in by_name.iter().enumerate() {
            final_id[input as usize] = id as u32;
        }

        let total: u64 = packs.iter().map(|p| p.entries.len() as u64).sum();
        let mut stats = Stats {
            num_objects: 0,
            fanout_counts: [0; 256],
            selected_per_pack: vec![0; packs.len()],
            num_large_offsets: 0,
            large_offsets_needed: false,
            by_name,
            final_id,
            selection: cache_selection(total).then(Vec::new),
        };
        let mut merge = merge_of(packs, preferred);
        let mut next_report = 4096;
        while let Some(sel) = merge
            .next_selected()
            .map_err(|unsorted| unsorted_error(packs, unsorted))?
        {
            stats.num_objects = stats.num_objects.checked_add(1).ok_or(Error::TooLarge)?;
            stats.fanout_counts[usize::from(sel.oid.0[0])] += 1;
            stats.selected_per_pack[sel.pack] += 1;
            if let Some(selection) = stats.selection.as_mut() {
                // Pack and entry counts were checked to fit u32 above.
                selection.push((sel.pack as u32, sel.entry as u32));
            }
            let offset = packs[sel.pack].entries.offset_at(sel.entry);
            if offset > 0x7fff_ffff {
                stats.num_large_offsets += 1;
            }
            if offset > 0xffff_ffff {
                stats.large_offsets_needed = true;
            }
            if let Some(progress) = progress.as_deref_mut()
                && merge.visited() >= next_report
            {
                progress(merge.visited(), total);
                next_report = merge.visited() + 4096;
            }
        }
        if let Some(progress) = progress {
            progress(total, total);
        }
        Ok(stats)
    }

    /// BTMP rows in PNAM order: (first pseudo-pack position, count), (0, 0) for unused packs.
    fn bitmapped_packs(&self, preferred: Option<usize>) -> Vec<(u32, u32)> {
        let mut rows = vec![(0u32, 0u32); self.by_name.len()];
        let mut pos = 0u32;
        for input in pseudo_pack_pack_order(&self.by_name, preferred) {
            let nr = self.selected_per_pack[input];
            if nr > 0 {
                rows[self.final_id[input] as usize] = (pos, nr);
            }
            pos += nr;
        }
        rows
    }
}

/// Input indexes in pseudo-pack order: the preferred pack, then the others by final id
/// (ascending, whatever gitformat-pack says; git-formats.md §5.3).
fn pseudo_pack_pack_order(by_name: &[u32], preferred: Option<usize>) -> Vec<usize> {
    let rest = by_name
        .iter()
        .map(|&i| i as usize)
        .filter(|&i| Some(i) != preferred);
    preferred.into_iter().chain(rest).collect()
}

/// Emits the OIDL positions of the selected objects in pseudo-pack order (RIDX contents).
fn for_each_pseudo_pack_position(
    packs: &[PackInput<'_>],
    preferred: Option<usize>,
    stats: &Stats,
    mut emit: impl FnMut(u32) -> io::Result<()>,
) -> io::Result<()> {
    // Per pack: (entry index in the pack, OIDL position) of each selected object.
    let mut per_pack: Vec<Vec<(u32, u32)>> = stats
        .selected_per_pack
        .iter()
        .map(|&n| Vec::with_capacity(n as usize))
        .collect();
    let mut position = 0u32;
    for_each_selected(packs, preferred, stats, |sel| {
        per_pack[sel.pack].push((sel.entry as u32, position));
        position += 1;
        Ok(())
    })?;
    for input in pseudo_pack_pack_order(&stats.by_name, preferred) {
        let mut objects = std::mem::take(&mut per_pack[input]);
        let entries = packs[input].entries;
        objects.sort_unstable_by_key(|&(entry, _)| entries.offset_at(entry as usize));
        for (_, pos) in objects {
            emit(pos)?;
        }
    }
    Ok(())
}

/// Runs the merge and calls `f` for every selected object, in OIDL order. The input was
/// validated by [`Stats::collect`]'s pass, so a merge error here means the entries changed
/// between passes; it is reported as invalid data.
fn for_each_selected(
    packs: &[PackInput<'_>],
    preferred: Option<usize>,
    stats: &Stats,
    mut f: impl FnMut(Selected) -> io::Result<()>,
) -> io::Result<()> {
    if let Some(selection) = &stats.selection {
        for &(pack, entry) in selection {
            let (pack, entry) = (pack as usize, entry as usize);
            let oid = packs[pack].entries.oid_at(entry);
            f(Selected { oid, pack, entry })?;
        }
        return Ok(());
    }
    let mut merge = merge_of(packs, preferred);
    loop {
        match merge.next_selected() {
            Ok(Some(sel)) => f(sel)?,
            Ok(None) => return Ok(()),
            Err(unsorted) => {
                let error = unsorted_error(packs, unsorted);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    error.to_string(),
                ));
            }
        }
    }
}

/// The merge of `packs` with git's ranking of copies (`midx_oid_compare` after the id): the
/// preferred pack's copy wins, then the newest pack's, then the one first in the input.
fn merge_of<'a>(packs: &[PackInput<'a>], preferred: Option<usize>) -> Merge<'a> {
    let mut order: Vec<usize> = (0..packs.len()).collect();
    order.sort_by_key(|&pack| (preferred != Some(pack), Reverse(packs[pack].mtime), pack));
    let mut rank = vec![0u32; packs.len()];
    for (position, &pack) in order.iter().enumerate() {
        rank[pack] = position as u32; // Pack counts are checked to fit u32.
    }
    Merge::new(packs.iter().map(|pack| pack.entries).collect(), rank)
}

/// The error of a pack whose entries are out of order.
fn unsorted_error(packs: &[PackInput<'_>], unsorted: Unsorted) -> Error {
    Error::UnsortedPack {
        name: packs[unsorted.pack].idx_name.to_owned(),
        index: unsorted.entry,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::format::midx::MultiPackIndex;

    /// Entries as (id, offset), sorted by id (also what `midx_tests` reads from git).
    pub(in crate::format) struct VecPack(pub(in crate::format) Vec<(ObjectId, u64)>);

    impl PackEntries for VecPack {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn oid_at(&self, i: usize) -> ObjectId {
            self.0[i].0
        }
        fn offset_at(&self, i: usize) -> u64 {
            self.0[i].1
        }
    }

    fn id(first: u8, last: u8) -> ObjectId {
        let mut id = ObjectId::ZERO;
        id.0[0] = first;
        id.0[19] = last;
        id
    }

    fn write(packs: &[PackInput<'_>], options: WriteOptions<'_>) -> (Written, Vec<u8>) {
        let preferred_pack = options.preferred_pack;
        let write_reverse_index = options.write_reverse_index;
        let cached = write_midx(packs, options, Vec::new()).expect("write");
        NO_SELECTION_CACHE.with(|off| off.set(true));
        let streamed = write_midx(
            packs,
            WriteOptions {
                preferred_pack,
                write_reverse_index,
                progress: None,
            },
            Vec::new(),
        );
        NO_SELECTION_CACHE.with(|off| off.set(false));
        let streamed = streamed.expect("write without the selection cache");
        assert_eq!(
            cached.1, streamed.1,
            "same bytes with and without the selection cache"
        );
        cached
    }

    #[test]
    fn selection_rules() {
        let a = VecPack(vec![(id(1, 0), 12), (id(2, 0), 40), (id(9, 9), 70)]);
        let b = VecPack(vec![(id(1, 0), 100), (id(3, 0), 200)]);
        let c = VecPack(vec![(id(1, 0), 300), (id(2, 0), 400)]);
        let packs = [
            PackInput {
                idx_name: "pack-c.idx",
                mtime: 5,
                entries: &c,
            },
            PackInput {
                idx_name: "pack-a.idx",
                mtime: 5,
                entries: &a,
            },
            PackInput {
                idx_name: "pack-b.idx",
                mtime: 1,
                entries: &b,
            },
        ];
        let (written, bytes) = write(&packs, WriteOptions::default());
        assert_eq!(written.num_objects, 4);
        let midx = MultiPackIndex::from_bytes(bytes).expect("parse");
        assert!(midx.verify_checksum());
        assert_eq!(midx.pack_name(0), "pack-a.idx");
        assert_eq!(midx.pack_name(2), "pack-c.idx");
        // Tie on mtime 5 between c and a: first in input order (c) wins.
        assert_eq!(midx.pack_and_offset(0), Ok((2, 300)));
        assert_eq!(midx.pack_and_offset(1), Ok((2, 400)));
        assert_eq!(midx.pack_and_offset(2), Ok((1, 200)));
        assert_eq!(midx.pack_and_offset(3), Ok((0, 70)));

        let options = WriteOptions {
            preferred_pack: Some("pack-b.pack"),
            ..Default::default()
        };
        let (written, bytes) = write(&packs, options);
        assert_eq!(written.preferred_pack, Some(1));
        let midx = MultiPackIndex::from_bytes(bytes).expect("parse");
        assert_eq!(midx.pack_and_offset(0), Ok((1, 100)));

        // Reverse index: default preferred = oldest non-empty (b), pseudo order b, a, c.
        let options = WriteOptions {
            write_reverse_index: true,
            ..Default::default()
        };
        let (written, bytes) = write(&packs, options);
        assert_eq!(written.preferred_pack, Some(1));
        let midx = MultiPackIndex::from_bytes(bytes).expect("parse");
        let ridx: Vec<_> = (0..4).map(|k| midx.reverse_index_at(k)).collect();
        assert_eq!(ridx, [Some(0), Some(2), Some(3), Some(1)]);
        assert_eq!(midx.bitmapped_pack(0), Some((2, 1)));
        assert_eq!(midx.bitmapped_pack(1), Some((0, 2)));
        assert_eq!(midx.bitmapped_pack(2), Some((3, 1)));
    }

    #[test]
    fn preferred_pack_errors_and_warnings() {
        let a = VecPack(vec![(id(1, 0), 12)]);
        let empty = VecPack(Vec::new());
        let packs = [
            PackInput {
                idx_name: "pack-a.idx",
                mtime: 5,
                entries: &a,
            },
            PackInput {
                idx_name: "pack-e.idx",
                mtime: 1,
                entries: &empty,
            },
        ];
        let options = WriteOptions {
            preferred_pack: Some("nope.idx"),
            ..Default::default()
        };
        let (written, _) = write(&packs, options);
        assert_eq!(
            written.warnings,
            [Warning::UnknownPreferredPack("nope.idx".into())]
        );
        assert_eq!(
            written.warnings[0].to_string(),
            "unknown preferred pack: 'nope.idx'"
        );
        let options = WriteOptions {
            preferred_pack: Some("pack-e.idx"),
            ..Default::default()
        };
        assert!(matches!(
            write_midx(&packs, options, Vec::new()),
            Err(Error::PreferredPackEmpty(name)) if name == "pack-e.idx"
        ));
        assert!(matches!(
            write_midx(&[], WriteOptions::default(), Vec::new()),
            Err(Error::NoPacks)
        ));
        let unsorted = VecPack(vec![(id(2, 0), 1), (id(1, 0), 2)]);
        let bad = [PackInput {
            idx_name: "pack-u.idx",
            mtime: 0,
            entries: &unsorted,
        }];
        assert!(matches!(
            write_midx(&bad, WriteOptions::default(), Vec::new()),
            Err(Error::UnsortedPack { index: 1, .. })
        ));
        let dup = [packs[0], packs[0]];
        assert!(matches!(
            write_midx(&dup, WriteOptions::default(), Vec::new()),
            Err(Error::InvalidPackName(_))
        ));
    }

    #[test]
    fn default_preferred_pack_follows_gits_loop() {
        let a = VecPack(vec![(id(1, 0), 12)]);
        let c = VecPack(vec![(id(1, 0), 40)]);
        let empty = VecPack(Vec::new());
        let options = || WriteOptions {
            write_reverse_index: true,
            ..Default::default()
        };
        // Oldest non-empty, ties to the first in input order.
        let packs = [
            PackInput {
                idx_name: "pack-c.idx",
                mtime: 3,
                entries: &c,
            },
            PackInput {
                idx_name: "pack-a.idx",
                mtime: 3,
                entries: &a,
            },
            PackInput {
                idx_name: "pack-e.idx",
                mtime: 7,
                entries: &empty,
            },
        ];
        assert_eq!(write(&packs, options()).0.preferred_pack, Some(1));
        // git's quirk: an older empty pack displaces the candidate, then loses to the next
        // pack whatever its mtime.
        let packs = [
            PackInput {
                idx_name: "pack-a.idx",
                mtime: 5,
                entries: &a,
            },
            PackInput {
                idx_name: "pack-e.idx",
                mtime: 1,
                entries: &empty,
            },
            PackInput {
                idx_name: "pack-c.idx",
                mtime: 9,
                entries: &c,
            },
        ];
        assert_eq!(write(&packs, options()).0.preferred_pack, Some(1));
        let packs = [packs[0], packs[1]];
        assert_eq!(write(&packs, options()).0.preferred_pack, None);
    }

    #[test]
    fn large_offsets() {
        let a = VecPack(vec![
            (id(1, 0), 0x8000_0000),
            (id(2, 0), 12),
            (id(3, 0), 0x1_0000_0000),
        ]);
        let packs = [PackInput {
            idx_name: "pack-a.idx",
            mtime: 0,
            entries: &a,
        }];
        let (_, bytes) = write(&packs, WriteOptions::default());
        let midx = MultiPackIndex::from_bytes(bytes).expect("parse");
        assert!(midx.has_large_offsets());
        assert_eq!(midx.pack_and_offset(0), Ok((0, 0x8000_0000)));
        assert_eq!(midx.pack_and_offset(1), Ok((0, 12)));
        assert_eq!(midx.pack_and_offset(2), Ok((0, 0x1_0000_0000)));
        // Only offsets below 2^32: stored directly, no LOFF.
        let b = VecPack(vec![(id(1, 0), 0x8000_0000), (id(2, 0), 12)]);
        let packs = [PackInput {
            idx_name: "pack-b.idx",
            mtime: 0,
            entries: &b,
        }];
        let (_, bytes) = write(&packs, WriteOptions::default());
        let midx = MultiPackIndex::from_bytes(bytes).expect("parse");
        assert!(!midx.has_large_offsets());
        assert_eq!(midx.pack_and_offset(0), Ok((0, 0x8000_0000)));
    }
}
