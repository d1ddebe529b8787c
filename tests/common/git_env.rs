//! The one environment every test and benchmark runs git in: no user or system configuration,
//! fixed identities and dates, `main` as the initial branch, and nothing inherited from the
//! caller's environment that changes what git writes. Shared by the integration tests
//! (`tests/common`), the unit tests (`crate::test_git`) and the benchmarks, by path.

// Each includer (unit tests, integration tests, benches) uses a subset of these.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// A `git` command in `dir` with the test environment, not yet run.
pub fn git_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "A U Thor")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "C O Mitter")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .env_remove("GIT_DIR")
        .env_remove("GIT_TEST_MIDX_WRITE_REV");
    command
}

/// Runs a prepared command with `input` on stdin and returns its stdout; panics with its
/// stderr if it fails.
pub fn run_with_input(mut command: Command, input: &[u8]) -> Vec<u8> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // A failing git may close stdin early: report its stderr, not the broken pipe.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("git finishes");
    writer.join().expect("stdin writer");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs git in `dir` with `input` on stdin; returns stdout bytes (binary-safe: packs).
pub fn git_bytes(dir: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    run_with_input(git_command(dir, args), input)
}

/// `len` bytes that do not compress (xorshift64 from `seed`): object contents whose packed
/// size is their size, and input for parsers that must survive anything.
pub fn incompressible_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
