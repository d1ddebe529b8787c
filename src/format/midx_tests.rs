//! MIDX tests against git.
