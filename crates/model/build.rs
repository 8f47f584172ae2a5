fn main() {
    medqa_build::link_libtorch();
    println!("cargo:rerun-if-changed=csrc/shim_error.h");
    medqa_build::compile_cpp(
        "medqa_shim",
        &[
            "csrc/autocast.cpp",
            "csrc/checkpoint.cpp",
            "csrc/cross_entropy.cpp",
            "csrc/determinism.cpp",
            "csrc/dropout.cpp",
            "csrc/host_memory.cpp",
            "csrc/sdpa.cpp",
            "csrc/transfer.cpp",
            "csrc/fused_adamw.cpp",
            "csrc/profiler.cpp",
        ],
    );
    // The distributed shim needs Gloo's headers, and NCCL's where this libtorch has CUDA.
    println!("cargo::rustc-check-cfg=cfg(medqa_nccl)");
    let mut includes = vec![medqa_build::gloo_include()];
    let mut defines = vec!["USE_C10D_GLOO"];
    if let Some(dirs) = medqa_build::nccl_includes() {
        includes.extend(dirs);
        defines.extend(["USE_C10D_NCCL", "MEDQA_WITH_NCCL"]);
        println!("cargo:rustc-cfg=medqa_nccl");
    }
    medqa_build::compile_cpp_with("medqa_dist", &["csrc/dist.cpp"], &includes, &defines);
    // CUDA graphs where this libtorch has CUDA and the runtime's headers are there; elsewhere the shim
    // reports that it has none and training stays eager.
    let (includes, defines) = match medqa_build::cuda_includes() {
        Some(dirs) => {
            // The graph shim calls c10's CUDA stream and allocator functions directly.
            println!("cargo:rustc-link-lib=dylib=c10_cuda");
            (dirs, vec!["MEDQA_WITH_CUDA"])
        }
        None => (Vec::new(), Vec::new()),
    };
    medqa_build::compile_cpp_with(
        "medqa_cuda_graph",
        &["csrc/cuda_graph.cpp"],
        &includes,
        &defines,
    );
}
