fn main() {
    medqa_build::link_libtorch();
    medqa_build::compile_cpp(
        "medqa_shim",
        &[
            "csrc/autocast.cpp",
            "csrc/dropout.cpp",
            "csrc/fused_adamw.cpp",
        ],
    );
}
