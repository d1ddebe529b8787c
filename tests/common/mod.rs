//! Shared test helpers: deterministic repositories made with the `git` CLI, and libgit2 object
//! databases (libgit2-sys's vendored 1.9.7) with odbpack or libgit2's own pack backend.
#![allow(dead_code, unsafe_code, clippy::missing_safety_doc)]

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_int, c_void};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;

mod git_env;

pub use git_env::{git_bytes, git_command};
use libgit2_sys as raw;
use odbpack::ffi::{odbpack_backend_new_ext, odbpack_options};

unsafe extern "C" {
    // Not declared by libgit2-sys, exported by the vendored library it links.
    fn git_odb_read_prefix(
        out: *mut *mut raw::git_odb_object,
        db: *mut raw::git_odb,
        short_id: *const raw::git_oid,
        len: usize,
    ) -> c_int;
}

/// Runs git in `dir` with a fixed, config-free environment; panics with stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = git_command(dir, args).output().expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Runs git with `input` on stdin; returns stdout as text.
pub fn git_stdin(dir: &Path, args: &[&str], input: &[u8]) -> String {
    String::from_utf8(git_bytes(dir, args, input)).expect("utf-8 output")
}

/// `target/<profile>`, where cargo put `libodbpack.so` (test binaries live in `deps/` below).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_owned()
}

fn pkg_config(args: &[&str]) -> Vec<String> {
    let output = Command::new("pkg-config").args(args).arg("libgit2").output().expect(
        "pkg-config runs (install pkg-config and libgit2-dev: the C examples need a system libgit2)",
    );
    assert!(
        output.status.success(),
        "libgit2-dev is not installed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Compiles `examples/<name>.c` against `include/odbpack.h`, the cdylib and the system libgit2
/// with `-std=c99 -Wall -Wextra -Wpedantic -Werror`; returns the binary (in `out_dir`).
pub fn compile_example(name: &str, out_dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.c"));
    compile_c(&source, out_dir, Linking::Odbpack)
}

/// How a C program compiled by [`compile_c`] reaches libodbpack.so.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Linking {
    /// Linked against it (`-lodbpack`, with an rpath to cargo's build).
    Odbpack,
    /// Not linked: the program loads it itself with `dlopen` (linked with `-ldl -lpthread`).
    Dlopen,
}

/// Compiles the C program `source` into `out_dir` with the warnings of the shipped header's
/// users turned into errors, against the system's libgit2.
pub fn compile_c(source: &Path, out_dir: &Path, linking: Linking) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = target_dir();
    assert!(
        lib_dir.join("libodbpack.so").exists(),
        "libodbpack.so built by cargo in {}",
        lib_dir.display()
    );
    let name = source.file_stem().expect("a file name");
    let binary = out_dir.join(name);
    let mut command = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    command
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-g",
        ])
        .arg(format!("-I{}", manifest.join("include").display()))
        .args(pkg_config(&["--cflags"]))
        .arg(source)
        .arg("-o")
        .arg(&binary);
    match linking {
        Linking::Odbpack => {
            command
                .arg(format!("-L{}", lib_dir.display()))
                .arg("-lodbpack")
                .args(pkg_config(&["--libs"]))
                .arg(format!("-Wl,-rpath,{}", lib_dir.display()));
        }
        Linking::Dlopen => {
            command
                .args(pkg_config(&["--libs"]))
                .args(["-ldl", "-lpthread"]);
        }
    }
    let status = command.status().expect("C compiler runs");
    assert!(status.success(), "{} compiles cleanly", source.display());
    binary
}

