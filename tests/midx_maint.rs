//! Writing, verifying and expiring multi-pack-indexes (issue 3): our files against git's, byte
//! for byte; then `git multi-pack-index verify` and `git fsck` on ours; t5319's corruptions;
//! locking and failure injection; the `writemidx` slot; the C API.

mod common;

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use odbpack::Error;
use odbpack::ffi::{
    odbpack_error_last, odbpack_midx_expire, odbpack_midx_verify, odbpack_midx_write,
    odbpack_midx_write_options,
};
use odbpack::format::midx_write::WriteOptions;
use odbpack::store::midx::{self, FailPoint};

unsafe extern "C" {
    // Not declared by libgit2-sys, exported by the vendored library it links.
    fn git_odb_write_multi_pack_index(db: *mut libgit2_sys::git_odb) -> c_int;
}

const BASE_TIME: i64 = 1_700_000_000;

fn touch(path: &Path, secs: i64) {
    let status = std::process::Command::new("touch")
        .arg("-d")
        .arg(format!("@{secs}"))
        .arg(path)
        .status()
        .expect("touch");
    assert!(status.success());
}

/// `count` packs of growing history, then (if `full_at` is set) a pack with every object, with
/// distinct mtimes; the full pack gets mtime rank `full_at` among them.
fn multi_pack_repo(count: usize, full_at: Option<usize>) -> Repo {
    let repo = Repo::new();
    repo.grow_in_packs(count, 2, 6, "p");
    let mut packs = repo.packs();
    if full_at.is_some() {
        let before = packs.clone();
        git_stdin(
            repo.path(),
            &[
                "pack-objects",
                "-q",
                "--revs",
                "--delta-base-offset",
                ".git/objects/pack/pack",
            ],
            b"main\n",
        );
        let full = repo
            .packs()
            .into_iter()
            .find(|p| !before.contains(p))
            .expect("new full pack");
        packs.insert(full_at.unwrap_or(0).min(packs.len()), full);
    }
    repo.prune_loose();
    for (rank, pack) in packs.iter().enumerate() {
        touch(pack, BASE_TIME + 1000 * rank as i64);
    }
    repo
}

fn midx_path(repo: &Repo) -> PathBuf {
    repo.pack_dir().join("multi-pack-index")
}

fn ours(repo: &Repo, options: WriteOptions<'_>) -> Vec<u8> {
    midx::write_dir(&repo.objects_dir(), options).expect("our MIDX write");
    std::fs::read(midx_path(repo)).expect("our MIDX")
}

