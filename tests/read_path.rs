//! The read path against real git and real libgit2: every object of repositories built with the
//! git CLI, read through odbpack registered in libgit2 (vendored 1.9.7), compared with libgit2's
//! own pack backend and with `git cat-file`.

mod common;

use std::ffi::c_int;

use common::*;
use libgit2_sys as raw;

const NOT_FOUND: c_int = raw::GIT_ENOTFOUND as c_int;
const AMBIGUOUS: c_int = raw::GIT_EAMBIGUOUS as c_int;

/// Several packs (one per batch of commits), a deep-delta full repack, and loose objects pruned.
#[test]
fn many_packs_and_deep_deltas_match_git_and_libgit2() {
    let repo = Repo::new();
    repo.grow_in_packs(4, 6, 9, "b");
    repo.prune_loose();
    assert!(repo.packs().len() >= 4, "several packs");
    assert_same_as_git_and_libgit2(&repo);

    repo.git(&["repack", "-adfq", "--window=50", "--depth=200"]);
    assert_eq!(repo.packs().len(), 1);
    assert_same_as_git_and_libgit2(&repo);
}

/// A store reads each pack's index through the file for its first lookups (a read that probes
/// every pack maps none of them), then maps it; lookups answer the same either way, hits and
/// misses (a REF_DELTA's base is looked up so too: `ref_delta_pack_and_v1_index` reads a pack of
/// them with a v1 index through a fresh store).
#[test]
fn young_indexes_are_read_through_the_file_then_mapped() {
    let repo = Repo::new();
    repo.grow_in_packs(3, 4, 7, "y");
    repo.prune_loose();
    let objects = repo.all_objects();
    let expected = repo.cat_objects(&objects.keys().cloned().collect::<Vec<_>>());
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let snapshot = odb.store().snapshot();
    assert_eq!(snapshot.uncovered.len(), 3);

    let absent = "0123456789abcdef0123456789abcdef01234567";
    assert!(!odb.exists(absent), "a miss probes every pack");
    let (first, (kind, bytes)) = expected.iter().next().expect("objects");
    let object = odb.read(first).expect("read");
    assert_eq!((&object.kind, &object.data), (kind, bytes));
    assert!(snapshot.packs().all(|pack| !pack.is_index_mapped()));

    for (id, (kind, bytes)) in &expected {
        assert!(odb.exists(id), "{id}");
        let object = odb.read(id).expect("read");
        assert_eq!((&object.kind, &object.data), (kind, bytes), "{id}");
    }
    assert!(!odb.exists(absent));
    assert!(snapshot.packs().all(|pack| pack.is_index_mapped()));
}

/// A pack written with REF_DELTA entries (no --delta-base-offset), and a v1 index.
#[test]
fn ref_delta_pack_and_v1_index() {
    let repo = Repo::new();
    repo.grow_history(10, 6, "r");
    let objects: Vec<String> = repo.all_objects().into_keys().collect();
    repo.pack_objects(&objects, &["--index-version=1"]);
    // Remove everything else so only the REF_DELTA pack serves.
    for pack in repo.packs() {
        let idx = pack.with_extension("idx");
        let bytes = std::fs::read(&idx).expect("idx");
        if bytes.starts_with(b"\xfftOc") {
            std::fs::remove_file(&pack).expect("rm pack");
            std::fs::remove_file(idx).expect("rm idx");
        }
    }
    repo.prune_loose();
    for loose in std::fs::read_dir(repo.objects_dir()).expect("objects") {
        let path = loose.expect("entry").path();
        if path.file_name().is_some_and(|n| n.len() == 2) {
            std::fs::remove_dir_all(path).expect("rm loose dir");
        }
    }
    let packs = repo.packs();
    assert_eq!(packs.len(), 1);
    let pack = std::fs::read(&packs[0]).expect("pack");
    let has_ref_delta = {
        let index = odbpack::format::idx::PackIndex::from_bytes(
            std::fs::read(packs[0].with_extension("idx")).expect("idx"),
        )
        .expect("idx parses");
        assert_eq!(index.version(), 1);
        (0..index.num_objects()).any(|i| {
            let offset = index.offset_at(i).expect("offset");
            matches!(
                odbpack::format::pack::parse_entry(&pack, offset)
                    .expect("entry")
                    .kind,
                odbpack::format::pack::EntryKind::RefDelta { .. }
            )
        })
    };
    assert!(
        has_ref_delta,
        "pack-objects without --delta-base-offset writes REF_DELTA"
    );
    assert_same_as_git_and_libgit2(&repo);
}