/// A bare-ish test repository in a temp dir (work tree + `.git`).
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().expect("temp dir");
        git(dir.path(), &["-c", "init.defaultBranch=main", "init", "-q"]);
        git(dir.path(), &["config", "maintenance.auto", "false"]);
        git(dir.path(), &["config", "gc.auto", "0"]);
        git(dir.path(), &["config", "pack.writeReverseIndex", "false"]);
        Repo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.path().join(".git/objects")
    }

    pub fn pack_dir(&self) -> PathBuf {
        self.objects_dir().join("pack")
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(self.path(), args)
    }

    pub fn write(&self, name: &str, contents: &[u8]) {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write file");
    }

    /// Writes `blobs/<tag><i>` for each `i` in `numbers`, each a distinct one-line blob: many
    /// ids spread over the id space, so that some share short prefixes.
    pub fn write_blobs(&self, tag: &str, numbers: std::ops::Range<usize>) {
        for i in numbers {
            self.write(
                &format!("blobs/{tag}{i}"),
                format!("blob number {tag}{i}\n").as_bytes(),
            );
        }
    }

    /// Writes one pack of exactly `ids` with `git pack-objects` and `options`.
    pub fn pack_objects<S: AsRef<str>>(&self, ids: &[S], options: &[&str]) {
        let input: String = ids.iter().map(|id| format!("{}\n", id.as_ref())).collect();
        let base = self.pack_dir().join("pack");
        let mut args = vec!["pack-objects", "-q"];
        args.extend_from_slice(options);
        args.push(base.to_str().expect("utf-8 path"));
        git_stdin(self.path(), &args, input.as_bytes());
    }

    pub fn commit_all(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }

    /// A history where `files` text files are edited over `commits` commits (deltas galore),
    /// deterministic contents.
    pub fn grow_history(&self, commits: usize, files: usize, tag: &str) {
        for c in 0..commits {
            for f in 0..files {
                if (c + f) % 3 == 0 || c == 0 {
                    let mut text = String::new();
                    for line in 0..(40 + f * 7) {
                        let edit = if line % 11 == c % 11 {
                            format!("edit {tag}{c}")
                        } else {
                            String::new()
                        };
                        text.push_str(&format!("file {f} line {line} {edit}\n"));
                    }
                    self.write(&format!("dir{}/file{f}.txt", f % 4), text.as_bytes());
                }
            }
            self.commit_all(&format!("{tag} commit {c}"));
        }
    }

    /// `batches` rounds of [`Repo::grow_history`] (tagged `{tag}{batch}-`), each packed into a
    /// pack of its own (`git repack -dq`), as a repository that fetched that often holds it.
    pub fn grow_in_packs(&self, batches: usize, commits: usize, files: usize, tag: &str) {
        for batch in 0..batches {
            self.grow_history(commits, files, &format!("{tag}{batch}-"));
            self.git(&["repack", "-dq"]);
        }
    }

    /// Every object in the repository: id → (type, size), from `git cat-file`.
    pub fn all_objects(&self) -> BTreeMap<String, (String, usize)> {
        let out = self.git(&[
            "-c",
            "core.multiPackIndex=false",
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname) %(objecttype) %(objectsize)",
        ]);
        out.lines()
            .map(|line| {
                let mut parts = line.split(' ');
                let id = parts.next().expect("id").to_owned();
                let kind = parts.next().expect("type").to_owned();
                let size = parts.next().expect("size").parse().expect("size number");
                (id, (kind, size))
            })
            .collect()
    }

    /// Contents of objects as `git cat-file --batch` prints them.
    pub fn cat_objects(&self, ids: &[String]) -> BTreeMap<String, (String, Vec<u8>)> {
        let input = ids.join("\n") + "\n";
        let mut child = git_command(
            self.path(),
            &["-c", "core.multiPackIndex=false", "cat-file", "--batch"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("git");
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).expect("write"));
        let output = child.wait_with_output().expect("cat-file");
        writer.join().expect("writer");
        let mut rest = &output.stdout[..];
        let mut objects = BTreeMap::new();
        while !rest.is_empty() {
            let newline = rest.iter().position(|&b| b == b'\n').expect("header line");
            let header = std::str::from_utf8(&rest[..newline]).expect("utf-8");
            let mut parts = header.split(' ');
            let id = parts.next().expect("id").to_owned();
            let kind = parts.next().expect("type").to_owned();
            let size: usize = parts.next().expect("size").parse().expect("size");
            let body = rest[newline + 1..newline + 1 + size].to_vec();
            rest = &rest[newline + 2 + size..];
            objects.insert(id, (kind, body));
        }
        objects
    }

    /// Removes loose objects (everything must come from packs).
    pub fn prune_loose(&self) {
        self.git(&["prune-packed"]);
    }

    /// The `.pack` files, sorted.
    pub fn packs(&self) -> Vec<PathBuf> {
        let mut packs: Vec<PathBuf> = std::fs::read_dir(self.pack_dir())
            .expect("pack dir")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "pack"))
            .collect();
        packs.sort();
        packs
    }
}

