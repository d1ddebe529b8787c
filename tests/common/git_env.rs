//! The one environment every test and benchmark runs git in: no user or system configuration,
//! fixed identities and dates, `main` as the initial branch, and nothing inherited from the
//! caller's environment that changes what git writes. Shared by the integration tests
//! (`tests/common`), the unit tests (`crate::test_git`) and the benchmarks, by path.

use std::path::Path;
use std::process::Command;

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
