//! Read-path benchmark: odbpack vs libgit2's own pack backend (libgit2-sys vendored 1.9.7),
//! through the public `git_odb_*` API, on corpora generated with git: one pack, 50 packs without
//! a MIDX, 50 packs with a MIDX. One and two threads (one odb per thread, as libgit2 apps get
//! parallelism). Prints ops/s and the odbpack / libgit2 ratio per corpus.
//!
//! Processes: each backend runs in a child process of its own (this binary re-executed with
//! `ODBPACK_BENCH_CHILD=libgit2`, `=odbpack` or `=memory`), so the peak RSS printed under each
//! corpus's table is that backend's alone. Children are fresh for every (strict setting,
//! corpus) pair and set libgit2's strict hash verification themselves (a process-global
//! option). The parent generates the corpora and drives the children with one-line requests on
//! their stdin, one-line answers on their stdout: `measure <op> <threads>` → `<ops/s> <check>`,
//! `digest <op>` → `<hex digest> <ids>`, `rss` → `<peak RSS in KiB>`. For every (op, threads)
//! it asks libgit2's child, then odbpack's (then the ceiling's), in rounds (3 by default), so a
//! slow spell of this shared machine lands on all; the table shows each backend's median, and
//! the median and range of the rounds' own ratios (each compares two measurements taken back
//! to back). Children write to the parent's stderr, so a failed read (which panics on purpose)
//! is shown there, and the parent then panics.
//!
//! Each measurement opens fresh odbs (`open, read 1, close` a fresh one for every read, and
//! frees it: what a command-line tool or a server opening the repository per request pays),
//! warms them up with the same operation for as long as it then measures, and asks for ids
//! from a list of its own, shuffled per thread and walked in order (see [`shuffled`]). Before
//! the tables, a line says how this machine's memory copies scale from one thread to two
//! ([`print_machine_scaling`]); under each corpus, a line times
//! inflate alone on every entry of its packs, zlib (libgit2's) and zlib-rs against sirocco
//! (ours), and sirocco on two threads ([`print_inflate_ratio`]): the ceilings of reads that are
//! mostly one inflate. `ODBPACK_BENCH_OPS` selects that line by the name `inflate alone`.
//!
//! The ceiling: a third child (`memory`) serves every object of the corpus from memory (see
//! [`memory`]), measured in the same rounds on the operations that read objects; the table's
//! last column is its ratio to libgit2, which a backend that decodes packs cannot expect to
//! beat through the same odb calls.
//!
//! Scaling: under each corpus's table, when both thread counts ran, a second table gives every
//! backend's own rate at two threads over its rate at one, per operation (see
//! [`print_scaling`]): odbpack's is the scaling target; libgit2's shows where a ratio
//! to libgit2 falls from one thread to two because libgit2 scaled past 2x on two cores.
//!
//! Checks: before timing a corpus, every child must return libgit2's results on every 37th id —
//! read (type and bytes), read_header (type and size), exists on present and on absent ids,
//! exists_prefix with 12 hex digits (the id found), read_prefix with 12 and with 40 hex digits.
//! Each child hashes its results in sample order and the parent compares the digests. The full
//! passes (`read every object`) must read every byte.
//!
//! Corpus: 5000 commits over 2000 files of 8–24 KiB (210k objects, 1.8 GB inflated, deltas up
//! to 50 deep), packed by `git pack-objects` once per 100 commits as a repository that fetched
//! 50 times holds it; `git repack -ad` of that for one pack, `git multi-pack-index write` for the
//! MIDX. Generating it takes about 2.5 minutes, once: it is kept under `target/bench-corpora/`.
//!
//! `cargo bench --bench read`. Environment: `ODBPACK_BENCH_COMMITS` (default 5000, 42 objects a
//! commit), `ODBPACK_BENCH_MS` per measurement (default 400), `ODBPACK_BENCH_ROUNDS` (default
//! 3), `ODBPACK_BENCH_CACHE_MB` (odbpack's delta-base cache budget, MiB),
//! `ODBPACK_BENCH_ODB_CACHE=off` (turns off libgit2's object cache, `GIT_OPT_ENABLE_CACHING`, in
//! front of both backends), `ODBPACK_BENCH_SHOW_ROUNDS=on` (every round's rate of each backend,
//! in order, on stderr under its row: how much one measurement varies), and comma-separated filters
//! `ODBPACK_BENCH_OPS`, `_CORPORA`, `_BACKENDS` (libgit2, odbpack, memory), `_THREADS` (1, 2),
//! `_STRICT` (off, on) — e.g. to profile one operation under callgrind (the children inherit
//! the environment).
//!
//! Comparing two builds on a noisy machine: a fixed amount of work counted rather than timed.
//! `ODBPACK_BENCH_MS=1 ODBPACK_BENCH_ROUNDS=1` makes `read every object` one pass over every
//! object; run it for one backend, corpus and thread under `valgrind --tool=callgrind
//! --cache-sim=yes --trace-children=yes` (set `--LL` to the machine's last-level cache) and compare
//! instructions and simulated cache misses, which barely vary from run to run;
//! `callgrind_annotate --tree=caller --sort=DLmr` says which callers miss the last level.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "read/memory.rs"]
mod memory;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Set in a child process to the backend it measures (see the module doc).
const CHILD_ENV: &str = "ODBPACK_BENCH_CHILD";

/// The equality checks sample every `SAMPLE_STRIDE`th id (about 5.7k of 210k).
const SAMPLE_STRIDE: usize = 37;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Files of the generated history, in `DIRECTORIES` directories.
const FILES: usize = 2000;
const DIRECTORIES: usize = 40;
/// Files each commit edits.
const EDITS_PER_COMMIT: usize = 20;