/// git's fresh write with `args`; our file (if any) is set aside and put back afterwards.
fn gits(repo: &Repo, args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let path = midx_path(repo);
    let aside = repo.pack_dir().join("ours.midx");
    let had = std::fs::rename(&path, &aside).is_ok();
    let mut full = vec![
        "-c",
        "core.multiPackIndex=false",
        "multi-pack-index",
        "write",
    ];
    full.extend_from_slice(args);
    let mut command = git_command(repo.path(), &full);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("git runs");
    assert!(
        output.status.success(),
        "git {full:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&path).expect("git's MIDX");
    if had {
        std::fs::rename(&aside, &path).expect("restore ours");
    }
    bytes
}

fn git_verify_and_fsck(repo: &Repo) {
    repo.git(&["multi-pack-index", "verify"]);
    repo.git(&["-c", "core.multiPackIndex=true", "fsck", "--no-progress"]);
}

fn assert_same(ours: &[u8], git: &[u8], what: &str) {
    assert!(
        ours == git,
        "{what}: our MIDX ({} bytes) differs from git's ({} bytes)",
        ours.len(),
        git.len()
    );
}

#[test]
fn one_pack_matches_git() {
    let repo = multi_pack_repo(1, None);
    let git = gits(&repo, &[], &[]);
    std::fs::remove_file(midx_path(&repo)).expect("rm");
    let mine = ours(&repo, WriteOptions::default());
    assert_same(&mine, &git, "one pack");
    git_verify_and_fsck(&repo);
    assert!(
        midx::verify_dir(&repo.objects_dir())
            .expect("verify")
            .is_empty()
    );
}

#[test]
fn many_packs_with_duplicates_and_mtimes_match_git() {
    for full_at in [0, 3, 6] {
        let repo = multi_pack_repo(6, Some(full_at));
        let mine = ours(&repo, WriteOptions::default());
        let git = gits(&repo, &[], &[]);
        assert_same(&mine, &git, &format!("full pack at mtime rank {full_at}"));
        git_verify_and_fsck(&repo);
        assert_same_as_git_and_libgit2(&repo);
    }
}

#[test]
fn preferred_pack_matches_git() {
    let repo = multi_pack_repo(4, Some(4));
    let packs = repo.packs();
    // The oldest pack shares objects with the newest (full) one; preferring it changes selection.
    let name = packs[0].file_name().unwrap().to_str().unwrap().to_owned();
    let preferred = format!("--preferred-pack={name}");
    let git = gits(&repo, &[&preferred], &[]);
    let mine = ours(
        &repo,
        WriteOptions {
            preferred_pack: Some(&name),
            ..WriteOptions::default()
        },
    );
    assert_same(&mine, &git, "--preferred-pack");
    assert_ne!(
        mine,
        gits(&repo, &[], &[]),
        "preference changed the selection"
    );
    git_verify_and_fsck(&repo);
}

#[test]
fn reverse_index_matches_git_bitmap_write_and_rev_sidecar() {
    let repo = multi_pack_repo(4, Some(2));
    let git = gits(&repo, &["--bitmap"], &[("GIT_TEST_MIDX_WRITE_REV", "1")]);
    let checksum = odbpack::ObjectId::from_slice(&git[git.len() - 20..]).unwrap();
    let rev = repo
        .pack_dir()
        .join(format!("multi-pack-index-{checksum}.rev"));
    let git_rev = std::fs::read(&rev).expect("git's .rev");
    std::fs::remove_file(&rev).unwrap();
    std::fs::remove_file(
        repo.pack_dir()
            .join(format!("multi-pack-index-{checksum}.bitmap")),
    )
    .unwrap();
    std::fs::remove_file(midx_path(&repo)).unwrap();
    let mut calls = 0u32;
    let mut last = (0, 0);
    let mut progress = |done, total| {
        calls += 1;
        last = (done, total);
    };
    let mine = ours(
        &repo,
        WriteOptions {
            write_reverse_index: true,
            progress: Some(&mut progress),
            ..WriteOptions::default()
        },
    );
    assert!(
        calls > 0 && last.0 == last.1 && last.1 > 0,
        "progress reported"
    );
    assert_same(&mine, &git, "RIDX/BTMP");
    assert_eq!(
        std::fs::read(&rev).expect("our .rev"),
        git_rev,
        ".rev sidecar"
    );
    git_verify_and_fsck(&repo);
}

#[test]
fn large_offsets_match_git() {
    let repo = Repo::new();
    repo.grow_history(6, 8, "loff");
    git_stdin(
        repo.path(),
        &[
            "pack-objects",
            "-q",
            "--revs",
            "--index-version=2,0x40",
            ".git/objects/pack/pack",
        ],
        b"main\n",
    );
    repo.prune_loose();
    let idx = repo.packs()[0].with_extension("idx");
    let mut bytes = std::fs::read(&idx).unwrap();
    let n = u32::from_be_bytes(bytes[8 + 255 * 4..8 + 256 * 4].try_into().unwrap()) as usize;
    let large_start = 8 + 1024 + n * 28;
    assert!(
        bytes.len() > large_start + 8 + 40,
        "idx has a large-offset table"
    );
    bytes[large_start + 3] = 0x02; // First large offset += 2^33: past 4 GiB.
    let mut perms = std::fs::metadata(&idx).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&idx, perms).unwrap();
    std::fs::write(&idx, &bytes).unwrap();
    let git = gits(&repo, &[], &[]);
    assert_eq!(git[6], 5, "git wrote LOFF");
    std::fs::remove_file(midx_path(&repo)).unwrap();
    let mine = ours(&repo, WriteOptions::default());
    assert_same(&mine, &git, "LOFF");
    repo.git(&["multi-pack-index", "verify"]);
    assert!(midx::verify_dir(&repo.objects_dir()).unwrap().is_empty());
}

/// (chunk id → offset) of a MIDX.
fn chunk_offsets(bytes: &[u8]) -> std::collections::HashMap<[u8; 4], usize> {
    let count = bytes[6] as usize;
    (0..count)
        .map(|i| {
            let row = &bytes[12 + 12 * i..24 + 12 * i];
            let id: [u8; 4] = row[..4].try_into().unwrap();
            let offset = u64::from_be_bytes(row[4..].try_into().unwrap()) as usize;
            (id, offset)
        })
        .collect()
}

