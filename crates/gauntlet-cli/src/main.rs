//! The `gauntlet` command (in progress).
fn main() {}
