//! `writepack` through libgit2 (libgit2-sys's vendored 1.9.7): packs made by `git pack-objects`
//! are fed to `git_odb_write_pack` over odbpack in many chunk sizes, and the results are checked
//! against `git index-pack` (byte-identical `.idx`/`.rev`), `git fsck`, libgit2's progress
//! semantics, thin-pack fixing, and hostile input.
#![allow(unsafe_code, clippy::missing_safety_doc)]
// The transmutes only swap libgit2-sys's opaque pointer types for odbpack's identical ones.
#![allow(
    clippy::missing_transmute_annotations,
    clippy::field_reassign_with_default
)]

use std::ffi::{CStr, CString, c_int, c_void};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

use common::{compile_example, git, git_bytes, libgit2_init};
use libgit2_sys as raw;
use odbpack::ffi::{odbpack_backend_new_ext, odbpack_options};
use odbpack::format::pack;
use odbpack::hash::Sha1;

/// A work tree with `commits` commits editing `files` files, growing each a little.
fn history(dir: &Path, commits: usize, files: usize) {
    git(dir, &["-c", "init.defaultBranch=main", "init", "-q"]);
    for c in 0..commits {
        for f in 0..files {
            if (c + f) % 3 == 0 || c == 0 {
                let path = dir.join(format!("file{f}.txt"));
                let mut text = std::fs::read_to_string(&path).unwrap_or_default();
                text.push_str(&format!("line {c} of file {f}: {}\n", "x".repeat(c % 17)));
                std::fs::write(&path, text).expect("write file");
            }
        }
        git(dir, &["add", "-A"]);
        git(
            dir,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                &format!("commit {c}"),
            ],
        );
    }
}

fn pack_objects(dir: &Path, extra: &[&str], revs: &str) -> Vec<u8> {
    let mut args = vec!["pack-objects", "--stdout", "--revs", "-q"];
    args.extend_from_slice(extra);
    if revs == "--all\n" {
        args.push("--all");
        return git_bytes(dir, &args, b"");
    }
    git_bytes(dir, &args, revs.as_bytes())
}

fn bare_repo(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    git(
        dir,
        &[
            "-c",
            "init.defaultBranch=main",
            "init",
            "-q",
            "--bare",
            "target.git",
        ],
    );
    dir.join("target.git")
}

