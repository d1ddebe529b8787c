//! MIDX reader, writer and verify, checked against git 2.47 on repositories built in temp dirs:
//! git's files must parse and agree with `git show-index`, our writer must reproduce git's
//! fresh writes byte for byte, and each t5319 corruption must give its specific error.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::PrefixMatch;
use super::midx::{Error, MultiPackIndex, PackEntries, Problem, parse_chain, verify};
use super::midx_write::tests::VecPack;
use super::midx_write::{self, PackInput, WriteOptions, write_midx, write_rev_file};
use crate::oid::{ObjectId, Prefix};

fn git_cmd(dir: &Path, args: &[&str]) -> Command {
    crate::test_git::git_command(dir, args)
}

use crate::test_git::run_with_input as run;

fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    run(git_cmd(dir, args), b"")
}

fn git_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    run(git_cmd(dir, args), stdin)
}

/// A pack index's entries, from `git show-index` (`offset id (crc)` per line, id order).
fn show_index(dir: &Path, idx: &Path) -> VecPack {
    let out = git_in(dir, &["show-index"], &fs::read(idx).expect("read idx"));
    let text = String::from_utf8(out).expect("utf8");
    let mut entries: Vec<(ObjectId, u64)> = text
        .lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            let offset = fields
                .next()
                .expect("offset")
                .parse()
                .expect("decimal offset");
            let id = ObjectId::from_hex(fields.next().expect("id")).expect("hex id");
            (id, offset)
        })
        .collect();
    entries.sort();
    VecPack(entries)
}

/// The packs of a pack directory: (`.idx` name, `.pack` mtime, entries), sorted by name as the
/// store passes them.
struct PackDir {
    packs: Vec<(String, i64, VecPack)>,
}

impl PackDir {
    fn load(repo: &Path) -> PackDir {
        let dir = pack_dir(repo);
        let mut names: Vec<String> = fs::read_dir(&dir)
            .expect("pack dir")
            .map(|e| {
                e.expect("entry")
                    .file_name()
                    .into_string()
                    .expect("utf8 name")
            })
            .filter(|n| n.ends_with(".idx") && n.starts_with("pack-"))
            .collect();
        names.sort();
        let packs = names
            .into_iter()
            .map(|name| {
                let pack = dir.join(name.replace(".idx", ".pack"));
                let mtime = fs::metadata(&pack)
                    .expect("pack exists")
                    .modified()
                    .expect("mtime")
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("after epoch")
                    .as_secs() as i64;
                let entries = show_index(repo, &dir.join(&name));
                (name, mtime, entries)
            })
            .collect();
        PackDir { packs }
    }

    fn inputs(&self) -> Vec<PackInput<'_>> {
        self.packs
            .iter()
            .map(|(name, mtime, entries)| PackInput {
                idx_name: name,
                mtime: *mtime,
                entries,
            })
            .collect()
    }

    fn by_name(&self, name: &str) -> Option<&VecPack> {
        self.packs.iter().find(|p| p.0 == name).map(|p| &p.2)
    }

    /// Per MIDX pack id, that pack's entries (`None` if the name is not in the directory).
    fn for_midx<'a>(&'a self, midx: &MultiPackIndex<Vec<u8>>) -> Vec<Option<&'a dyn PackEntries>> {
        (0..midx.num_packs())
            .map(|id| {
                self.by_name(midx.pack_name(id))
                    .map(|e| e as &dyn PackEntries)
            })
            .collect()
    }
}

fn pack_dir(repo: &Path) -> PathBuf {
    repo.join(".git/objects/pack")
}

fn midx_path(repo: &Path) -> PathBuf {
    pack_dir(repo).join("multi-pack-index")
}

/// Removes git's MIDX and sidecars so the next `write` is a fresh one.
fn remove_midx(repo: &Path) {
    for entry in fs::read_dir(pack_dir(repo)).expect("pack dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("multi-pack-index") {
            fs::remove_file(&path).expect("remove midx file");
        }
    }
}

/// Runs `git multi-pack-index write <args>` fresh and returns the MIDX bytes.
fn git_midx(repo: &Path, args: &[&str]) -> Vec<u8> {
    remove_midx(repo);
    let mut full = vec![
        "-c",
        "core.multiPackIndex=false",
        "multi-pack-index",
        "write",
    ];
    full.extend_from_slice(args);
    git(repo, &full);
    fs::read(midx_path(repo)).expect("git wrote a MIDX")
}