/// One version of a generated file: 150 to 449 lines of 55 bytes (8 to 24 KiB, 16 KiB on
/// average, the order of a real source tree's mean blob). A version written at commit `c`
/// differs from the file's base text in one line of every 17, so two versions of a file differ
/// in about 12% of lines.
fn file_body(file: usize, c: usize) -> String {
    let mut body = String::new();
    for line in 0..(150 + file % 300) {
        let version = if line % 17 == c % 17 { c } else { file };
        body.push_str(&format!(
            "line {line:>4} of file {file:>4} version {version:>5}: some source text\n"
        ));
    }
    body
}

/// Feeds git fast-import a deterministic history: `commits` commits over [`FILES`] files, each
/// commit editing [`EDITS_PER_COMMIT`] of them, in `runs` fast-import runs. Returns the tip after
/// each run.
///
/// fast-import only stores the objects: it deltas each blob against the blob written just before
/// it (another file), so its deltas are mostly literal data. [`pack_runs`] repacks them the way
/// real repositories get their packs.
fn generate(repo: &Repo, commits: usize, runs: usize) -> Vec<String> {
    let per_run = commits.div_ceil(runs);
    let mut tips = Vec::new();
    let mut next_commit = 0;
    for _ in 0..runs {
        let mut stream = Vec::new();
        for c in next_commit..(next_commit + per_run).min(commits) {
            writeln!(
                stream,
                "commit refs/heads/main\ncommitter C <c@example.com> {} +0000",
                1_700_000_000 + c
            )
            .expect("vec");
            let message = format!("commit {c}\n");
            write!(stream, "data {}\n{message}", message.len()).expect("vec");
            // Only a run's first commit names its parent; later ones continue the branch.
            if c > 0 && c == next_commit {
                writeln!(stream, "from refs/heads/main^0").expect("vec");
            }
            for k in 0..EDITS_PER_COMMIT {
                let file = (c * 37 + k * 101) % FILES;
                let body = file_body(file, c);
                write!(
                    stream,
                    "M 100644 inline d{}/f{file}.txt\ndata {}\n{body}\n",
                    file % DIRECTORIES,
                    body.len()
                )
                .expect("vec");
            }
        }
        next_commit += per_run;
        git_stdin(repo.path(), &["fast-import", "--quiet"], &stream);
        tips.push(repo.git(&["rev-parse", "main"]).trim().to_owned());
    }
    tips
}

/// Writes one pack per fast-import run into `objects/pack`, each holding the objects that run
/// added, deltified by `git pack-objects` (window 10, depth 50, deltas recomputed, bases named by
/// offset) — what a repository that fetched 50 times without a gc holds: a server sends
/// OFS_DELTA entries to every client that announces `ofs-delta`, which git and libgit2 do.
fn pack_runs(source: &Repo, tips: &[String], objects: &Path) {
    let pack_base = objects.join("pack/pack");
    let pack_base = pack_base.to_str().expect("utf-8 corpus path");
    let mut previous: Option<&str> = None;
    for tip in tips {
        let mut range = vec!["rev-list", "--objects", tip.as_str()];
        let exclude;
        if let Some(previous) = previous {
            exclude = format!("^{previous}");
            range.push(&exclude);
        }
        let listing = source.git(&range);
        git_stdin(
            source.path(),
            &[
                "pack-objects",
                "-q",
                "--no-reuse-delta",
                "--delta-base-offset",
                "--window=10",
                "--depth=50",
                pack_base,
            ],
            listing.as_bytes(),
        );
        previous = Some(tip);
    }
}

struct Corpus {
    name: &'static str,
    objects: PathBuf,
    /// Every object id, sorted, with its size.
    objects_list: Vec<(String, usize)>,
    /// The ids of `objects_list`, one hex id a line, for the children to load.
    id_list: tempfile::NamedTempFile,
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

/// The three corpora, generated once per commit count under `target/bench-corpora/` (git's
/// output is deterministic, so a cached corpus is the same corpus).
fn corpora(commits: usize) -> Vec<Corpus> {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-corpora/v3-{commits}"));
    let names = [
        ("1 pack", "one"),
        ("50 packs", "many"),
        ("50 packs+MIDX", "midx"),
    ];
    if !root.join("done").exists() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("corpus dir");
        let source = Repo::new();
        let tips = generate(&source, commits, 50);
        let head = tips.last().expect("at least one run");
        // "many" first: the other two start as copies of it.
        for dir in ["many", "one", "midx"] {
            let target = root.join(dir);
            git(
                &root,
                &["-c", "init.defaultBranch=main", "init", "-q", "--bare", dir],
            );
            if dir == "many" {
                pack_runs(&source, &tips, &target.join("objects"));
            } else {
                std::fs::remove_dir_all(target.join("objects")).expect("rm objects");
                copy_dir(&root.join("many/objects"), &target.join("objects"));
            }
            git(&target, &["update-ref", "refs/heads/main", head]);
        }
        git(&root.join("one"), &["repack", "-adq"]);
        git(&root.join("midx"), &["multi-pack-index", "write"]);
        std::fs::write(root.join("done"), b"").expect("mark corpus done");
    }
    names
        .iter()
        .map(|(name, dir)| {
            let repo = root.join(dir);
            let listing = git(
                &repo,
                &[
                    "cat-file",
                    "--batch-all-objects",
                    "--batch-check=%(objectname) %(objectsize)",
                ],
            );
            let objects_list: Vec<(String, usize)> = listing
                .lines()
                .map(|line| {
                    let (id, size) = line.split_once(' ').expect("id size");
                    (id.to_owned(), size.parse().expect("size"))
                })
                .collect();
            let mut id_list = tempfile::NamedTempFile::new().expect("id list file");
            let mut writer = std::io::BufWriter::new(id_list.as_file_mut());
            for (id, _) in &objects_list {
                writeln!(writer, "{id}").expect("write id list");
            }
            writer.flush().expect("write id list");
            drop(writer);
            Corpus {
                name,
                objects: repo.join("objects"),
                objects_list,
                id_list,
            }
        })
        .collect()
}

