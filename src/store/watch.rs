//! How `refresh` learns that the pack directory changed since the current snapshot was built.
//!
//! libgit2 refreshes on every miss, so "nothing changed" must be cheap. Two ways:
//!
//! - **Change events** (Linux, local file systems): an inotify instance watches the objects
//!   directory, the pack directory and the MIDX chain directory, and sits in an epoll set. The
//!   kernel queues an event inside the very system call that changes a watched directory, so
//!   once a writer's `rename` has returned, a poll sees it. "Nothing changed" is one
//!   `epoll_wait` with a zero timeout: no path walk, no attributes copied out.
//! - **Stamps** (everywhere else, or when no instance can be had): the directories are held
//!   open and re-stamped with `fstat`; a change too recent for timestamps to prove anything
//!   forces a rescan.
//!
//! A store's first scan is watched by stamps, whatever the system offers (the store decides,
//! in `rescan_locked`), and its first refresh that finds nothing changed starts the events:
//! an inotify instance is worth its setup, and its slow close, only to a store that lives long
//! enough to refresh (a miss), not to one opened for a read or two.
//!
//! Events are never read: a snapshot whose watch reports anything is replaced by a rescan that
//! starts a new watch, and the old one is closed when the old snapshot goes (on a thread of its
//! own: closing an inotify instance blocks for milliseconds). So a child process
//! that inherits the descriptors across `fork` never consumes the parent's events, and a
//! thread that checks the old snapshot while another rescans still sees them pending, waits
//! for the rescan and finds the new snapshot.
//!
//! git never modifies pack files, indexes, the MIDX, its layers or the chain in place: they
//! arrive by `rename` (or leave by `unlink`) in the pack directory or in
//! `multi-pack-index.d/`. So the directories are all that must be watched.
//!
//! The same stamps let a new store reuse what an earlier one found in the directory (see the
//! `listing` module).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
#[cfg(target_os = "linux")]
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::packset::MIDX_CHAIN_DIR;

/// How a snapshot learns that the directory changed since it was built.
#[derive(Debug)]
pub struct DirWatch(Method);

/// When a watch uses change events (where the system offers them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventsWhen {
    /// Never: stamps only.
    Never,
    /// From the start.
    Now,
    /// Stamps until a check finds the directory unchanged, events from that check on. A
    /// store's first scan is watched so: see the module doc.
    FirstCheck,
}

// One watch per snapshot, made at a rescan: its size does not matter, a box would be noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Method {
    #[cfg(target_os = "linux")]
    Events(events::ChangeEvents),
    /// `stamp` is `None` when the directory changed too recently to trust it: the next refresh
    /// rescans.
    Stamps {
        dirs: StampedDirs,
        stamp: Option<DirStamp>,
        #[cfg(target_os = "linux")]
        later: Option<LaterEvents>,
    },
}

/// The change events of an [`EventsWhen::FirstCheck`] watch: where to start them, and once
/// tried, what that gave (`None`: the system offers none here, stamps go on serving).
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct LaterEvents {
    objects_dir: PathBuf,
    pack_dir: PathBuf,
    started: OnceLock<Option<events::ChangeEvents>>,
}

#[cfg(target_os = "linux")]
impl LaterEvents {
    /// The events, once started.
    fn events(&self) -> Option<&events::ChangeEvents> {
        self.started.get()?.as_ref()
    }
}

impl DirWatch {
    /// Starts watching the pack directory of `objects_dir` as it is now. Call it *before*
    /// reading the directory: a change made after it shows at the next [`DirWatch::unchanged`].
    pub fn start(objects_dir: &Path, pack_dir: &Path, events: EventsWhen) -> io::Result<DirWatch> {
        #[cfg(target_os = "linux")]
        if events == EventsWhen::Now
            && let Some(watch) = events::ChangeEvents::start(objects_dir, pack_dir)
        {
            return Ok(DirWatch(Method::Events(watch)));
        }
        let dirs = StampedDirs::open(pack_dir)?;
        let stamp = Some(dirs.stamp()?);
        #[cfg(target_os = "linux")]
        let later = (events == EventsWhen::FirstCheck).then(|| LaterEvents {
            objects_dir: objects_dir.to_owned(),
            pack_dir: pack_dir.to_owned(),
            started: OnceLock::new(),
        });
        #[cfg(not(target_os = "linux"))]
        let _ = (objects_dir, events);
        Ok(DirWatch(Method::Stamps {
            dirs,
            stamp,
            #[cfg(target_os = "linux")]
            later,
        }))
    }