fn init(dir: &Path) {
    git(dir, &["init", "-q"]);
    git(dir, &["config", "maintenance.auto", "false"]);
    git(dir, &["config", "gc.auto", "0"]);
}

/// Commits `name` with `lines` lines, plus four more files and a subdirectory derived from it,
/// so each commit adds 8 objects.
fn commit_file(dir: &Path, name: &str, lines: usize) {
    let body: String = (1..=lines).map(|i| format!("{i}\n")).collect();
    fs::write(dir.join(name), &body).expect("write file");
    let sub = dir.join(format!("{name}.d"));
    fs::create_dir_all(&sub).expect("mkdir");
    for j in 0..4 {
        fs::write(sub.join(format!("{j}")), format!("{body}{j}\n")).expect("write file");
    }
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", name]);
}

fn touch(path: &Path, secs: i64) {
    let status = Command::new("touch")
        .arg("-d")
        .arg(format!("@{secs}"))
        .arg(path)
        .status()
        .expect("touch runs");
    assert!(status.success());
}

/// Five packs: three incremental ones, one with everything and one with the history up to
/// HEAD~1 (so objects are duplicated up to three times), with distinct mtimes in an order
/// unrelated to their names.
fn five_packs() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init(dir);
    for i in 1..=3 {
        commit_file(dir, &format!("f{i}.txt"), i * 300);
        git(dir, &["repack", "-dq"]);
    }
    let prefix = pack_dir(dir).join("pack");
    let prefix = prefix.to_str().expect("utf8 path");
    git_in(dir, &["pack-objects", "--revs", "-q", prefix], b"main\n");
    git_in(dir, &["pack-objects", "--revs", "-q", prefix], b"main~1\n");
    let mut names: Vec<PathBuf> = fs::read_dir(pack_dir(dir))
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 5);
    for (i, pack) in names.iter().enumerate() {
        touch(pack, 1_700_000_000 + ((i as i64 * 3 + 2) % 5) * 1000);
    }
    tmp
}

fn ours(repo: &Path, options: WriteOptions<'_>) -> Vec<u8> {
    let packs = PackDir::load(repo);
    let (written, bytes) = write_midx(&packs.inputs(), options, Vec::new()).expect("write");
    assert!(written.warnings.is_empty(), "{:?}", written.warnings);
    bytes
}

/// Every MIDX object resolves to the offset its pack's index gives, and every pack object is
/// in the MIDX.
fn check_against_packs(midx: &MultiPackIndex<Vec<u8>>, packs: &PackDir) {
    let mut all: HashMap<ObjectId, ()> = HashMap::new();
    for (_, _, entries) in &packs.packs {
        for &(oid, _) in &entries.0 {
            all.insert(oid, ());
            assert!(midx.find(&oid).is_some(), "{oid} missing from MIDX");
        }
    }
    assert_eq!(midx.num_objects(), all.len());
    for i in 0..midx.num_objects() {
        let oid = midx.oid_at(i);
        assert_eq!(midx.find(&oid), Some(i));
        let prefix = Prefix::new(oid, 40).expect("full prefix");
        assert_eq!(midx.find_prefix(&prefix), PrefixMatch::One(i));
        let (pack, offset) = midx.pack_and_offset(i).expect("valid entry");
        let entries = packs
            .by_name(midx.pack_name(pack as usize))
            .expect("pack exists");
        let at = entries.find(&oid).expect("object in its pack");
        assert_eq!(entries.offset_at(at), offset);
    }
    assert_eq!(verify(midx, &packs.for_midx(midx)), []);
}

