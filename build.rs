//! Links the prebuilt `liblzma.a` of feature `xz-prebuilt` (see Cargo.toml): the
//! static dist binaries have no `std`, so they cannot depend on `liblzma-sys`, which
//! links it; `cargo xtask dist` builds the library through `liblzma-sys` for the
//! target first and passes its directory here.

fn main() {
    println!("cargo:rerun-if-env-changed=DEPMOD_LIBLZMA_DIR");
    if std::env::var_os("CARGO_FEATURE_XZ_PREBUILT").is_none()
        || std::env::var_os("CARGO_FEATURE_XZ").is_some()
    {
        return;
    }
    match std::env::var("DEPMOD_LIBLZMA_DIR") {
        Ok(dir) if !dir.is_empty() => {
            // The directory stays the same when the library is rebuilt (other C flags).
            println!("cargo:rerun-if-changed={dir}/liblzma.a");
            println!("cargo:rustc-link-search=native={dir}");
            println!("cargo:rustc-link-lib=static=lzma");
        }
        _ => {
            eprintln!(
                "feature xz-prebuilt needs DEPMOD_LIBLZMA_DIR: the directory of a liblzma.a \
                 built for the target (cargo xtask dist builds one through liblzma-sys)"
            );
            std::process::exit(1);
        }
    }
}
