//! Delta resolution at commit: delta trees walked from their roots, in parallel.
//!
//! Every delta has one base: an OFS_DELTA names the base's offset, a REF_DELTA its id. The
//! children of each base are listed once (a CSR table for OFS, a sorted `(base id, child)` table
//! for REF), so resolution is O(objects): each worker takes a root (a whole object with
//! children), inflates it, and walks its subtree depth-first, applying each child's delta to its
//! parent's data and hashing the result. A base stays in memory (shared by its pending
//! children) while the bytes held stay under a budget; past it, children rebuild their base from
//! the pack by walking the recorded parent links. Idle workers take pending subtrees from busy
//! ones through a shared queue, so one huge root does not serialise the work.
//!
//! Progress callbacks run on the calling thread only: workers send counts through a channel.
//! Thin packs: REF_DELTA bases found nowhere in the pack are fetched one at a time through the
//! caller's lookup, in the order of the first delta needing them (as `git index-pack
//! --fix-thin` does), encoded as whole objects for appending, and their subtrees resolved.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use parking_lot::{Condvar, Mutex};

use super::{BaseLookup, Error, Options, Progress, ProgressFn, RawEntry, Result};
use crate::format::delta;
use crate::format::pack::{self, EntryKind, ObjectKind};
use crate::hash::object_id;
use crate::oid::ObjectId;
use crate::zlib;

/// No parent recorded.
const NONE: u32 = u32::MAX;

/// What [`resolve_all`] produced besides the ids it stored in the entries.
pub(crate) struct Outcome {
    /// Encoded thin-pack bases to write where the trailer was (already pushed to `entries`).
    pub appended: Vec<u8>,
}

/// The children of every base.
struct Graph {
    /// `ofs_children[ofs_start[i]..ofs_start[i + 1]]`: OFS_DELTA children of entry `i`.
    ofs_start: Vec<u32>,
    ofs_children: Vec<u32>,
    /// `(base id, child)` for every REF_DELTA, sorted.
    ref_children: Vec<(ObjectId, u32)>,
}

impl Graph {
    fn build(entries: &[RawEntry]) -> Result<Graph> {
        let n = entries.len();
        let mut bases = vec![NONE; n];
        let mut counts = vec![0u32; n + 1];
        let mut ref_children = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match entry.kind {
                EntryKind::OfsDelta { base_offset } => {
                    let base = entries
                        .binary_search_by_key(&base_offset, |e| e.offset)
                        .map_err(|_| Error::BadBaseOffset {
                            offset: entry.offset,
                            base_offset,
                        })?;
                    bases[i] = base as u32;
                    counts[base] += 1;
                }
                EntryKind::RefDelta { base } => ref_children.push((base, i as u32)),
                EntryKind::Base(_) => {}
            }
        }
        let mut ofs_start = Vec::with_capacity(n + 1);
        let mut running = 0u32;
        for count in &counts {
            ofs_start.push(running);
            running += count;
        }
        let mut fill = ofs_start.clone();
        let mut ofs_children = vec![0u32; running as usize];
        for (i, &base) in bases.iter().enumerate() {
            if base != NONE {
                let slot = &mut fill[base as usize];
                ofs_children[*slot as usize] = i as u32;
                *slot += 1;
            }
        }
        ref_children.sort_unstable();
        Ok(Graph {
            ofs_start,
            ofs_children,
            ref_children,
        })
    }

    fn ofs(&self, entry: u32) -> &[u32] {
        let i = entry as usize;
        match (self.ofs_start.get(i), self.ofs_start.get(i + 1)) {
            (Some(&start), Some(&end)) => &self.ofs_children[start as usize..end as usize],
            _ => &[],
        }
    }

    fn refs(&self, id: &ObjectId) -> &[(ObjectId, u32)] {
        let start = self.ref_children.partition_point(|(base, _)| base < id);
        let len = self.ref_children[start..].partition_point(|(base, _)| base == id);
        &self.ref_children[start..start + len]
    }

    fn has_children(&self, entry: u32, id: &ObjectId) -> bool {
        !self.ofs(entry).is_empty() || !self.refs(id).is_empty()
    }
}

/// Resolved object data shared by the pending children of one base; counts toward the budget.
struct Held {
    data: Vec<u8>,
    held: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.fetch_sub(self.data.len(), Ordering::Relaxed);
    }
}

