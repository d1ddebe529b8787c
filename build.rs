//! Regenerates `include/odbpack.h` from the Rust sources with cbindgen, writing only when the
//! bytes change (so an unchanged header never dirties the tree or triggers rebuilds). CI checks
//! that the committed header equals the generated one.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("include").join("odbpack.h");
    println!("cargo:include={}", crate_dir.join("include").display());
    let config = match cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")) {
        Ok(config) => config,
        Err(error) => panic!("cbindgen.toml: {error}"),
    };
    let bindings = match cbindgen::Builder::new()
        .with_config(config)
        // Only the C-facing module: constants elsewhere in the crate are not part of the ABI.
        .with_src(crate_dir.join("src/ffi/backend.rs"))
        .with_src(crate_dir.join("src/ffi/midx.rs"))
        .generate()
    {
        Ok(bindings) => bindings,
        // A syntax error in the sources: let rustc report it properly instead.
        Err(error) => {
            println!("cargo:warning=odbpack.h not regenerated: {error}");
            return;
        }
    };
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    if std::fs::read(&header).ok().as_deref() != Some(&generated[..]) {
        std::fs::create_dir_all(header.parent().expect("header has a parent"))
            .expect("create include/");
        std::fs::write(&header, generated).expect("write include/odbpack.h");
    }
}
