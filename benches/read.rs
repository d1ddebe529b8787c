//! Read-path benchmark: odbpack vs libgit2's own pack backend (libgit2-sys vendored 1.9.7),
//! through the public `git_odb_*` API, in the same run, on corpora generated with git:
//! one pack, 50 packs without a MIDX, 50 packs with a MIDX. One and two threads (one odb per
//! thread, as libgit2 apps get parallelism). Prints ops/s, the ratio and 2-thread scaling.
//!
//! `cargo bench --bench read`. Environment: `ODBPACK_BENCH_COMMITS` (default 4000, about 180k
//! objects), `ODBPACK_BENCH_MS` per measurement (default 400), and comma-separated filters
//! `ODBPACK_BENCH_OPS`, `_CORPORA`, `_BACKENDS` (libgit2, odbpack), `_THREADS` (1, 2),
//! `_STRICT` (off, on) — e.g. to profile one operation under callgrind.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Feeds git fast-import a deterministic history: `commits` commits over 2000 files in 40
/// directories, each commit editing 20 files a little (long delta chains), in `runs` separate
/// fast-import runs (each run writes one pack).
fn generate(repo: &Repo, commits: usize, runs: usize) {
    let per_run = commits.div_ceil(runs);
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
            for k in 0..20 {
                let file = (c * 37 + k * 101) % 2000;
                let mut body = String::new();
                for line in 0..(60 + file % 50) {
                    let version = if line % 17 == c % 17 { c } else { file };
                    body.push_str(&format!("line {line} of file {file} version {version}\n"));
                }
                write!(
                    stream,
                    "M 100644 inline d{}/f{file}.txt\ndata {}\n{body}\n",
                    file % 40,
                    body.len()
                )
                .expect("vec");
            }
        }
        next_commit += per_run;
        git_stdin(
            repo.path(),
            &["fast-import", "--quiet", "--depth=50"],
            &stream,
        );
    }
}