pub fn libgit2_init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| unsafe {
        assert!(raw::git_libgit2_init() >= 0);
    });
}

/// Sets libgit2's strict hash verification (on by default).
pub fn set_strict_hash_verification(on: bool) {
    libgit2_init();
    unsafe {
        raw::git_libgit2_opts(
            raw::GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION as c_int,
            c_int::from(on),
        );
    }
}

/// Turns libgit2's object cache (in front of every backend) on or off, process-wide.
pub fn set_object_caching(on: bool) {
    libgit2_init();
    // SAFETY: a process-wide option taking one int, set after libgit2_init.
    unsafe {
        raw::git_libgit2_opts(raw::GIT_OPT_ENABLE_CACHING as c_int, c_int::from(on));
    }
}

/// Options that hand odbpack the statically linked libgit2's functions (not visible to dlsym).
pub fn options_for_static_libgit2() -> odbpack_options {
    let mut options = odbpack_options::default();
    unsafe {
        options.data_alloc = Some(std::mem::transmute::<
            unsafe extern "C" fn(*mut raw::git_odb_backend, usize) -> *mut c_void,
            unsafe extern "C" fn(*mut odbpack::ffi::sys::git_odb_backend, usize) -> *mut c_void,
        >(raw::git_odb_backend_data_alloc));
        options.data_free = Some(std::mem::transmute::<
            unsafe extern "C" fn(*mut raw::git_odb_backend, *mut c_void),
            unsafe extern "C" fn(*mut odbpack::ffi::sys::git_odb_backend, *mut c_void),
        >(raw::git_odb_backend_data_free));
        options.error_set_str = Some(raw::git_error_set_str);
    }
    options
}

/// The options [`Odb::open`] gives odbpack: [`options_for_static_libgit2`], with the delta-base
/// cache sized by `ODBPACK_BENCH_CACHE_MB` (MiB) when set, so benchmarks can vary it and report
/// the budget they ran with.
pub fn options_from_env() -> odbpack_options {
    let mut options = options_for_static_libgit2();
    if let Some(mib) = std::env::var("ODBPACK_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options.delta_cache_bytes = mib << 20;
    }
    options
}

/// Which pack backend an [`Odb`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Odbpack,
    Libgit2,
}

/// A `git_odb` holding one pack backend (no loose backend: every object must come from packs).
pub struct Odb {
    pub raw: *mut raw::git_odb,
    pub backend: *mut raw::git_odb_backend,
}

// SAFETY: a git_odb is thread-safe (one mutex per odb); tests move whole odbs between threads.
unsafe impl Send for Odb {}

/// A read object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub id: String,
    pub kind: String,
    pub data: Vec<u8>,
}

pub fn kind_name(kind: raw::git_object_t) -> String {
    match kind {
        raw::GIT_OBJECT_COMMIT => "commit",
        raw::GIT_OBJECT_TREE => "tree",
        raw::GIT_OBJECT_BLOB => "blob",
        raw::GIT_OBJECT_TAG => "tag",
        _ => "invalid",
    }
    .to_owned()
}

pub fn oid(hex: &str) -> raw::git_oid {
    let id = odbpack::ObjectId::from_hex(hex).expect("40 hex");
    raw::git_oid { id: id.0 }
}

/// A prefix as libgit2 passes it: hex digits, rest zero.
pub fn prefix_oid(hex: &str) -> raw::git_oid {
    let prefix = odbpack::Prefix::from_hex(hex).expect("4..40 hex");
    raw::git_oid { id: prefix.id().0 }
}