#[test]
fn reads_git_midx_and_matches_show_index() {
    let repo = five_packs();
    let packs = PackDir::load(repo.path());
    let bytes = git_midx(repo.path(), &[]);
    let midx = MultiPackIndex::from_bytes(bytes).expect("git's MIDX parses");
    assert_eq!(midx.version(), 1);
    assert_eq!(midx.num_packs(), 5);
    assert!(midx.verify_checksum());
    assert!(!midx.has_large_offsets() && !midx.has_reverse_index());
    assert_eq!(midx.bitmapped_pack(0), None);
    for (id, (name, _, _)) in packs.packs.iter().enumerate() {
        assert_eq!(midx.pack_name(id), name);
        assert_eq!(midx.find_pack(name), Some(id as u32));
        assert_eq!(
            midx.find_pack(&name.replace(".idx", ".pack")),
            Some(id as u32)
        );
    }
    assert_eq!(midx.find_pack("pack-0.idx"), None);
    check_against_packs(&midx, &packs);
    // The newest pack wins every object it holds.
    let newest = packs
        .packs
        .iter()
        .enumerate()
        .max_by_key(|(_, p)| p.1)
        .expect("packs")
        .0;
    for &(oid, _) in &packs.packs[newest].2.0 {
        let i = midx.find(&oid).expect("present");
        assert_eq!(midx.pack_and_offset(i).expect("valid").0, newest as u32);
    }
    assert!(matches!(
        midx.pack_and_offset(midx.num_objects()),
        Err(Error::ObjectIndexOutOfRange { .. })
    ));
}

#[test]
fn writer_matches_git_plain_bitmap_and_preferred() {
    let repo = five_packs();
    let dir = repo.path();
    let packs = PackDir::load(dir);

    let git_plain = git_midx(dir, &[]);
    assert_eq!(ours(dir, WriteOptions::default()), git_plain);

    let git_bitmap = git_midx(dir, &["--bitmap"]);
    let midx = MultiPackIndex::from_bytes(git_bitmap.clone()).expect("parses");
    assert!(midx.has_reverse_index());
    // Some pack contributes nothing: git writes (0, 0) for it, as we do.
    assert!((0..5).any(|id| midx.bitmapped_pack(id) == Some((0, 0))));
    check_against_packs(&midx, &packs);
    let options = WriteOptions {
        write_reverse_index: true,
        ..Default::default()
    };
    assert_eq!(ours(dir, options), git_bitmap);

    // A preferred pack that is neither newest nor oldest, named in its `.pack` form.
    let mut by_mtime: Vec<&(String, i64, VecPack)> = packs.packs.iter().collect();
    by_mtime.sort_by_key(|p| p.1);
    let middle = by_mtime[2].0.replace(".idx", ".pack");
    let arg = format!("--preferred-pack={middle}");
    let git_preferred = git_midx(dir, &[&arg]);
    assert_ne!(git_preferred, git_plain);
    let options = WriteOptions {
        preferred_pack: Some(&middle),
        ..Default::default()
    };
    assert_eq!(ours(dir, options), git_preferred);

    let git_both = git_midx(dir, &[&arg, "--bitmap"]);
    let options = WriteOptions {
        preferred_pack: Some(&middle),
        write_reverse_index: true,
        progress: None,
    };
    assert_eq!(ours(dir, options), git_both);
    let midx = MultiPackIndex::from_bytes(git_both).expect("parses");
    let first = midx.reverse_index_at(0).expect("RIDX") as usize;
    let preferred_id = midx.find_pack(&middle).expect("listed");
    assert_eq!(midx.pack_and_offset(first).expect("valid").0, preferred_id);
    assert_eq!(
        midx.bitmapped_pack(preferred_id as usize).expect("BTMP").0,
        0
    );
}

#[test]
fn rev_sidecar_matches_git() {
    let repo = five_packs();
    let dir = repo.path();
    remove_midx(dir);
    let mut cmd = git_cmd(dir, &["multi-pack-index", "write", "--bitmap"]);
    cmd.env("GIT_TEST_MIDX_WRITE_REV", "1");
    run(cmd, b"");
    let midx = MultiPackIndex::from_bytes(fs::read(midx_path(dir)).expect("midx")).expect("parse");
    let rev_path = pack_dir(dir).join(format!("multi-pack-index-{}.rev", midx.checksum()));
    let git_rev = fs::read(rev_path).expect("git wrote the .rev");

    let packs = PackDir::load(dir);
    let mut calls = 0;
    let mut progress = |_done: u64, _total: u64| calls += 1;
    let options = WriteOptions {
        progress: Some(&mut progress),
        ..Default::default()
    };
    let (_, rev) =
        write_rev_file(&packs.inputs(), options, &midx.checksum(), Vec::new()).expect("write rev");
    assert_eq!(rev, git_rev);
    assert!(calls > 0);
}