fn pack_dir_listing(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.join("objects/pack"))
        .map(|dir| {
            dir.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A `git_odb` with odbpack (priority 2) over `repo/objects` and optionally libgit2's loose
/// backend, with the host functions passed explicitly (libgit2 is linked statically).
struct Odb(*mut raw::git_odb);

impl Odb {
    fn new(repo: &Path, loose: bool, tune: impl FnOnce(&mut odbpack_options)) -> Odb {
        libgit2_init();
        let objects = CString::new(repo.join("objects").to_str().expect("utf-8")).expect("path");
        let mut odb = std::ptr::null_mut();
        // SAFETY: plain libgit2 calls with valid out-pointers; the fn-pointer transmutes only
        // change libgit2-sys's opaque pointer types to odbpack's identical ones.
        unsafe {
            assert_eq!(raw::git_odb_new(&mut odb), 0);
            let mut options = odbpack_options::default();
            options.data_alloc = Some(std::mem::transmute(
                raw::git_odb_backend_data_alloc as unsafe extern "C" fn(_, _) -> _,
            ));
            options.data_free = Some(std::mem::transmute(
                raw::git_odb_backend_data_free as unsafe extern "C" fn(_, _),
            ));
            options.error_set_str = Some(raw::git_error_set_str);
            options.odb_read = Some(std::mem::transmute(
                raw::git_odb_read as unsafe extern "C" fn(_, _, _) -> _,
            ));
            options.odb_object_data = Some(std::mem::transmute(
                raw::git_odb_object_data as unsafe extern "C" fn(_) -> _,
            ));
            options.odb_object_size = Some(std::mem::transmute(
                raw::git_odb_object_size as unsafe extern "C" fn(_) -> _,
            ));
            options.odb_object_type = Some(std::mem::transmute(
                raw::git_odb_object_type as unsafe extern "C" fn(_) -> _,
            ));
            options.odb_object_free = Some(std::mem::transmute(
                raw::git_odb_object_free as unsafe extern "C" fn(_),
            ));
            tune(&mut options);
            let mut backend = std::ptr::null_mut();
            assert_eq!(
                odbpack_backend_new_ext(&mut backend, objects.as_ptr(), &options),
                0
            );
            assert_eq!(raw::git_odb_add_backend(odb, backend.cast(), 2), 0);
            if loose {
                let mut loose = std::ptr::null_mut();
                assert_eq!(
                    raw::git_odb_backend_loose(&mut loose, objects.as_ptr(), -1, 0, 0, 0),
                    0
                );
                assert_eq!(raw::git_odb_add_backend(odb, loose, 1), 0);
            }
        }
        Odb(odb)
    }

    fn read(&self, hex: &str) -> Option<(i32, Vec<u8>)> {
        let id = CString::new(hex).expect("hex");
        // SAFETY: valid odb and out-pointers; the object is freed after copying.
        unsafe {
            let mut oid = std::mem::zeroed::<raw::git_oid>();
            assert_eq!(raw::git_oid_fromstr(&mut oid, id.as_ptr()), 0);
            let mut object = std::ptr::null_mut();
            if raw::git_odb_read(&mut object, self.0, &oid) != 0 {
                return None;
            }
            let data = raw::git_odb_object_data(object).cast::<u8>();
            let size = raw::git_odb_object_size(object);
            let kind = raw::git_odb_object_type(object) as i32;
            let bytes = std::slice::from_raw_parts(data, size).to_vec();
            raw::git_odb_object_free(object);
            Some((kind, bytes))
        }
    }
}

impl Drop for Odb {
    fn drop(&mut self) {
        // SAFETY: frees the odb and its backends once.
        unsafe { raw::git_odb_free(self.0) };
    }
}

#[derive(Default)]
struct Recorder {
    calls: Vec<raw::git_indexer_progress>,
    cancel_at: Option<(usize, c_int)>,
}

extern "C" fn record(stats: *const raw::git_indexer_progress, payload: *mut c_void) -> c_int {
    // SAFETY: payload is the test's `Recorder`; stats is libgit2's live struct.
    let recorder = unsafe { &mut *payload.cast::<Recorder>() };
    let stats = unsafe { *stats };
    recorder.calls.push(stats);
    match recorder.cancel_at {
        Some((at, code)) if recorder.calls.len() == at => code,
        _ => 0,
    }
}

/// The outcome of one `git_odb_write_pack` run: return code, error class, final stats.
struct Outcome {
    code: c_int,
    class: c_int,
    message: String,
    stats: raw::git_indexer_progress,
}

fn write_pack(odb: &Odb, pack: &[u8], chunk: usize, recorder: &mut Recorder) -> Outcome {
    // SAFETY: the writepack protocol as libgit2's fetch drives it; `free` always runs.
    unsafe {
        raw::git_error_clear();
        let mut wp: *mut raw::git_odb_writepack = std::ptr::null_mut();
        let code = raw::git_odb_write_pack(
            &mut wp,
            odb.0,
            Some(record),
            (recorder as *mut Recorder).cast(),
        );
        assert_eq!(code, 0, "git_odb_write_pack");
        let mut stats: raw::git_indexer_progress = std::mem::zeroed();
        stats.received_bytes = 12345;
        let append = (*wp).append.expect("append");
        let mut code = 0;
        for part in pack.chunks(chunk.max(1)) {
            code = append(wp, part.as_ptr().cast(), part.len(), &mut stats);
            if code != 0 {
                break;
            }
        }
        if code == 0 {
            code = (*wp).commit.expect("commit")(wp, &mut stats);
        }
        let (class, message) = if code != 0 {
            let error = raw::git_error_last();
            if error.is_null() {
                (0, String::new())
            } else {
                (
                    (*error).klass,
                    CStr::from_ptr((*error).message)
                        .to_string_lossy()
                        .into_owned(),
                )
            }
        } else {
            (0, String::new())
        };
        (*wp).free.expect("free")(wp);
        assert_eq!(
            stats.received_bytes, 12345,
            "received_bytes is the transport's"
        );
        Outcome {
            code,
            class,
            message,
            stats,
        }
    }
}

fn single_pack(repo: &Path) -> String {
    let names = pack_dir_listing(repo);
    let idx: Vec<&String> = names.iter().filter(|n| n.ends_with(".idx")).collect();
    assert_eq!(idx.len(), 1, "{names:?}");
    idx[0].trim_end_matches(".idx").to_string()
}

/// Writes `pack` through odbpack in each chunk size and checks everything against git.
fn check_against_git(work: &Path, pack_bytes: &[u8], chunks: &[usize]) {
    // git's own index of the same pack.
    let reference = work.join("reference");
    std::fs::create_dir_all(&reference).expect("mkdir");
    let pack_file = reference.join("in.pack");
    std::fs::write(&pack_file, pack_bytes).expect("write pack");
    git(
        &reference,
        &["index-pack", "--rev-index", "-o", "in.idx", "in.pack"],
    );
    let git_idx = std::fs::read(reference.join("in.idx")).expect("git idx");
    let git_rev = std::fs::read(reference.join("in.rev")).expect("git rev");
    let header = pack::parse_header(pack_bytes).expect("header");
    for &chunk in chunks {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = bare_repo(dir.path());
        let odb = Odb::new(&repo, false, |_| {});
        let mut recorder = Recorder::default();
        let outcome = write_pack(&odb, pack_bytes, chunk, &mut recorder);
        assert_eq!(outcome.code, 0, "chunk {chunk}: {}", outcome.message);
        let name = single_pack(&repo);
        let pack_dir = repo.join("objects/pack");
        assert_eq!(
            pack_dir_listing(&repo),
            vec![
                format!("{name}.idx"),
                format!("{name}.pack"),
                format!("{name}.rev")
            ],
            "no temp files left"
        );
        assert_eq!(
            std::fs::read(pack_dir.join(format!("{name}.idx"))).expect("idx"),
            git_idx,
            "chunk {chunk}: idx differs from git index-pack's"
        );
        assert_eq!(
            std::fs::read(pack_dir.join(format!("{name}.rev"))).expect("rev"),
            git_rev,
            "chunk {chunk}: rev differs"
        );
        assert_eq!(
            std::fs::read(pack_dir.join(format!("{name}.pack"))).expect("pack"),
            pack_bytes
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(pack_dir.join(format!("{name}.pack")))
                .expect("stat")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o444);
        // Progress: header call, one per object, then one per delta, as libgit2's indexer.
        let total = header.num_objects;
        let s = outcome.stats;
        assert_eq!(
            (
                s.total_objects,
                s.received_objects,
                s.indexed_objects,
                s.local_objects
            ),
            (total, total, total, 0)
        );
        assert_eq!(s.indexed_deltas, s.total_deltas);
        assert_eq!(
            recorder.calls.len() as u32,
            1 + total + s.total_deltas,
            "callback count"
        );
        let first = recorder.calls[0];
        assert_eq!((first.total_objects, first.received_objects), (total, 0));
        for pair in recorder.calls.windows(2) {
            assert!(pair[1].indexed_objects >= pair[0].indexed_objects);
        }
        // Readable at once through the same odb, and valid for git.
        for id in idx_ids(&git_idx).iter().step_by(7) {
            assert!(odb.read(id).is_some(), "object {id} readable after commit");
        }
        git(&repo, &["fsck", "--no-dangling"]);
    }
}

fn idx_ids(idx: &[u8]) -> Vec<String> {
    let index = odbpack::format::idx::PackIndex::from_bytes(idx).expect("valid idx");
    (0..index.num_objects())
        .map(|i| index.oid_at(i).to_hex())
        .collect()
}

#[test]
fn full_pack_ofs_deltas_all_chunk_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    history(&work, 30, 6);
    let pack = pack_objects(&work, &["--delta-base-offset"], "--all\n");
    check_against_git(dir.path(), &pack, &[1, 7, 4096, 65536, usize::MAX]);
}

#[test]
fn ref_delta_only_pack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    history(&work, 20, 4);
    let pack = pack_objects(&work, &[], "--all\n");
    check_against_git(dir.path(), &pack, &[7, usize::MAX]);
}