/// Deterministic pseudo-random sequence (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
}

/// `ids` in a random order drawn from `seed`, laid out in that order. A thread walks its copy
/// front to back, so fetching the next id is a load the CPU prefetches. Picking a random index
/// into the shared table instead cost a cache miss per operation (a 4 MiB table), paid by both
/// backends alike, which diluted the difference between them: a host asks for ids it has just
/// read (from a tree or a commit), which are in its cache.
fn shuffled(ids: &[libgit2_sys::git_oid], seed: u64) -> Vec<libgit2_sys::git_oid> {
    let mut rng = Rng(seed);
    let mut order: Vec<libgit2_sys::git_oid> = ids.to_vec();
    for last in (1..order.len()).rev() {
        order.swap(last, rng.next() % (last + 1));
    }
    order
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    ExistsHit,
    ExistsMiss,
    ExistsPrefix12,
    ReadHeader,
    Read,
    Prefix12,
    Prefix40,
    Foreach,
    ReadAll,
    OpenReadClose,
}

impl Op {
    const ALL: [Op; 10] = [
        Op::ExistsHit,
        Op::ExistsMiss,
        Op::ExistsPrefix12,
        Op::ReadHeader,
        Op::Read,
        Op::Prefix12,
        Op::Prefix40,
        Op::Foreach,
        Op::ReadAll,
        Op::OpenReadClose,
    ];

    /// The op named `token` in the children's protocol (its `Debug` name).
    fn from_token(token: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| format!("{op:?}") == token)
    }

    fn name(self) -> &'static str {
        match self {
            Op::ExistsHit => "exists (hit)",
            Op::ExistsMiss => "exists (miss)",
            Op::ExistsPrefix12 => "exists_prefix 12 hex",
            Op::ReadHeader => "read_header",
            Op::Read => "read (random)",
            Op::Prefix12 => "read_prefix 12 hex",
            Op::Prefix40 => "read_prefix 40 hex",
            Op::Foreach => "foreach (objects/s)",
            Op::ReadAll => "read every object",
            Op::OpenReadClose => "open, read 1, close",
        }
    }

    /// Whether the op reads objects' bytes: the ops the ceiling ([`Measured::Memory`]) is
    /// measured on.
    fn reads_objects(self) -> bool {
        matches!(self, Op::Read | Op::Prefix12 | Op::Prefix40 | Op::ReadAll)
    }
}

/// The ids of a corpus in the forms the operations need, prepared once outside the timing.
struct Ids {
    full: Vec<libgit2_sys::git_oid>,
    /// The same ids masked to 12 hex digits, as libgit2 hands prefixes to backends.
    short12: Vec<libgit2_sys::git_oid>,
    /// Ids that are in no pack (last byte changed until absent).
    missing: Vec<libgit2_sys::git_oid>,
}

impl Ids {
    fn new(hex: &[String]) -> Ids {
        let present: std::collections::HashSet<&str> = hex.iter().map(String::as_str).collect();
        let full = hex.iter().map(|id| oid(id)).collect();
        let short12 = hex.iter().map(|id| prefix_oid(&id[..12])).collect();
        let missing = hex
            .iter()
            .map(|id| {
                let mut candidate = id.clone();
                for last in 0..=255u8 {
                    candidate.replace_range(38..40, &format!("{last:02x}"));
                    if !present.contains(candidate.as_str()) {
                        break;
                    }
                }
                oid(&candidate)
            })
            .collect();
        Ids {
            full,
            short12,
            missing,
        }
    }
}

