//! Locating and loading WordNet for the `sem` attack.
//!
//! `sem` needs parts of speech and lemmas; Gauntlet takes them from WordNet's database files
//! (`index.{noun,verb,adj,adv}`, `*.exc`) as a *type-level* approximation of the paper's
//! contextual tagger (see `gauntlet_attacks::lexicon`). Nothing is downloaded at run time:
//! `scripts/bootstrap.sh` unpacks Debian's `wordnet-base` package into
//! `$GAUNTLET_CACHE/wordnet` (the files land in `usr/share/wordnet` below it) and prints
//! `GAUNTLET_WORDNET`. The directory given (flag, spec or `GAUNTLET_WORDNET`), else the
//! cache, is searched for the directory that holds `index.noun`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gauntlet_attacks::WordNetLexicon;

/// How deep below the given directory `index.noun` is looked for.
const MAX_DEPTH: usize = 5;

/// The default WordNet root: `$GAUNTLET_CACHE/wordnet`, else `~/.cache/gauntlet/wordnet`.
pub fn default_root() -> Option<PathBuf> {
    if let Some(cache) = std::env::var_os("GAUNTLET_CACHE").filter(|c| !c.is_empty()) {
        return Some(PathBuf::from(cache).join("wordnet"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache/gauntlet/wordnet"))
}

/// The directory holding `index.noun` at or below `root` (breadth first, sorted).
pub fn find_dict(root: &Path) -> Option<PathBuf> {
    let mut level = vec![root.to_owned()];
    for _ in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        for dir in level {
            if dir.join("index.noun").is_file() {
                return Some(dir);
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut subdirs: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect();
                subdirs.sort();
                next.extend(subdirs);
            }
        }
        level = next;
    }
    None
}

/// Loads WordNet from `given` (flag, spec or environment) or the cache, with an error that
/// says how to provide it.
pub fn load(given: Option<&Path>) -> Result<WordNetLexicon> {
    let (root, origin) = match given {
        Some(dir) => (dir.to_owned(), "the given WordNet directory"),
        None => match default_root() {
            Some(dir) => (dir, "the cache"),
            None => bail!(
                "attack `sem` needs WordNet: pass --wordnet DIR or set GAUNTLET_WORDNET \
                 (neither GAUNTLET_CACHE nor HOME is set)"
            ),
        },
    };
    let Some(dict) = find_dict(&root) else {
        bail!(
            "attack `sem` needs WordNet's database files (index.noun, index.verb, ...), but \
             {origin} {} holds none; run scripts/bootstrap.sh (it unpacks Debian's \
             wordnet-base into $GAUNTLET_CACHE/wordnet) or pass --wordnet DIR / set \
             GAUNTLET_WORDNET",
            root.display()
        );
    };
    WordNetLexicon::load(&dict).with_context(|| format!("loading WordNet from {}", dict.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_the_dict_directory_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let dict = dir.path().join("usr/share/wordnet");
        std::fs::create_dir_all(&dict).unwrap();
        assert!(find_dict(dir.path()).is_none());
        assert!(load(Some(dir.path()))
            .err()
            .unwrap()
            .to_string()
            .contains("holds none"));
        for pos in ["noun", "verb", "adj", "adv"] {
            std::fs::write(dict.join(format!("index.{pos}")), "good a 1 0 1 0 0 \n").unwrap();
        }
        assert_eq!(find_dict(dir.path()), Some(dict));
        assert!(load(Some(dir.path())).is_ok());
    }
}
