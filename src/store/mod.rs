//! The shared object store of one objects directory.
