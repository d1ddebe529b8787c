//! Writing a multi-pack-index over many packs: odbpack vs `git multi-pack-index write` vs
//! libgit2's writer (`git_odb_write_multi_pack_index` with libgit2's own pack backend), on the same
//! packs. Every run is a fresh write from a cold start (new store / process / odb) with a warm
//! page cache; the median of the runs is reported.
//!
//! `cargo bench --bench midx_write` (env: `ODBPACK_BENCH_PACKS`, default 60;
//! `ODBPACK_BENCH_OBJECTS` per pack, default 2000; `ODBPACK_BENCH_RUNS`, default 5). Besides the
//! per-pack objects, one extra pack duplicates every object, so selection has work to do.
#![allow(unsafe_code, missing_docs)]

use std::ffi::{CString, c_int};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use libgit2_sys as raw;
use odbpack::format::midx_write::WriteOptions;
use odbpack::store::midx;

unsafe extern "C" {
    // Exported by the vendored libgit2 that libgit2-sys links; not declared by libgit2-sys.
    fn git_odb_write_multi_pack_index(db: *mut raw::git_odb) -> c_int;
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[path = "../tests/common/git_env.rs"]
mod git_env;

fn git(dir: &Path, args: &[&str], input: Option<&[u8]>) {
    git_env::git_bytes(dir, args, input.unwrap_or_default());
}

/// `packs` packs of `objects` fresh blobs each (via fast-import), plus one pack with all of them.
fn build_repo(dir: &Path, packs: usize, objects: usize) {
    git(dir, &["init", "-q", "--bare"], None);
    for p in 0..packs {
        let mut stream = Vec::new();
        for o in 0..objects {
            let body = format!("pack {p} object {o}\n{}\n", "x".repeat(o % 200));
            write!(stream, "blob\ndata {}\n{body}\n", body.len()).expect("vec");
        }
        git(dir, &["fast-import", "--quiet"], Some(&stream));
    }
    // Every object once more, in one pack: duplicates for the selection.
    let listing = git_env::git_bytes(
        dir,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname)",
        ],
        b"",
    );
    git(
        dir,
        &["pack-objects", "-q", "objects/pack/pack"],
        Some(&listing),
    );
    // Distinct mtimes, so git and odbpack select identically.
    let pack_dir = dir.join("objects/pack");
    let mut names: Vec<_> = std::fs::read_dir(&pack_dir)
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect();
    names.sort();
    for (rank, pack) in names.iter().enumerate() {
        let status = Command::new("touch")
            .arg("-d")
            .arg(format!("@{}", 1_700_000_000 + 10 * rank))
            .arg(pack)
            .status()
            .expect("touch");
        assert!(status.success());
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time_runs(runs: usize, midx_path: &Path, mut write: impl FnMut()) -> Duration {
    let times = (0..runs)
        .map(|_| {
            let _ = std::fs::remove_file(midx_path);
            let start = Instant::now();
            write();
            start.elapsed()
        })
        .collect();
    median(times)
}

fn main() {
    let packs = env_usize("ODBPACK_BENCH_PACKS", 60);
    let objects = env_usize("ODBPACK_BENCH_OBJECTS", 2000);
    let runs = env_usize("ODBPACK_BENCH_RUNS", 5).max(1);
    let repo = tempfile::tempdir().expect("temp dir");
    let dir = repo.path();
    eprintln!("building {packs} packs of {objects} objects (+1 duplicating pack)...");
    build_repo(dir, packs, objects);
    let objects_dir = dir.join("objects");
    let midx_path = objects_dir.join("pack/multi-pack-index");
    let idx_bytes: u64 = std::fs::read_dir(objects_dir.join("pack"))
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .map(|p| std::fs::metadata(p).expect("stat").len())
        .sum();

    let ours = time_runs(runs, &midx_path, || {
        midx::write_dir(&objects_dir, WriteOptions::default()).expect("odbpack write");
    });
    let our_bytes = std::fs::read(&midx_path).expect("our MIDX");

    let git_time = time_runs(runs, &midx_path, || {
        git(
            dir,
            &[
                "-c",
                "core.multiPackIndex=false",
                "multi-pack-index",
                "write",
                "--no-progress",
            ],
            None,
        );
    });
    let git_bytes = std::fs::read(&midx_path).expect("git's MIDX");
    assert!(our_bytes == git_bytes, "odbpack's MIDX differs from git's");

    // SAFETY: plain libgit2 calls on objects this function owns.
    unsafe { raw::git_libgit2_init() };
    let c_dir = CString::new(objects_dir.to_str().expect("utf-8")).expect("no NUL");
    let libgit2 = time_runs(runs, &midx_path, || {
        // SAFETY: a fresh odb with libgit2's pack backend, freed at the end.
        unsafe {
            let mut odb = std::ptr::null_mut();
            assert_eq!(raw::git_odb_new(&mut odb), 0);
            let mut backend = std::ptr::null_mut();
            assert_eq!(raw::git_odb_backend_pack(&mut backend, c_dir.as_ptr()), 0);
            assert_eq!(raw::git_odb_add_backend(odb, backend, 2), 0);
            assert_eq!(git_odb_write_multi_pack_index(odb), 0);
            raw::git_odb_free(odb);
        }
    });

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "midx_write: {} packs, {} pack entries, {:.1} MiB of .idx, MIDX {:.1} MiB; median of {runs}",
        packs + 1,
        2 * packs * objects,
        idx_bytes as f64 / (1 << 20) as f64,
        our_bytes.len() as f64 / (1 << 20) as f64
    );
    println!("  odbpack                        {:8.1} ms", ms(ours));
    println!(
        "  git multi-pack-index write     {:8.1} ms  ({:.2}x odbpack)",
        ms(git_time),
        ms(git_time) / ms(ours)
    );
    println!(
        "  libgit2 writemidx (pack odb)   {:8.1} ms  ({:.2}x odbpack)",
        ms(libgit2),
        ms(libgit2) / ms(ours)
    );
}
