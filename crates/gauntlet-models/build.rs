fn main() {
    gauntlet_build::link_libtorch();
}
