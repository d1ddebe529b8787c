//! Reading through multi-pack-indexes written by git 2.47: plain, with `--bitmap` (RIDX/BTMP
//! chunks), stale next to newer packs, corrupt, naming vanished packs, switched off, and
//! incremental chains. Every case is compared object by object with git and libgit2.

mod common;

use common::*;

fn packed_repo(batches: usize) -> Repo {
    let repo = Repo::new();
    repo.grow_in_packs(batches, 4, 7, "m");
    repo.prune_loose();
    repo
}

fn midx_layers(repo: &Repo) -> usize {
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    odb.store().snapshot().midx.len()
}

#[test]
fn git_midx_with_and_without_bitmap() {
    let repo = packed_repo(5);
    repo.git(&["multi-pack-index", "write"]);
    assert_eq!(midx_layers(&repo), 1);
    assert_same_as_git_and_libgit2(&repo);

    repo.git(&["multi-pack-index", "write", "--bitmap"]);
    let midx = std::fs::read(repo.pack_dir().join("multi-pack-index")).expect("midx");
    assert_eq!(midx[6], 6, "six chunks: RIDX and BTMP present");
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    assert_eq!(
        odb.store().snapshot().midx.len(),
        1,
        "MIDX with RIDX/BTMP is used"
    );
    assert!(odb.store().snapshot().uncovered.is_empty());
    assert_same_as_git_and_libgit2(&repo);
}

#[test]
fn stale_midx_next_to_new_packs() {
    let repo = packed_repo(3);
    repo.git(&["multi-pack-index", "write"]);
    repo.grow_history(3, 7, "late-");
    repo.git(&["repack", "-dq"]);
    repo.prune_loose();
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let snapshot = odb.store().snapshot();
    assert_eq!(snapshot.midx.len(), 1);
    assert_eq!(
        snapshot.uncovered.len(),
        1,
        "the new pack is outside the MIDX"
    );
    assert_same_as_git_and_libgit2(&repo);
}

#[test]
fn corrupt_midx_is_ignored_with_a_reason() {
    let repo = packed_repo(3);
    repo.git(&["multi-pack-index", "write"]);
    let path = repo.pack_dir().join("multi-pack-index");
    let mut bytes = std::fs::read(&path).expect("midx");
    bytes[0] = 0;
    std::fs::write(&path, bytes).expect("write corrupt midx");
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    assert!(odb.store().snapshot().midx.is_empty());
    let problems = odb.store().midx_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("multi-pack-index"), "{problems:?}");
    assert_same_as_git_and_libgit2(&repo);
}

#[test]
fn midx_naming_a_vanished_pack_is_ignored() {
    let repo = packed_repo(3);
    repo.git(&["multi-pack-index", "write"]);
    let midx = std::fs::read(repo.pack_dir().join("multi-pack-index")).expect("midx");
    // Repack everything into one new pack (git deletes the old packs and the MIDX), then put
    // the old MIDX back: it names packs that are gone.
    repo.git(&["repack", "-adq"]);
    std::fs::write(repo.pack_dir().join("multi-pack-index"), midx).expect("restore midx");
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    assert!(odb.store().snapshot().midx.is_empty());
    assert!(odb.store().midx_problems()[0].contains("not in the pack directory"));
    assert_same_as_git_and_libgit2(&repo);
}

/// A scan stats only the packs no MIDX covers (git neither stats the others): a store opened
/// on a repository with a MIDX learns nothing of its packs' files until it reads one. A pack
/// the store already had keeps its maps when a MIDX comes to cover it; an index whose pack is
/// not listed next to it counts for nothing, as in git.
#[test]
fn a_scan_stats_only_the_packs_no_midx_covers() {
    let repo = packed_repo(3);
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let store = odb.store();
    let before = store.snapshot();
    assert_eq!(before.uncovered.len(), 3);
    assert!(before.packs().all(|pack| pack.info.is_some()));

    repo.git(&["multi-pack-index", "write"]);
    let orphan = repo.pack_dir().join(format!("pack-{}.idx", "0".repeat(40)));
    std::fs::copy(repo.packs()[0].with_extension("idx"), &orphan).expect("orphan index");
    // Between a pack's index and the pack in the directory's order: it still counts.
    std::fs::write(repo.packs()[1].with_extension("keep"), b"").expect("keep file");
    store.rescan().expect("rescan");
    let after = store.snapshot();
    assert_eq!(after.midx.len(), 1);
    assert!(after.uncovered.is_empty() && after.merged.is_none());
    assert_eq!(
        after.packs().count(),
        3,
        "the index without a pack is left out"
    );
    for pack in before.packs() {
        assert!(
            after.packs().any(|kept| std::sync::Arc::ptr_eq(kept, pack)),
            "{} kept",
            pack.idx_name
        );
    }

    // Backends of one directory share a store while one is open: close it to start anew.
    drop((odb, store, before, after));
    let fresh = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let snapshot = fresh.store().snapshot();
    assert_eq!(snapshot.packs().count(), 3);
    assert!(snapshot.packs().all(|pack| pack.info.is_none()));
    drop((fresh, snapshot));
    assert_same_as_git_and_libgit2(&repo);
}

