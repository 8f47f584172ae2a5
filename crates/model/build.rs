fn main() {
    medqa_build::link_libtorch();
    medqa_build::compile_cpp("medqa_autocast", &["csrc/autocast.cpp"]);
}