#[test]
fn deep_delta_chains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    history(&work, 150, 1);
    let pack = pack_objects(
        &work,
        &["--delta-base-offset", "--depth=200", "--window=250"],
        "--all\n",
    );
    check_against_git(dir.path(), &pack, &[4096, usize::MAX]);
    // With a tiny base budget, bases are rebuilt from the pack instead of kept.
    let repo = bare_repo(&dir.path().join("budget"));
    let odb = Odb::new(&repo, false, |o| o.writepack_threads = 1);
    let mut recorder = Recorder::default();
    assert_eq!(write_pack(&odb, &pack, 65536, &mut recorder).code, 0);
    git(&repo, &["fsck", "--no-dangling"]);
}

#[test]
fn big_blob_pack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["-c", "init.defaultBranch=main", "init", "-q"]);
    let mut state = 0x1234_5678_u64;
    let mut big: Vec<u8> = (0..(3 << 20))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'a' + (state % 26) as u8
        })
        .collect();
    std::fs::write(work.join("big.bin"), &big).expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "big"]);
    big[1 << 20..(1 << 20) + 100].fill(b'Z');
    std::fs::write(work.join("big.bin"), &big).expect("write");
    git(&work, &["commit", "-q", "-am", "big edit"]);
    let pack = pack_objects(&work, &["--delta-base-offset"], "--all\n");
    check_against_git(dir.path(), &pack, &[65536, usize::MAX]);
}