/// t5319's large-offset setup: an `.idx` v2 whose large-offset table holds every offset > 0x40,
/// one of them pushed past 2^32 (or only past 2^31) by patching the `.idx`.
fn large_offset_repo(patch_byte: usize, value: u8) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init(dir);
    for i in 1..=3 {
        commit_file(dir, &format!("f{i}.txt"), i * 50);
    }
    let objects = git(dir, &["rev-list", "--objects", "--all"]);
    let prefix = pack_dir(dir).join("test");
    let prefix = prefix.to_str().expect("utf8");
    let out = git_in(
        dir,
        &["pack-objects", "--index-version=2,0x40", "-q", prefix],
        &objects,
    );
    let hash = String::from_utf8(out).expect("utf8").trim().to_owned();
    let idx = pack_dir(dir).join(format!("test-{hash}.idx"));
    let mut bytes = fs::read(&idx).expect("idx");
    let n = u32::from_be_bytes(bytes[8 + 255 * 4..8 + 256 * 4].try_into().expect("4 bytes"));
    let large_table = 8 + 1024 + 28 * n as usize;
    assert!(
        bytes.len() >= large_table + 8 + 40,
        "some offset went to the large table"
    );
    bytes[large_table + patch_byte] = value;
    fs::set_permissions(&idx, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::write(&idx, bytes).expect("patch idx");
    tmp
}