    /// Called when the scan that followed [`DirWatch::start`] began at `scan_start`: a stamp
    /// whose last change is too close to it to prove that nothing else changed in the same
    /// timestamp tick is not trusted (file systems with coarse clocks; libgit2 #932).
    pub fn settle(mut self, scan_start: SystemTime) -> DirWatch {
        if let Method::Stamps { stamp, .. } = &mut self.0 {
            *stamp = stamp.filter(|stamp| !stamp.is_racy(scan_start));
        }
        self
    }

    /// Whether nothing changed since [`DirWatch::start`].
    pub fn unchanged(&self) -> io::Result<bool> {
        match &self.0 {
            #[cfg(target_os = "linux")]
            Method::Events(events) => Ok(!events.pending()),
            Method::Stamps {
                dirs,
                stamp,
                #[cfg(target_os = "linux")]
                later,
            } => {
                #[cfg(target_os = "linux")]
                if let Some(events) = later.as_ref().and_then(LaterEvents::events) {
                    return Ok(!events.pending());
                }
                let Some(stamp) = stamp else {
                    return Ok(false);
                };
                if dirs.stamp()? != *stamp {
                    return Ok(false);
                }
                #[cfg(target_os = "linux")]
                if let Some(later) = later
                    && later.started.get().is_none()
                {
                    // Started after a stamp found nothing changed, kept only if a second stamp
                    // after the start still finds nothing: from then on every change is an
                    // event. (Two threads may both start one; the loser's is closed.)
                    let events = events::ChangeEvents::start(&later.objects_dir, &later.pack_dir);
                    if events.is_some() && dirs.stamp()? != *stamp {
                        return Ok(false);
                    }
                    let _ = later.started.set(events);
                }
                Ok(true)
            }
        }
    }

    /// The stamp taken at [`DirWatch::start`], if it can prove that the directory has not
    /// changed since: a watch by stamps whose stamp was not racy at `scan_start`.
    pub fn trusted_stamp(&self, scan_start: SystemTime) -> Option<DirStamp> {
        match &self.0 {
            #[cfg(target_os = "linux")]
            Method::Events(_) => None,
            Method::Stamps { stamp, .. } => stamp.filter(|stamp| !stamp.is_racy(scan_start)),
        }
    }

    /// Whether this watch is fed by change events (else by stamps).
    pub fn uses_events(&self) -> bool {
        match &self.0 {
            #[cfg(target_os = "linux")]
            Method::Events(_) => true,
            Method::Stamps {
                #[cfg(target_os = "linux")]
                later,
                ..
            } => {
                #[cfg(target_os = "linux")]
                return later.as_ref().and_then(LaterEvents::events).is_some();
                #[cfg(not(target_os = "linux"))]
                false
            }
        }
    }
}