#[test]
fn thin_pack_is_fixed_from_the_odb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    history(&work, 10, 3);
    let base_commit = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    // The receiving side has everything up to `base_commit`.
    let target = bare_repo(dir.path());
    let base_pack = pack_objects(&work, &[], &format!("{base_commit}\n"));
    git_bytes(&target, &["index-pack", "--stdin"], &base_pack);
    // New history, sent as a thin pack against it.
    for c in 0..3 {
        let path = work.join("file0.txt");
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str(&format!("more {c}\n"));
        std::fs::write(&path, text).expect("write");
        git(&work, &["commit", "-q", "-am", &format!("new {c}")]);
    }
    let thin = pack_objects(&work, &["--thin"], &format!("HEAD\n^{base_commit}\n"));
    let total = pack::parse_header(&thin).expect("header").num_objects;
    let before = pack_dir_listing(&target);
    let odb = Odb::new(&target, false, |_| {});
    let mut recorder = Recorder::default();
    let outcome = write_pack(&odb, &thin, 4096, &mut recorder);
    assert_eq!(outcome.code, 0, "{}", outcome.message);
    let s = outcome.stats;
    assert_eq!(
        (s.total_objects, s.received_objects, s.indexed_objects),
        (total, total, total)
    );
    assert!(
        s.local_objects >= 1,
        "thin bases injected: {}",
        s.local_objects
    );
    // The new pack is self-contained: header count rewritten, trailer recomputed.
    let names: Vec<String> = pack_dir_listing(&target)
        .into_iter()
        .filter(|name| !before.contains(name) && name.ends_with(".pack"))
        .collect();
    assert_eq!(names.len(), 1);
    let fixed = std::fs::read(target.join("objects/pack").join(&names[0])).expect("pack");
    let header = pack::parse_header(&fixed).expect("header");
    assert_eq!(header.num_objects, total + s.local_objects);
    let mut hasher = Sha1::new();
    hasher.update(&fixed[..fixed.len() - 20]);
    let trailer = hasher.finalize().expect("hash");
    assert_eq!(&fixed[fixed.len() - 20..], &trailer.0);
    assert_eq!(names[0], format!("pack-{trailer}.pack"));
    // git agrees with our index of the fixed pack.
    let check = dir.path().join("check");
    std::fs::create_dir_all(&check).expect("mkdir");
    std::fs::write(check.join("fixed.pack"), &fixed).expect("write");
    git(&check, &["index-pack", "-o", "fixed.idx", "fixed.pack"]);
    let ours = std::fs::read(
        target
            .join("objects/pack")
            .join(names[0].replace(".pack", ".idx")),
    )
    .expect("idx");
    assert_eq!(
        idx_ids(&ours),
        idx_ids(&std::fs::read(check.join("fixed.idx")).expect("idx"))
    );
    git(&target, &["fsck", "--no-dangling"]);
    // Re-indexing the rewritten pack needs no bases: local 0.
    let again = bare_repo(&dir.path().join("again"));
    let odb2 = Odb::new(&again, false, |_| {});
    let outcome = write_pack(&odb2, &fixed, 65536, &mut Recorder::default());
    assert_eq!(outcome.code, 0, "{}", outcome.message);
    assert_eq!(outcome.stats.local_objects, 0);
    assert_eq!(outcome.stats.total_objects, total + s.local_objects);
}

/// A pack from raw entries with a correct trailer.
fn raw_pack(count: u32, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut pack = b"PACK\0\0\0\x02".to_vec();
    pack.extend_from_slice(&count.to_be_bytes());
    for entry in entries {
        pack.extend_from_slice(entry);
    }
    let mut hasher = Sha1::new();
    hasher.update(&pack);
    pack.extend_from_slice(&hasher.finalize().expect("hash").0);
    pack
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("deflate");
    encoder.finish().expect("deflate")
}

fn entry(type_bits: u8, extra: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pack::encode_entry_header(type_bits, body.len() as u64, &mut out);
    out.extend_from_slice(extra);
    out.extend_from_slice(&deflate(body));
    out
}

