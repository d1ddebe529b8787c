//! The C examples are the integration tests of the shipped artefacts: `libodbpack.so` and
//! `include/odbpack.h`, compiled with `-Wall -Wextra -Wpedantic -Werror` against the system's
//! shared libgit2 (Debian's 1.5: a different libgit2 than the vendored one the Rust tests link),
//! run on repositories made with git, output compared with git's; once under valgrind.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn run_with_stdin(command: &mut Command, input: &[u8]) -> (bool, Vec<u8>, String) {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer thread").expect("write stdin");
    (
        output.status.success(),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A repository with several packs, a MIDX over some of them and a few loose objects.
fn example_repo() -> Repo {
    let repo = Repo::new();
    repo.grow_history(8, 6, "c");
    repo.git(&["repack", "-dq"]);
    repo.grow_history(4, 6, "d");
    repo.git(&["repack", "-dq"]);
    repo.git(&["multi-pack-index", "write"]);
    repo.grow_history(2, 6, "e");
    repo.git(&["repack", "-dq"]);
    repo.prune_loose();
    repo.write("loose.txt", b"a loose object\n");
    repo.git(&["add", "loose.txt"]);
    repo
}

#[test]
fn cat_file_example_matches_git_cat_file() {
    let repo = example_repo();
    let work = tempfile::tempdir().expect("temp dir");
    let cat_file = compile_example("cat_file", work.path());
    let objects = repo.objects_dir();
    let ids: Vec<String> = repo.all_objects().into_keys().collect();
    // Full ids, 12-hex prefixes, and one id that does not exist.
    let mut input = String::new();
    for id in &ids {
        input.push_str(&format!("{id}\n{}\n", &id[..12]));
    }
    input.push_str("0123456789abcdef0123456789abcdef01234567\n");
    let (ok, ours, stderr) = run_with_stdin(
        Command::new(&cat_file).arg(&objects).arg("--batch"),
        input.as_bytes(),
    );
    assert!(ok, "cat_file --batch failed: {stderr}");
    let (ok, expected, stderr) = run_with_stdin(
        &mut git_command(repo.path(), &["cat-file", "--batch"]),
        input.as_bytes(),
    );
    assert!(ok, "git cat-file failed: {stderr}");
    assert!(
        ours == expected,
        "cat_file --batch output differs from git cat-file --batch"
    );

    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    for (flag, expected) in [
        ("-t", "commit\n".to_owned()),
        ("-s", repo.git(&["cat-file", "-s", &head])),
    ] {
        let output = Command::new(&cat_file)
            .arg(&objects)
            .arg(flag)
            .arg(&head[..9])
            .output()
            .expect("run");
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    }
}

/// The shipped library defines nothing but `odbpack_*` symbols (no libgit2, no Rust internals).
#[test]
fn shared_library_exports_only_odbpack_symbols() {
    let output = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(target_dir().join("libodbpack.so"))
        .output()
        .expect("nm runs");
    assert!(output.status.success());
    let symbols = String::from_utf8(output.stdout).expect("utf-8");
    let names: Vec<&str> = symbols
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    assert!(names.contains(&"odbpack_backend_new"));
    let foreign: Vec<&&str> = names
        .iter()
        .filter(|name| !name.starts_with("odbpack_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "unexpected exported symbols: {foreign:?}"
    );
    let undefined = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(target_dir().join("libodbpack.so"))
        .output()
        .expect("nm");
    let undefined = String::from_utf8(undefined.stdout).expect("utf-8");
    assert!(
        !undefined.contains("git_"),
        "links no libgit2 symbol: {undefined}"
    );
}

/// A host may `dlclose` libodbpack.so (a plugin unloaded, a wheel's module freed). Once a store
/// with change events closed, odbpack's closer thread runs the library's code for the rest of
/// the process, so the library must stay mapped then; without that thread nothing of odbpack's
/// runs, and it may go. The second case shows the probe notices an unloaded library.
#[test]
fn library_stays_loaded_while_its_closer_thread_lives() {
    let repo = example_repo();
    let work = tempfile::tempdir().expect("temp dir");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/dlclose.c");
    let program = compile_c(&source, work.path(), Linking::Dlopen);
    let library = target_dir().join("libodbpack.so");
    for (change_events, expected) in [("1", "loaded\n"), ("0", "unloaded\n")] {
        let output = Command::new(&program)
            .arg(&library)
            .arg(repo.objects_dir())
            .arg(change_events)
            .output()
            .expect("run");
        assert!(
            output.status.success(),
            "change_events={change_events}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            expected,
            "change_events={change_events}"
        );
    }
}

/// Once under valgrind: no invalid access, no definite leak.
#[test]
fn cat_file_example_is_clean_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is required for this test (apt-get install valgrind)");
    }
    let repo = example_repo();
    let work = tempfile::tempdir().expect("temp dir");
    let cat_file = compile_example("cat_file", work.path());
    let ids: Vec<String> = repo.all_objects().into_keys().take(200).collect();
    let input = ids
        .iter()
        .map(|id| format!("{id}\n{}\n", &id[..8]))
        .collect::<String>();
    let (ok, _, stderr) = run_with_stdin(
        Command::new("valgrind")
            .args([
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "-q",
            ])
            .arg(&cat_file)
            .arg(repo.objects_dir())
            .arg("--batch"),
        input.as_bytes(),
    );
    assert!(ok, "valgrind reported errors:\n{stderr}");
}