/// Reads through a MIDX search no pack's own index, so none is mapped; a pack is still checked
/// against its index when it is opened (its head and trailer, read through the file), and a
/// pack that does not belong to its index is refused, the error naming the pack.
#[test]
fn covered_packs_are_checked_against_indexes_they_do_not_map() {
    let repo = packed_repo(3);
    repo.git(&["multi-pack-index", "write"]);
    assert_same_as_git_and_libgit2(&repo);
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let objects = repo.all_objects();
    for id in objects.keys() {
        odb.read(id).expect("read");
    }
    let snapshot = odb.store().snapshot();
    assert!(snapshot.packs().all(|pack| pack.is_data_open()));
    assert!(snapshot.packs().all(|pack| !pack.is_index_mapped()));
    drop((odb, snapshot));

    // The index of one pack records another pack checksum: git would refuse that pack too.
    let pack = repo.packs()[0].clone();
    let index = pack.with_extension("idx");
    let mut bytes = std::fs::read(&index).expect("index");
    let listing = git_stdin(repo.path(), &["show-index"], &bytes);
    let in_pack: std::collections::BTreeSet<&str> = listing
        .lines()
        .map(|line| line.split(' ').nth(1).expect("offset, id, crc"))
        .collect();
    let at = bytes.len() - 40;
    bytes[at] ^= 0xff;
    std::fs::remove_file(&index).expect("read-only index");
    std::fs::write(&index, bytes).expect("write index");
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    for id in objects.keys() {
        match odb.read(id) {
            Ok(_) => assert!(!in_pack.contains(id.as_str()), "{id} read"),
            Err(_) => {
                let error = last_error();
                assert!(in_pack.contains(id.as_str()), "{id}: {error}");
                assert!(
                    error.contains("pack checksum does not match its index"),
                    "{error}"
                );
                assert!(error.contains(pack.to_str().expect("utf-8")), "{error}");
            }
        }
    }
}

#[test]
fn midx_can_be_switched_off() {
    let repo = packed_repo(3);
    repo.git(&["multi-pack-index", "write"]);
    let mut options = options_for_static_libgit2();
    options.use_midx = 0;
    let odb = Odb::open_with(&repo.objects_dir(), Backend::Odbpack, options);
    let snapshot = odb.store().snapshot();
    assert!(snapshot.midx.is_empty());
    assert_eq!(snapshot.uncovered.len(), 3);
    for id in repo.all_objects().keys() {
        assert!(odb.read(id).is_ok());
    }
}

#[test]
fn incremental_midx_chain() {
    let repo = packed_repo(2);
    repo.git(&["multi-pack-index", "write", "--incremental"]);
    repo.grow_history(3, 7, "inc-");
    repo.git(&["repack", "-dq"]);
    repo.prune_loose();
    repo.git(&["multi-pack-index", "write", "--incremental"]);
    let chain = std::fs::read_to_string(
        repo.pack_dir()
            .join("multi-pack-index.d/multi-pack-index-chain"),
    )
    .expect("chain");
    assert_eq!(chain.lines().count(), 2);
    assert!(!repo.pack_dir().join("multi-pack-index").exists());
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let snapshot = odb.store().snapshot();
    assert_eq!(snapshot.midx.len(), 2, "both layers loaded");
    assert!(snapshot.uncovered.is_empty(), "every pack is in a layer");
    assert_same_as_git_and_libgit2(&repo);

    // Once refresh trusts the directories, a new layer written just before refresh is picked
    // up, whether change events or stamps tell.
    let stores = [odb.store(), store_watching(&repo.objects_dir(), false)];
    stores
        .iter()
        .for_each(|store| wait_until_refresh_trusts(store));
    repo.grow_history(2, 7, "inc2-");
    repo.git(&["repack", "-dq"]);
    repo.git(&["multi-pack-index", "write", "--incremental"]);
    for store in &stores {
        store.refresh().expect("refresh");
        assert_eq!(store.snapshot().midx.len(), 3, "third layer seen");
    }
    drop((odb, stores));
    let chain = std::fs::read_to_string(
        repo.pack_dir()
            .join("multi-pack-index.d/multi-pack-index-chain"),
    )
    .expect("chain");

    // A chain whose tip layer is missing keeps the base layers; the tip's packs are read alone.
    let tip = chain.lines().last().expect("tip").to_owned();
    std::fs::remove_file(
        repo.pack_dir()
            .join(format!("multi-pack-index.d/multi-pack-index-{tip}.midx")),
    )
    .expect("rm tip");
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let snapshot = odb.store().snapshot();
    assert_eq!(snapshot.midx.len(), 2);
    assert_eq!(snapshot.uncovered.len(), 1);
    assert_same_as_git_and_libgit2(&repo);
}

/// Threads with their own odb read everything while another thread rewrites the MIDX, repacks
/// (deleting packs) and refreshes: every read returns git's bytes or, for a moment, "not found"
/// followed by success after the odb's refresh-and-retry — never wrong bytes, never a crash.
#[test]
fn concurrent_reads_survive_repack_and_midx_rewrites() {
    let repo = packed_repo(4);
    repo.git(&["multi-pack-index", "write"]);
    let ids: Vec<String> = repo.all_objects().into_keys().collect();
    let expected = std::sync::Arc::new(repo.cat_objects(&ids));
    let objects_dir = repo.objects_dir();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (expected, stop, objects_dir) =
                (expected.clone(), stop.clone(), objects_dir.clone());
            std::thread::spawn(move || {
                let odb = Odb::open(&objects_dir, Backend::Odbpack);
                let mut reads = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads < 2000 {
                    for (i, (id, (kind, body))) in expected.iter().enumerate() {
                        if (i + t) % 3 != 0 {
                            continue;
                        }
                        let object = odb
                            .read(id)
                            .unwrap_or_else(|rc| panic!("read {id}: {rc} {}", last_error()));
                        assert_eq!((&object.kind, &object.data), (kind, body), "bytes of {id}");
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    for round in 0..4 {
        repo.git(&["repack", "-adq"]);
        repo.git(&["multi-pack-index", "write"]);
        if round % 2 == 0 {
            repo.git(&["repack", "-adfq", "--depth=20"]);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().expect("reader thread did not panic") >= 2000);
    }
}