/// Runs `op` on a fresh odb per thread (from `open`) for about `budget`; returns total ops/s
/// and a checksum of results (bytes read), so both backends can be checked to do the same work.
fn measure(
    open: &(dyn Fn() -> Odb + Sync),
    op: Op,
    threads: usize,
    ids: &Ids,
    budget: Duration,
) -> (f64, u64) {
    let results: Vec<(usize, Duration, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let seed = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                    // `open, read 1, close` opens its own odbs: none may keep the store alive.
                    let held = (op != Op::OpenReadClose).then(open);
                    let odb = || held.as_ref().expect("this operation reads one odb");
                    let schedule = match op {
                        Op::ExistsMiss => shuffled(&ids.missing, seed),
                        Op::Prefix12 | Op::ExistsPrefix12 => shuffled(&ids.short12, seed),
                        Op::Foreach | Op::ReadAll => Vec::new(),
                        _ => shuffled(&ids.full, seed),
                    };
                    let mut next = schedule.iter().cycle();
                    let (mut count, mut check) = (0usize, 0u64);
                    let n = ids.full.len();
                    // Every id exists: a failed read is a bug, never a fast operation.
                    let ok = |result: Result<usize, std::ffi::c_int>| match result {
                        Ok(size) => size as u64,
                        Err(rc) => panic!("{op:?} failed: {rc} {}", last_error()),
                    };
                    // Warm up first (same odb, same op): past the cold start (maps, index
                    // tables, first lookups). The delta-base caches start empty with the fresh
                    // odbs and fill as far as the warm-up takes them; the full passes warm
                    // themselves.
                    let warm_up = !matches!(op, Op::Foreach | Op::ReadAll);
                    let mut start = Instant::now();
                    let mut warming = warm_up;
                    while warming || start.elapsed() < budget {
                        if warming && start.elapsed() >= budget {
                            warming = false;
                            (count, check) = (0, 0);
                            start = Instant::now();
                        }
                        match op {
                            Op::Foreach => {
                                let listed = odb().foreach_count();
                                count += listed;
                                check += listed as u64;
                                continue;
                            }
                            Op::ReadAll => {
                                for id in &ids.full {
                                    check += odb().read_size(id).map_or(0, |size| size as u64);
                                }
                                count += n;
                                continue;
                            }
                            // What a command-line tool, or a server that opens the repository
                            // for each request, pays: a fresh odb (for odbpack a fresh store,
                            // unless the other thread's odb is open at that moment: directory
                            // scanned, indexes and packs mapped), one read, the odb freed (its
                            // maps unmapped).
                            Op::OpenReadClose => {
                                for id in next.by_ref().take(4) {
                                    check += ok(open().read_size(id));
                                    count += 1;
                                }
                                continue;
                            }
                            _ => {}
                        }
                        let odb = odb();
                        for id in next.by_ref().take(256) {
                            check += match op {
                                Op::ExistsHit | Op::ExistsMiss => u64::from(odb.exists_raw(id)),
                                Op::ReadHeader => ok(odb.read_header_size(id)),
                                Op::Read => ok(odb.read_size(id)),
                                Op::ExistsPrefix12 => ok(odb
                                    .exists_prefix_raw(id, 12)
                                    .map(|found| usize::from(found.id[19]))),
                                Op::Prefix12 => ok(odb.read_prefix_size(id, 12)),
                                Op::Prefix40 => ok(odb.read_prefix_size(id, 40)),
                                Op::Foreach | Op::ReadAll | Op::OpenReadClose => 0,
                            };
                            count += 1;
                        }
                    }
                    (count, start.elapsed(), check)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    let rate = results
        .iter()
        .map(|(count, elapsed, _)| *count as f64 / elapsed.as_secs_f64())
        .sum();
    (rate, results.iter().map(|r| r.2).sum())
}

/// The middle value of `samples` (the mean of the two middle ones for an even count).
fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// The median of the rounds' ratios (round `i` of one backend against round `i` of the other,
/// measured back to back), and with more than one round their range. The median of ratios,
/// not the ratio of medians: a slow spell of the machine that spans a round lowers both of its
/// measurements, and its ratio stays comparable with the others.
fn ratio_cell(ours: &[f64], theirs: &[f64]) -> String {
    let per_round: Vec<f64> = ours.iter().zip(theirs).map(|(o, t)| o / t).collect();
    let ratio = median(&per_round);
    if per_round.len() < 2 {
        return format!("{ratio:.2}x");
    }
    let low = per_round.iter().copied().fold(f64::INFINITY, f64::min);
    let high = per_round.iter().copied().fold(0.0, f64::max);
    format!("{ratio:.2}x ({low:.2}–{high:.2})")
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}

/// Each backend's own scaling from one thread to two, per operation: its median rate at two
/// threads over its median at one (the target for odbpack: at least 1.8x). Beside
/// odbpack's, libgit2's says whether a ratio to libgit2 moved between the thread counts
/// because odbpack scaled less or because libgit2 scaled more; the ceiling's, how far the
/// machine let a backend that only copies scale.
fn print_scaling(ops: &[Op], backends: &[Measured], medians: &[(Op, usize, Measured, f64)]) {
    let rate = |op: Op, threads: usize, backend: Measured| {
        medians
            .iter()
            .find(|m| m.0 == op && m.1 == threads && m.2 == backend)
            .map(|m| m.3)
    };
    let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
    println!(
        "\nscaling from 1 thread to 2 (median at 2 over median at 1):\n\n| op | {} |\n|---|{}",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    for &op in ops {
        let cells: Vec<String> = backends
            .iter()
            .map(|&b| match (rate(op, 1, b), rate(op, 2, b)) {
                (Some(one), Some(two)) => format!("{:.2}x", two / one),
                _ => "-".to_owned(),
            })
            .collect();
        println!("| {} | {} |", op.name(), cells.join(" | "));
    }
}

/// Comma-separated filter from the environment; empty = everything.
fn wanted(var: &str, name: &str) -> bool {
    match std::env::var(var) {
        Ok(list) if !list.is_empty() => list.split(',').any(|w| name.contains(w.trim())),
        _ => true,
    }
}

/// What a child process serves objects with.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Measured {
    /// libgit2's own pack backend.
    Libgit2,
    /// Ours.
    Odbpack,
    /// Every object from memory ([`memory`]): about the most a pack backend can reach, measured
    /// on the operations that read objects ([`Op::reads_objects`]).
    Memory,
}

impl Measured {
    const ALL: [Measured; 3] = [Measured::Libgit2, Measured::Odbpack, Measured::Memory];

    fn name(self) -> &'static str {
        match self {
            Measured::Libgit2 => "libgit2",
            Measured::Odbpack => "odbpack",
            Measured::Memory => "memory",
        }
    }
}

/// This process's peak resident set, KiB (Linux's unit for `ru_maxrss`).
fn peak_rss_kib() -> libc::c_long {
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to the struct above, which getrusage only writes.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_maxrss
}

/// 64-bit FNV-1a: a stable digest both children compute alike, without a dependency.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A failure is a result too: both backends must fail alike.
    fn error(&mut self, rc: std::ffi::c_int) {
        self.write(b"error ");
        self.write(&rc.to_le_bytes());
    }

    fn header(&mut self, kind: &str, size: usize) {
        // The size's fixed width keeps type, size and bytes from running into each other.
        self.write(kind.as_bytes());
        self.write(&(size as u64).to_le_bytes());
    }

    fn object(&mut self, result: Result<Object, std::ffi::c_int>) {
        match result {
            Ok(object) => {
                // The id matters for read_prefix: which object a prefix found.
                self.write(object.id.as_bytes());
                self.header(&object.kind, object.data.len());
                self.write(&object.data);
            }
            Err(rc) => self.error(rc),
        }
    }
}

