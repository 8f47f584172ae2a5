fn main() {
    medqa_build::shared_data_cfg();
}
