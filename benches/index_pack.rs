//! Indexing one big pack: odbpack's indexer vs libgit2's `git_indexer` (libgit2-sys, vendored
//! 1.9.7) vs `git index-pack --stdin --threads=N`.
//!
//! The pack is a synthetic history made with `git fast-import` (files in directories, each
//! commit appending to a few hundred of them), repacked with git's default depth, so most
//! objects are deltas in chains up to 50 deep. It is cached under `target/bench-data/`.
//!
//! `cargo bench --bench index_pack` (env: `ODBPACK_BENCH_COMMITS`, default 600 ≈ 160k objects).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libgit2_sys as raw;
use odbpack::writepack::{Indexer, Options};

const FILES: usize = 2000;
const DIRS: usize = 20;
const EDITS_PER_COMMIT: usize = 250;
const CHUNK: usize = 64 << 10;

#[path = "../tests/common/git_env.rs"]
mod git_env;

/// git in the shared test environment; arguments are added by the caller.
fn git(dir: &Path) -> Command {
    git_env::git_command(dir, &[])
}

fn run(command: &mut Command) {
    let status = command.status().expect("command runs");
    assert!(status.success(), "{command:?} failed");
}

/// Makes (or reuses) the benchmark pack; returns its bytes.
fn bench_pack(commits: usize) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let cached = root.join(format!("history-{commits}.pack"));
    if let Ok(bytes) = std::fs::read(&cached) {
        return bytes;
    }
    let repo = root.join(format!("history-{commits}.git"));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&repo).expect("mkdir");
    run(git(&repo).args(["-c", "init.defaultBranch=main", "init", "-q", "--bare"]));
    let started = Instant::now();
    let mut child = git(&repo)
        .args(["fast-import", "--quiet", "--depth=50"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import runs");
    {
        let mut input = std::io::BufWriter::new(child.stdin.take().expect("stdin"));
        let mut contents: Vec<Vec<u8>> = (0..FILES)
            .map(|f| format!("file {f}\n").into_bytes())
            .collect();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for c in 0..commits {
            let message = format!("commit {c}\n");
            write!(
                input,
                "commit refs/heads/main\nmark :{}\ncommitter A U Thor <a@example.com> {} +0000\ndata {}\n{}",
                c + 1,
                1_700_000_000 + c,
                message.len(),
                message
            )
            .expect("write");
            if c > 0 {
                writeln!(input, "from :{c}").expect("write");
            }
            let edits = if c == 0 { FILES } else { EDITS_PER_COMMIT };
            for e in 0..edits {
                let f = if c == 0 {
                    e
                } else {
                    (next() % FILES as u64) as usize
                };
                let text = &mut contents[f];
                text.extend_from_slice(
                    format!("commit {c} edits file {f} with value {}\n", next() % 1000).as_bytes(),
                );
                // Rewrite an early line too, so deltas have copies and inserts.
                if text.len() > 64 {
                    let at = (next() % 32) as usize;
                    text[at] = b'a' + (next() % 26) as u8;
                }
                write!(
                    input,
                    "M 100644 inline dir{}/file{f}.txt\ndata {}\n",
                    f % DIRS,
                    text.len()
                )
                .expect("write");
                input.write_all(text).expect("write");
                input.write_all(b"\n").expect("write");
            }
            input.write_all(b"\n").expect("write");
        }
        input.flush().expect("flush");
    }
    assert!(child.wait().expect("fast-import").success());
    run(git(&repo).args(["repack", "-adq"]));
    let pack_dir = repo.join("objects/pack");
    let pack = std::fs::read_dir(&pack_dir)
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .expect("a pack");
    let bytes = std::fs::read(&pack).expect("read pack");
    std::fs::write(&cached, &bytes).expect("cache pack");
    let _ = std::fs::remove_dir_all(&repo);
    eprintln!(
        "generated {} ({} MB) in {:.1}s",
        cached.display(),
        bytes.len() >> 20,
        started.elapsed().as_secs_f64()
    );
    bytes
}

fn odbpack_index(pack: &[u8], threads: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let options = Options {
        threads,
        fsync: false,
        ..Options::default()
    };
    let mut indexer = Indexer::new(dir.path(), options).expect("indexer");
    let mut progress = |_: &odbpack::writepack::Progress| 0;
    for chunk in pack.chunks(CHUNK) {
        indexer.append(chunk, &mut progress).expect("append");
    }
    let mut bases = |_: &odbpack::ObjectId| None;
    indexer.commit(&mut bases, &mut progress).expect("commit");
    started.elapsed()
}

fn libgit2_index(pack: &[u8]) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = CString::new(dir.path().to_str().expect("utf-8")).expect("path");
    let started = Instant::now();
    // SAFETY: libgit2's indexer API with valid pointers; freed at the end.
    unsafe {
        raw::git_libgit2_init();
        let mut opts: raw::git_indexer_options = std::mem::zeroed();
        assert_eq!(raw::git_indexer_options_init(&mut opts, 1), 0);
        let mut indexer = std::ptr::null_mut();
        assert_eq!(
            raw::git_indexer_new(
                &mut indexer,
                path.as_ptr(),
                0,
                std::ptr::null_mut(),
                &mut opts
            ),
            0
        );
        let mut stats: raw::git_indexer_progress = std::mem::zeroed();
        for chunk in pack.chunks(CHUNK) {
            assert_eq!(
                raw::git_indexer_append(indexer, chunk.as_ptr().cast(), chunk.len(), &mut stats),
                0
            );
        }
        assert_eq!(raw::git_indexer_commit(indexer, &mut stats), 0);
        raw::git_indexer_free(indexer);
    }
    started.elapsed()
}