const INDEXER: c_int = 15;
const ZLIB: c_int = 5;
const CALLBACK: c_int = 26;

fn expect_failure(
    name: &str,
    pack: &[u8],
    class: c_int,
    tune: impl FnOnce(&mut odbpack_options),
) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = bare_repo(dir.path());
    std::fs::create_dir_all(repo.join("objects/pack")).expect("mkdir");
    let before = pack_dir_listing(&repo);
    let odb = Odb::new(&repo, false, tune);
    for chunk in [1, 4096, usize::MAX] {
        let mut recorder = Recorder::default();
        let outcome = write_pack(&odb, pack, chunk, &mut recorder);
        assert!(
            outcome.code < 0,
            "{name}: expected failure, got {}",
            outcome.code
        );
        assert_eq!(outcome.class, class, "{name}: {}", outcome.message);
        assert_eq!(
            pack_dir_listing(&repo),
            before,
            "{name}: objects/pack changed"
        );
    }
    let mut recorder = Recorder::default();
    write_pack(&odb, pack, 4096, &mut recorder)
}

#[test]
fn hostile_packs_fail_cleanly() {
    let blob = entry(3, &[], b"hello\n");
    let good = raw_pack(1, std::slice::from_ref(&blob));

    let truncated = &good[..good.len() - 25];
    let out = expect_failure("truncated", truncated, INDEXER, |_| {});
    assert!(out.message.contains("early EOF"), "{}", out.message);
    let out = expect_failure("no trailer", &good[..good.len() - 5], INDEXER, |_| {});
    assert!(out.message.contains("trailer"), "{}", out.message);

    let mut bad_trailer = good.clone();
    *bad_trailer.last_mut().expect("byte") ^= 1;
    let out = expect_failure("bad trailer", &bad_trailer, INDEXER, |_| {});
    assert!(out.message.contains("trailer mismatch"), "{}", out.message);

    let out = expect_failure(
        "count too high",
        &raw_pack(2, std::slice::from_ref(&blob)),
        INDEXER,
        |_| {},
    );
    assert!(
        out.message.contains("early EOF") || out.message.contains("entry"),
        "{}",
        out.message
    );
    let two = raw_pack(1, &[blob.clone(), blob.clone()]);
    expect_failure("count too low", &two, INDEXER, |_| {});
    let mut junk = good.clone();
    junk.extend_from_slice(b"junk");
    let out = expect_failure("trailing junk", &junk, INDEXER, |_| {});
    assert!(out.message.contains("end of the pack"), "{}", out.message);

    let mut corrupt = entry(3, &[], b"hello hello hello\n");
    let last = corrupt.len() - 6;
    corrupt[last] ^= 0xff;
    let out = expect_failure("corrupt zlib", &raw_pack(1, &[corrupt]), ZLIB, |_| {});
    assert!(out.message.contains("zlib"), "{}", out.message);
    let mut header = blob.clone();
    header[1] = 0; // zlib header byte
    expect_failure("bad zlib header", &raw_pack(1, &[header]), ZLIB, |_| {});

    // A delta whose first instruction is the reserved opcode 0.
    let base = b"base object\n";
    let mut delta = vec![base.len() as u8, 5, 0, 1, 2, 3, 4];
    delta.truncate(7);
    let ofs = {
        let mut extra = Vec::new();
        pack::encode_ofs_delta_offset(blob.len() as u64, &mut extra);
        entry(6, &extra, &delta)
    };
    let base_entry = entry(3, &[], base);
    let mut ofs_fixed = Vec::new();
    pack::encode_ofs_delta_offset(base_entry.len() as u64, &mut ofs_fixed);
    let opcode = raw_pack(2, &[base_entry.clone(), entry(6, &ofs_fixed, &delta)]);
    let out = expect_failure("delta opcode 0", &opcode, INDEXER, |_| {});
    assert!(out.message.contains("opcode"), "{}", out.message);
    drop(ofs);

    // Two REF deltas naming each other (ids no object has): a loop nothing can resolve.
    let a = [0xaa; 20];
    let b = [0xbb; 20];
    let looped = raw_pack(
        2,
        &[
            entry(7, &b, &[3, 3, 0x90, 3]),
            entry(7, &a, &[3, 3, 0x90, 3]),
        ],
    );
    let out = expect_failure("ref loop / missing base", &looped, INDEXER, |_| {});
    assert!(
        out.message.contains("could not be resolved"),
        "{}",
        out.message
    );

    // OFS_DELTA naming an offset that starts no entry.
    let mut mid = Vec::new();
    pack::encode_ofs_delta_offset(base_entry.len() as u64 - 1, &mut mid);
    let bad_ofs = raw_pack(
        2,
        &[base_entry.clone(), entry(6, &mid, &[12, 12, 0x90, 12])],
    );
    expect_failure("bad base offset", &bad_ofs, INDEXER, |_| {});

    // Absurd sizes and limits.
    let mut absurd = Vec::new();
    pack::encode_entry_header(3, 1 << 50, &mut absurd);
    absurd.extend_from_slice(&deflate(b"tiny"));
    let out = expect_failure("absurd size", &raw_pack(1, &[absurd]), INDEXER, |_| {});
    assert!(out.message.contains("limit"), "{}", out.message);
    let out = expect_failure("max object size", &good, INDEXER, |o| o.max_object_size = 3);
    assert!(out.message.contains("limit"), "{}", out.message);
    let out = expect_failure("max objects", &good, INDEXER, |o| {
        o.writepack_max_objects = 0
    });
    assert!(out.message.contains("too many objects"), "{}", out.message);
    let mut magic = good.clone();
    magic[0] = b'X';
    expect_failure("bad magic", &magic, INDEXER, |_| {});
    expect_failure("empty", b"", INDEXER, |_| {});
}