/// Objects present in two packs are found once, and prefixes of them are not ambiguous.
#[test]
fn duplicated_objects_are_not_ambiguous() {
    let repo = Repo::new();
    repo.grow_history(5, 5, "d");
    repo.git(&["repack", "-dq"]);
    // A second pack with all objects again.
    let all = repo.all_objects();
    let ids: Vec<&String> = all.keys().collect();
    repo.pack_objects(&ids, &["--delta-base-offset"]);
    repo.prune_loose();
    assert_eq!(repo.packs().len(), 2);
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    for id in all.keys() {
        assert_eq!(odb.read_prefix(&id[..7]).map(|o| o.id), Ok(id.clone()));
        assert_eq!(odb.exists_prefix(&id[..7]), Ok(id.clone()));
    }
    assert_same_as_git_and_libgit2(&repo);
}

/// Blobs whose ids share prefixes: ambiguous within one pack and across packs, resolved by one
/// more digit — the same answers as libgit2's backend.
#[test]
fn ambiguity_matrix_matches_libgit2() {
    let repo = Repo::new();
    repo.write_blobs("", 0..1500);
    repo.commit_all("many blobs");
    repo.git(&["repack", "-adq"]);
    repo.write_blobs("", 1500..3000);
    repo.commit_all("more blobs");
    repo.git(&["repack", "-dq"]);
    repo.prune_loose();
    let packs = repo.packs();
    assert_eq!(packs.len(), 2);
    let first_pack: std::collections::BTreeSet<String> = {
        let index = odbpack::format::idx::PackIndex::from_bytes(
            std::fs::read(packs[0].with_extension("idx")).expect("idx"),
        )
        .expect("parse");
        (0..index.num_objects())
            .map(|i| index.oid_at(i).to_hex())
            .collect()
    };
    let ids: Vec<String> = repo.all_objects().into_keys().collect();
    let (mut within, mut across) = (None, None);
    for pair in ids.windows(2) {
        if pair[0][..5] == pair[1][..5] {
            let same_pack = first_pack.contains(&pair[0]) == first_pack.contains(&pair[1]);
            let slot = if same_pack { &mut within } else { &mut across };
            slot.get_or_insert((pair[0].clone(), pair[1].clone()));
        }
    }
    let ours = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let theirs = Odb::open(&repo.objects_dir(), Backend::Libgit2);
    let mut checked = 0;
    for (a, b) in [within, across].into_iter().flatten() {
        let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        let shared = &a[..common];
        assert_eq!(
            ours.read_prefix(shared).err(),
            Some(AMBIGUOUS),
            "{shared} is ambiguous"
        );
        assert_eq!(ours.exists_prefix(shared).err(), Some(AMBIGUOUS));
        assert_eq!(theirs.read_prefix(shared).err(), Some(AMBIGUOUS));
        let longer = &a[..common + 1];
        assert_eq!(ours.read_prefix(longer).map(|o| o.id), Ok(a.clone()));
        assert_eq!(ours.exists_prefix(longer), Ok(a.clone()));
        checked += 1;
    }
    assert!(checked >= 1, "3000 blobs give 5-hex collisions");
    // A prefix matching nothing.
    let mut missing = ids[0][..8].to_owned();
    while ids.iter().any(|id| id.starts_with(&missing)) {
        missing.replace_range(7..8, if &missing[7..8] == "0" { "1" } else { "0" });
    }
    assert_eq!(ours.read_prefix(&missing).err(), Some(NOT_FOUND));
    assert_eq!(ours.exists_prefix(&missing).err(), Some(NOT_FOUND));
}

