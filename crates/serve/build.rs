fn main() {
    medqa_build::link_libtorch();
}
