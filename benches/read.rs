//! Read-path benchmark: odbpack vs libgit2's own pack backend (libgit2-sys vendored 1.9.7),
//! through the public `git_odb_*` API, in the same run, on corpora generated with git:
//! one pack, 50 packs without a MIDX, 50 packs with a MIDX. One and two threads (one odb per
//! thread, as libgit2 apps get parallelism). Prints ops/s, the ratio and 2-thread scaling.
//!
//! `cargo bench --bench read` (env: ODBPACK_BENCH_COMMITS, default 4000 ≈ 180k objects;
//! ODBPACK_BENCH_MS per measurement, default 400).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
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
    repo: Repo,
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

fn corpora(commits: usize) -> Vec<Corpus> {
    let many = Repo::new();
    generate(&many, commits, 50);
    let one = Repo::new();
    std::fs::remove_dir_all(one.objects_dir()).expect("rm objects");
    copy_dir(&many.objects_dir(), &one.objects_dir());
    one.git(&[
        "update-ref",
        "refs/heads/main",
        many.git(&["rev-parse", "main"]).trim(),
    ]);
    one.git(&["repack", "-adq"]);
    let midx = Repo::new();
    std::fs::remove_dir_all(midx.objects_dir()).expect("rm objects");
    copy_dir(&many.objects_dir(), &midx.objects_dir());
    midx.git(&["multi-pack-index", "write"]);
    vec![
        Corpus {
            name: "1 pack",
            repo: one,
        },
        Corpus {
            name: "50 packs",
            repo: many,
        },
        Corpus {
            name: "50 packs+MIDX",
            repo: midx,
        },
    ]
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

/// Runs `op` on a fresh odb per thread for about `budget`; returns total ops/s and a checksum of
/// results (so both backends can be checked to agree).
fn measure(
    objects: &Path,
    backend: Backend,
    op: Op,
    threads: usize,
    ids: &[String],
    budget: Duration,
) -> (f64, u64) {
    let results: Vec<(usize, Duration, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let odb = Odb::open(objects, backend);
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                    let (mut count, mut check) = (0usize, 0u64);
                    let start = Instant::now();
                    while start.elapsed() < budget {
                        match op {
                            Op::Foreach | Op::ReadAll => {
                                if op == Op::Foreach {
                                    let (_, listed) = odb.foreach();
                                    count += listed.len();
                                    check += listed.len() as u64;
                                } else {
                                    for id in ids {
                                        check += odb.read(id).map_or(0, |o| o.data.len() as u64);
                                    }
                                    count += ids.len();
                                }
                                continue;
                            }
                            _ => {}
                        }
                        for _ in 0..256 {
                            let id = &ids[rng.next() % ids.len()];
                            check += match op {
                                Op::ExistsHit => u64::from(odb.exists(id)),
                                Op::ExistsMiss => {
                                    let mut missing = id.clone();
                                    missing.replace_range(
                                        38..40,
                                        if &id[38..40] == "00" { "01" } else { "00" },
                                    );
                                    u64::from(odb.exists(&missing))
                                }
                                Op::ReadHeader => {
                                    odb.read_header(id).map_or(0, |(_, size)| size as u64)
                                }
                                Op::Read => odb.read(id).map_or(0, |o| o.data.len() as u64),
                                Op::Prefix12 => odb
                                    .read_prefix(&id[..12])
                                    .map_or(0, |o| o.data.len() as u64),
                                Op::Prefix40 => {
                                    odb.read_prefix(id).map_or(0, |o| o.data.len() as u64)
                                }
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

fn main() {
    let commits = env_usize("ODBPACK_BENCH_COMMITS", 4000);
    let budget = Duration::from_millis(env_usize("ODBPACK_BENCH_MS", 400) as u64);
    let started = Instant::now();
    let corpora = corpora(commits);
    eprintln!(
        "corpora generated in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    for strict in [false, true] {
        set_strict_hash_verification(strict);
        println!(
            "\n## strict hash verification {}",
            if strict {
                "on (libgit2 default)"
            } else {
                "off"
            }
        );
        for corpus in &corpora {
            let ids: Vec<String> = corpus.repo.all_objects().into_keys().collect();
            let objects = corpus.repo.objects_dir();
            println!(
                "\n### {} ({} objects, {} packs)",
                corpus.name,
                ids.len(),
                corpus.repo.packs().len()
            );
            println!(
                "| op | libgit2 1t | odbpack 1t | ratio 1t | libgit2 2t | odbpack 2t | ratio 2t | odbpack 2t/1t |"
            );
            println!("|---|---|---|---|---|---|---|---|");
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
            for &op in ops {
                let (lib1, lib_check) = measure(&objects, Backend::Libgit2, op, 1, &ids, budget);
                let (our1, our_check) = measure(&objects, Backend::Odbpack, op, 1, &ids, budget);
                let (lib2, _) = measure(&objects, Backend::Libgit2, op, 2, &ids, budget);
                let (our2, _) = measure(&objects, Backend::Odbpack, op, 2, &ids, budget);
                // Both backends must give the same answers: a full pass reads every byte.
                if op == Op::ReadAll {
                    let total: u64 = corpus
                        .repo
                        .all_objects()
                        .values()
                        .map(|(_, size)| *size as u64)
                        .sum();
                    assert_eq!(lib_check % total, 0, "libgit2 read every object fully");
                    assert_eq!(our_check % total, 0, "odbpack read every object fully");
                }
                println!(
                    "| {} | {} | {} | {:.2}x | {} | {} | {:.2}x | {:.2}x |",
                    op.name(),
                    human(lib1),
                    human(our1),
                    our1 / lib1,
                    human(lib2),
                    human(our2),
                    our2 / lib2,
                    our2 / our1
                );
            }
        }
    }
    // SAFETY: getrusage fills a zeroed plain-data struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to the struct above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    println!(
        "\npeak RSS of the whole run (both backends): {} MiB",
        usage.ru_maxrss / 1024
    );
}