struct Corpus {
    name: &'static str,
    objects: PathBuf,
    /// Every object id, sorted, with its size.
    objects_list: Vec<(String, usize)>,
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
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-corpora/{commits}"));
    let names = [
        ("1 pack", "one"),
        ("50 packs", "many"),
        ("50 packs+MIDX", "midx"),
    ];
    if !root.join("done").exists() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("corpus dir");
        let many = Repo::new();
        generate(&many, commits, 50);
        let head = many.git(&["rev-parse", "main"]).trim().to_owned();
        for (_, dir) in names {
            let target = root.join(dir);
            git(
                &root,
                &["-c", "init.defaultBranch=main", "init", "-q", "--bare", dir],
            );
            std::fs::remove_dir_all(target.join("objects")).expect("rm objects");
            copy_dir(&many.objects_dir(), &target.join("objects"));
            git(&target, &["update-ref", "refs/heads/main", &head]);
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
            let objects_list = listing
                .lines()
                .map(|line| {
                    let (id, size) = line.split_once(' ').expect("id size");
                    (id.to_owned(), size.parse().expect("size"))
                })
                .collect();
            Corpus {
                name,
                objects: repo.join("objects"),
                objects_list,
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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    ExistsHit,
    ExistsMiss,
    ReadHeader,
    Read,
    Prefix12,
    Prefix40,
    Foreach,
    ReadAll,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::ExistsHit => "exists (hit)",
            Op::ExistsMiss => "exists (miss)",
            Op::ReadHeader => "read_header",
            Op::Read => "read (random)",
            Op::Prefix12 => "read_prefix 12 hex",
            Op::Prefix40 => "read_prefix 40 hex",
            Op::Foreach => "foreach (objects/s)",
            Op::ReadAll => "read every object",
        }
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

/// Runs `op` on a fresh odb per thread for about `budget`; returns total ops/s and a checksum of
/// results (bytes read), so both backends can be checked to do the same work.
fn measure(
    objects: &Path,
    backend: Backend,
    op: Op,
    threads: usize,
    ids: &Ids,
    budget: Duration,
) -> (f64, u64) {
    let results: Vec<(usize, Duration, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let odb = Odb::open(objects, backend);
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                    let (mut count, mut check) = (0usize, 0u64);
                    let n = ids.full.len();
                    // Warm up first (same odb, same op): steady state, not cache filling, is
                    // what a long-running host sees; the full passes warm themselves.
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
                                let listed = odb.foreach_count();
                                count += listed;
                                check += listed as u64;
                                continue;
                            }
                            Op::ReadAll => {
                                for id in &ids.full {
                                    check += odb.read_size(id).map_or(0, |size| size as u64);
                                }
                                count += n;
                                continue;
                            }
                            _ => {}
                        }
                        for _ in 0..256 {
                            let i = rng.next() % n;
                            // Every id exists: a failed read is a bug, never a fast operation.
                            let ok = |result: Result<usize, std::ffi::c_int>| match result {
                                Ok(size) => size as u64,
                                Err(rc) => {
                                    panic!("{backend:?} {op:?} failed: {rc} {}", last_error())
                                }
                            };
                            check += match op {
                                Op::ExistsHit => u64::from(odb.exists_raw(&ids.full[i])),
                                Op::ExistsMiss => u64::from(odb.exists_raw(&ids.missing[i])),
                                Op::ReadHeader => ok(odb.read_header_size(&ids.full[i])),
                                Op::Read => ok(odb.read_size(&ids.full[i])),
                                Op::Prefix12 => ok(odb.read_prefix_size(&ids.short12[i], 12)),
                                Op::Prefix40 => ok(odb.read_prefix_size(&ids.full[i], 40)),
                                Op::Foreach | Op::ReadAll => 0,
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

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}

/// Comma-separated filter from the environment; empty = everything.
fn wanted(var: &str, name: &str) -> bool {
    match std::env::var(var) {
        Ok(list) if !list.is_empty() => list.split(',').any(|w| name.contains(w.trim())),
        _ => true,
    }
}

fn main() {
    let commits = env_usize("ODBPACK_BENCH_COMMITS", 4000);
    let budget = Duration::from_millis(env_usize("ODBPACK_BENCH_MS", 400) as u64);
    let started = Instant::now();
    let corpora = corpora(commits);
    eprintln!("corpora ready in {:.1}s", started.elapsed().as_secs_f64());
    let backends: Vec<Backend> = [Backend::Libgit2, Backend::Odbpack]
        .into_iter()
        .filter(|b| wanted("ODBPACK_BENCH_BACKENDS", &format!("{b:?}").to_lowercase()))
        .collect();
    let thread_counts: Vec<usize> = [1, 2]
        .into_iter()
        .filter(|t| wanted("ODBPACK_BENCH_THREADS", &t.to_string()))
        .collect();
    for strict in [false, true] {
        if !wanted("ODBPACK_BENCH_STRICT", if strict { "on" } else { "off" }) {
            continue;
        }
        set_strict_hash_verification(strict);
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
            let hex: Vec<String> = corpus
                .objects_list
                .iter()
                .map(|(id, _)| id.clone())
                .collect();
            let ids = Ids::new(&hex);
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
                "\n### {} ({} objects, {} packs)",
                corpus.name,
                hex.len(),
                packs
            );
            println!("| op | threads | libgit2 | odbpack | odbpack / libgit2 |");
            println!("|---|---|---|---|---|");
            let ops: &[Op] = if strict {
                &[Op::Read, Op::Prefix40, Op::ReadAll]
            } else {
                &[
                    Op::ExistsHit,
                    Op::ExistsMiss,
                    Op::ReadHeader,
                    Op::Read,
                    Op::Prefix12,
                    Op::Prefix40,
                    Op::Foreach,
                    Op::ReadAll,
                ]
            };
            for &op in ops
                .iter()
                .filter(|op| wanted("ODBPACK_BENCH_OPS", op.name()))
            {
                for &threads in &thread_counts {
                    let mut rates = Vec::new();
                    for &backend in &backends {
                        let (rate, check) =
                            measure(&corpus.objects, backend, op, threads, &ids, budget);
                        // Both backends must give the same answers: a full pass reads every byte.
                        if op == Op::ReadAll {
                            assert_eq!(
                                check % total_bytes,
                                0,
                                "{backend:?} read every object fully"
                            );
                        }
                        rates.push((backend, rate));
                    }
                    let rate_of = |b: Backend| rates.iter().find(|(x, _)| *x == b).map(|(_, r)| *r);
                    let cell = |b: Backend| rate_of(b).map_or("-".to_owned(), human);
                    let ratio = match (rate_of(Backend::Odbpack), rate_of(Backend::Libgit2)) {
                        (Some(ours), Some(theirs)) => format!("{:.2}x", ours / theirs),
                        _ => "-".to_owned(),
                    };
                    println!(
                        "| {} | {threads} | {} | {} | {ratio} |",
                        op.name(),
                        cell(Backend::Libgit2),
                        cell(Backend::Odbpack)
                    );
                }
            }
        }
    }
    // SAFETY: getrusage fills a zeroed plain-data struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to the struct above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    println!(
        "\npeak RSS of the whole run: {} MiB",
        usage.ru_maxrss / 1024
    );
}