fn check_large(repo: &tempfile::TempDir, expect_loff: bool) -> Vec<u8> {
    let dir = repo.path();
    // The pack is named `test-*`; load it explicitly.
    let pack_dir = pack_dir(dir);
    let name = fs::read_dir(&pack_dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .find(|n| n.ends_with(".idx"))
        .expect("one idx");
    let entries = show_index(dir, &pack_dir.join(&name));
    let git_bytes = git_midx(dir, &[]);
    let midx = MultiPackIndex::from_bytes(git_bytes.clone()).expect("parse");
    assert_eq!(midx.has_large_offsets(), expect_loff);
    assert!(entries.0.iter().any(|e| e.1 > 0x7fff_ffff));
    for (i, &(oid, offset)) in entries.0.iter().enumerate() {
        assert_eq!(midx.oid_at(i), oid);
        assert_eq!(midx.pack_and_offset(i), Ok((0, offset)));
    }
    assert_eq!(verify(&midx, &[Some(&entries)]), []);
    let inputs = [PackInput {
        idx_name: &name,
        mtime: 0,
        entries: &entries,
    }];
    let (_, ours) = write_midx(&inputs, WriteOptions::default(), Vec::new()).expect("write");
    assert_eq!(ours, git_bytes);
    git_bytes
}

#[test]
fn large_offsets_match_git() {
    // Byte 3 of the first large offset ← 0x02: the offset grows by 2^33, LOFF is needed.
    let repo = large_offset_repo(3, 0x02);
    let bytes = check_large(&repo, true);
    let midx = MultiPackIndex::from_bytes(bytes.clone()).expect("parse");
    // t5319: LOFF+3 ← 0x07 gives "incorrect object offset".
    let loff = chunk_range(&bytes, *b"LOFF");
    let mut bad = bytes;
    bad[loff.start + 3] = 0x07;
    let bad = MultiPackIndex::from_bytes(bad).expect("still parses");
    let dir = repo.path();
    let name = bad.pack_name(0).to_owned();
    let entries = show_index(dir, &pack_dir(dir).join(name));
    let problems = verify(&bad, &[Some(&entries)]);
    assert!(
        problems
            .iter()
            .any(|p| p.to_string().starts_with("incorrect object offset"))
    );
    assert!(problems.contains(&Problem::Checksum));
    drop(midx);

    // Byte 4 ← 0x80: offset in 2^31..2^32, stored directly without LOFF.
    let repo = large_offset_repo(4, 0x80);
    check_large(&repo, false);
}

/// Byte range of chunk `id` in a MIDX (test helper; reads the table directly).
fn chunk_range(bytes: &[u8], id: [u8; 4]) -> std::ops::Range<usize> {
    let count = bytes[6] as usize;
    for row in 0..count {
        let at = 12 + row * 12;
        if bytes[at..at + 4] == id {
            let start = u64::from_be_bytes(bytes[at + 4..at + 12].try_into().expect("8"));
            let end = u64::from_be_bytes(bytes[at + 16..at + 24].try_into().expect("8"));
            return start as usize..end as usize;
        }
    }
    panic!("no chunk {id:?}");
}

/// lib-chunk.sh `corrupt_chunk_file … clear`: drops a chunk's bytes and fixes the table.
fn clear_chunk(bytes: &[u8], id: [u8; 4]) -> Vec<u8> {
    let range = chunk_range(bytes, id);
    let removed = range.len() as u64;
    let mut out = bytes[..range.start].to_vec();
    out.extend_from_slice(&bytes[range.end..]);
    let count = out[6] as usize;
    for row in 0..=count {
        let at = 12 + row * 12 + 4;
        let offset = u64::from_be_bytes(out[at..at + 8].try_into().expect("8"));
        if offset > range.start as u64 {
            out[at..at + 8].copy_from_slice(&(offset - removed).to_be_bytes());
        }
    }
    out
}

#[test]
fn t5319_corruptions() {
    let repo = five_packs();
    let dir = repo.path();
    let packs = PackDir::load(dir);
    let good = git_midx(dir, &[]);
    let pnam = chunk_range(&good, *b"PNAM").start;
    let oidf = chunk_range(&good, *b"OIDF").start;
    let oidl = chunk_range(&good, *b"OIDL").start;
    let ooff = chunk_range(&good, *b"OOFF").start;
    let patched = |at: usize, value: u8| {
        let mut bytes = good.clone();
        bytes[at] = value;
        bytes
    };
    let parse_err = |bytes: Vec<u8>, needle: &str| {
        let err = MultiPackIndex::from_bytes(bytes).expect_err("rejected");
        assert!(
            err.to_string().contains(needle),
            "{err} does not contain {needle:?}"
        );
        err
    };
    let verify_err = |bytes: Vec<u8>, needle: &str| {
        let midx = MultiPackIndex::from_bytes(bytes).expect("parses");
        let problems = verify(&midx, &packs.for_midx(&midx));
        assert!(
            problems.iter().any(|p| p.to_string().contains(needle)),
            "{problems:?} lack {needle:?}"
        );
        problems
    };

    assert_eq!(
        parse_err(patched(0, 0), "multi-pack-index signature"),
        Error::Signature(0x0049_4458)
    );
    assert_eq!(
        parse_err(patched(4, 0), "multi-pack-index version"),
        Error::Version(0)
    );
    parse_err(patched(4, 3), "multi-pack-index version 3 not recognized");
    assert_eq!(
        parse_err(patched(5, 3), "hash version"),
        Error::HashVersion(3)
    );
    parse_err(patched(5, 2), "hash version 2 does not match version 1");
    parse_err(patched(6, 1), "final chunk has non-zero id");
    parse_err(
        patched(6, 7),
        "terminating chunk id appears earlier than expected",
    );
    assert_eq!(
        parse_err(patched(12, 1), "required pack-name chunk missing"),
        Error::MissingChunk("pack-name")
    );
    parse_err(patched(16, 1), "improper chunk offset(s)");
    verify_err(patched(pnam + 2, b'a'), "failed to load pack in position");
    parse_err(patched(pnam + 2, b'z'), "pack names out of order");
    parse_err(patched(oidf + 250 * 4 + 1, 1), "oid fanout out of order");
    verify_err(patched(oidl + 16 * 20, 0), "oid lookup out of order");
    let bad_id = patched(ooff + 16 * 8 + 2, 7);
    verify_err(bad_id.clone(), "bad pack-int-id");
    let midx = MultiPackIndex::from_bytes(bad_id).expect("parses");
    assert!(matches!(
        midx.pack_and_offset(16),
        Err(Error::BadPackIntId { num_packs: 5, .. })
    ));
    verify_err(patched(ooff + 16 * 8 + 6, 0xff), "incorrect object offset");
    let mut checksum = good.clone();
    let len = checksum.len();
    checksum[len - 10..].fill(0xff);
    let problems = verify_err(checksum, "incorrect checksum");
    assert_eq!(problems, [Problem::Checksum]);

    // Reader robustness (lib-chunk.sh cases).
    parse_err(
        clear_chunk(&good, *b"OIDF"),
        "OID fanout is of the wrong size",
    );
    parse_err(
        clear_chunk(&good, *b"OIDL"),
        "OID lookup chunk is the wrong size",
    );
    parse_err(
        clear_chunk(&good, *b"OOFF"),
        "object offset chunk is the wrong size",
    );
    let mut no_nul = good.clone();
    let names = chunk_range(&good, *b"PNAM");
    no_nul[names].iter_mut().for_each(|b| *b = b'x');
    parse_err(no_nul, "pack-name chunk is too short");
    // A 9-byte PNAM moves OIDF to an unaligned offset.
    let mut short = good[..pnam + 9].to_vec();
    short.extend_from_slice(&good[chunk_range(&good, *b"OIDF").start..]);
    let shrink = (chunk_range(&good, *b"PNAM").len() - 9) as u64;
    for row in 1..=4 {
        let at = 12 + row * 12 + 4;
        let offset = u64::from_be_bytes(short[at..at + 8].try_into().expect("8"));
        short[at..at + 8].copy_from_slice(&(offset - shrink).to_be_bytes());
    }
    parse_err(short, "not 4-byte aligned");
    let mut oversized = good.clone();
    oversized[oidf + 254 * 4..oidf + 255 * 4].copy_from_slice(&0xfe00_0000u32.to_be_bytes());
    parse_err(
        oversized,
        "oid fanout out of order: fanout[254] = fe000000 >",
    );

    // A RIDX of the wrong size is ignored, not fatal.
    let with_ridx = git_midx(dir, &["--bitmap"]);
    let cleared = clear_chunk(&with_ridx, *b"RIDX");
    let midx = MultiPackIndex::from_bytes(cleared).expect("still usable");
    assert_eq!(midx.ignored(), [Error::ReverseIndexSize]);
    assert_eq!(midx.reverse_index_at(0), None);
    assert!(midx.bitmapped_pack(0).is_some());
}

#[test]
fn large_offset_chunk_cleared_is_out_of_bounds() {
    let repo = large_offset_repo(3, 0x02);
    let good = git_midx(repo.path(), &[]);
    let midx = MultiPackIndex::from_bytes(clear_chunk(&good, *b"LOFF")).expect("parses");
    let errors = (0..midx.num_objects()).filter_map(|i| midx.pack_and_offset(i).err());
    assert!(
        errors
            .into_iter()
            .any(|e| e == Error::LargeOffsetOutOfBounds)
    );
}

#[test]
fn empty_midx_fails_verify_and_v2_names() {
    // A MIDX with one empty pack: our writer produces it; verify says "no oid".
    let empty = VecPack(Vec::new());
    let inputs = [PackInput {
        idx_name: "pack-e.idx",
        mtime: 0,
        entries: &empty,
    }];
    let (written, bytes) = write_midx(&inputs, WriteOptions::default(), Vec::new()).expect("write");
    assert_eq!(written.num_objects, 0);
    let midx = MultiPackIndex::from_bytes(bytes.clone()).expect("parse");
    let problems = verify(&midx, &[Some(&empty)]);
    assert_eq!(problems, [Problem::NoObjects]);
    assert_eq!(problems[0].to_string(), "the midx contains no oid");

    // v2 accepts any PNAM order, still no duplicates.
    let a = VecPack(vec![(ObjectId([1; 20]), 12)]);
    let inputs = [
        PackInput {
            idx_name: "pack-a.idx",
            mtime: 0,
            entries: &a,
        },
        PackInput {
            idx_name: "pack-b.idx",
            mtime: 0,
            entries: &empty,
        },
    ];
    let (_, bytes) = write_midx(&inputs, WriteOptions::default(), Vec::new()).expect("write");
    let pnam = chunk_range(&bytes, *b"PNAM").start;
    let mut swapped = bytes.clone();
    swapped[pnam + 5] = b'b';
    swapped[pnam + 16] = b'a';
    assert!(matches!(
        MultiPackIndex::from_bytes(swapped.clone()),
        Err(Error::PackNamesOutOfOrder { .. })
    ));
    swapped[4] = 2;
    let v2 = MultiPackIndex::from_bytes(swapped.clone()).expect("v2 any order");
    assert_eq!(v2.find_pack("pack-a.pack"), Some(1));
    swapped[pnam + 16] = b'b';
    assert!(matches!(
        MultiPackIndex::from_bytes(swapped),
        Err(Error::DuplicatePackName(name)) if name == "pack-b.idx"
    ));
}

#[test]
fn incremental_chain_layers_parse() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init(dir);
    commit_file(dir, "a.txt", 10);
    git(dir, &["repack", "-dq"]);
    git(dir, &["multi-pack-index", "write"]);
    for (i, name) in ["b.txt", "c.txt"].iter().enumerate() {
        commit_file(dir, name, 20 + i);
        git(dir, &["repack", "-dq"]);
        git(dir, &["multi-pack-index", "write", "--incremental"]);
    }
    let chain_dir = pack_dir(dir).join("multi-pack-index.d");
    let chain = fs::read(chain_dir.join("multi-pack-index-chain")).expect("chain");
    let layers = parse_chain(&chain).expect("valid chain");
    assert_eq!(layers.len(), 3);
    let packs = PackDir::load(dir);
    let mut total = 0;
    for layer in &layers {
        let path = chain_dir.join(format!("multi-pack-index-{layer}.midx"));
        let midx = MultiPackIndex::from_bytes(fs::read(path).expect("layer")).expect("parse");
        assert_eq!(midx.checksum(), *layer);
        assert_eq!(midx.num_packs(), 1);
        assert_eq!(verify(&midx, &packs.for_midx(&midx)), []);
        total += midx.num_objects();
    }
    let all: usize = packs.packs.iter().map(|p| p.2.len()).sum();
    assert_eq!(total, all);

    let mut broken = chain.clone();
    broken[41] = b'x';
    assert_eq!(
        parse_chain(&broken),
        Err(Error::ChainLine {
            line: 2,
            valid: vec![layers[0]]
        })
    );
    assert_eq!(parse_chain(b""), Ok(vec![]));
    assert_eq!(parse_chain(b"abc\n"), Err(Error::ChainTooSmall));
}

