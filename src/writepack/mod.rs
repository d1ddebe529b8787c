//! A streaming pack indexer: what `git index-pack --stdin --fix-thin` and libgit2's
//! `git_indexer` do, for the `writepack` slot (libgit2-contract.md §2.9, §3.7).
//!
//! [`Indexer::append`] takes pack bytes in chunks of any size, writes them to
//! `objects/pack/tmp_pack_XXXXXX`, and parses entries as they arrive: entry headers, a streaming
//! inflate to find where each zlib stream ends, the CRC32 of every entry, and the id of every
//! whole (non-delta) object. [`Indexer::commit`] checks the trailer, resolves the deltas as
//! trees (children per base, OFS by offset, REF by id) in parallel across roots, appends
//! missing thin-pack bases fetched through a callback (rewriting the header count and the
//! trailer like `--fix-thin`), then writes `pack-<hash>.idx` and `pack-<hash>.rev` and renames
//! the files into place, `.idx` last. Dropping an indexer that was not committed removes its
//! temporary files.
//!
//! Progress follows libgit2's counters exactly (see [`Progress`]).

mod resolve;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::format::pack::{self, EntryKind, ObjectKind};
use crate::format::{delta, idx, rev};
use crate::hash::{CollisionDetected, Sha1};
use crate::mmap::Mmap;
use crate::oid::ObjectId;
use crate::zlib;

/// Limits and tuning of an [`Indexer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Largest object (or delta data) accepted, inflated (libgit2's
    /// `GIT_OPT_SET_PACK_MAX_OBJECT_SIZE`).
    pub max_object_size: u64,
    /// Most objects a pack may declare (libgit2's `GIT_OPT_SET_PACK_MAX_OBJECTS`).
    pub max_objects: u32,
    /// Threads resolving deltas; 0 = the available cores.
    pub threads: usize,
    /// Bytes of resolved bases kept in memory for their pending children; past it, a base is
    /// rebuilt from the pack when a child needs it.
    pub base_budget_bytes: usize,
    /// fsync the new files and the directory before and after the renames.
    pub fsync: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_object_size: if cfg!(target_pointer_width = "64") {
                (1 << 40) - 1
            } else {
                (1 << 31) - 1
            },
            max_objects: u32::MAX,
            threads: 0,
            base_budget_bytes: 256 << 20,
            fsync: true,
        }
    }
}

/// libgit2's `git_indexer_progress` counters (without `received_bytes`, which the transport
/// owns).
///
/// - When the 12-byte header arrives: `total_objects` is set, the other five zeroed, callback.
/// - Per parsed entry: `received_objects += 1` (and `indexed_objects += 1` for a whole object),
///   callback.
/// - At commit: `total_deltas = total_objects - indexed_objects`; per resolved delta
///   `indexed_objects += 1`, `indexed_deltas += 1`, callback.
/// - Per thin-pack base appended from the object database: `local_objects += 1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Objects the pack header declares.
    pub total_objects: u32,
    /// Objects whose id is known.
    pub indexed_objects: u32,
    /// Entries parsed from the stream.
    pub received_objects: u32,
    /// Thin-pack bases appended from the object database.
    pub local_objects: u32,
    /// Deltas in the pack (set at commit).
    pub total_deltas: u32,
    /// Deltas resolved.
    pub indexed_deltas: u32,
}

/// The progress callback: a non-zero return cancels (while resolving deltas, only a negative
/// one, as in libgit2) and becomes [`Error::Cancelled`].
pub type ProgressFn<'a> = dyn FnMut(&Progress) -> i32 + 'a;

/// Where thin-pack bases come from: the object with this id, or `None` if it is not there.
pub type BaseLookup<'a> = dyn FnMut(&ObjectId) -> Option<(ObjectKind, Vec<u8>)> + 'a;