#[test]
fn verify_catches_t5319_corruptions_and_passes_git_files() {
    let repo = multi_pack_repo(3, Some(1));
    let good = gits(&repo, &[], &[]);
    std::fs::write(midx_path(&repo), &good).unwrap();
    assert_eq!(
        midx::verify_dir(&repo.objects_dir()).unwrap(),
        Vec::<String>::new()
    );
    let at = chunk_offsets(&good);
    let (pnam, oidf, oidl, ooff) = (at[b"PNAM"], at[b"OIDF"], at[b"OIDL"], at[b"OOFF"]);
    let len = good.len();
    let cases: Vec<(Vec<usize>, u8, &str)> = vec![
        (vec![0], 0x00, "multi-pack-index signature"),
        (vec![4], 0x00, "multi-pack-index version"),
        (vec![5], 0x03, "hash version"),
        (vec![6], 0x01, "final chunk has non-zero id"),
        (
            vec![6],
            0x07,
            "terminating chunk id appears earlier than expected",
        ),
        (vec![12], 0x01, "required pack-name chunk missing"),
        (vec![16], 0x01, "improper chunk offset(s)"),
        (vec![pnam + 2], b'a', "failed to load pack"),
        (vec![pnam + 2], b'z', "pack names out of order"),
        (vec![oidf + 250 * 4 + 1], 0x01, "oid fanout out of order"),
        (vec![oidl + 16 * 20], 0x00, "oid lookup out of order"),
        (vec![ooff + 16 * 8 + 2], 0x07, "bad pack-int-id"),
        (vec![ooff + 16 * 8 + 6], 0xff, "incorrect object offset"),
        ((len - 10..len).collect(), 0xff, "incorrect checksum"),
    ];
    for (positions, value, expected) in cases {
        let mut bad = good.clone();
        for &p in &positions {
            bad[p] = value;
        }
        std::fs::write(midx_path(&repo), &bad).unwrap();
        let problems = midx::verify_dir(&repo.objects_dir()).unwrap();
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{positions:?} <- {value:#x}: expected '{expected}', got {problems:?}"
        );
        let git = git_command(repo.path(), &["multi-pack-index", "verify"])
            .output()
            .unwrap();
        assert!(!git.status.success(), "git also rejects {positions:?}");
    }
    std::fs::remove_file(midx_path(&repo)).unwrap();
    assert!(
        midx::verify_dir(&repo.objects_dir()).unwrap().is_empty(),
        "no MIDX: nothing to verify"
    );
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn lock_contention_gives_elocked_and_keeps_the_old_midx() {
    let repo = multi_pack_repo(2, Some(2));
    let old = ours(&repo, WriteOptions::default());
    repo.grow_history(1, 2, "new");
    repo.git(&["repack", "-dq"]);
    let lock = repo.pack_dir().join("multi-pack-index.lock");
    std::fs::write(&lock, b"someone else").unwrap();
    match midx::write_dir(&repo.objects_dir(), WriteOptions::default()) {
        Err(Error::Locked { path }) => assert_eq!(path, lock),
        other => panic!("expected Locked, got {other:?}"),
    }
    let dir = CString::new(repo.objects_dir().to_str().unwrap()).unwrap();
    let rc = unsafe { odbpack_midx_write(dir.as_ptr(), std::ptr::null()) };
    assert_eq!(rc, -14, "GIT_ELOCKED");
    let message = unsafe { CStr::from_ptr(odbpack_error_last()) }
        .to_string_lossy()
        .into_owned();
    assert!(message.contains("multi-pack-index.lock"), "{message}");
    assert_eq!(
        std::fs::read(&lock).unwrap(),
        b"someone else",
        "their lock untouched"
    );
    assert_eq!(std::fs::read(midx_path(&repo)).unwrap(), old);
    std::fs::remove_file(&lock).unwrap();
    assert_ne!(
        ours(&repo, WriteOptions::default()),
        old,
        "writes again once unlocked"
    );
}

#[test]
fn failed_writes_leave_nothing_behind() {
    let repo = multi_pack_repo(3, Some(1));
    let old = ours(&repo, WriteOptions::default());
    repo.grow_history(1, 2, "new");
    repo.git(&["repack", "-dq"]);
    let before = dir_listing(&repo.pack_dir());
    for point in [
        FailPoint::AfterMidxWritten,
        FailPoint::AfterRevCommitted,
        FailPoint::BeforeCommit,
    ] {
        midx::inject_failure(Some(point));
        let result = midx::write_dir(
            &repo.objects_dir(),
            WriteOptions {
                write_reverse_index: true,
                ..WriteOptions::default()
            },
        );
        midx::inject_failure(None);
        assert!(result.is_err(), "{point:?} fails the write");
        assert_eq!(
            dir_listing(&repo.pack_dir()),
            before,
            "{point:?}: nothing left"
        );
        assert_eq!(
            std::fs::read(midx_path(&repo)).unwrap(),
            old,
            "{point:?}: old MIDX"
        );
        repo.git(&["multi-pack-index", "verify"]);
    }

    // A read-only pack directory (only meaningful when not running as root).
    use std::os::unix::fs::PermissionsExt;
    let pack_dir = repo.pack_dir();
    std::fs::set_permissions(&pack_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = pack_dir.join("probe");
    if std::fs::write(&probe, b"").is_ok() {
        std::fs::remove_file(&probe).unwrap();
        eprintln!("running as root: read-only directory case skipped (fail points cover it)");
    } else {
        let result = midx::write_dir(&repo.objects_dir(), WriteOptions::default());
        assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
        assert_eq!(dir_listing(&pack_dir), before);
        assert_eq!(std::fs::read(midx_path(&repo)).unwrap(), old);
    }
    std::fs::set_permissions(&pack_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn stale_sidecars_and_chain_are_removed() {
    let repo = multi_pack_repo(2, None);
    let pack_dir = repo.pack_dir();
    std::fs::write(pack_dir.join("multi-pack-index-1234.rev"), b"x").unwrap();
    std::fs::write(pack_dir.join("multi-pack-index-abcd.bitmap"), b"x").unwrap();
    let chain = pack_dir.join("multi-pack-index.d");
    std::fs::create_dir(&chain).unwrap();
    std::fs::write(chain.join("multi-pack-index-dead.midx"), b"x").unwrap();
    std::fs::write(chain.join("multi-pack-index-chain"), b"dead\n").unwrap();
    ours(
        &repo,
        WriteOptions {
            write_reverse_index: true,
            ..WriteOptions::default()
        },
    );
    let listing = dir_listing(&pack_dir);
    assert!(
        !listing
            .iter()
            .any(|n| n.contains("1234") || n.contains("abcd")),
        "{listing:?}"
    );
    assert_eq!(
        listing.iter().filter(|n| n.ends_with(".rev")).count(),
        1,
        "only our .rev"
    );
    assert!(dir_listing(&chain).is_empty());
    // Without the reverse index, the previous write's .rev is stale too.
    ours(&repo, WriteOptions::default());
    assert!(!dir_listing(&pack_dir).iter().any(|n| n.ends_with(".rev")));
}

#[test]
fn expire_matches_git_and_keeps_keep_packs() {
    let repo = multi_pack_repo(4, Some(4));
    let packs = repo.packs();
    // A .keep on one superseded pack: it must survive.
    let kept = packs[1].with_extension("keep");
    std::fs::write(&kept, b"").unwrap();
    ours(&repo, WriteOptions::default());
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(repo.path().join("."))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let git_pack_dir = copy.path().join(".git/objects/pack");
    git(copy.path(), &["multi-pack-index", "expire"]);

    let mut progress_calls = 0;
    let mut progress = |_, _| progress_calls += 1;
    let expired = midx::expire_dir(&repo.objects_dir(), Some(&mut progress)).expect("expire");
    assert_eq!(expired.dropped.len(), 3, "{expired:?}");
    assert!(progress_calls > 0);
    assert!(kept.exists() && packs[1].exists(), ".keep pack kept");
    assert_eq!(dir_listing(&repo.pack_dir()), dir_listing(&git_pack_dir));
    assert_same(
        &std::fs::read(midx_path(&repo)).unwrap(),
        &std::fs::read(git_pack_dir.join("multi-pack-index")).unwrap(),
        "after expire",
    );
    git_verify_and_fsck(&repo);
    assert_same_as_git_and_libgit2(&repo);
    // Nothing left to expire: a no-op.
    let again = midx::expire_dir(&repo.objects_dir(), None).unwrap();
    assert!(again.dropped.is_empty() && again.written.is_none());
}

#[test]
fn writemidx_slot_switches_the_backend_while_readers_read() {
    let repo = multi_pack_repo(4, Some(2));
    let expected = repo.all_objects();
    let ids: Vec<String> = expected.keys().cloned().collect();
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    assert!(odb.store().snapshot().midx.is_empty());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (dir, ids, stop) = (repo.objects_dir(), ids.clone(), stop.clone());
            std::thread::spawn(move || {
                let odb = Odb::open(&dir, Backend::Odbpack);
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) || reads == 0 {
                    for id in &ids {
                        odb.read(id)
                            .unwrap_or_else(|rc| panic!("read {id} during writes: {rc}"));
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    for _ in 0..5 {
        let rc = unsafe { git_odb_write_multi_pack_index(odb.raw) };
        assert_eq!(rc, 0, "{}", last_error());
        assert_eq!(odb.store().snapshot().midx.len(), 1, "switched at once");
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().expect("reader") > 0);
    }
    let mine = std::fs::read(midx_path(&repo)).unwrap();
    assert_same(&mine, &gits(&repo, &[], &[]), "writemidx slot");
    assert_same_as_git_and_libgit2(&repo);
}

unsafe extern "C" fn collect_problem(message: *const c_char, payload: *mut c_void) {
    let problems = unsafe { &mut *payload.cast::<Vec<String>>() };
    problems.push(
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned(),
    );
}

unsafe extern "C" fn count_progress(done: u64, total: u64, payload: *mut c_void) {
    assert!(done <= total);
    unsafe { *payload.cast::<u32>() += 1 };
}

#[test]
fn c_api_write_verify_expire() {
    let repo = multi_pack_repo(3, Some(3));
    let dir = CString::new(repo.objects_dir().to_str().unwrap()).unwrap();
    let name = repo.packs()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let preferred = CString::new(name.clone()).unwrap();
    let mut calls = 0u32;
    let options = odbpack_midx_write_options {
        preferred_pack: preferred.as_ptr(),
        write_reverse_index: 1,
        progress: Some(count_progress),
        payload: (&raw mut calls).cast(),
        ..Default::default()
    };
    assert_eq!(unsafe { odbpack_midx_write(dir.as_ptr(), &options) }, 0);
    assert!(calls > 0);
    let mine = std::fs::read(midx_path(&repo)).unwrap();
    let preferred_arg = format!("--preferred-pack={name}");
    assert_same(
        &mine,
        &gits(&repo, &["--bitmap", &preferred_arg], &[]),
        "C API write",
    );

    let mut problems: Vec<String> = Vec::new();
    let verify = |problems: &mut Vec<String>| unsafe {
        odbpack_midx_verify(
            dir.as_ptr(),
            Some(collect_problem),
            (problems as *mut Vec<String>).cast(),
        )
    };
    assert_eq!(verify(&mut problems), 0, "{problems:?}");
    let mut bad = mine.clone();
    let len = bad.len();
    bad[len - 1] ^= 0xff;
    std::fs::write(midx_path(&repo), &bad).unwrap();
    assert_eq!(verify(&mut problems), 1);
    assert_eq!(problems, ["incorrect checksum"]);
    std::fs::write(midx_path(&repo), &mine).unwrap();

    // Preferring the oldest pack kept objects in it; a plain write selects from the newest.
    assert_eq!(
        unsafe { odbpack_midx_write(dir.as_ptr(), std::ptr::null()) },
        0
    );
    let mut expired = 0usize;
    assert_eq!(
        unsafe { odbpack_midx_expire(dir.as_ptr(), std::ptr::null(), &mut expired) },
        0
    );
    assert_eq!(expired, 3);
    assert_eq!(repo.packs().len(), 1);
    git_verify_and_fsck(&repo);

    let missing = CString::new("/nonexistent/objects").unwrap();
    assert!(unsafe { odbpack_midx_write(missing.as_ptr(), std::ptr::null()) } < 0);
}

#[test]
fn verify_checks_incremental_chain_layers() {
    let repo = multi_pack_repo(2, None);
    repo.git(&["multi-pack-index", "write", "--incremental"]);
    repo.grow_history(1, 3, "layer2-");
    repo.git(&["repack", "-dq"]);
    repo.git(&["multi-pack-index", "write", "--incremental"]);
    let chain_dir = repo.pack_dir().join("multi-pack-index.d");
    let chain = std::fs::read_to_string(chain_dir.join("multi-pack-index-chain")).unwrap();
    assert_eq!(chain.lines().count(), 2, "two layers");
    assert!(!midx_path(&repo).exists());
    assert_eq!(
        midx::verify_dir(&repo.objects_dir()).unwrap(),
        Vec::<String>::new()
    );
    let tip = chain.lines().last().unwrap();
    let layer = chain_dir.join(format!("multi-pack-index-{tip}.midx"));
    let mut bytes = std::fs::read(&layer).unwrap();
    let len = bytes.len();
    bytes[len - 1] ^= 0xff;
    let mut perms = std::fs::metadata(&layer).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&layer, perms).unwrap();
    std::fs::write(&layer, &bytes).unwrap();
    let problems = midx::verify_dir(&repo.objects_dir()).unwrap();
    assert_eq!(
        problems,
        [format!("multi-pack-index-{tip}.midx: incorrect checksum")]
    );
    // A plain write replaces the chain.
    ours(&repo, WriteOptions::default());
    assert!(std::fs::read_dir(&chain_dir).unwrap().next().is_none());
    git_verify_and_fsck(&repo);
}
