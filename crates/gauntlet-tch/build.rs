//! Links libtorch with an rpath (the unit tests run libtorch); see `gauntlet_build::link_libtorch`.
fn main() {
    gauntlet_build::link_libtorch();
}
