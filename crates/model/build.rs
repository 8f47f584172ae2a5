fn main() {
    medqa_build::link_libtorch();
    println!("cargo:rerun-if-changed=csrc/shim_error.h");
    medqa_build::compile_cpp(
        "medqa_shim",
        &[
            "csrc/autocast.cpp",
            "csrc/dropout.cpp",
            "csrc/sdpa.cpp",
            "csrc/transfer.cpp",
            "csrc/fused_adamw.cpp",
            "csrc/profiler.cpp",
        ],
    );
}