pub fn last_error() -> String {
    unsafe {
        let error = raw::git_error_last();
        if error.is_null() || (*error).message.is_null() {
            return String::new();
        }
        CStr::from_ptr((*error).message)
            .to_string_lossy()
            .into_owned()
    }
}

impl Odb {
    pub fn open(objects_dir: &Path, backend: Backend) -> Odb {
        Odb::open_with(objects_dir, backend, options_from_env())
    }

    pub fn open_with(objects_dir: &Path, backend: Backend, options: odbpack_options) -> Odb {
        libgit2_init();
        let dir = CString::new(objects_dir.to_str().expect("utf-8 path")).expect("no NUL");
        unsafe {
            let mut odb = std::ptr::null_mut();
            assert_eq!(raw::git_odb_new(&mut odb), 0);
            let mut pack: *mut raw::git_odb_backend = std::ptr::null_mut();
            match backend {
                Backend::Odbpack => {
                    let rc =
                        odbpack_backend_new_ext((&raw mut pack).cast(), dir.as_ptr(), &options);
                    assert_eq!(rc, 0, "odbpack_backend_new_ext: {}", last_error());
                }
                Backend::Libgit2 => {
                    assert_eq!(raw::git_odb_backend_pack(&mut pack, dir.as_ptr()), 0)
                }
            }
            assert_eq!(raw::git_odb_add_backend(odb, pack, 2), 0);
            Odb {
                raw: odb,
                backend: pack,
            }
        }
    }

    fn take_object(object: *mut raw::git_odb_object) -> Object {
        unsafe {
            let id = odbpack::ObjectId((*raw::git_odb_object_id(object)).id).to_hex();
            let size = raw::git_odb_object_size(object);
            let data = raw::git_odb_object_data(object).cast::<u8>();
            let bytes = std::slice::from_raw_parts(data, size).to_vec();
            // The buffer must be NUL-terminated (libgit2 scans commits with strchr).
            assert_eq!(*data.add(size), 0, "buffer of {id} not NUL-terminated");
            let kind = kind_name(raw::git_odb_object_type(object));
            raw::git_odb_object_free(object);
            Object {
                id,
                kind,
                data: bytes,
            }
        }
    }

    pub fn read(&self, hex: &str) -> Result<Object, c_int> {
        self.read_raw(&oid(hex))
    }

    /// `git_odb_read` by raw id: the object's id, type and bytes.
    pub fn read_raw(&self, id: &raw::git_oid) -> Result<Object, c_int> {
        // SAFETY: id points to a valid oid; on success libgit2 hands us an object we free in take_object.
        unsafe {
            let mut object = std::ptr::null_mut();
            match raw::git_odb_read(&mut object, self.raw, id) {
                0 => Ok(Odb::take_object(object)),
                rc => Err(rc),
            }
        }
    }

    pub fn read_prefix(&self, hex: &str) -> Result<Object, c_int> {
        self.read_prefix_raw(&prefix_oid(hex), hex.len())
    }

    /// `git_odb_read_prefix` by raw (masked) id and length: the found object's id, type and bytes.
    pub fn read_prefix_raw(&self, id: &raw::git_oid, hex_len: usize) -> Result<Object, c_int> {
        // SAFETY: id points to a valid oid; on success libgit2 hands us an object we free in take_object.
        unsafe {
            let mut object = std::ptr::null_mut();
            match git_odb_read_prefix(&mut object, self.raw, id, hex_len) {
                0 => Ok(Odb::take_object(object)),
                rc => Err(rc),
            }
        }
    }

    pub fn read_header(&self, hex: &str) -> Result<(String, usize), c_int> {
        self.read_header_raw(&oid(hex))
    }

    /// `git_odb_read_header` by raw id: type and size.
    pub fn read_header_raw(&self, id: &raw::git_oid) -> Result<(String, usize), c_int> {
        // SAFETY: every pointer is to a live local or to the caller's oid.
        unsafe {
            let (mut len, mut kind) = (0usize, 0 as raw::git_object_t);
            match raw::git_odb_read_header(&mut len, &mut kind, self.raw, id) {
                0 => Ok((kind_name(kind), len)),
                rc => Err(rc),
            }
        }
    }