/// foreach reports every packed object and returns the callback's stop value verbatim.
#[test]
fn foreach_lists_everything_and_stops_with_the_callback_value() {
    let repo = Repo::new();
    repo.grow_history(8, 6, "f");
    repo.git(&["repack", "-dq"]);
    repo.grow_history(3, 6, "g");
    repo.git(&["repack", "-dq"]);
    repo.prune_loose();
    let expected: Vec<String> = repo.all_objects().into_keys().collect();
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let (rc, mut ids) = odb.foreach();
    assert_eq!(rc, 0);
    ids.sort();
    ids.dedup();
    assert_eq!(ids, expected);

    for stop in [-321, 321] {
        struct Count {
            seen: usize,
            stop: c_int,
        }
        extern "C" fn stop_at_20(_: *const raw::git_oid, payload: *mut std::ffi::c_void) -> c_int {
            let count = unsafe { &mut *payload.cast::<Count>() };
            count.seen += 1;
            if count.seen == 20 { count.stop } else { 0 }
        }
        let mut count = Count { seen: 0, stop };
        let rc =
            unsafe { raw::git_odb_foreach(odb.raw, Some(stop_at_20), (&raw mut count).cast()) };
        assert_eq!(rc, stop);
        assert_eq!(count.seen, 20);
    }
}

/// freshen (through git_odb_write of an existing object) touches the pack, at most every 2 s.
#[test]
fn freshen_touches_the_pack() {
    let repo = Repo::new();
    repo.write("a.txt", b"freshen me\n");
    repo.commit_all("one");
    repo.git(&["repack", "-adq"]);
    repo.prune_loose();
    let pack = repo.packs().remove(0);
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::File::open(&pack)
        .expect("pack")
        .set_modified(old)
        .expect("set mtime");
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let blob = repo.git(&["rev-parse", "HEAD:a.txt"]).trim().to_owned();
    let freshen = odb.backend;
    let rc = unsafe {
        let backend = &*freshen;
        (backend.freshen.expect("freshen slot"))(freshen, &oid(&blob))
    };
    assert_eq!(rc, 0);
    let touched = std::fs::metadata(&pack)
        .expect("meta")
        .modified()
        .expect("mtime");
    assert!(
        touched > old + std::time::Duration::from_secs(1000),
        "mtime advanced"
    );
    // Within two seconds: not touched again.
    std::fs::File::open(&pack)
        .expect("pack")
        .set_modified(old)
        .expect("set mtime");
    let rc = unsafe { ((*freshen).freshen.expect("slot"))(freshen, &oid(&blob)) };
    assert_eq!(rc, 0);
    assert_eq!(
        std::fs::metadata(&pack)
            .expect("meta")
            .modified()
            .expect("mtime"),
        old
    );
    let absent = oid("0123456789abcdef0123456789abcdef01234567");
    assert_eq!(
        unsafe { ((*freshen).freshen.expect("slot"))(freshen, &absent) },
        NOT_FOUND
    );
}

/// A pack written after the backend opened is found (libgit2 refreshes on a miss); a pack that
/// vanished is dropped and its objects found in the pack that replaced it.
#[test]
fn refresh_picks_up_new_packs_and_drops_vanished_ones() {
    let repo = Repo::new();
    repo.grow_history(3, 3, "x");
    repo.git(&["repack", "-adq"]);
    repo.prune_loose();
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let before = repo.all_objects();
    repo.grow_history(3, 3, "y");
    repo.git(&["repack", "-dq"]);
    repo.prune_loose();
    let after = repo.all_objects();
    let new_id = after
        .keys()
        .find(|id| !before.contains_key(*id))
        .expect("new object")
        .clone();
    // The odb misses, refreshes, retries: found.
    assert!(
        odb.read(&new_id).is_ok(),
        "new pack found after refresh-on-miss"
    );
    // Repack everything into one new pack: the old packs vanish.
    repo.git(&["repack", "-adq"]);
    assert_eq!(odb.refresh(), 0);
    for id in after.keys() {
        assert!(odb.read(id).is_ok(), "{id} readable after repack");
    }
    assert_eq!(
        odb.store().snapshot().by_name.len(),
        1,
        "vanished packs dropped"
    );
    // Once refresh trusts the directory, a pack written right before refresh is still seen,
    // whether change events or stamps tell.
    let stores = [odb.store(), store_watching(&repo.objects_dir(), false)];
    stores
        .iter()
        .for_each(|store| wait_until_refresh_trusts(store));
    repo.grow_history(1, 3, "z");
    repo.git(&["repack", "-dq"]);
    let newest = repo
        .all_objects()
        .into_keys()
        .find(|id| !after.contains_key(id))
        .expect("new object");
    let id = odbpack::ObjectId::from_hex(&newest).expect("hex");
    for store in &stores {
        let hint = std::sync::atomic::AtomicUsize::new(0);
        assert!(
            !store.exists(&id, &hint).expect("exists"),
            "not visible before refresh"
        );
        store.refresh().expect("refresh");
        assert!(
            store.exists(&id, &hint).expect("exists"),
            "visible right after refresh"
        );
    }
}

