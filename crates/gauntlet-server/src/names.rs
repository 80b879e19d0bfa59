//! Names of models and datasets: the only way a client can point at a file.
//!
//! A name is one path component of at most 128 characters from `[A-Za-z0-9._-]`, starting
//! with a letter or digit, and never `..`-containing. Anything else (`/`, `\`, `..`, a
//! leading dot, NUL, absolute paths, empty) is refused before any file-system access, and
//! the resolved path is checked again to lie directly inside its base directory.

use std::path::{Path, PathBuf};

use crate::error::ApiError;

/// Longest accepted name.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a model or dataset name; `what` is `model` or `dataset`.
pub fn check_name(what: &'static str, name: &str) -> Result<(), ApiError> {
    let bad = |reason| {
        Err(ApiError::InvalidName {
            what,
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("the name is longer than 128 characters");
    }
    if name.contains(['/', '\\']) {
        return bad("a name is a single file or directory name, without `/` or `\\`");
    }
    if name.contains("..") {
        return bad("a name may not contain `..`");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return bad("only letters, digits, `.`, `_` and `-` are allowed");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad("a name must start with a letter or a digit");
    }
    Ok(())
}

/// Resolves a checked name inside `base`; the result's parent is `base` itself.
pub fn resolve(what: &'static str, base: &Path, name: &str) -> Result<PathBuf, ApiError> {
    check_name(what, name)?;
    let path = base.join(name);
    if path.parent() != Some(base) {
        return Err(ApiError::InvalidName {
            what,
            name: name.to_owned(),
            reason: "the name does not resolve inside its directory",
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_odd_names_are_refused() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            "a\\b",
            ".hidden",
            "x..y",
            "a\0b",
            "é",
            "a b",
        ] {
            assert!(check_name("model", bad).is_err(), "{bad:?}");
        }
        for good in ["sst2-word-cnn", "dev.tsv", "A_1.jsonl"] {
            assert!(check_name("model", good).is_ok(), "{good:?}");
        }
        assert!(resolve("dataset", Path::new("/data"), "dev.tsv").is_ok());
    }
}