/// `examples/midx.c`: write (through `git_odb_write_multi_pack_index` and through
/// `odbpack_midx_write` with options) byte-identical to git, verify (clean and corrupt), expire.
#[test]
fn midx_example_writes_verifies_and_expires_like_git() {
    let repo = Repo::new();
    repo.grow_in_packs(3, 2, 4, "m");
    // A fourth pack holding every object: the newest, so a plain write selects only from it.
    git_stdin(
        repo.path(),
        &["pack-objects", "-q", "--revs", ".git/objects/pack/pack"],
        b"main\n",
    );
    repo.prune_loose();
    let incremental: Vec<_> = repo.packs();
    let newest = std::fs::read_dir(repo.pack_dir())
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .max_by_key(|p| std::fs::metadata(p).expect("stat").len())
        .expect("full pack");
    let mut order: Vec<_> = incremental
        .iter()
        .filter(|p| **p != newest)
        .cloned()
        .collect();
    order.push(newest.clone());
    for (rank, pack) in order.iter().enumerate() {
        let status = Command::new("touch")
            .arg("-d")
            .arg(format!("@{}", 1_700_000_000 + 1000 * rank as i64))
            .arg(pack)
            .status()
            .expect("touch");
        assert!(status.success());
    }
    let work = tempfile::tempdir().expect("temp dir");
    let midx = compile_example("midx", work.path());
    let objects = repo.objects_dir();
    let midx_file = repo.pack_dir().join("multi-pack-index");
    let run = |args: &[&str]| {
        let output = Command::new(&midx)
            .args(args)
            .arg(&objects)
            .output()
            .expect("run midx");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let git_fresh = |args: &[&str]| {
        let ours = std::fs::read(&midx_file).expect("our MIDX");
        std::fs::remove_file(&midx_file).expect("rm");
        let mut full_args = vec!["multi-pack-index", "write"];
        full_args.extend_from_slice(args);
        repo.git(&full_args);
        let git = std::fs::read(&midx_file).expect("git's MIDX");
        std::fs::write(&midx_file, &ours).expect("restore");
        (ours, git)
    };

    let (code, _, stderr) = run(&["write"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (ours, git) = git_fresh(&[]);
    assert!(ours == git, "midx write (odb slot) differs from git");
    repo.git(&["multi-pack-index", "verify"]);

    let (code, _, stderr) = run(&["write", "--reverse-index", "--progress"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("write: "), "progress printed: {stderr}");
    let (ours, git) = git_fresh(&["--bitmap"]);
    assert!(
        ours == git,
        "midx write --reverse-index differs from git --bitmap"
    );

    let (code, _, stderr) = run(&["verify"]);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    let mut bad = ours.clone();
    let at = bad.len() - 5;
    bad[at] ^= 0xff;
    std::fs::write(&midx_file, &bad).expect("corrupt");
    let (code, _, stderr) = run(&["verify"]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr, "error: incorrect checksum\n");
    std::fs::write(&midx_file, &ours).expect("restore");

    let (code, stdout, stderr) = run(&["expire"]);
    assert_eq!(code, Some(0), "{stderr}");
    // The reverse-index write preferred the oldest pack, so its objects stay selected from it.
    assert_eq!(stdout, "expired 2 pack(s)\n");
    assert_eq!(
        repo.packs(),
        [order[0].clone(), newest]
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    repo.git(&["multi-pack-index", "verify"]);
    repo.git(&["fsck", "--no-progress"]);

    let (code, _, _) = run(&["frobnicate"]);
    assert_eq!(code, Some(129));
}
