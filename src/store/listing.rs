//! What a scan found in a pack directory, kept for the next store opened on it: the names, and
//! the size and mtime of each pack no MIDX covered.
//!
//! A program that opens a repository per request (a server; the read bench's `open, read 1,
//! close`) would otherwise read the directory and stat every pack no MIDX covers at every open,
//! as libgit2 does. What a scan found is kept for the process under the directory's stamp,
//! taken before the scan (see the watch module), and a later store whose first stamp is the
//! same, and was old enough to trust when that scan ran, reuses it: an entry added, removed or
//! renamed in the directory since would have changed the stamp.
//!
//! A pack's own size and mtime do not change the stamp. git never rewrites a pack (a name is
//! its content's checksum), but it freshens one by touching it, so a kept mtime can be older
//! than the file's: that only orders the packs a lookup probes (newest first). What a pack
//! holds is checked against its index when its data is opened, kept listing or not.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::pack::PackFileInfo;
use super::watch::DirStamp;

/// A pack directory as a scan found it.
#[derive(Debug, Default)]
pub struct DirListing {
    /// The names that are UTF-8 (git's are ASCII), sorted.
    pub names: Vec<String>,
    /// Size and mtime of the `.pack` of each index no MIDX covered, by index name.
    pub pack_infos: HashMap<String, PackFileInfo>,
}

impl DirListing {
    /// The names in `pack_dir`, no pack stat'ed yet.
    pub fn read(pack_dir: &Path) -> io::Result<DirListing> {
        let mut names = Vec::new();
        for entry in fs::read_dir(pack_dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort_unstable();
        Ok(DirListing {
            names,
            pack_infos: HashMap::new(),
        })
    }
}

/// Pack directories kept at most, and names kept at most in all: a few KiB a repository (two
/// or three names a pack, about 50 bytes each), a few MiB for a process that opens
/// repositories of thousands of packs.
const DIRS_KEPT: usize = 16;
const NAMES_KEPT: usize = 1 << 16;

struct Kept {
    pack_dir: PathBuf,
    stamp: DirStamp,
    listing: Arc<DirListing>,
}

/// What the process keeps, the most recently used first.
static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

/// The listing kept for `pack_dir` under `stamp`, if any.
pub fn kept(pack_dir: &Path, stamp: &DirStamp) -> Option<Arc<DirListing>> {
    let mut kept = KEPT.lock();
    let at = kept
        .iter()
        .position(|kept| kept.stamp == *stamp && kept.pack_dir == pack_dir)?;
    kept[..=at].rotate_right(1);
    Some(kept[0].listing.clone())
}

/// Keeps `listing`, found by a scan that started under `stamp`, replacing what was kept for
/// `pack_dir`. The caller checked that the stamp was old enough to trust then.
pub fn keep(pack_dir: &Path, stamp: DirStamp, listing: DirListing) {
    let mut kept = KEPT.lock();
    kept.retain(|kept| kept.pack_dir != pack_dir);
    kept.insert(
        0,
        Kept {
            pack_dir: pack_dir.to_owned(),
            stamp,
            listing: Arc::new(listing),
        },
    );
    let mut names = 0;
    let within_bounds = kept
        .iter()
        .take(DIRS_KEPT)
        .take_while(|kept| {
            names += kept.listing.names.len();
            names <= NAMES_KEPT
        })
        .count();
    kept.truncate(within_bounds);
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::store::packset::{PackSet, Scanner};
    use crate::store::watch::{DirWatch, EventsWhen};

    /// The mtime the scan starting at `scan_start` gives the pack `name` (indexes and packs
    /// are empty files: a scan without a MIDX opens none), and whether it kept what it found.
    fn scanned_mtime(
        objects: &Path,
        pack_dir: &Path,
        scan_start: SystemTime,
        name: &str,
    ) -> (SystemTime, bool) {
        static NUMBERS: AtomicU64 = AtomicU64::new(0);
        let next_number = || NUMBERS.fetch_add(1, Ordering::Relaxed);
        let scanner = Scanner {
            pack_dir,
            use_midx: false,
            next_number: &next_number,
        };
        let watch = DirWatch::start(objects, pack_dir, EventsWhen::Never).expect("start");
        let stamp = watch.trusted_stamp(scan_start);
        let (set, _) = scanner
            .scan(&PackSet::default(), watch, scan_start)
            .expect("scan");
        let info = set.by_name[name].info.clone().expect("no MIDX: stat'ed");
        let kept = stamp.is_some_and(|stamp| kept(pack_dir, &stamp).is_some());
        (info.mtime, kept)
    }

    fn touch(path: &Path) -> SystemTime {
        // Past the kernel's timestamp tick (a few ms), so that a change shows in timestamps.
        std::thread::sleep(Duration::from_millis(50));
        let file = File::options()
            .append(true)
            .create(true)
            .open(path)
            .expect("open");
        let now = SystemTime::now();
        file.set_modified(now).expect("set mtime");
        now
    }

    /// What a scan found under a trusted stamp serves the next scan with the same stamp, even
    /// when a pack's mtime changed since (it only orders packs); a change to the directory, or
    /// a stamp too recent to trust, scans again.
    #[test]
    fn a_scan_reuses_what_one_found_under_the_same_trusted_stamp() {
        let root = tempfile::tempdir().expect("tempdir");
        let objects = root.path().join("objects");
        let pack = objects.join("pack");
        fs::create_dir_all(&pack).expect("mkdir");
        for name in ["pack-b.pack", "pack-a.idx", "pack-a.pack", "pack-b.idx"] {
            fs::write(pack.join(name), b"").expect("write");
        }
        let scan = |scan_start| scanned_mtime(&objects, &pack, scan_start, "pack-a.idx");
        // The files were just written: only a scan some seconds later trusts the stamp.
        let later = SystemTime::now() + Duration::from_secs(10);
        let (first, kept) = scan(later);
        assert!(kept, "a trusted stamp keeps what the scan found");

        let touched = touch(&pack.join("pack-a.pack"));
        assert_eq!(scan(later).0, first, "same directory stamp: the kept mtime");

        touch(&pack.join("pack-c.idx"));
        touch(&pack.join("pack-c.pack"));
        assert_eq!(
            scan(later),
            (touched, true),
            "a new entry: scanned again, kept"
        );

        let (racy, kept) = scan(SystemTime::now());
        assert_eq!(racy, touched);
        assert!(!kept, "too recent to trust: nothing kept");
        let retouched = touch(&pack.join("pack-a.pack"));
        assert_eq!(
            scan(SystemTime::now()).0,
            retouched,
            "racy: scanned each time"
        );
    }
}