#[test]
fn callback_cancels_with_its_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    history(&work, 5, 2);
    let pack = pack_objects(&work, &["--delta-base-offset"], "--all\n");
    let repo = bare_repo(dir.path());
    std::fs::create_dir_all(repo.join("objects/pack")).expect("mkdir");
    let odb = Odb::new(&repo, false, |_| {});
    for (at, code) in [(1, 7), (3, -42)] {
        let mut recorder = Recorder {
            cancel_at: Some((at, code)),
            ..Recorder::default()
        };
        let outcome = write_pack(&odb, &pack, 4096, &mut recorder);
        assert_eq!(outcome.code, code);
        assert_eq!(outcome.class, CALLBACK);
        assert!(pack_dir_listing(&repo).is_empty());
    }
    // Cancelling while resolving deltas (a negative value).
    let objects = pack::parse_header(&pack).expect("header").num_objects as usize;
    let mut recorder = Recorder {
        cancel_at: Some((objects + 2, -5)),
        ..Recorder::default()
    };
    let outcome = write_pack(&odb, &pack, usize::MAX, &mut recorder);
    assert_eq!(outcome.code, -5);
    assert!(pack_dir_listing(&repo).is_empty());
}

#[test]
fn dropped_writepack_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = bare_repo(dir.path());
    std::fs::create_dir_all(repo.join("objects/pack")).expect("mkdir");
    let odb = Odb::new(&repo, false, |_| {});
    let good = raw_pack(1, &[entry(3, &[], b"hello\n")]);
    // SAFETY: the writepack protocol, freed without commit.
    unsafe {
        let mut wp: *mut raw::git_odb_writepack = std::ptr::null_mut();
        assert_eq!(
            raw::git_odb_write_pack(&mut wp, odb.0, None, std::ptr::null_mut()),
            0
        );
        let mut stats: raw::git_indexer_progress = std::mem::zeroed();
        assert_eq!(
            (*wp).append.expect("append")(wp, good.as_ptr().cast(), 20, &mut stats),
            0
        );
        assert_eq!(
            pack_dir_listing(&repo).len(),
            1,
            "temp pack exists while writing"
        );
        (*wp).free.expect("free")(wp);
    }
    assert!(pack_dir_listing(&repo).is_empty());
}

#[test]
fn c_example_index_pack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = compile_example("index_pack", dir.path());

    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    history(&work, 12, 3);
    let pack = pack_objects(&work, &["--delta-base-offset"], "--all\n");
    let repo = bare_repo(dir.path());
    let mut child = Command::new(&binary)
        .arg(&repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("index_pack runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&pack)
        .expect("feed pack");
    let output = child.wait_with_output().expect("index_pack finishes");
    assert!(
        output.status.success(),
        "index_pack failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let total = pack::parse_header(&pack).expect("header").num_objects;
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        stdout.starts_with(&format!("total {total} received {total} indexed {total} ")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("bytes {}", pack.len())),
        "{stdout}"
    );
    single_pack(&repo);
    git(&repo, &["fsck", "--no-dangling"]);
}