/// Digest of what `op` returns for every `SAMPLE_STRIDE`th id, in order, and the number of ids.
fn result_digest(odb: &Odb, ids: &Ids, op: Op) -> (u64, usize) {
    let mut hash = Fnv::new();
    let sample: Vec<usize> = (0..ids.full.len()).step_by(SAMPLE_STRIDE).collect();
    for &i in &sample {
        match op {
            Op::Read => hash.object(odb.read_raw(&ids.full[i])),
            Op::ReadHeader => match odb.read_header_raw(&ids.full[i]) {
                Ok((kind, size)) => hash.header(&kind, size),
                Err(rc) => hash.error(rc),
            },
            Op::ExistsHit => hash.write(&[u8::from(odb.exists_raw(&ids.full[i]))]),
            Op::ExistsMiss => hash.write(&[u8::from(odb.exists_raw(&ids.missing[i]))]),
            Op::ExistsPrefix12 => match odb.exists_prefix_raw(&ids.short12[i], 12) {
                Ok(found) => hash.write(&found.id),
                Err(rc) => hash.error(rc),
            },
            Op::Prefix12 => hash.object(odb.read_prefix_raw(&ids.short12[i], 12)),
            Op::Prefix40 => hash.object(odb.read_prefix_raw(&ids.full[i], 40)),
            Op::Foreach | Op::ReadAll | Op::OpenReadClose => {
                panic!("no result digest for {op:?}")
            }
        }
    }
    (hash.0, sample.len())
}