fn git_index(pack: &[u8], threads: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    run(git(dir.path()).args(["init", "-q", "--bare", "r.git"]));
    let repo = dir.path().join("r.git");
    let started = Instant::now();
    let mut child = git(&repo)
        .args(["index-pack", "--stdin", &format!("--threads={threads}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("git index-pack runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pack)
        .expect("feed");
    assert!(child.wait().expect("index-pack").success());
    started.elapsed()
}

fn best(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn main() {
    let commits = std::env::var("ODBPACK_BENCH_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let pack = bench_pack(commits);
    let header = odbpack::format::pack::parse_header(&pack).expect("pack header");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "pack: {} objects, {:.1} MB, {cores} cores",
        header.num_objects,
        pack.len() as f64 / 1e6
    );
    let runs = std::env::var("ODBPACK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // ODBPACK_BENCH_ONLY=odbpack runs only our indexer (for profiling).
    let only_ours = std::env::var("ODBPACK_BENCH_ONLY").is_ok_and(|v| v == "odbpack");
    if only_ours {
        let time = best(runs, || odbpack_index(&pack, cores));
        println!("odbpack threads={cores} {:.3} s", time.as_secs_f64());
        return;
    }
    let rows = [
        (
            format!("odbpack threads={cores}"),
            best(runs, || odbpack_index(&pack, cores)),
        ),
        (
            "odbpack threads=1".to_string(),
            best(runs, || odbpack_index(&pack, 1)),
        ),
        (
            "libgit2 git_indexer".to_string(),
            best(runs, || libgit2_index(&pack)),
        ),
        (
            format!("git index-pack --threads={cores}"),
            best(runs, || git_index(&pack, cores)),
        ),
        (
            "git index-pack --threads=1".to_string(),
            best(runs, || git_index(&pack, 1)),
        ),
    ];
    let ours = rows[0].1.as_secs_f64();
    for (name, time) in &rows {
        println!(
            "{name:<32} {:>8.3} s   {:>5.2}x odbpack time",
            time.as_secs_f64(),
            time.as_secs_f64() / ours
        );
    }
}