enum Task {
    /// A whole object of the pack with children.
    Root(u32),
    /// An object whose data is at hand (an injected thin-pack base).
    Node {
        entry: u32,
        kind: ObjectKind,
        data: Vec<u8>,
        id: ObjectId,
    },
    /// A delta to resolve against its parent (`base` unless it was dropped for the budget).
    Child {
        entry: u32,
        kind: ObjectKind,
        base: Option<Arc<Held>>,
        parent: u32,
    },
}

/// State shared by the workers of one run.
struct Ctx<'a> {
    pack: &'a [u8],
    entries: &'a [RawEntry],
    graph: &'a Graph,
    claimed: &'a [AtomicBool],
    parents: &'a [AtomicU32],
    /// Thin-pack bases, entry index `entries.len() + k`.
    injected: &'a [(ObjectKind, Vec<u8>)],
    max_object_size: u64,
    budget: usize,
    held: Arc<AtomicUsize>,
    abort: AtomicBool,
    queue: Mutex<Queue>,
    wake: Condvar,
    waiting: AtomicUsize,
}

struct Queue {
    tasks: VecDeque<Task>,
    active: usize,
    done: bool,
}

impl<'a> Ctx<'a> {
    fn new(
        pack: &'a [u8],
        entries: &'a [RawEntry],
        graph: &'a Graph,
        claimed: &'a [AtomicBool],
        parents: &'a [AtomicU32],
        injected: &'a [(ObjectKind, Vec<u8>)],
        options: &Options,
    ) -> Ctx<'a> {
        Ctx {
            pack,
            entries,
            graph,
            claimed,
            parents,
            injected,
            max_object_size: options.max_object_size,
            budget: options.base_budget_bytes,
            held: Arc::new(AtomicUsize::new(0)),
            abort: AtomicBool::new(false),
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                active: 0,
                done: false,
            }),
            wake: Condvar::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    fn entry(&self, index: u32) -> Result<&'a RawEntry> {
        self.entries
            .get(index as usize)
            .ok_or(Error::Finished("an internal error"))
    }

    /// Inflates an entry's zlib stream (its size was checked while streaming).
    fn inflate(&self, index: u32) -> Result<Vec<u8>> {
        let entry = self.entry(index)?;
        let size = usize::try_from(entry.size).map_err(|_| Error::OutOfMemory(entry.size))?;
        let mut out = Vec::new();
        out.try_reserve_exact(size)
            .map_err(|_| Error::OutOfMemory(entry.size))?;
        out.resize(size, 0);
        let stream = self
            .pack
            .get(entry.data_offset as usize..entry.end as usize)
            .ok_or(Error::Finished("an internal error"))?;
        zlib::inflate_exact(stream, &mut out).map_err(|source| Error::Zlib {
            offset: entry.offset,
            source,
        })?;
        Ok(out)
    }

    fn apply(&self, index: u32, base: &[u8]) -> Result<Vec<u8>> {
        let delta_data = self.inflate(index)?;
        let mut out = Vec::new();
        delta::apply(base, &delta_data, self.max_object_size, &mut out).map_err(|source| {
            Error::Delta {
                offset: self.entries.get(index as usize).map_or(0, |e| e.offset),
                source,
            }
        })?;
        Ok(out)
    }

    /// Rebuilds the data of an already resolved object from its chain of recorded parents.
    fn rematerialize(&self, index: u32) -> Result<Vec<u8>> {
        let mut chain = Vec::new();
        let mut current = index;
        let mut data = loop {
            if let Some((_, data)) = (current as usize)
                .checked_sub(self.entries.len())
                .and_then(|k| self.injected.get(k))
            {
                break data.clone();
            }
            match self.entry(current)?.kind {
                EntryKind::Base(_) => break self.inflate(current)?,
                _ => {
                    chain.push(current);
                    current = self.parents[current as usize].load(Ordering::Acquire);
                    if current == NONE || chain.len() > self.entries.len() {
                        return Err(Error::Finished("an internal error"));
                    }
                }
            }
        };
        for &link in chain.iter().rev() {
            data = self.apply(link, &data)?;
        }
        Ok(data)
    }

    /// Resolves one task; pushes its children onto `local`.
    fn process(
        &self,
        task: Task,
        local: &mut Vec<Task>,
        resolved: &mut Vec<(u32, ObjectId)>,
    ) -> Result<()> {
        let (entry, kind, data, id) = match task {
            Task::Root(entry) => {
                let raw = self.entry(entry)?;
                let EntryKind::Base(kind) = raw.kind else {
                    return Err(Error::Finished("an internal error"));
                };
                (entry, kind, self.inflate(entry)?, raw.id)
            }
            Task::Node {
                entry,
                kind,
                data,
                id,
            } => (entry, kind, data, id),
            Task::Child {
                entry,
                kind,
                base,
                parent,
            } => {
                let data = match base {
                    Some(base) => self.apply(entry, &base.data)?,
                    None => self.apply(entry, &self.rematerialize(parent)?)?,
                };
                let id = object_id(kind, &data)?;
                resolved.push((entry, id));
                (entry, kind, data, id)
            }
        };
        let ofs = self.graph.ofs(entry);
        let refs = self.graph.refs(&id);
        if ofs.is_empty() && refs.is_empty() {
            return Ok(());
        }
        let len = data.len();
        let base = if self.held.load(Ordering::Relaxed) + len <= self.budget {
            self.held.fetch_add(len, Ordering::Relaxed);
            Some(Arc::new(Held {
                data,
                held: Arc::clone(&self.held),
            }))
        } else {
            None
        };
        for &child in ofs.iter().chain(refs.iter().map(|(_, child)| child)) {
            let Some(claim) = self.claimed.get(child as usize) else {
                continue;
            };
            // A duplicate object in the pack must not resolve its REF children twice.
            if claim.swap(true, Ordering::AcqRel) {
                continue;
            }
            self.parents[child as usize].store(entry, Ordering::Release);
            local.push(Task::Child {
                entry: child,
                kind,
                base: base.clone(),
                parent: entry,
            });
        }
        Ok(())
    }

    /// The next task from the shared queue, or `None` when all work is done or aborted.
    fn next_shared(&self) -> Option<Task> {
        let mut queue = self.queue.lock();
        queue.active -= 1;
        loop {
            if self.abort.load(Ordering::Relaxed) || queue.done {
                queue.done = true;
                self.wake.notify_all();
                return None;
            }
            if let Some(task) = queue.tasks.pop_front() {
                queue.active += 1;
                return Some(task);
            }
            if queue.active == 0 {
                queue.done = true;
                self.wake.notify_all();
                return None;
            }
            self.waiting.fetch_add(1, Ordering::Relaxed);
            self.wake.wait(&mut queue);
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn stop(&self) {
        self.abort.store(true, Ordering::Relaxed);
        let _queue = self.queue.lock();
        self.wake.notify_all();
    }

    fn worker(&self, progress: mpsc::Sender<u32>) -> Result<Vec<(u32, ObjectId)>> {
        let mut local = Vec::new();
        let mut resolved = Vec::new();
        let mut reported = 0usize;
        loop {
            if resolved.len() - reported >= 16 || (local.is_empty() && resolved.len() > reported) {
                let _ = progress.send((resolved.len() - reported) as u32);
                reported = resolved.len();
            }
            let task = match local.pop() {
                Some(task) => task,
                None => match self.next_shared() {
                    Some(task) => task,
                    None => break,
                },
            };
            if self.abort.load(Ordering::Relaxed) {
                break;
            }
            if let Err(error) = self.process(task, &mut local, &mut resolved) {
                self.stop();
                return Err(error);
            }
            // Give the oldest pending subtree to an idle worker.
            if local.len() > 1 && self.waiting.load(Ordering::Relaxed) > 0 {
                let task = local.remove(0);
                self.queue.lock().tasks.push_back(task);
                self.wake.notify_one();
            }
        }
        if resolved.len() > reported {
            let _ = progress.send((resolved.len() - reported) as u32);
        }
        Ok(resolved)
    }
}

/// Runs workers over `roots` until every reachable delta is resolved; returns the new ids.
fn run(
    ctx: &Ctx<'_>,
    roots: Vec<Task>,
    threads: usize,
    counters: &mut Progress,
    callback: &mut ProgressFn<'_>,
) -> Result<Vec<(u32, ObjectId)>> {
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    let threads = threads.clamp(1, roots.len().max(threads));
    {
        let mut queue = ctx.queue.lock();
        queue.tasks.extend(roots);
        queue.active = threads;
        queue.done = false;
    }
    ctx.abort.store(false, Ordering::Relaxed);
    let (sender, receiver) = mpsc::channel::<u32>();
    let mut cancelled = None;
    let results: Vec<Result<Vec<(u32, ObjectId)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let sender = sender.clone();
                scope.spawn(move || ctx.worker(sender))
            })
            .collect();
        drop(sender);
        'pump: for count in receiver {
            for _ in 0..count {
                counters.indexed_objects += 1;
                counters.indexed_deltas += 1;
                let code = callback(counters);
                if code < 0 {
                    cancelled = Some(code);
                    ctx.stop();
                    break 'pump;
                }
            }
        }
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or(Err(Error::Finished("a panic in a delta worker")))
            })
            .collect()
    });
    if let Some(code) = cancelled {
        return Err(Error::Cancelled(code));
    }
    let mut all = Vec::new();
    for result in results {
        all.extend(result?);
    }
    Ok(all)
}

