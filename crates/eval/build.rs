fn main() {
    // eval links no libtorch; it only learns whether ../shared/data is there for its tests.
    medqa_build::shared_data_cfg();
}