/// Whether a backend made with `options` learns of directory changes from change events once
/// it has refreshed (its first scan is watched by stamps until then).
fn backend_uses_events(
    objects_dir: &std::path::Path,
    options: odbpack::ffi::odbpack_options,
) -> bool {
    let odb = Odb::open_with(objects_dir, Backend::Odbpack, options);
    assert!(
        !uses_change_events(&odb.store()),
        "the first scan uses stamps"
    );
    odb.store().refresh().expect("refresh");
    uses_change_events(&odb.store())
}

#[test]
fn options_choose_how_refresh_learns_of_changes_and_version_1_still_works() {
    use odbpack::ffi::{
        ODBPACK_OPTIONS_VERSION, odbpack_error_last, odbpack_options, odbpack_options_init,
    };
    let repo = Repo::new();
    repo.grow_history(2, 2, "x");
    repo.git(&["repack", "-adq"]);
    let dir = repo.objects_dir();
    let defaults = options_for_static_libgit2();
    // What a store that asks for events gets here: events on a local Linux file system, stamps
    // elsewhere (an overlay file system, say). Where it is stamps, the comparisons below hold
    // whatever the option does; on this project's machines it is events.
    let events_here = backend_uses_events(&dir, defaults);
    assert!(!backend_uses_events(
        &dir,
        odbpack_options {
            change_events: 0,
            ..defaults
        }
    ));
    // A version 1 struct ends before `change_events`: the library must not read past it, so
    // the zero placed there is not seen and the default (events) holds.
    assert_eq!(
        backend_uses_events(
            &dir,
            odbpack_options {
                version: 1,
                change_events: 0,
                ..defaults
            }
        ),
        events_here
    );

    // `odbpack_options_init` writes only the fields of the version it is given.
    let mut options = odbpack_options {
        writepack_threads: 9,
        change_events: 7,
        ..defaults
    };
    assert_eq!(unsafe { odbpack_options_init(&mut options, 1) }, 0);
    assert_eq!(
        (
            options.version,
            options.writepack_threads,
            options.change_events
        ),
        (1, 0, 7)
    );
    assert_eq!(
        unsafe { odbpack_options_init(&mut options, ODBPACK_OPTIONS_VERSION) },
        0
    );
    assert_eq!((options.version, options.change_events), (2, 1));

    // Unknown versions are refused with a message, by both functions.
    let message = || {
        unsafe { std::ffi::CStr::from_ptr(odbpack_error_last()) }
            .to_string_lossy()
            .into_owned()
    };
    assert_eq!(unsafe { odbpack_options_init(&mut options, 3) }, -1);
    assert!(
        message().contains("version 3 is not supported"),
        "{}",
        message()
    );
    let objects = std::ffi::CString::new(dir.to_str().expect("utf-8")).expect("no NUL");
    let mut backend = std::ptr::null_mut();
    let future = odbpack_options {
        version: 3,
        ..defaults
    };
    assert_eq!(
        unsafe { odbpack::ffi::odbpack_backend_new_ext(&mut backend, objects.as_ptr(), &future) },
        -1
    );
    assert!(backend.is_null());
    assert!(
        message().contains("version 3 is not supported"),
        "{}",
        message()
    );
}

