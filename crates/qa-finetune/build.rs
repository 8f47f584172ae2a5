fn main() {
    medqa_build::link_libtorch();
    medqa_build::shared_data_cfg();
    medqa_build::e5_assets_cfg();
}