/// Identity of a directory at one moment: changes whenever an entry is added, removed or
/// renamed in it, and whenever the directory itself is renamed or removed (which sets its ctime;
/// removal also drops its link count to 0). So a stamp taken through a handle held open on the
/// directory still notices when the directory is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    dev: u64,
    size: u64,
    nlink: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    fn from_metadata(meta: &fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            ino: meta.ino(),
            dev: meta.dev(),
            size: meta.len(),
            nlink: meta.nlink(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }

    /// Stats `path`; `None` if it does not exist.
    fn of(path: &Path) -> io::Result<Option<FileStamp>> {
        match fs::metadata(path) {
            Ok(meta) => Ok(Some(FileStamp::from_metadata(&meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn is_racy(&self, now: SystemTime) -> bool {
        let now_ns = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        now_ns - self.mtime_ns.max(self.ctime_ns) < RACY_WINDOW.as_nanos() as i128
    }
}

/// How recent a change must be for its stamp not to be trusted (covers 1-2 s timestamp
/// granularity and clock skew between the writer and us).
const RACY_WINDOW: Duration = Duration::from_secs(3);

/// The stamps of the pack directory, and of the chain directory when it exists (its creation
/// changes the pack directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirStamp {
    pack_dir: Option<FileStamp>,
    chain_dir: Option<FileStamp>,
}

impl DirStamp {
    fn is_racy(&self, now: SystemTime) -> bool {
        [self.pack_dir, self.chain_dir]
            .iter()
            .flatten()
            .any(|stamp| stamp.is_racy(now))
    }
}

/// The stamped directories, held open where possible: an `fstat` of an open directory skips
/// the path walk a `stat` does for every component of the path.
#[derive(Debug)]
struct StampedDirs {
    pack_dir: Stamped,
    chain_dir: Stamped,
}

/// How one directory is stamped.
#[derive(Debug)]
enum Stamped {
    /// Held open, re-stamped by `fstat`.
    Open(fs::File),
    /// Stat-ed by path: a symbolic link (it can be pointed elsewhere without any change to the
    /// directory it pointed to), or a pack directory that did not exist (to notice it appear).
    ByPath(PathBuf),
    /// Not stamped: a chain directory that did not exist (creating it changes the pack
    /// directory).
    Ignored,
}

impl Stamped {
    fn open(path: &Path, when_absent: Stamped) -> io::Result<Stamped> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => Ok(Stamped::ByPath(path.to_owned())),
            Ok(_) => match fs::File::open(path) {
                Ok(file) => Ok(Stamped::Open(file)),
                // Gone in between: as if it had never been there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(when_absent),
                Err(e) => Err(e),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(when_absent),
            Err(e) => Err(e),
        }
    }

    fn stamp(&self) -> io::Result<Option<FileStamp>> {
        match self {
            Stamped::Open(dir) => Ok(Some(FileStamp::from_metadata(&dir.metadata()?))),
            Stamped::ByPath(path) => FileStamp::of(path),
            Stamped::Ignored => Ok(None),
        }
    }
}

impl StampedDirs {
    fn open(pack_dir: &Path) -> io::Result<StampedDirs> {
        Ok(StampedDirs {
            pack_dir: Stamped::open(pack_dir, Stamped::ByPath(pack_dir.to_owned()))?,
            chain_dir: Stamped::open(&pack_dir.join(MIDX_CHAIN_DIR), Stamped::Ignored)?,
        })
    }

    fn stamp(&self) -> io::Result<DirStamp> {
        Ok(DirStamp {
            pack_dir: self.pack_dir.stamp()?,
            chain_dir: self.chain_dir.stamp()?,
        })
    }
}

#[cfg(target_os = "linux")]
mod events {
    use std::os::fd::OwnedFd;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{OnceLock, mpsc};

    use rustix::event::Timespec;
    use rustix::event::epoll;
    use rustix::fs::inotify;
    use rustix::io::Errno;

    use super::MIDX_CHAIN_DIR;

    /// Change events on at most this many stores at once in a process. Instances are a
    /// per-user resource (`fs.inotify.max_user_instances`, often 128) shared with every other
    /// program of the user; a host that opens hundreds of repositories must not starve its
    /// editor's file watcher. Stores beyond it use stamps.
    const MAX_LIVE: usize = 16;

    static LIVE: AtomicUsize = AtomicUsize::new(0);

    /// File systems whose events cover every change: local ones. On a network or FUSE file
    /// system another machine's change raises no event here, so those use stamps.
    const LOCAL_FILE_SYSTEMS: [u32; 7] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0xF2F5_2010, // f2fs
        0x2FC1_2FC1, // zfs
        0xCA45_1A4E, // bcachefs
    ];

    /// Entries added, removed or renamed in a watched directory, and the directory itself
    /// renamed or removed.
    fn watched_events() -> inotify::WatchFlags {
        use inotify::WatchFlags as W;
        W::CREATE | W::DELETE | W::MOVED_FROM | W::MOVED_TO | W::DELETE_SELF | W::MOVE_SELF
    }

    /// An inotify instance in an epoll set of its own.
    #[derive(Debug)]
    pub struct ChangeEvents {
        /// `None` only once dropped: [`Drop`] hands the descriptors to [`close_elsewhere`].
        descriptors: Option<Descriptors>,
    }

    /// What a [`ChangeEvents`] holds, closed together.
    #[derive(Debug)]
    struct Descriptors {
        epoll: OwnedFd,
        _inotify: OwnedFd,
        /// Given back after the instance is closed, so at most [`MAX_LIVE`] exist at once.
        _slot: LiveSlot,
    }

    impl Drop for ChangeEvents {
        fn drop(&mut self) {
            if let Some(descriptors) = self.descriptors.take() {
                close_elsewhere(descriptors);
            }
        }
    }

    /// Closes `descriptors` on a thread of its own, started on first use.
    ///
    /// Closing an inotify instance waits for the kernel's fsnotify grace period
    /// (`synchronize_srcu`: milliseconds, not microseconds), in whichever thread drops the last
    /// snapshot that holds it: the thread whose `refresh` noticed a new pack (libgit2 refreshes
    /// inside a read that missed), or the one freeing the odb. Neither should wait for a
    /// descriptor it no longer needs. In a forked child (no such thread there) or when no
    /// thread can be started, the caller closes them itself.
    ///
    /// The thread runs this library's code until the process ends, so a host that `dlclose`s
    /// the library must not unmap it: the thread registers a thread-local destructor first, and
    /// glibc keeps a library loaded while a live thread holds one of its destructors
    /// (`tests/c/dlclose.c` checks it stays loaded). The caller waits until it has: the host may
    /// unload the library as soon as this returns.
    fn close_elsewhere(descriptors: Descriptors) {
        type Closer = (u32, mpsc::Sender<Descriptors>);
        static CLOSER: OnceLock<Option<Closer>> = OnceLock::new();
        let closer = CLOSER.get_or_init(|| {
            let (sender, receiver) = mpsc::channel::<Descriptors>();
            let (pinned, wait_for_pin) = mpsc::sync_channel::<()>(1);
            // The handle is dropped at once: the thread is detached.
            std::thread::Builder::new()
                .name("odbpack-close".into())
                .spawn(move || {
                    KEEP_LIBRARY_LOADED.with(|_| {});
                    let _ = pinned.send(());
                    receiver.into_iter().for_each(drop);
                })
                .ok()?;
            // Not before the pin is in place: once this returns the host may `dlclose` the
            // library, and a thread still on its way to the pin would run unmapped code. An
            // `Err` means the thread ended without pinning (it cannot have, short of a panic),
            // and then it runs nothing of ours either.
            let _ = wait_for_pin.recv();
            Some((std::process::id(), sender))
        });
        match closer {
            Some((pid, sender)) if *pid == std::process::id() => {
                if let Err(mpsc::SendError(descriptors)) = sender.send(descriptors) {
                    drop(descriptors);
                }
            }
            _ => drop(descriptors),
        }
    }

    /// A thread-local with a destructor, touched by the closer thread: see [`close_elsewhere`].
    struct LibraryPin;

    impl Drop for LibraryPin {
        fn drop(&mut self) {}
    }

    thread_local! {
        static KEEP_LIBRARY_LOADED: LibraryPin = const { LibraryPin };
    }

    /// One of the [`MAX_LIVE`] places, given back on drop.
    #[derive(Debug)]
    struct LiveSlot;

    impl LiveSlot {
        fn take() -> Option<LiveSlot> {
            LIVE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < MAX_LIVE).then_some(live + 1)
            })
            .ok()
            .map(|_| LiveSlot)
        }
    }

    impl Drop for LiveSlot {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn is_local(path: &Path) -> bool {
        rustix::fs::statfs(path).is_ok_and(|fs| {
            // The type is a 32-bit magic number, sign-extended on some architectures.
            LOCAL_FILE_SYSTEMS.contains(&(fs.f_type as u64 as u32))
        })
    }

    impl ChangeEvents {
        /// Watches the objects directory (the pack directory created, removed, replaced or
        /// re-pointed), the pack directory and the chain directory, whichever exist. `None`
        /// when events cannot serve: not a local file system, no instance to be had, or any
        /// other failure (stamps then serve, and report real I/O errors).
        pub fn start(objects_dir: &Path, pack_dir: &Path) -> Option<ChangeEvents> {
            if !is_local(objects_dir) {
                return None;
            }
            let slot = LiveSlot::take()?;
            let instance =
                inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
                    .ok()?;
            let dir_events = watched_events() | inotify::WatchFlags::ONLYDIR;
            inotify::add_watch(&instance, objects_dir, dir_events).ok()?;
            for dir in [pack_dir.to_owned(), pack_dir.join(MIDX_CHAIN_DIR)] {
                // A symbolic link is followed: events come from the directory it points to,
                // and re-pointing it is an entry renamed in the objects directory.
                match inotify::add_watch(&instance, &dir, dir_events) {
                    Ok(_) => {
                        if !is_local(&dir) {
                            return None;
                        }
                    }
                    // Not there (yet): its creation is an event in the directory above.
                    Err(Errno::NOENT | Errno::NOTDIR) => {}
                    Err(_) => return None,
                }
            }
            let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).ok()?;
            epoll::add(
                &epoll,
                &instance,
                epoll::EventData::new_u64(0),
                epoll::EventFlags::IN,
            )
            .ok()?;
            Some(ChangeEvents {
                descriptors: Some(Descriptors {
                    epoll,
                    _inotify: instance,
                    _slot: slot,
                }),
            })
        }

        /// Whether an event is queued: a level-triggered poll that reads nothing, so the
        /// events stay queued for every thread (and every forked process) that polls this
        /// instance. A failed poll counts as a change: a rescan is always correct.
        pub fn pending(&self) -> bool {
            let Some(descriptors) = &self.descriptors else {
                return true;
            };
            let mut ready = [epoll::Event {
                flags: epoll::EventFlags::empty(),
                data: epoll::EventData::new_u64(0),
            }];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            !matches!(
                epoll::wait(&descriptors.epoll, &mut ready[..], Some(&now)),
                Ok(0)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An objects directory with a pack directory, in a fresh temporary directory.
    fn objects_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let root = tempfile::tempdir().expect("tempdir");
        let objects = root.path().join("objects");
        let pack = objects.join("pack");
        fs::create_dir_all(&pack).expect("mkdir");
        (root, objects, pack)
    }

    /// Starts an event watch and checks it is one (these tests run on a local file system).
    fn event_watch(objects: &Path, pack: &Path) -> DirWatch {
        let watch = DirWatch::start(objects, pack, EventsWhen::Now).expect("start");
        assert!(
            watch.uses_events(),
            "a local file system gets change events"
        );
        let watch = watch.settle(SystemTime::now());
        assert!(watch.unchanged().expect("poll"), "nothing changed yet");
        watch
    }

    /// Checks that `change` is seen, and that polling does not consume it: other threads, and
    /// processes forked with the descriptors, must see it too.
    fn assert_seen(watch: &DirWatch, what: &str) {
        for poll in 0..3 {
            assert!(!watch.unchanged().expect("poll"), "{what} (poll {poll})");
        }
    }

    #[test]
    fn events_report_every_kind_of_change_and_are_not_consumed() {
        let (_root, objects, pack) = objects_dir();
        let watch = event_watch(&objects, &pack);
        fs::write(pack.join("tmp_pack_1"), b"x").expect("write");
        assert_seen(&watch, "a file created in the pack directory");

        let watch = event_watch(&objects, &pack);
        fs::rename(pack.join("tmp_pack_1"), pack.join("pack-1.pack")).expect("rename");
        assert_seen(&watch, "a file renamed in the pack directory");

        let watch = event_watch(&objects, &pack);
        fs::remove_file(pack.join("pack-1.pack")).expect("unlink");
        assert_seen(&watch, "a file removed from the pack directory");

        let chain = pack.join(MIDX_CHAIN_DIR);
        let watch = event_watch(&objects, &pack);
        fs::create_dir(&chain).expect("mkdir");
        assert_seen(&watch, "the chain directory created");

        let watch = event_watch(&objects, &pack);
        fs::write(chain.join("multi-pack-index-chain"), b"x").expect("write");
        assert_seen(&watch, "a file written in the chain directory");

        // Loose objects live in subdirectories, which are not watched.
        fs::create_dir(objects.join("ab")).expect("mkdir");
        let watch = event_watch(&objects, &pack);
        fs::write(objects.join("ab").join("cdef"), b"x").expect("write");
        assert!(
            watch.unchanged().expect("poll"),
            "a loose object is no change"
        );
    }

    #[test]
    fn events_follow_the_pack_directory_itself() {
        let (_root, objects, pack) = objects_dir();
        let watch = event_watch(&objects, &pack);
        fs::rename(&pack, objects.join("pack.old")).expect("rename away");
        assert_seen(&watch, "the pack directory renamed away");

        // Absent at start: its creation is an event in the objects directory.
        let watch = event_watch(&objects, &pack);
        fs::create_dir(&pack).expect("mkdir");
        assert_seen(&watch, "the pack directory created");

        // A symbolic link: changes in the directory it points to, and re-pointing it.
        fs::remove_dir(&pack).expect("rmdir");
        std::os::unix::fs::symlink("pack.old", &pack).expect("link");
        let watch = event_watch(&objects, &pack);
        fs::write(objects.join("pack.old").join("pack-2.idx"), b"x").expect("write");
        assert_seen(&watch, "a file written through the link");

        fs::create_dir(objects.join("pack.new")).expect("mkdir");
        let watch = event_watch(&objects, &pack);
        let link = objects.join("pack.link");
        std::os::unix::fs::symlink("pack.new", &link).expect("link");
        fs::rename(&link, &pack).expect("rename over the link");
        assert_seen(&watch, "the link re-pointed");
    }

    #[test]
    fn a_first_check_watch_starts_events_once_its_stamps_find_nothing_changed() {
        let (_root, objects, pack) = objects_dir();
        // Racy stamps: a change, and no events started for it (the store rescans and starts
        // a watch with events at once).
        let racy = DirWatch::start(&objects, &pack, EventsWhen::FirstCheck)
            .expect("start")
            .settle(SystemTime::now());
        assert!(
            !racy.unchanged().expect("stamp"),
            "a racy stamp is a change"
        );
        assert!(!racy.uses_events());
        let watch = DirWatch::start(&objects, &pack, EventsWhen::FirstCheck)
            .expect("start")
            .settle(SystemTime::now() + RACY_WINDOW * 2);
        assert!(!watch.uses_events(), "stamps until the first check");
        assert!(watch.unchanged().expect("check"));
        assert!(watch.uses_events(), "events from the first check on");
        assert!(watch.unchanged().expect("poll"), "nothing changed yet");
        // Now told by the events: a watch that has them asks nothing else.
        fs::write(pack.join("pack-1.idx"), b"x").expect("write");
        assert_seen(&watch, "a new file after the first check");
    }

    #[test]
    fn stamps_serve_when_events_are_not_wanted() {
        let (_root, objects, pack) = objects_dir();
        let watch = DirWatch::start(&objects, &pack, EventsWhen::Never).expect("start");
        assert!(!watch.uses_events());
        // Just created: too recent to trust, so every refresh rescans.
        let racy = watch.settle(SystemTime::now());
        assert!(
            !racy.unchanged().expect("stamp"),
            "a racy stamp is a change"
        );
        // Judged from a scan that started well after the last change, it is trusted...
        let watch = DirWatch::start(&objects, &pack, EventsWhen::Never)
            .expect("start")
            .settle(SystemTime::now() + RACY_WINDOW * 2);
        assert!(watch.unchanged().expect("stamp"));
        // ... until the directory changes (later than the kernel's timestamp tick).
        std::thread::sleep(Duration::from_millis(50));
        fs::write(pack.join("pack-1.idx"), b"x").expect("write");
        assert!(
            !watch.unchanged().expect("stamp"),
            "a new file changes the stamp"
        );
    }
}