/// Fills `repo` with a packed history, then one more commit whose objects stay loose (an
/// odb of odbpack alone does not serve them). Returns their ids.
fn packed_history_and_loose_objects(repo: &Repo) -> Vec<String> {
    repo.grow_history(3, 3, "x");
    repo.git(&["repack", "-adq"]);
    repo.prune_loose();
    let before = repo.all_objects();
    repo.grow_history(1, 3, "y");
    repo.all_objects()
        .into_keys()
        .filter(|id| !before.contains_key(id))
        .collect()
}

/// A packed repository, and beside its pack directory a copy of it holding one more pack, of
/// objects that are only loose in the repository. Returns the copy and the new objects' ids.
fn repo_with_a_replacement_pack_dir(repo: &Repo) -> (std::path::PathBuf, Vec<String>) {
    let new_ids = packed_history_and_loose_objects(repo);
    let copy = repo.objects_dir().join("pack.new");
    std::fs::create_dir(&copy).expect("mkdir");
    for entry in std::fs::read_dir(repo.pack_dir()).expect("readdir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy");
    }
    let input: String = new_ids.iter().map(|id| format!("{id}\n")).collect();
    let base = copy.join("pack");
    git_stdin(
        repo.path(),
        &["pack-objects", "-q", base.to_str().expect("utf-8 path")],
        input.as_bytes(),
    );
    (copy, new_ids)
}

/// Opens an odb on `repo` and a store that learns of changes by stamps (the odb's uses change
/// events where it can), waits until refresh trusts the directory (from then on an unchanged
/// directory skips the rescan), runs `swap`, and checks that the objects only the new directory
/// holds are then found through both.
fn check_refresh_follows_the_swap(repo: &Repo, new_ids: &[String], swap: impl FnOnce()) {
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let stamps = store_watching(&repo.objects_dir(), false);
    wait_until_refresh_trusts(&odb.store());
    wait_until_refresh_trusts(&stamps);
    assert!(
        !odb.exists(&new_ids[0]),
        "new objects are loose, not served"
    );
    swap();
    for id in new_ids {
        assert!(odb.read(id).is_ok(), "{id} in the new directory is found");
    }
    stamps.refresh().expect("refresh");
    let hint = std::sync::atomic::AtomicUsize::new(0);
    for id in new_ids {
        let id = odbpack::ObjectId::from_hex(id).expect("hex");
        assert!(
            stamps.exists(&id, &hint).expect("exists"),
            "{id} in the new directory is found by stamps"
        );
    }
}

/// The pack directory itself replaced (renamed away, a new one renamed into place): the old one
/// is unchanged inside, yet the refresh must notice and read the new one. Stamps see it through
/// the held directory's ctime and link count; change events through the directory's own
/// events and the objects directory's.
#[test]
fn refresh_notices_a_replaced_pack_directory() {
    let repo = Repo::new();
    let (copy, new_ids) = repo_with_a_replacement_pack_dir(&repo);
    check_refresh_follows_the_swap(&repo, &new_ids, || {
        // The old directory's entries stay as they were: only its ctime tells.
        let old = repo.objects_dir().join("pack.old");
        std::fs::rename(repo.pack_dir(), &old).expect("rename away");
        std::fs::rename(&copy, repo.pack_dir()).expect("rename into place");
    });
}

/// A pack directory that is a symbolic link, pointed at another directory: nothing changes in
/// the directory it pointed to, yet the refresh must notice and read the new one.
#[test]
fn refresh_notices_a_repointed_pack_directory_link() {
    let repo = Repo::new();
    let (copy, new_ids) = repo_with_a_replacement_pack_dir(&repo);
    let first = repo.objects_dir().join("pack.first");
    std::fs::rename(repo.pack_dir(), &first).expect("move the pack directory");
    std::os::unix::fs::symlink("pack.first", repo.pack_dir()).expect("link");
    check_refresh_follows_the_swap(&repo, &new_ids, || {
        // Re-pointed atomically, as a deploy tool would: a new link renamed over the old one.
        let link = repo.objects_dir().join("pack.link");
        std::os::unix::fs::symlink(copy.file_name().expect("name"), &link).expect("new link");
        std::fs::rename(&link, repo.pack_dir()).expect("rename over the old link");
    });
}