/// A child process: measures `backend` on one corpus, answering the parent's requests until its
/// stdin closes. Arguments: objects dir, id list file, strict hash verification `on` or `off`.
fn child_main(backend: &str) {
    let backend = Measured::ALL
        .into_iter()
        .find(|b| b.name() == backend)
        .unwrap_or_else(|| panic!("{CHILD_ENV}={backend:?}: expected libgit2, odbpack or memory"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [objects, id_list, strict] = <[String; 3]>::try_from(args).unwrap_or_else(|args| {
        panic!("bench child arguments: <objects dir> <id list> <on|off>, got {args:?}")
    });
    let objects = PathBuf::from(objects);
    set_strict_hash_verification(strict == "on");
    if std::env::var("ODBPACK_BENCH_ODB_CACHE").is_ok_and(|v| v == "off") {
        set_object_caching(false);
    }
    let ids = {
        let hex: Vec<String> = std::fs::read_to_string(&id_list)
            .expect("read the id list")
            .lines()
            .map(str::to_owned)
            .collect();
        Ids::new(&hex)
    };
    let open: Box<dyn Fn() -> Odb + Sync> = match backend {
        Measured::Libgit2 => Box::new(|| Odb::open(&objects, Backend::Libgit2)),
        Measured::Odbpack => Box::new(|| Odb::open(&objects, Backend::Odbpack)),
        Measured::Memory => {
            // Loaded once, for the child's lifetime: every odb it opens serves from it.
            let loaded: &'static memory::Objects =
                Box::leak(Box::new(memory::Objects::load(&objects, &ids.full)));
            Box::new(move || memory::open(loaded))
        }
    };
    let budget = Duration::from_millis(env_usize("ODBPACK_BENCH_MS", 400) as u64);
    let mut answers = std::io::stdout().lock();
    for request in std::io::stdin().lock().lines() {
        let request = request.expect("read a request from the parent");
        let words: Vec<&str> = request.split(' ').collect();
        let answer = match words[..] {
            ["measure", op, threads] => {
                let op = Op::from_token(op).unwrap_or_else(|| panic!("unknown op in {request:?}"));
                let threads = threads.parse().expect("thread count");
                let (rate, check) = measure(&*open, op, threads, &ids, budget);
                format!("{rate} {check}")
            }
            ["digest", op] => {
                let op = Op::from_token(op).unwrap_or_else(|| panic!("unknown op in {request:?}"));
                let (digest, sampled) = result_digest(&open(), &ids, op);
                format!("{digest:016x} {sampled}")
            }
            ["rss"] => peak_rss_kib().to_string(),
            _ => panic!("unknown request {request:?}"),
        };
        writeln!(answers, "{answer}")
            .and_then(|()| answers.flush())
            .expect("answer the parent");
    }
}

/// The parent's handle on a child process measuring one backend on one corpus.
struct Child {
    backend: Measured,
    process: std::process::Child,
    /// `None` once closed by [`Child::finish`].
    requests: Option<ChildStdin>,
    answers: BufReader<ChildStdout>,
}

impl Child {
    fn spawn(backend: Measured, corpus: &Corpus, strict: bool) -> Child {
        let mut process = Command::new(std::env::current_exe().expect("bench binary path"))
            .env(CHILD_ENV, backend.name())
            .arg(&corpus.objects)
            .arg(corpus.id_list.path())
            .arg(if strict { "on" } else { "off" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a bench child process");
        let requests = process.stdin.take();
        let answers = BufReader::new(process.stdout.take().expect("child stdout"));
        Child {
            backend,
            process,
            requests,
            answers,
        }
    }

    /// Sends one request, returns the answer's words; panics if the child ends instead.
    fn ask(&mut self, request: &str) -> Vec<String> {
        let requests = self.requests.as_mut().expect("child not finished");
        let mut answer = String::new();
        let exchanged = writeln!(requests, "{request}")
            .and_then(|()| requests.flush())
            .and_then(|()| self.answers.read_line(&mut answer));
        match exchanged {
            Ok(_) if answer.ends_with('\n') => {
                answer.split_whitespace().map(str::to_owned).collect()
            }
            // End of file (or a cut-off line): the child exited, most likely a panic.
            Ok(_) => self.died(request, "its stdout ended".to_owned()),
            Err(error) => self.died(request, error.to_string()),
        }
    }

    fn died(&mut self, request: &str, what: String) -> ! {
        let status = match self.process.wait() {
            Ok(status) => status.to_string(),
            Err(error) => format!("waiting for it failed: {error}"),
        };
        panic!(
            "the {} bench child failed on `{request}`: {what}, {status} (its stderr is above)",
            self.backend.name()
        )
    }

    fn bad_answer(&self, request: &str, words: &[String], expected: &str) -> ! {
        panic!(
            "the {} bench child answered {words:?} to `{request}`, expected `{expected}`",
            self.backend.name()
        )
    }

    /// Ops/s and the checksum of the results (see [`measure`]).
    fn measure(&mut self, op: Op, threads: usize) -> (f64, u64) {
        let request = format!("measure {op:?} {threads}");
        let words = self.ask(&request);
        let parsed = match &words[..] {
            [rate, check] => rate.parse().ok().zip(check.parse().ok()),
            _ => None,
        };
        parsed.unwrap_or_else(|| self.bad_answer(&request, &words, "<ops/s> <check>"))
    }

    /// The digest of `op`'s results on the sample (see [`result_digest`]) and the sample's size.
    fn digest(&mut self, op: Op) -> (u64, usize) {
        let request = format!("digest {op:?}");
        let words = self.ask(&request);
        let parsed = match &words[..] {
            [digest, sampled] => u64::from_str_radix(digest, 16)
                .ok()
                .zip(sampled.parse().ok()),
            _ => None,
        };
        parsed.unwrap_or_else(|| self.bad_answer(&request, &words, "<hex digest> <ids>"))
    }

    fn peak_rss_kib(&mut self) -> i64 {
        let words = self.ask("rss");
        let parsed = match &words[..] {
            [kib] => kib.parse().ok(),
            _ => None,
        };
        parsed.unwrap_or_else(|| self.bad_answer("rss", &words, "<KiB>"))
    }

    /// Closes the child's stdin, which ends it, and checks that it exited cleanly.
    fn finish(mut self) {
        drop(self.requests.take());
        let status = self.process.wait().expect("wait for a bench child");
        assert!(
            status.success(),
            "the {} bench child exited with {status} (its stderr is above)",
            self.backend.name()
        );
    }
}

impl Drop for Child {
    /// When the parent panics with a child still running (say the other child failed), ends it
    /// now rather than leaving it to finish a measurement nobody reads.
    fn drop(&mut self) {
        if self.requests.is_some() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// The equality checks: the op whose calls are compared, and the name printed for it.
const SAME_RESULT_CHECKS: [(Op, &str); 7] = [
    (Op::Read, "read"),
    (Op::ReadHeader, "read_header"),
    (Op::ExistsHit, "exists"),
    (Op::ExistsMiss, "exists miss"),
    (Op::ExistsPrefix12, "exists_prefix 12"),
    (Op::Prefix12, "read_prefix 12"),
    (Op::Prefix40, "read_prefix 40"),
];

/// Panics naming the first check on which a child's results differ from the first child's
/// (libgit2's, unless filtered out).
fn check_same_results(children: &mut [Child]) {
    let [first, others @ ..] = children else {
        return;
    };
    if others.is_empty() {
        println!("results identical: not checked (one backend, see ODBPACK_BENCH_BACKENDS)");
        return;
    }
    let mut sampled = 0;
    for (op, name) in SAME_RESULT_CHECKS {
        let (theirs, their_sample) = first.digest(op);
        for other in others.iter_mut() {
            let (ours, our_sample) = other.digest(op);
            assert!(
                ours == theirs && our_sample == their_sample,
                "{}'s results differ from {}'s for {name}: digest {ours:016x} over \
                 {our_sample} ids, {theirs:016x} over {their_sample}",
                other.backend.name(),
                first.backend.name()
            );
            sampled = our_sample;
        }
    }
    let names: Vec<&str> = SAME_RESULT_CHECKS.iter().map(|(_, name)| *name).collect();
    println!("results identical: {} ({sampled} ids)", names.join(", "));
}

/// Runs `rate` on `threads` threads at once; returns the sum of what they return (each
/// thread's own units per second).
fn summed_over_threads(threads: usize, rate: impl Fn() -> f64 + Sync) -> f64 {
    let rate = &rate;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(rate)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("calibration thread"))
            .sum()
    })
}

/// Rate of `work` (units per second) on `threads` threads at once, for about `budget`.
fn parallel_rate(threads: usize, budget: Duration, work: impl Fn() -> usize + Sync) -> f64 {
    summed_over_threads(threads, || {
        let start = Instant::now();
        let mut units = 0;
        while start.elapsed() < budget {
            units += work();
        }
        units as f64 / start.elapsed().as_secs_f64()
    })
}

/// What two threads can gain on this machine where memory is the limit, printed before the
/// tables: how a copy between buffers far larger than the CPU caches scales from one thread to
/// two. Reads that copy tens of KiB per object are partly bound by it.
fn print_machine_scaling(budget: Duration) {
    const COPY_BYTES: usize = 64 << 20;
    let copy = || {
        thread_local! {
            static BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
                std::cell::RefCell::new((vec![1; COPY_BYTES], vec![0; COPY_BYTES]));
        }
        BUFFERS.with_borrow_mut(|(from, to)| {
            to.copy_from_slice(from);
            std::hint::black_box(&to);
        });
        COPY_BYTES
    };
    let (one, two) = (
        parallel_rate(1, budget, copy),
        parallel_rate(2, budget, copy),
    );
    println!(
        "machine: copying 64 MiB buffers, 1 thread {:.1} GB/s, 2 threads {:.1} GB/s: {:.2}x",
        one / 1e9,
        two / 1e9,
        two / one
    );
}

/// Every entry of the packs in `objects/pack` as (pack bytes, offset of its zlib stream,
/// inflated size). The input handed to a decoder runs to the end of the pack body: a decoder
/// stops at the end of its stream, as when reading from a mapped pack.
fn pack_streams(objects: &Path) -> Vec<(std::sync::Arc<Vec<u8>>, usize, usize)> {
    let mut streams = Vec::new();
    for entry in std::fs::read_dir(objects.join("pack")).expect("pack dir") {
        let idx_path = entry.expect("pack dir entry").path();
        if idx_path.extension().is_none_or(|x| x != "idx") {
            continue;
        }
        let index = odbpack::format::idx::PackIndex::from_bytes(
            std::fs::read(&idx_path).expect("read an .idx"),
        )
        .expect("parse an .idx");
        let pack = std::sync::Arc::new(
            std::fs::read(idx_path.with_extension("pack")).expect("read a .pack"),
        );
        for position in 0..index.num_objects() {
            let offset = index.offset_at(position).expect("entry offset");
            let entry = odbpack::format::pack::parse_entry(&pack, offset).expect("entry header");
            streams.push((
                pack.clone(),
                entry.data_offset as usize,
                entry.size as usize,
            ));
        }
    }
    streams
}

/// Inflates every stream once on each of `threads` threads at once, each with an inflater of
/// its own from `make` (called as `inflate(input, out)`, so a decoder's state is reused from
/// stream to stream, as the read path does); returns the inflated bytes per second of all of
/// them together.
fn inflate_rate<F: FnMut(&[u8], &mut [u8])>(
    streams: &[(std::sync::Arc<Vec<u8>>, usize, usize)],
    threads: usize,
    make: impl Fn() -> F + Sync,
) -> f64 {
    let longest = streams.iter().map(|s| s.2).max().unwrap_or(0);
    summed_over_threads(threads, || {
        let mut inflate = make();
        let mut out = vec![0u8; longest];
        let start = Instant::now();
        let mut total = 0;
        for (pack, data_offset, size) in streams {
            inflate(&pack[*data_offset..pack.len() - 20], &mut out[..*size]);
            total += size;
        }
        total as f64 / start.elapsed().as_secs_f64()
    })
}

/// Inflate alone, on every entry of the corpus's packs: how much faster odbpack's (sirocco) is
/// than the zlib libgit2 links, on one thread, and how sirocco scales from one thread to two on
/// this machine. A read that is mostly one whole-object inflate can beat libgit2 by little more
/// than the first, and scale by little more than the second. zlib-rs (through flate2, one
/// `Decompress` reset for each stream) is timed too: the decoder gitoxide uses, and the one
/// sirocco was chosen over.
fn print_inflate_ratio(objects: &Path, rounds: usize, two_threads: bool) {
    let streams = pack_streams(objects);
    let sirocco = || {
        |input: &[u8], out: &mut [u8]| {
            odbpack::zlib::inflate_exact(input, out).expect("sirocco inflates a pack entry");
        }
    };
    let zlib = || {
        |input: &[u8], out: &mut [u8]| {
            let mut out_len = out.len() as libz_sys::uLong;
            // SAFETY: both pointers and lengths describe live buffers; zlib writes at most
            // `out_len` bytes into `out` and reads at most `input.len()` bytes.
            let rc = unsafe {
                libz_sys::uncompress(
                    out.as_mut_ptr(),
                    &mut out_len,
                    input.as_ptr(),
                    input.len() as libz_sys::uLong,
                )
            };
            assert!(
                rc == libz_sys::Z_OK && out_len as usize == out.len(),
                "zlib: {rc}"
            );
        }
    };
    let zlib_rs = || {
        let mut decoder = flate2::Decompress::new(true);
        move |input: &[u8], out: &mut [u8]| {
            decoder.reset(true);
            let status = decoder
                .decompress(input, out, flate2::FlushDecompress::Finish)
                .expect("zlib-rs inflates a pack entry");
            assert!(
                status == flate2::Status::StreamEnd && decoder.total_out() == out.len() as u64,
                "zlib-rs: {status:?} after {} bytes",
                decoder.total_out()
            );
        }
    };
    let (mut ours, mut theirs, mut rs, mut ours_two) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        theirs.push(inflate_rate(&streams, 1, zlib));
        rs.push(inflate_rate(&streams, 1, zlib_rs));
        ours.push(inflate_rate(&streams, 1, sirocco));
        if two_threads {
            ours_two.push(inflate_rate(&streams, 2, sirocco));
        }
    }
    let scaling = if two_threads {
        format!(
            "; sirocco on 2 threads {:.0} MB/s, {}",
            median(&ours_two) / 1e6,
            ratio_cell(&ours_two, &ours)
        )
    } else {
        String::new()
    };
    println!(
        "inflate alone, every entry of these packs: zlib (libgit2's) {:.0} MB/s, zlib-rs {:.0} \
         MB/s, sirocco (odbpack's) {:.0} MB/s, {} zlib's, {} zlib-rs's{scaling}",
        median(&theirs) / 1e6,
        median(&rs) / 1e6,
        median(&ours) / 1e6,
        ratio_cell(&ours, &theirs),
        ratio_cell(&ours, &rs)
    );
}

fn main() {
    if let Ok(backend) = std::env::var(CHILD_ENV) {
        child_main(&backend);
        return;
    }
    let commits = env_usize("ODBPACK_BENCH_COMMITS", 5000);
    let started = Instant::now();
    let corpora = corpora(commits);
    eprintln!("corpora ready in {:.1}s", started.elapsed().as_secs_f64());
    let backends: Vec<Measured> = Measured::ALL
        .into_iter()
        .filter(|&b| wanted("ODBPACK_BENCH_BACKENDS", b.name()))
        .collect();
    let rounds = env_usize("ODBPACK_BENCH_ROUNDS", 3).max(1);
    let show_rounds = std::env::var("ODBPACK_BENCH_SHOW_ROUNDS").is_ok_and(|v| v == "on");
    let thread_counts: Vec<usize> = [1, 2]
        .into_iter()
        .filter(|t| wanted("ODBPACK_BENCH_THREADS", &t.to_string()))
        .collect();
    if thread_counts.contains(&2) {
        print_machine_scaling(Duration::from_millis(500));
    }
    for strict in [false, true] {
        if !wanted("ODBPACK_BENCH_STRICT", if strict { "on" } else { "off" }) {
            continue;
        }
        println!(
            "\n## strict hash verification {}",
            if strict {
                "on (libgit2 default)"
            } else {
                "off"
            }
        );
        for corpus in corpora
            .iter()
            .filter(|c| wanted("ODBPACK_BENCH_CORPORA", c.name))
        {
            let total_bytes: u64 = corpus
                .objects_list
                .iter()
                .map(|(_, size)| *size as u64)
                .sum();
            let packs = std::fs::read_dir(corpus.objects.join("pack"))
                .expect("pack dir")
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "pack"))
                })
                .count();
            println!(
                "\n### {} ({} objects, {} packs)\n",
                corpus.name,
                corpus.objects_list.len(),
                packs
            );
            let ops: Vec<Op> = if strict {
                vec![Op::Read, Op::Prefix40, Op::ReadAll]
            } else {
                Op::ALL.to_vec()
            };
            let ops: Vec<Op> = ops
                .into_iter()
                .filter(|op| wanted("ODBPACK_BENCH_OPS", op.name()))
                .collect();
            // Fresh processes per corpus: each one's peak RSS is this corpus's. The ceiling's
            // child loads the whole corpus, so only when it is to measure something.
            let mut children: Vec<Child> = backends
                .iter()
                .filter(|&&b| b != Measured::Memory || ops.iter().any(|op| op.reads_objects()))
                .map(|&backend| Child::spawn(backend, corpus, strict))
                .collect();
            check_same_results(&mut children);
            println!(
                "\n| op | threads | libgit2 | odbpack | odbpack / libgit2 (median and range of \
                 {rounds} rounds) | memory / libgit2: the ceiling |"
            );
            println!("|---|---|---|---|---|---|");
            // Each (op, threads, backend)'s median rate, for the scaling table.
            let mut medians: Vec<(Op, usize, Measured, f64)> = Vec::new();
            for &op in &ops {
                for &threads in &thread_counts {
                    // Rounds alternate the backends, so a slow spell of the machine (a
                    // neighbour on the host) lands on all; each backend's median is shown.
                    let mut measured: Vec<&mut Child> = children
                        .iter_mut()
                        .filter(|c| c.backend != Measured::Memory || op.reads_objects())
                        .collect();
                    let mut rates: Vec<(Measured, Vec<f64>)> =
                        measured.iter().map(|c| (c.backend, Vec::new())).collect();
                    for _ in 0..rounds {
                        for (child, (_, samples)) in measured.iter_mut().zip(&mut rates) {
                            let (rate, check) = child.measure(op, threads);
                            // A full pass reads every byte of every object, however many
                            // passes ran.
                            if op == Op::ReadAll {
                                assert_eq!(
                                    check % total_bytes,
                                    0,
                                    "{:?} read every object fully",
                                    child.backend
                                );
                            }
                            samples.push(rate);
                        }
                    }
                    let samples_of = |b: Measured| {
                        rates
                            .iter()
                            .find(|(x, _)| *x == b)
                            .map(|(_, samples)| samples.as_slice())
                    };
                    let cell =
                        |b: Measured| samples_of(b).map_or("-".to_owned(), |s| human(median(s)));
                    let ratio_to_libgit2 =
                        |b: Measured| match (samples_of(b), samples_of(Measured::Libgit2)) {
                            (Some(ours), Some(theirs)) => ratio_cell(ours, theirs),
                            _ => "-".to_owned(),
                        };
                    println!(
                        "| {} | {threads} | {} | {} | {} | {} |",
                        op.name(),
                        cell(Measured::Libgit2),
                        cell(Measured::Odbpack),
                        ratio_to_libgit2(Measured::Odbpack),
                        ratio_to_libgit2(Measured::Memory)
                    );
                    medians.extend(
                        rates
                            .iter()
                            .map(|(backend, samples)| (op, threads, *backend, median(samples))),
                    );
                    if show_rounds {
                        for (backend, samples) in &rates {
                            let listed: Vec<String> = samples.iter().map(|&r| human(r)).collect();
                            eprintln!(
                                "rounds of {} {threads} thread(s), {}: {}",
                                op.name(),
                                backend.name(),
                                listed.join(" ")
                            );
                        }
                    }
                }
            }
            if thread_counts == [1, 2] {
                print_scaling(&ops, &backends, &medians);
            }
            // The ceiling's child holds the whole corpus: its RSS says nothing of a backend's.
            let peaks: Vec<String> = children
                .iter_mut()
                .filter(|child| child.backend != Measured::Memory)
                .map(|child| {
                    format!(
                        "{} {} MiB",
                        child.backend.name(),
                        child.peak_rss_kib() / 1024
                    )
                })
                .collect();
            let budget = if backends.contains(&Measured::Odbpack) {
                format!(
                    " (odbpack's delta-cache budget {} MiB)",
                    options_from_env().delta_cache_bytes >> 20
                )
            } else {
                String::new()
            };
            println!("\npeak RSS: {}{budget}", peaks.join(", "));
            if !strict && wanted("ODBPACK_BENCH_OPS", "inflate alone") {
                print_inflate_ratio(&corpus.objects, rounds, thread_counts.contains(&2));
            }
            for child in children {
                child.finish();
            }
        }
    }
}