    pub fn exists(&self, hex: &str) -> bool {
        let id = oid(hex);
        unsafe { raw::git_odb_exists(self.raw, &id) == 1 }
    }

    pub fn exists_prefix(&self, hex: &str) -> Result<String, c_int> {
        self.exists_prefix_raw(&prefix_oid(hex), hex.len())
            .map(|found| odbpack::ObjectId(found.id).to_hex())
    }

    /// `git_odb_exists_prefix` by raw (masked) id and length: the full id it names.
    pub fn exists_prefix_raw(
        &self,
        id: &raw::git_oid,
        hex_len: usize,
    ) -> Result<raw::git_oid, c_int> {
        // SAFETY: `out` is a live local libgit2 writes the found id into; id is the caller's.
        unsafe {
            let mut out = raw::git_oid { id: [0; 20] };
            match raw::git_odb_exists_prefix(&mut out, self.raw, id, hex_len) {
                0 => Ok(out),
                rc => Err(rc),
            }
        }
    }

    /// Reads by raw id and frees at once; returns the size (benchmarks: no copy, no hex).
    pub fn read_size(&self, id: &raw::git_oid) -> Result<usize, c_int> {
        unsafe {
            let mut object = std::ptr::null_mut();
            match raw::git_odb_read(&mut object, self.raw, id) {
                0 => {
                    let size = raw::git_odb_object_size(object);
                    raw::git_odb_object_free(object);
                    Ok(size)
                }
                rc => Err(rc),
            }
        }
    }

    /// `git_odb_read_prefix` by raw (masked) id and length; returns the size.
    pub fn read_prefix_size(&self, id: &raw::git_oid, hex_len: usize) -> Result<usize, c_int> {
        unsafe {
            let mut object = std::ptr::null_mut();
            match git_odb_read_prefix(&mut object, self.raw, id, hex_len) {
                0 => {
                    let size = raw::git_odb_object_size(object);
                    raw::git_odb_object_free(object);
                    Ok(size)
                }
                rc => Err(rc),
            }
        }
    }

    /// `git_odb_read_header` by raw id; returns the size.
    pub fn read_header_size(&self, id: &raw::git_oid) -> Result<usize, c_int> {
        unsafe {
            let (mut len, mut kind) = (0usize, 0 as raw::git_object_t);
            match raw::git_odb_read_header(&mut len, &mut kind, self.raw, id) {
                0 => Ok(len),
                rc => Err(rc),
            }
        }
    }

    /// `git_odb_exists` by raw id.
    pub fn exists_raw(&self, id: &raw::git_oid) -> bool {
        unsafe { raw::git_odb_exists(self.raw, id) == 1 }
    }

    /// Number of objects foreach reports (no collection).
    pub fn foreach_count(&self) -> usize {
        extern "C" fn count(_: *const raw::git_oid, payload: *mut c_void) -> c_int {
            unsafe { *payload.cast::<usize>() += 1 };
            0
        }
        let mut n = 0usize;
        unsafe { raw::git_odb_foreach(self.raw, Some(count), (&raw mut n).cast()) };
        n
    }

    pub fn refresh(&self) -> c_int {
        unsafe { raw::git_odb_refresh(self.raw) }
    }

    /// All ids foreach reports, in order.
    pub fn foreach(&self) -> (c_int, Vec<String>) {
        extern "C" fn collect(id: *const raw::git_oid, payload: *mut c_void) -> c_int {
            let ids = unsafe { &mut *payload.cast::<Vec<String>>() };
            ids.push(odbpack::ObjectId(unsafe { (*id).id }).to_hex());
            0
        }
        let mut ids: Vec<String> = Vec::new();
        let rc = unsafe { raw::git_odb_foreach(self.raw, Some(collect), (&raw mut ids).cast()) };
        (rc, ids)
    }

    /// The odbpack store behind this odb (odbpack backends only).
    pub fn store(&self) -> std::sync::Arc<odbpack::store::Store> {
        unsafe { odbpack::ffi::backend_store(self.backend.cast()).expect("odbpack backend") }
    }
}