/// A store opened on a pack directory whose stamp has not changed since an earlier store
/// scanned it, and was old enough to trust then, reuses what that scan found (a program opening
/// the repository per request reads the directory once). A change moves the stamp: the next
/// stores read the directory again and serve the new pack, at once and seconds later.
#[test]
fn a_store_opened_after_a_change_reads_the_pack_directory_again() {
    let repo = Repo::new();
    let new_ids = packed_history_and_loose_objects(&repo);
    // Until the pack directory's last change is 3 s old its stamp proves nothing, and no store
    // keeps or reuses what it found.
    std::thread::sleep(std::time::Duration::from_millis(3100));
    for _ in 0..2 {
        let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
        assert!(
            !odb.exists(&new_ids[0]),
            "new objects are loose, not served"
        );
    }
    repo.git(&["repack", "-dq"]);
    // Right after the change the stamp is too recent to trust anyway; later it is trusted, and
    // must differ from the one the kept scan ran under.
    for wait in [0, 3100] {
        std::thread::sleep(std::time::Duration::from_millis(wait));
        let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
        for id in &new_ids {
            assert!(odb.read(id).is_ok(), "{id}: the new pack is listed");
        }
    }
    assert_same_as_git_and_libgit2(&repo);
}

/// Enough packs without a MIDX are merged into one in-memory index once lookups earn it (the
/// first ones probe the packs one by one): every answer (reads, headers, prefixes, ambiguity,
/// duplicates across packs, misses) stays libgit2's and git's before and after, and the index
/// follows the directory: kept while its packs stay, packs added since probed one by one,
/// merged again once enough arrive, dropped when a repack leaves one pack.
#[test]
fn many_uncovered_packs_are_merged_and_follow_the_directory() {
    let merge_at = odbpack::store::merged::MERGE_AT_PACKS;
    let repo = Repo::new();
    for batch in 0..merge_at + 1 {
        repo.grow_history(3, 6, &format!("m{batch}-"));
        // Small blobs spread over the packs, so that some ids share 4-hex prefixes across packs.
        repo.write_blobs(&format!("{batch}-"), 0..300);
        repo.commit_all("blobs");
        repo.git(&["repack", "-dq"]);
    }
    // One pack more holding every object again: each id is in two packs.
    let all = repo.all_objects();
    let ids: Vec<&String> = all.keys().collect();
    repo.pack_objects(&ids, &[]);
    repo.prune_loose();
    let packs = repo.packs().len();
    assert!(packs > merge_at, "{packs} packs");
    let odb = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let snapshot = odb.store().snapshot();
    let merged = snapshot.merged.clone().expect("packs to merge");
    assert_eq!(merged.packs.len(), packs);
    assert!(snapshot.uncovered.is_empty());
    // Fewer lookups than earn the merge: answered by probing the packs.
    let probed = odbpack::store::merged::MERGE_AFTER_LOOKUPS / 4;
    for id in all.keys().take(probed) {
        assert_eq!(odb.exists_prefix(&id[..7]), Ok(id.clone()), "probed {id}");
        assert_eq!(odb.read(id).map(|object| object.id), Ok(id.clone()));
    }
    assert!(merged.built().is_none(), "merged before lookups earned it");
    assert_same_as_git_and_libgit2(&repo);
    let index = merged.built().expect("merged once lookups earned it");
    assert_eq!(index.len(), all.len(), "each id once");
    for id in all.keys() {
        assert_eq!(
            odb.exists_prefix(&id[..7]),
            Ok(id.clone()),
            "duplicate {id}"
        );
    }
    // Ambiguity: every prefix of 4 hex or more that two ids share (from git's own listing) is
    // ambiguous, and one digit more resolves it, as in libgit2.
    let ids: Vec<&String> = all.keys().collect();
    let theirs = Odb::open(&repo.objects_dir(), Backend::Libgit2);
    let mut ambiguous = 0;
    for pair in ids.windows(2) {
        let common = pair[0]
            .chars()
            .zip(pair[1].chars())
            .take_while(|(a, b)| a == b)
            .count();
        if common < 4 {
            continue;
        }
        let shared = &pair[0][..common];
        assert_eq!(odb.read_prefix(shared).err(), Some(AMBIGUOUS), "{shared}");
        assert_eq!(
            theirs.read_prefix(shared).err(),
            Some(AMBIGUOUS),
            "{shared}"
        );
        let longer = &pair[0][..common + 1];
        assert_eq!(odb.read_prefix(longer).map(|o| o.id), Ok(pair[0].clone()));
        ambiguous += 1;
    }
    assert!(ambiguous > 0, "1500 blobs give ids sharing 4 hex digits");

    // One more pack: the merged index stays, the new pack is probed on its own. (Only new
    // objects: git freshens the pack of an object written again, and a pack whose mtime changed
    // is opened anew.)
    let late = git_stdin(
        repo.path(),
        &["hash-object", "-w", "--stdin"],
        b"a late blob\n",
    );
    repo.pack_objects(&[late.trim()], &[]);
    repo.prune_loose();
    assert_eq!(odb.refresh(), 0);
    let snapshot = odb.store().snapshot();
    let kept = snapshot.merged.clone().expect("still merged");
    assert!(
        std::sync::Arc::ptr_eq(&kept, &merged),
        "merged index reused"
    );
    assert_eq!(snapshot.uncovered.len(), 1);
    assert_same_as_git_and_libgit2(&repo);

    // Enough new packs: everything is merged again.
    repo.grow_in_packs(merge_at - 1, 1, 6, "later");
    repo.prune_loose();
    assert_eq!(odb.refresh(), 0);
    let snapshot = odb.store().snapshot();
    let remerged = snapshot.merged.clone().expect("merged again");
    assert!(!std::sync::Arc::ptr_eq(&remerged, &merged));
    assert_eq!(remerged.packs.len(), repo.packs().len());
    assert!(snapshot.uncovered.is_empty());
    assert_same_as_git_and_libgit2(&repo);

    // A repack into one pack: nothing to merge, and every object still there.
    repo.git(&["repack", "-adq"]);
    assert_eq!(odb.refresh(), 0);
    let snapshot = odb.store().snapshot();
    assert!(snapshot.merged.is_none());
    assert_eq!(snapshot.uncovered.len(), 1);
    for id in repo.all_objects().keys() {
        assert!(odb.read(id).is_ok(), "{id} after repack");
    }
}

