//! Links libtorch with an rpath; see `gauntlet_build::link_libtorch`.
fn main() {
    gauntlet_build::link_libtorch();
}
