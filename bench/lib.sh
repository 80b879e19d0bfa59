# Shared by the bench scripts (sourced, from the repository root).

# The build a results file names: the short commit, marked when the crates or the
# lock file differ from it.
build_rev() {
  echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo "+uncommitted changes")"
}