/// Why indexing failed. Every failure leaves no new file in the pack directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on one of the indexer's files.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The 12-byte pack header is malformed.
    #[error("bad pack header: {0}")]
    Header(pack::Error),
    /// The pack declares more objects than allowed.
    #[error("too many objects: the pack declares {count}, the limit is {max}")]
    TooManyObjects {
        /// Objects declared.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// An object (or its delta data) is larger than allowed.
    #[error("object at offset {offset} is {size} bytes, more than the limit of {max}")]
    ObjectTooLarge {
        /// Offset of the entry.
        offset: u64,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// An entry header is malformed.
    #[error("bad entry at offset {offset}: {source}")]
    Entry {
        /// Offset of the entry.
        offset: u64,
        /// What is wrong.
        source: pack::Error,
    },
    /// An entry's zlib stream is corrupt or has the wrong length.
    #[error("corrupt zlib stream of the entry at offset {offset}: {source}")]
    Zlib {
        /// Offset of the entry.
        offset: u64,
        /// What is wrong.
        source: zlib::Error,
    },
    /// A delta is malformed or does not fit its base.
    #[error("bad delta at offset {offset}: {source}")]
    Delta {
        /// Offset of the delta entry.
        offset: u64,
        /// What is wrong.
        source: delta::Error,
    },
    /// An OFS_DELTA names an offset where no entry starts.
    #[error("delta at offset {offset} names base offset {base_offset}, which starts no entry")]
    BadBaseOffset {
        /// Offset of the delta entry.
        offset: u64,
        /// The base offset it names.
        base_offset: u64,
    },
    /// The stream ended before the pack did.
    #[error("early EOF: pack truncated ({received} of {total} objects{})", if *.trailer { ", no trailer" } else { "" })]
    Truncated {
        /// Entries parsed.
        received: u32,
        /// Entries declared.
        total: u32,
        /// Whether only (part of) the trailer is missing.
        trailer: bool,
    },
    /// Bytes follow the trailer.
    #[error("unexpected data at the end of the pack")]
    TrailingData,
    /// The trailer is not the SHA-1 of the pack.
    #[error("packfile trailer mismatch: pack hashes to {computed}, trailer says {found}")]
    TrailerMismatch {
        /// The SHA-1 of the received bytes.
        computed: ObjectId,
        /// The trailer received.
        found: ObjectId,
    },
    /// Deltas whose base is neither in the pack nor in the object database (this includes
    /// REF_DELTA chains that loop).
    #[error("{count} deltas could not be resolved: base {first} missing")]
    MissingBases {
        /// Unresolved deltas.
        count: usize,
        /// One missing base.
        first: ObjectId,
    },
    /// The object database returned an object whose id is not the one asked for.
    #[error("thin-pack base {wanted}: the object database returned {got}")]
    WrongBase {
        /// The id asked for.
        wanted: ObjectId,
        /// The id of what came back.
        got: ObjectId,
    },
    /// A SHA-1 collision attack was detected in an object or the pack.
    #[error(transparent)]
    Collision(#[from] CollisionDetected),
    /// The progress callback asked to stop, with this value.
    #[error("indexer progress callback returned {0}")]
    Cancelled(i32),
    /// Memory for an object could not be allocated.
    #[error("out of memory allocating {0} bytes")]
    OutOfMemory(u64),
    /// The indexer failed before, or was committed; it takes no more calls.
    #[error("the indexer cannot be used after {0}")]
    Finished(&'static str),
}

impl Error {
    fn io(path: &Path, source: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the failure is corrupt zlib data (libgit2 reports those with class ZLIB).
    pub fn is_zlib(&self) -> bool {
        matches!(self, Error::Zlib { .. })
    }
}

/// Result with the indexer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One parsed entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawEntry {
    /// Offset of the entry header.
    pub offset: u64,
    /// Offset of the zlib stream.
    pub data_offset: u64,
    /// Offset just past the zlib stream.
    pub end: u64,
    /// Inflated size (object body or delta data).
    pub size: u64,
    /// What it stores.
    pub kind: EntryKind,
    /// CRC32 of the whole entry.
    pub crc32: u32,
    /// The id of a whole object (deltas: zero until resolved).
    pub id: ObjectId,
}

/// What a successful [`Indexer::commit`] produced.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The pack checksum, also the name: `pack-<hex>`.
    pub checksum: ObjectId,
    /// The `.pack` file.
    pub pack_path: PathBuf,
    /// The `.idx` file.
    pub idx_path: PathBuf,
    /// The `.rev` file.
    pub rev_path: PathBuf,
    /// Final counters.
    pub progress: Progress,
}

enum Stage {
    /// Collecting the 12-byte header in `pending`.
    Header,
    /// Collecting an entry header in `pending`.
    EntryHeader,
    /// Inflating the zlib stream of `current`.
    EntryData,
    /// Collecting the trailer in `pending`.
    Trailer,
    /// The whole pack arrived.
    Done,
    /// An error happened or commit ran: no more input.
    Finished(&'static str),
}

/// The entry being inflated.
struct Current {
    entry: RawEntry,
    hasher: Option<Sha1>,
    produced: u64,
}

/// Longest entry header: 10 size bytes and a 20-byte base id.
const MAX_HEADER: usize = pack::MAX_ENTRY_HEADER_LEN + 22;

/// A streaming pack indexer writing into one pack directory.
pub struct Indexer {
    pack_dir: PathBuf,
    options: Options,
    tmp_pack: PathBuf,
    file: Option<BufWriter<File>>,
    /// Temporary files to remove on drop.
    temps: Vec<PathBuf>,
    stage: Stage,
    pending: Vec<u8>,
    /// Bytes of header and entries consumed (the offset of the next entry).
    consumed: u64,
    pack_hash: Sha1,
    inflate: zlib::StreamInflater,
    current: Option<Current>,
    entries: Vec<RawEntry>,
    total: u32,
    trailer: ObjectId,
    progress: Progress,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer")
            .field("tmp_pack", &self.tmp_pack)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// Creates `dir/<prefix>XXXXXX` exclusively (mode 0600 until it is finished).
fn create_temp(dir: &Path, prefix: &str) -> Result<(PathBuf, File)> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32);
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed | 1;
    for _ in 0..100 {
        let mut name = String::from(prefix);
        for _ in 0..6 {
            // xorshift64: uniqueness comes from O_EXCL, this only avoids collisions.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            name.push(char::from(CHARS[(state % CHARS.len() as u64) as usize]));
        }
        let path = dir.join(name);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Err(Error::io(
        dir,
        io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name"),
    ))
}

impl Indexer {
    /// Starts a pack in `pack_dir` (`objects/pack`, created if missing).
    pub fn new(pack_dir: &Path, options: Options) -> Result<Indexer> {
        fs::create_dir_all(pack_dir).map_err(|e| Error::io(pack_dir, e))?;
        let (tmp_pack, file) = create_temp(pack_dir, "tmp_pack_")?;
        Ok(Indexer {
            pack_dir: pack_dir.to_path_buf(),
            options,
            temps: vec![tmp_pack.clone()],
            tmp_pack,
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            stage: Stage::Header,
            pending: Vec::with_capacity(MAX_HEADER),
            consumed: 0,
            pack_hash: Sha1::new(),
            inflate: zlib::StreamInflater::new(),
            current: None,
            entries: Vec::new(),
            total: 0,
            trailer: ObjectId::ZERO,
            progress: Progress::default(),
        })
    }

    /// The counters so far.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// The temporary pack file being written.
    pub fn temp_pack_path(&self) -> &Path {
        &self.tmp_pack
    }

    /// Feeds the next bytes of the pack (any length, including 0).
    pub fn append(&mut self, data: &[u8], progress: &mut ProgressFn<'_>) -> Result<()> {
        if let Stage::Finished(why) = self.stage {
            return Err(Error::Finished(why));
        }
        let result = self.append_inner(data, progress);
        if result.is_err() {
            self.stage = Stage::Finished("an error");
        }
        result
    }

    fn append_inner(&mut self, data: &[u8], progress: &mut ProgressFn<'_>) -> Result<()> {
        let file = self.file.as_mut().ok_or(Error::Finished("commit"))?;
        file.write_all(data)
            .map_err(|e| Error::io(&self.tmp_pack, e))?;
        let mut input = data;
        while !input.is_empty() {
            match self.stage {
                Stage::Header => {
                    let take = (pack::HEADER_LEN - self.pending.len()).min(input.len());
                    self.pending.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.pending.len() == pack::HEADER_LEN {
                        self.parse_pack_header(progress)?;
                    }
                }
                Stage::EntryHeader => input = self.entry_header(input)?,
                Stage::EntryData => input = self.entry_data(input, progress)?,
                Stage::Trailer => {
                    let take = (pack::TRAILER_LEN - self.pending.len()).min(input.len());
                    self.pending.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.pending.len() == pack::TRAILER_LEN {
                        let found = ObjectId::from_slice(&self.pending).unwrap_or_default();
                        let computed = self.pack_hash.clone().finalize()?;
                        if computed != found {
                            return Err(Error::TrailerMismatch { computed, found });
                        }
                        self.trailer = found;
                        self.pending.clear();
                        self.stage = Stage::Done;
                    }
                }
                Stage::Done => return Err(Error::TrailingData),
                Stage::Finished(why) => return Err(Error::Finished(why)),
            }
        }
        Ok(())
    }

    fn parse_pack_header(&mut self, progress: &mut ProgressFn<'_>) -> Result<()> {
        let mut padded = [0u8; pack::HEADER_LEN + pack::TRAILER_LEN];
        padded[..pack::HEADER_LEN].copy_from_slice(&self.pending);
        let header = pack::parse_header(&padded).map_err(Error::Header)?;
        if header.num_objects > self.options.max_objects {
            return Err(Error::TooManyObjects {
                count: header.num_objects,
                max: self.options.max_objects,
            });
        }
        self.pack_hash.update(&self.pending);
        self.consumed = pack::HEADER_LEN as u64;
        self.pending.clear();
        self.total = header.num_objects;
        // Cap the up-front reservation: the count is untrusted.
        self.entries
            .reserve((header.num_objects as usize).min(1 << 20));
        self.progress = Progress {
            total_objects: header.num_objects,
            ..Progress::default()
        };
        self.stage = if self.total == 0 {
            Stage::Trailer
        } else {
            Stage::EntryHeader
        };
        match progress(&self.progress) {
            0 => Ok(()),
            stop => Err(Error::Cancelled(stop)),
        }
    }

    fn entry_header<'d>(&mut self, input: &'d [u8]) -> Result<&'d [u8]> {
        let before = self.pending.len();
        let take = (MAX_HEADER - before).min(input.len());
        self.pending.extend_from_slice(&input[..take]);
        let offset = self.consumed;
        let entry = match pack::parse_entry_header(&self.pending, offset) {
            Ok(entry) => entry,
            Err(pack::Error::Truncated) if self.pending.len() < MAX_HEADER => {
                // Everything taken is kept in `pending`; wait for more.
                return Ok(&input[take..]);
            }
            Err(source) => return Err(Error::Entry { offset, source }),
        };
        let header_len = (entry.data_offset - offset) as usize;
        let header = &self.pending[..header_len];
        self.pack_hash.update(header);
        let crc32 = zlib::crc32(0, header);
        if entry.size > self.options.max_object_size {
            return Err(Error::ObjectTooLarge {
                offset,
                size: entry.size,
                max: self.options.max_object_size,
            });
        }
        let hasher = match entry.kind {
            EntryKind::Base(kind) => {
                let mut hasher = Sha1::new();
                hasher.update(format!("{} {}\0", kind.name(), entry.size).as_bytes());
                Some(hasher)
            }
            _ => None,
        };
        self.consumed = entry.data_offset;
        self.pending.clear();
        self.inflate.reset();
        self.current = Some(Current {
            entry: RawEntry {
                offset,
                data_offset: entry.data_offset,
                end: entry.data_offset,
                size: entry.size,
                kind: entry.kind,
                crc32,
                id: ObjectId::ZERO,
            },
            hasher,
            produced: 0,
        });
        self.stage = Stage::EntryData;
        Ok(&input[header_len - before..])
    }

    fn entry_data<'d>(
        &mut self,
        mut input: &'d [u8],
        progress: &mut ProgressFn<'_>,
    ) -> Result<&'d [u8]> {
        let Some(current) = self.current.as_mut() else {
            return Err(Error::Finished("an internal error"));
        };
        let offset = current.entry.offset;
        let size = current.entry.size;
        let hasher = &mut current.hasher;
        let (used, done) = self
            .inflate
            .feed(input, &mut |bytes| {
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(bytes);
                }
            })
            .map_err(|source| Error::Zlib { offset, source })?;
        let (eaten, rest) = input.split_at(used.min(input.len()));
        self.pack_hash.update(eaten);
        current.entry.crc32 = zlib::crc32(current.entry.crc32, eaten);
        input = rest;
        current.produced = self.inflate.total_out();
        if current.produced > size {
            return Err(Error::Zlib {
                offset,
                source: zlib::Error::TooLong {
                    expected: size as usize,
                },
            });
        }
        if !done {
            // Every byte was used: wait for more input.
            return Ok(input);
        }
        if current.produced != size {
            return Err(Error::Zlib {
                offset,
                source: zlib::Error::SizeMismatch {
                    expected: size as usize,
                    actual: current.produced as usize,
                },
            });
        }
        let Some(mut current) = self.current.take() else {
            return Err(Error::Finished("an internal error"));
        };
        current.entry.end = current.entry.data_offset + self.inflate.total_in();
        self.consumed = current.entry.end;
        if let Some(hasher) = current.hasher.take() {
            current.entry.id = hasher.finalize()?;
            self.progress.indexed_objects += 1;
        }
        self.progress.received_objects += 1;
        self.entries.push(current.entry);
        self.stage = if self.entries.len() as u64 == u64::from(self.total) {
            Stage::Trailer
        } else {
            Stage::EntryHeader
        };
        match progress(&self.progress) {
            0 => Ok(input),
            stop => Err(Error::Cancelled(stop)),
        }
    }

    /// Finishes the pack: checks the trailer, resolves every delta (fetching missing thin-pack
    /// bases through `bases`), writes `.idx` and `.rev`, and moves the three files into place.
    pub fn commit(
        &mut self,
        bases: &mut BaseLookup<'_>,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Committed> {
        match self.stage {
            Stage::Done => {}
            Stage::Finished(why) => return Err(Error::Finished(why)),
            Stage::Header => {
                self.stage = Stage::Finished("an error");
                return Err(Error::Header(pack::Error::TooSmall {
                    len: self.pending.len(),
                }));
            }
            Stage::Trailer => {
                self.stage = Stage::Finished("an error");
                return Err(Error::Truncated {
                    received: self.progress.received_objects,
                    total: self.total,
                    trailer: true,
                });
            }
            Stage::EntryHeader | Stage::EntryData => {
                self.stage = Stage::Finished("an error");
                return Err(Error::Truncated {
                    received: self.progress.received_objects,
                    total: self.total,
                    trailer: false,
                });
            }
        }
        self.stage = Stage::Finished("commit");
        let result = self.commit_inner(bases, progress);
        if result.is_err() {
            self.remove_temps();
        }
        result
    }

    fn commit_inner(
        &mut self,
        bases: &mut BaseLookup<'_>,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Committed> {
        let tmp_pack = self.tmp_pack.clone();
        let io_err = |e| Error::io(&tmp_pack, e);
        let mut file = self
            .file
            .take()
            .ok_or(Error::Finished("commit"))?
            .into_inner()
            .map_err(|e| io_err(e.into_error()))?;
        self.progress.total_deltas = self.progress.total_objects - self.progress.indexed_objects;

        let (map, _) = Mmap::open(&tmp_pack).map_err(io_err)?;
        let outcome = resolve::resolve_all(
            &map,
            &mut self.entries,
            &self.options,
            &mut self.progress,
            bases,
            progress,
        )?;
        drop(map);

        let mut checksum = self.trailer;
        if !outcome.appended.is_empty() {
            // --fix-thin: the bases overwrite the old trailer, then the count and the trailer
            // are rewritten and the whole pack rehashed.
            let start = self.consumed;
            file.seek(SeekFrom::Start(start)).map_err(io_err)?;
            file.write_all(&outcome.appended).map_err(io_err)?;
            let count = self.total + self.progress.local_objects;
            file.seek(SeekFrom::Start(8)).map_err(io_err)?;
            file.write_all(&count.to_be_bytes()).map_err(io_err)?;
            let end = start + outcome.appended.len() as u64;
            file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            let mut hasher = Sha1::new();
            let mut reader = (&mut file).take(end);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = reader.read(&mut buf).map_err(io_err)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            checksum = hasher.finalize()?;
            file.seek(SeekFrom::Start(end)).map_err(io_err)?;
            file.write_all(&checksum.0).map_err(io_err)?;
            file.set_len(end + pack::TRAILER_LEN as u64)
                .map_err(io_err)?;
        }

        let mut index: Vec<idx::IndexEntry> = self
            .entries
            .iter()
            .map(|entry| idx::IndexEntry {
                id: entry.id,
                offset: entry.offset,
                crc32: entry.crc32,
            })
            .collect();
        index.sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.offset.cmp(&b.offset)));

        let (tmp_idx, idx_file) = create_temp(&self.pack_dir, "tmp_idx_")?;
        self.temps.push(tmp_idx.clone());
        idx::write_v2(&index, &checksum, &idx_file).map_err(|e| Error::io(&tmp_idx, e))?;
        let (tmp_rev, rev_file) = create_temp(&self.pack_dir, "tmp_rev_")?;
        self.temps.push(tmp_rev.clone());
        let offsets: Vec<u64> = index.iter().map(|entry| entry.offset).collect();
        rev::write(&offsets, &checksum, &rev_file).map_err(|e| Error::io(&tmp_rev, e))?;

        let name = format!("pack-{checksum}");
        let pack_path = self.pack_dir.join(format!("{name}.pack"));
        let idx_path = self.pack_dir.join(format!("{name}.idx"));
        let rev_path = self.pack_dir.join(format!("{name}.rev"));
        let read_only = fs::Permissions::from_mode(0o444);
        for (path, file) in [
            (&tmp_pack, &file),
            (&tmp_idx, &idx_file),
            (&tmp_rev, &rev_file),
        ] {
            file.set_permissions(read_only.clone())
                .map_err(|e| Error::io(path, e))?;
            if self.options.fsync {
                file.sync_all().map_err(|e| Error::io(path, e))?;
            }
        }
        drop((file, idx_file, rev_file));
        // Readers find packs by their .idx: it goes last, so they never see a half pack.
        for (from, to) in [
            (&tmp_pack, &pack_path),
            (&tmp_rev, &rev_path),
            (&tmp_idx, &idx_path),
        ] {
            fs::rename(from, to).map_err(|e| Error::io(to, e))?;
            self.temps.retain(|temp| temp != from);
        }
        if self.options.fsync {
            File::open(&self.pack_dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|e| Error::io(&self.pack_dir, e))?;
        }
        Ok(Committed {
            checksum,
            pack_path,
            idx_path,
            rev_path,
            progress: self.progress,
        })
    }

    fn remove_temps(&mut self) {
        self.file = None;
        for path in self.temps.drain(..) {
            let _ = fs::remove_file(path);
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.remove_temps();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::delta::encode_size;
    use crate::hash::object_id;
    use crate::zlib::tests::deflate;

    /// A delta that copies all of `base` and appends `tail`.
    fn append_delta(base: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut delta = Vec::new();
        encode_size(base.len() as u64, &mut delta);
        encode_size((base.len() + tail.len()) as u64, &mut delta);
        delta.extend_from_slice(&[0x90, base.len() as u8, tail.len() as u8]);
        delta.extend_from_slice(tail);
        delta
    }

    /// A blob and a chain of OFS deltas on it (each on the previous), plus the expected ids.
    fn chain_pack(depth: usize) -> (Vec<u8>, Vec<ObjectId>) {
        let mut pack = b"PACK\0\0\0\x02".to_vec();
        pack.extend_from_slice(&(depth as u32 + 1).to_be_bytes());
        let mut content = b"base\n".to_vec();
        let mut ids = vec![object_id(ObjectKind::Blob, &content).expect("id")];
        let mut previous = pack.len() as u64;
        pack::encode_entry_header(3, content.len() as u64, &mut pack);
        pack.extend_from_slice(&deflate(&content));
        for level in 0..depth {
            let tail = format!("level {level}\n");
            let delta = append_delta(&content, tail.as_bytes());
            content.extend_from_slice(tail.as_bytes());
            ids.push(object_id(ObjectKind::Blob, &content).expect("id"));
            let offset = pack.len() as u64;
            pack::encode_entry_header(pack::OFS_DELTA, delta.len() as u64, &mut pack);
            pack::encode_ofs_delta_offset(offset - previous, &mut pack);
            pack.extend_from_slice(&deflate(&delta));
            previous = offset;
        }
        let mut hasher = Sha1::new();
        hasher.update(&pack);
        pack.extend_from_slice(&hasher.finalize().expect("hash").0);
        ids.sort();
        (pack, ids)
    }

    fn index(
        pack_bytes: &[u8],
        options: Options,
    ) -> Result<(Committed, Vec<Progress>, Vec<ObjectId>)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut indexer = Indexer::new(dir.path(), options)?;
        let mut calls = Vec::new();
        let mut progress = |p: &Progress| {
            calls.push(*p);
            0
        };
        for chunk in pack_bytes.chunks(5) {
            indexer.append(chunk, &mut progress)?;
        }
        let committed = indexer.commit(&mut |_: &ObjectId| None, &mut progress)?;
        let idx_bytes = fs::read(&committed.idx_path).map_err(|e| Error::io(dir.path(), e))?;
        let parsed = idx::PackIndex::from_bytes(&idx_bytes[..]).expect("valid idx");
        let ids: Vec<ObjectId> = (0..parsed.num_objects())
            .map(|i| parsed.oid_at(i))
            .collect();
        drop(indexer);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(names.len(), 3, "pack, idx, rev and nothing else");
        Ok((committed, calls, ids))
    }

    #[test]
    fn chains_resolve_with_and_without_a_base_budget() {
        // Contents stay under 256 bytes: the test delta has one-byte copy sizes.
        let (pack_bytes, ids) = chain_pack(20);
        for (threads, budget) in [(1, 0), (2, 0), (2, 1 << 20), (3, 64)] {
            let options = Options {
                threads,
                base_budget_bytes: budget,
                fsync: false,
                ..Options::default()
            };
            let (committed, calls, indexed) = index(&pack_bytes, options).expect("indexes");
            assert_eq!(indexed, ids);
            let last = committed.progress;
            assert_eq!(
                (
                    last.total_objects,
                    last.indexed_objects,
                    last.total_deltas,
                    last.indexed_deltas
                ),
                (21, 21, 20, 20)
            );
            // Header, 21 entries, 20 deltas.
            assert_eq!(calls.len(), 1 + 21 + 20);
        }
    }

    #[test]
    fn dropping_an_unfinished_indexer_removes_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pack_bytes, _) = chain_pack(3);
        let mut indexer = Indexer::new(dir.path(), Options::default()).expect("indexer");
        indexer
            .append(&pack_bytes[..30], &mut |_: &Progress| 0)
            .expect("append");
        assert!(indexer.temp_pack_path().exists());
        drop(indexer);
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
