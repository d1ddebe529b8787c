//! git's chunk-file table of contents (gitformat-chunk), shared by MIDX reading and writing.
//!
//! STUB: contract only; the body lands with the MIDX work.