/// Resolves every delta of `entries` (storing their ids), fetching missing thin-pack bases
/// through `bases`; injected bases are pushed to `entries` and returned encoded.
pub(crate) fn resolve_all(
    pack: &[u8],
    entries: &mut Vec<RawEntry>,
    options: &Options,
    counters: &mut Progress,
    bases: &mut BaseLookup<'_>,
    callback: &mut ProgressFn<'_>,
) -> Result<Outcome> {
    let graph = Graph::build(entries)?;
    let n = entries.len();
    let claimed: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
    let parents: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(NONE)).collect();
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut injected: Vec<(ObjectKind, Vec<u8>)> = Vec::new();
    let mut injected_entries: Vec<RawEntry> = Vec::new();
    let mut appended = Vec::new();
    let mut next_offset = pack.len().saturating_sub(pack::TRAILER_LEN) as u64;
    let mut ids: Vec<(u32, ObjectId)> = Vec::new();

    {
        let ctx = Ctx::new(
            pack, entries, &graph, &claimed, &parents, &injected, options,
        );
        let roots: Vec<Task> = entries
            .iter()
            .enumerate()
            .filter(|(i, entry)| {
                matches!(entry.kind, EntryKind::Base(_)) && graph.has_children(*i as u32, &entry.id)
            })
            .map(|(i, _)| Task::Root(i as u32))
            .collect();
        ids.extend(run(&ctx, roots, threads, counters, callback)?);
    }

    // Thin pack: deltas still unclaimed wait for a base outside the pack.
    let mut missing: HashSet<ObjectId> = HashSet::new();
    let mut first_missing = None;
    for i in 0..n {
        let EntryKind::RefDelta { base } = entries[i].kind else {
            continue;
        };
        if claimed[i].load(Ordering::Acquire) || missing.contains(&base) {
            continue;
        }
        let Some((kind, data)) = bases(&base) else {
            missing.insert(base);
            first_missing.get_or_insert(base);
            continue;
        };
        let got = object_id(kind, &data)?;
        if got != base {
            return Err(Error::WrongBase { wanted: base, got });
        }
        if data.len() as u64 > options.max_object_size {
            return Err(Error::ObjectTooLarge {
                offset: next_offset,
                size: data.len() as u64,
                max: options.max_object_size,
            });
        }
        let mut encoded = Vec::new();
        pack::encode_entry_header(kind as i32 as u8, data.len() as u64, &mut encoded);
        let header_len = encoded.len() as u64;
        encoded.extend_from_slice(&zlib::compress(&data));
        let index = (n + injected.len()) as u32;
        injected_entries.push(RawEntry {
            offset: next_offset,
            data_offset: next_offset + header_len,
            end: next_offset + encoded.len() as u64,
            size: data.len() as u64,
            kind: EntryKind::Base(kind),
            crc32: zlib::crc32(0, &encoded),
            id: base,
        });
        next_offset += encoded.len() as u64;
        appended.extend_from_slice(&encoded);
        counters.local_objects += 1;
        injected.push((kind, data.clone()));
        let ctx = Ctx::new(
            pack, entries, &graph, &claimed, &parents, &injected, options,
        );
        let root = Task::Node {
            entry: index,
            kind,
            data,
            id: base,
        };
        ids.extend(run(&ctx, vec![root], threads, counters, callback)?);
    }

    let unresolved = claimed
        .iter()
        .zip(entries.iter())
        .filter(|(claim, entry)| {
            !matches!(entry.kind, EntryKind::Base(_)) && !claim.load(Ordering::Acquire)
        })
        .count();
    if unresolved > 0 {
        return Err(Error::MissingBases {
            count: unresolved,
            first: first_missing.unwrap_or_default(),
        });
    }
    for (index, id) in ids {
        if let Some(entry) = entries.get_mut(index as usize) {
            entry.id = id;
        }
    }
    entries.extend(injected_entries);
    Ok(Outcome { appended })
}