/// Waits until `refresh` trusts that an unchanged directory is unchanged (with stamps, once the
/// last change is 3 s old; with change events, at once), refreshes, and checks that from then on
/// an unchanged directory keeps the snapshot.
pub fn wait_until_refresh_trusts(store: &odbpack::store::Store) {
    store.refresh().expect("refresh");
    if !uses_change_events(store) {
        std::thread::sleep(std::time::Duration::from_millis(3100));
    }
    store.refresh().expect("refresh");
    let snapshot = store.snapshot();
    store.refresh().expect("refresh");
    assert!(
        std::sync::Arc::ptr_eq(&snapshot, &store.snapshot()),
        "unchanged directory keeps the snapshot"
    );
}

/// Whether the store's current snapshot learns of directory changes from change events (else
/// from stamps).
pub fn uses_change_events(store: &odbpack::store::Store) -> bool {
    store
        .snapshot()
        .watch
        .as_ref()
        .is_some_and(|watch| watch.uses_events())
}

/// A store on `objects_dir` that learns of changes by change events where the system offers
/// them or, with `change_events` false, by stamps (`odbpack_options.change_events` in C).
pub fn store_watching(
    objects_dir: &Path,
    change_events: bool,
) -> std::sync::Arc<odbpack::store::Store> {
    let options = odbpack::store::Options {
        change_events,
        ..odbpack::store::Options::default()
    };
    odbpack::store::Store::open(objects_dir, options).expect("open store")
}

impl Drop for Odb {
    fn drop(&mut self) {
        unsafe { raw::git_odb_free(self.raw) };
    }
}

/// Reads every object through odbpack and libgit2's backend and checks everything against git:
/// read, read_header, exists, 40-hex and 10-hex read_prefix, exists_prefix.
pub fn assert_same_as_git_and_libgit2(repo: &Repo) {
    let expected = repo.all_objects();
    assert!(!expected.is_empty(), "test repository has objects");
    let ids: Vec<String> = expected.keys().cloned().collect();
    let contents = repo.cat_objects(&ids);
    let ours = Odb::open(&repo.objects_dir(), Backend::Odbpack);
    let theirs = Odb::open(&repo.objects_dir(), Backend::Libgit2);
    for (id, (kind, size)) in &expected {
        let (git_kind, git_body) = &contents[id];
        let mine = ours
            .read(id)
            .unwrap_or_else(|rc| panic!("odbpack read {id}: {rc} {}", last_error()));
        assert_eq!(&mine.kind, git_kind, "type of {id}");
        assert_eq!(&mine.data, git_body, "content of {id}");
        let libgit2 = theirs
            .read(id)
            .unwrap_or_else(|rc| panic!("libgit2 read {id}: {rc}"));
        assert_eq!(mine, libgit2, "odbpack and libgit2 disagree on {id}");
        assert_eq!(
            ours.read_header(id),
            Ok((kind.clone(), *size)),
            "read_header {id}"
        );
        assert!(ours.exists(id), "exists {id}");
        assert_eq!(
            ours.read_prefix(id).as_ref().map(|o| &o.id),
            Ok(id),
            "40-hex read_prefix {id}"
        );
        let short = &id[..10];
        assert_eq!(
            ours.read_prefix(short).map(|o| o.id),
            theirs.read_prefix(short).map(|o| o.id),
            "read_prefix {short}"
        );
        assert_eq!(
            ours.exists_prefix(short),
            theirs.exists_prefix(short),
            "exists_prefix {short}"
        );
    }
    let mut absent = "0123456789abcdef0123456789abcdef01234567".to_owned();
    while expected.contains_key(&absent) {
        absent.replace_range(0..1, "f");
    }
    assert!(!ours.exists(&absent));
    assert_eq!(ours.read(&absent).err(), Some(raw::GIT_ENOTFOUND as c_int));
    assert_eq!(
        ours.read_header(&absent).err(),
        Some(raw::GIT_ENOTFOUND as c_int)
    );
}
