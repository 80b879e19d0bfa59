//! Locating and loading WordNet for the `sem` attack.
//!
//! `sem` needs parts of speech and lemmas; Gauntlet takes them from WordNet's database files
//! (`index.{noun,verb,adj,adv}`, `*.exc`) as a *type-level* approximation of the paper's
//! contextual tagger (see `gauntlet_attacks::lexicon`). Nothing is downloaded at run time:
//! `scripts/bootstrap.sh` unpacks Debian's `wordnet-base` package into
//! `$GAUNTLET_CACHE/wordnet` (the files land in `usr/share/wordnet` below it) and prints
//! `GAUNTLET_WORDNET`. The directory given (flag, spec or `GAUNTLET_WORDNET`), else the
//! cache, is searched for the directory that holds `index.noun`, by the rule the server
//! shares ([`gauntlet_attacks::locate_wordnet`]).

use std::path::Path;

use anyhow::{Context, Result};
use gauntlet_attacks::{locate_wordnet, WordNetLexicon};

/// Loads WordNet from `given` (flag, spec or environment) or the cache, with an error that
/// says how to provide it.
pub fn load(given: Option<&Path>) -> Result<WordNetLexicon> {
    let dict = locate_wordnet(given, None).map_err(|e| {
        anyhow::anyhow!(
            "attack `sem` needs WordNet's database files (index.noun, index.verb, ...): {e}; \
             run scripts/bootstrap.sh (it unpacks Debian's wordnet-base into \
             $GAUNTLET_CACHE/wordnet) or pass --wordnet DIR / set GAUNTLET_WORDNET"
        )
    })?;
    WordNetLexicon::load(&dict).with_context(|| format!("loading WordNet from {}", dict.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gauntlet_attacks::find_wordnet_dict;

    #[test]
    fn finds_the_dict_directory_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let dict = dir.path().join("usr/share/wordnet");
        std::fs::create_dir_all(&dict).unwrap();
        assert!(find_wordnet_dict(dir.path()).is_none());
        assert!(load(Some(dir.path()))
            .err()
            .unwrap()
            .to_string()
            .contains("holds no WordNet database"));
        for pos in ["noun", "verb", "adj", "adv"] {
            std::fs::write(dict.join(format!("index.{pos}")), "good a 1 0 1 0 0 \n").unwrap();
        }
        assert_eq!(find_wordnet_dict(dir.path()), Some(dict));
        assert!(load(Some(dir.path())).is_ok());
    }
}
