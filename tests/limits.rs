//! Bounded resources: hundreds of small packs read under a file-descriptor limit far below the
//! pack count, with a small mapped-packs budget that forces least-recently-used unmapping.
//! (Own test binary: it lowers the process's RLIMIT_NOFILE.)

mod common;

use common::*;

#[test]
fn hundreds_of_packs_under_a_tiny_descriptor_limit() {
    let repo = Repo::new();
    // 300 packs of one blob each, written directly with pack-objects (fast).
    let mut ids = Vec::new();
    for i in 0..300 {
        let blob = git_stdin(
            repo.path(),
            &["hash-object", "-w", "--stdin"],
            format!("small blob {i}\n").as_bytes(),
        );
        let blob = blob.trim().to_owned();
        repo.pack_objects(&[&blob], &[]);
        ids.push(blob);
    }
    repo.prune_loose();
    assert_eq!(repo.packs().len(), 300);

    // 48 descriptors for the whole process, far fewer than 300 packs + 300 indexes.
    let limit = libc::rlimit {
        rlim_cur: 48,
        rlim_max: 48,
    };
    #[allow(unsafe_code)]
    // SAFETY: plain syscall on a stack struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0);

    let mut options = options_for_static_libgit2();
    options.max_mapped_packs = 16;
    let odb = Odb::open_with(&repo.objects_dir(), Backend::Odbpack, options);
    for round in 0..2 {
        for (i, id) in ids.iter().enumerate() {
            let object = odb
                .read(id)
                .unwrap_or_else(|rc| panic!("round {round} read {id}: {rc} {}", last_error()));
            assert_eq!(object.data, format!("small blob {i}\n").into_bytes());
            let (_, mapped_packs) = odb.store().mapped();
            assert!(
                mapped_packs <= 16,
                "mapped packs {mapped_packs} over the limit of 16"
            );
        }
    }
    let (_, foreach_ids) = odb.foreach();
    assert_eq!(foreach_ids.len(), 300);
}

/// The delta-base cache stays within its byte budget while a deep-delta history is read, and is
/// actually used (a budget that never fills would prove nothing): a history long enough that
/// most of its chains come after the ones that earn the store its cache.
#[test]
fn delta_base_cache_stays_within_its_budget() {
    let repo = Repo::new();
    repo.grow_history(24, 8, "c");
    repo.git(&["repack", "-adfq", "--depth=50", "--window=50"]);
    repo.prune_loose();
    let budget = 16 << 10;
    let mut options = options_for_static_libgit2();
    options.delta_cache_bytes = budget;
    let odb = Odb::open_with(&repo.objects_dir(), Backend::Odbpack, options);
    let mut peak = 0;
    for id in repo.all_objects().keys() {
        assert!(odb.read(id).is_ok(), "read {id}");
        let held = odb.store().cached_bytes();
        assert!(held <= budget, "cache holds {held} bytes, budget {budget}");
        peak = peak.max(held);
    }
    assert!(peak > budget / 2, "deltas were cached (peak {peak} bytes)");
}