/// Backends opened on the same directory share one store, however the path names it; another
/// directory gets its own.
#[test]
fn backends_on_one_directory_share_a_store() {
    let repo = Repo::new();
    repo.grow_history(2, 2, "s");
    repo.git(&["repack", "-adq"]);
    let a = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let b = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    assert!(std::sync::Arc::ptr_eq(&a.store(), &b.store()));
    let link = repo.path().join("objects-link");
    std::os::unix::fs::symlink(repo.objects_dir(), &link).expect("symlink");
    let dotted = repo.objects_dir().join("pack").join("..");
    for other_path in [link, dotted] {
        let other = Odb::open(&other_path, Backend::Odbpack);
        assert!(
            std::sync::Arc::ptr_eq(&a.store(), &other.store()),
            "{} shares the store",
            other_path.display()
        );
    }
    let elsewhere = Repo::new();
    elsewhere.grow_history(1, 1, "e");
    elsewhere.git(&["repack", "-adq"]);
    let d = Odb::open(&elsewhere.objects_dir(), Backend::Odbpack);
    assert!(!std::sync::Arc::ptr_eq(&a.store(), &d.store()));
    let mut other = options_for_static_libgit2();
    other.use_midx = 0;
    let c = Odb::open_with(&repo.objects_dir(), Backend::Odbpack, other);
    assert!(
        !std::sync::Arc::ptr_eq(&a.store(), &c.store()),
        "different options, different store"
    );
}

/// With strict hash verification off libgit2 no longer re-hashes: odbpack must still hand out
/// exactly git's bytes.
#[test]
fn correct_bytes_without_strict_verification() {
    let repo = Repo::new();
    repo.grow_history(6, 5, "v");
    repo.git(&["repack", "-adfq", "--depth=50"]);
    repo.prune_loose();
    set_strict_hash_verification(false);
    assert_same_as_git_and_libgit2(&repo);
    set_strict_hash_verification(true);
}