#[test]
fn no_panic_on_any_single_byte_change() {
    let repo = large_offset_repo(3, 0x02);
    let dir = repo.path();
    let mut files = vec![git_midx(dir, &[])];
    let repo5 = five_packs();
    files.push(git_midx(repo5.path(), &["--bitmap"]));
    for good in files {
        for at in 0..good.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[at] = value;
                if let Ok(midx) = MultiPackIndex::from_bytes(bytes) {
                    exercise(&midx);
                }
            }
        }
        for len in 0..good.len() {
            if let Ok(midx) = MultiPackIndex::from_bytes(good[..len].to_vec()) {
                exercise(&midx);
            }
        }
    }
}

fn exercise(midx: &MultiPackIndex<Vec<u8>>) {
    for id in 0..midx.num_packs() {
        let _ = midx.pack_name(id);
        let _ = midx.bitmapped_pack(id);
    }
    for i in 0..midx.num_objects().min(200) {
        let oid = midx.oid_at(i);
        let _ = midx.find(&oid);
        let _ = midx.pack_and_offset(i);
        let _ = midx.reverse_index_at(i);
    }
    let _ = midx.pack_and_offset(usize::MAX);
    let _ = midx.reverse_index_at(usize::MAX);
    let _ = midx.bitmapped_pack(usize::MAX);
    let _ = verify(midx, &[]);
}

#[test]
fn unknown_preferred_pack_warns() {
    let repo = five_packs();
    let packs = PackDir::load(repo.path());
    let options = WriteOptions {
        preferred_pack: Some("does-not-exist"),
        ..Default::default()
    };
    let (written, bytes) = write_midx(&packs.inputs(), options, Vec::new()).expect("write");
    assert_eq!(
        written.warnings,
        [midx_write::Warning::UnknownPreferredPack(
            "does-not-exist".into()
        )]
    );
    assert_eq!(written.preferred_pack, None);
    assert_eq!(bytes, git_midx(repo.path(), &[]));
}
