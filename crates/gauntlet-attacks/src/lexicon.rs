//! Parts of speech, lemmas and stop words for the `sem` attack's constraints.
//!
//! The paper tags parts of speech in context with NLTK. We approximate this at the *type*
//! level: a [`Lexicon`] gives the set of parts of speech a word form can have and the set of
//! lemmas it can be a form of, and two words "share a part of speech" when those sets
//! intersect. This is a deliberate, documented approximation of a contextual tagger: it
//! allows a flip the tagger might reject when a word is ambiguous (e.g. "fine" noun vs.
//! adjective), never the reverse for unambiguous words.
//!
//! [`WordNetLexicon`] reads the WordNet database files `index.{noun,verb,adj,adv}` and
//! `{noun,verb,adj,adv}.exc` and lemmatizes like WordNet's `morphy`: exception lists first,
//! then the word itself and the standard detachment rules, keeping only candidates present
//! in the index of that part of speech. [`MemoryLexicon`] is a small in-memory table.
//! Words are compared lowercased.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::AttackError;

/// A WordNet part of speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pos {
    /// Noun (`n`).
    Noun,
    /// Verb (`v`).
    Verb,
    /// Adjective (`a`, `s`).
    Adjective,
    /// Adverb (`r`).
    Adverb,
}

impl Pos {
    /// All four parts of speech.
    pub const ALL: [Pos; 4] = [Pos::Noun, Pos::Verb, Pos::Adjective, Pos::Adverb];

    /// WordNet's file suffix for this part of speech (`index.noun`, `noun.exc`, ...).
    pub fn file_stem(self) -> &'static str {
        match self {
            Pos::Noun => "noun",
            Pos::Verb => "verb",
            Pos::Adjective => "adj",
            Pos::Adverb => "adv",
        }
    }

    /// Morphy's detachment rules (suffix, replacement) for this part of speech.
    pub fn suffix_rules(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Pos::Noun => &[
                ("s", ""),
                ("ses", "s"),
                ("xes", "x"),
                ("zes", "z"),
                ("ches", "ch"),
                ("shes", "sh"),
                ("men", "man"),
                ("ies", "y"),
            ],
            Pos::Verb => &[
                ("s", ""),
                ("ies", "y"),
                ("es", "e"),
                ("es", ""),
                ("ed", "e"),
                ("ed", ""),
                ("ing", "e"),
                ("ing", ""),
            ],
            Pos::Adjective => &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
            Pos::Adverb => &[],
        }
    }
}

/// Type-level parts of speech and lemmas of word forms.
pub trait Lexicon: Send + Sync {
    /// Every part of speech the word form can have (empty if unknown).
    fn pos(&self, word: &str) -> BTreeSet<Pos>;
    /// Every lemma the word form can be a form of (empty if unknown).
    fn lemmas(&self, word: &str) -> BTreeSet<String>;
}

/// How deep below a given directory [`find_wordnet_dict`] looks for `index.noun`.
pub const WORDNET_MAX_DEPTH: usize = 5;

/// The default WordNet root, where `scripts/bootstrap.sh` unpacks Debian's `wordnet-base`:
/// `$GAUNTLET_CACHE/wordnet`, else `~/.cache/gauntlet/wordnet` (`None` when neither
/// `GAUNTLET_CACHE` nor `HOME` is set). Shared by the `gauntlet` CLI and the server.
pub fn wordnet_default_root() -> Option<PathBuf> {
    if let Some(cache) = std::env::var_os("GAUNTLET_CACHE").filter(|c| !c.is_empty()) {
        return Some(PathBuf::from(cache).join("wordnet"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache/gauntlet/wordnet"))
}

/// WordNet was looked for and not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordNetNotFound {
    /// The place searched holds no `index.noun` at or below it.
    #[error("{origin} {} holds no WordNet database (no index.noun at or below it)", root.display())]
    Empty {
        /// Where the directory came from (`the given directory`, `$GAUNTLET_WORDNET`,
        /// `the cache`).
        origin: &'static str,
        /// The directory searched.
        root: PathBuf,
    },
    /// Nothing says where to look.
    #[error("no WordNet location: nothing was given and GAUNTLET_WORDNET, GAUNTLET_CACHE and HOME are unset")]
    Nowhere,
}

/// The one rule by which the CLI and the server find WordNet: the `dict` directory at or
/// below `given` (a flag or a setting), else below `env` (the value of
/// `$GAUNTLET_WORDNET`), else below [`wordnet_default_root`] (the bootstrap's cache).
pub fn locate_wordnet(given: Option<&Path>, env: Option<&str>) -> Result<PathBuf, WordNetNotFound> {
    let (root, origin) = match (given, env.filter(|e| !e.is_empty())) {
        (Some(dir), _) => (dir.to_owned(), "the given directory"),
        (None, Some(env)) => (PathBuf::from(env), "$GAUNTLET_WORDNET"),
        (None, None) => (
            wordnet_default_root().ok_or(WordNetNotFound::Nowhere)?,
            "the cache",
        ),
    };
    find_wordnet_dict(&root).ok_or(WordNetNotFound::Empty { origin, root })
}

/// The WordNet `dict` directory (the one holding `index.noun`) at or below `root`, searched
/// breadth first in sorted order down to [`WORDNET_MAX_DEPTH`] levels. Shared by the
/// `gauntlet` CLI and the server, so both accept the same directories.
pub fn find_wordnet_dict(root: &Path) -> Option<PathBuf> {
    let mut level = vec![root.to_owned()];
    for _ in 0..=WORDNET_MAX_DEPTH {
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

/// A lexicon read from WordNet database files.
#[derive(Debug, Clone, Default)]
pub struct WordNetLexicon {
    index: BTreeMap<Pos, BTreeSet<String>>,
    exceptions: BTreeMap<Pos, BTreeMap<String, Vec<String>>>,
}

impl WordNetLexicon {
    /// Reads `index.POS` and `POS.exc` for the four parts of speech from `dir` (WordNet's
    /// `dict` directory). Index files are required; missing exception files are allowed.
    pub fn load(dir: &Path) -> Result<Self, AttackError> {
        let mut lexicon = Self::default();
        for pos in Pos::ALL {
            let path = dir.join(format!("index.{}", pos.file_stem()));
            let text = std::fs::read_to_string(&path).map_err(|e| AttackError::Lexicon {
                path: path.clone(),
                message: format!("{e} (expected a WordNet `dict` directory)"),
            })?;
            lexicon.add_index(pos, &text);
            let path = dir.join(format!("{}.exc", pos.file_stem()));
            if let Ok(text) = std::fs::read_to_string(&path) {
                lexicon.add_exceptions(pos, &text);
            }
        }
        if lexicon.index.values().all(BTreeSet::is_empty) {
            return Err(AttackError::Lexicon {
                path: dir.to_owned(),
                message: "no lemma found in the index files".into(),
            });
        }
        Ok(lexicon)
    }

    /// Adds the lemmas of one `index.POS` file's text (license lines start with a space).
    pub fn add_index(&mut self, pos: Pos, text: &str) {
        let set = self.index.entry(pos).or_default();
        for line in text
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.is_empty())
        {
            if let Some(lemma) = line.split_whitespace().next() {
                set.insert(lemma.to_lowercase());
            }
        }
    }

    /// Adds the lines `inflected base...` of one `POS.exc` file's text.
    pub fn add_exceptions(&mut self, pos: Pos, text: &str) {
        let map = self.exceptions.entry(pos).or_default();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            if let Some(form) = fields.next() {
                let bases = map.entry(form.to_lowercase()).or_default();
                bases.extend(fields.map(str::to_lowercase));
            }
        }
    }

    fn in_index(&self, pos: Pos, lemma: &str) -> bool {
        self.index.get(&pos).is_some_and(|s| s.contains(lemma))
    }

    /// The lemmas of `word` as part of speech `pos`, WordNet `morphy` style.
    pub fn morphy(&self, word: &str, pos: Pos) -> BTreeSet<String> {
        let word = word.to_lowercase().replace(' ', "_");
        let mut out = BTreeSet::new();
        if let Some(bases) = self.exceptions.get(&pos).and_then(|m| m.get(&word)) {
            out.extend(bases.iter().filter(|b| self.in_index(pos, b)).cloned());
        }
        if self.in_index(pos, &word) {
            out.insert(word.clone());
        }
        for (suffix, replacement) in pos.suffix_rules() {
            if let Some(stem) = word.strip_suffix(suffix) {
                if stem.is_empty() {
                    continue;
                }
                let candidate = format!("{stem}{replacement}");
                if self.in_index(pos, &candidate) {
                    out.insert(candidate);
                }
            }
        }
        out
    }
}

impl Lexicon for WordNetLexicon {
    fn pos(&self, word: &str) -> BTreeSet<Pos> {
        Pos::ALL
            .into_iter()
            .filter(|&p| !self.morphy(word, p).is_empty())
            .collect()
    }

    fn lemmas(&self, word: &str) -> BTreeSet<String> {
        Pos::ALL
            .into_iter()
            .flat_map(|p| self.morphy(word, p))
            .collect()
    }
}

/// A lexicon held in memory: word form → (parts of speech, lemmas).
#[derive(Debug, Clone, Default)]
pub struct MemoryLexicon {
    entries: BTreeMap<String, (BTreeSet<Pos>, BTreeSet<String>)>,
}

impl MemoryLexicon {
    /// An empty lexicon.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `word` can be `pos` and is a form of `lemma`.
    pub fn insert(&mut self, word: &str, pos: &[Pos], lemma: &str) -> &mut Self {
        let entry = self.entries.entry(word.to_lowercase()).or_default();
        entry.0.extend(pos.iter().copied());
        entry.1.insert(lemma.to_lowercase());
        self
    }
}

impl Lexicon for MemoryLexicon {
    fn pos(&self, word: &str) -> BTreeSet<Pos> {
        self.entries
            .get(&word.to_lowercase())
            .map(|e| e.0.clone())
            .unwrap_or_default()
    }

    fn lemmas(&self, word: &str) -> BTreeSet<String> {
        self.entries
            .get(&word.to_lowercase())
            .map(|e| e.1.clone())
            .unwrap_or_default()
    }
}

/// English stop words (NLTK's list), which the `sem` attack never replaces.
#[rustfmt::skip]
pub const STOP_WORDS: &[&str] = &[
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "you're", "you've",
    "you'll", "you'd", "your", "yours", "yourself", "yourselves", "he", "him", "his", "himself",
    "she", "she's", "her", "hers", "herself", "it", "it's", "its", "itself", "they", "them",
    "their", "theirs", "themselves", "what", "which", "who", "whom", "this", "that", "that'll",
    "these", "those", "am", "is", "are", "was", "were", "be", "been", "being", "have", "has",
    "had", "having", "do", "does", "did", "doing", "a", "an", "the", "and", "but", "if", "or",
    "because", "as", "until", "while", "of", "at", "by", "for", "with", "about", "against",
    "between", "into", "through", "during", "before", "after", "above", "below", "to", "from",
    "up", "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once",
    "here", "there", "when", "where", "why", "how", "all", "any", "both", "each", "few", "more",
    "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so", "than",
    "too", "very", "s", "t", "can", "will", "just", "don", "don't", "should", "should've",
    "now", "d", "ll", "m", "o", "re", "ve", "y", "ain", "aren", "aren't", "couldn", "couldn't",
    "didn", "didn't", "doesn", "doesn't", "hadn", "hadn't", "hasn", "hasn't", "haven",
    "haven't", "isn", "isn't", "ma", "mightn", "mightn't", "mustn", "mustn't", "needn",
    "needn't", "shan", "shan't", "shouldn", "shouldn't", "wasn", "wasn't", "weren", "weren't",
    "won", "won't", "wouldn", "wouldn't",
];

/// Whether `word` (any case) is an English stop word.
pub fn is_stop_word(word: &str) -> bool {
    let lower = word.to_lowercase();
    STOP_WORDS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const INDEX_NOUN: &str = "  1 This software and database is being provided\n\
        movie n 1 1 @ 1 0 05 \nfilm n 2 1 @ 2 0 06 \nbox n 1 0 1 0 0 \nmouse n 1 0 1 0 0 \nrun n 1 0 1 0 0 \n";
    const INDEX_VERB: &str =
        "run v 3 1 @ 3 0 01 \nfilm v 1 0 1 0 0 \nenjoy v 1 0 1 0 0 \ngo v 1 0 1 0 0 \n";
    const INDEX_ADJ: &str = "good a 2 0 2 0 0 \nnice a 1 0 1 0 0 \nbig a 1 0 1 0 0 \n";
    const INDEX_ADV: &str = "well r 1 0 1 0 0 \n";

    fn wordnet_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            ("index.noun", INDEX_NOUN),
            ("index.verb", INDEX_VERB),
            ("index.adj", INDEX_ADJ),
            ("index.adv", INDEX_ADV),
            ("noun.exc", "mice mouse\n"),
            ("verb.exc", "ran run\nwent go\n"),
            ("adj.exc", "better good well\nbigger big\n"),
            ("adv.exc", "better well\n"),
        ];
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn wordnet_lemmatizes_with_exceptions_and_suffix_rules() {
        let dir = wordnet_dir();
        let wn = WordNetLexicon::load(dir.path()).unwrap();
        assert_eq!(
            wn.morphy("movies", Pos::Noun),
            BTreeSet::from(["movie".to_owned()])
        );
        assert_eq!(
            wn.morphy("boxes", Pos::Noun),
            BTreeSet::from(["box".to_owned()])
        );
        assert_eq!(
            wn.morphy("mice", Pos::Noun),
            BTreeSet::from(["mouse".to_owned()])
        );
        assert_eq!(
            wn.morphy("enjoyed", Pos::Verb),
            BTreeSet::from(["enjoy".to_owned()])
        );
        assert_eq!(
            wn.morphy("running", Pos::Verb),
            BTreeSet::new(),
            "runn is not a verb"
        );
        assert!(wn.lemmas("ran").contains("run") && wn.lemmas("went").contains("go"));
        assert_eq!(wn.pos("films"), BTreeSet::from([Pos::Noun, Pos::Verb]));
        assert_eq!(
            wn.pos("better"),
            BTreeSet::from([Pos::Adjective, Pos::Adverb])
        );
        assert_eq!(wn.pos("Bigger"), BTreeSet::from([Pos::Adjective]));
        assert!(wn.pos("zebra").is_empty());
    }

    #[test]
    fn a_missing_wordnet_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = WordNetLexicon::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("index.noun"), "{err}");
    }

    #[test]
    fn memory_lexicon_and_stop_words() {
        let mut lex = MemoryLexicon::new();
        lex.insert("Good", &[Pos::Adjective], "good")
            .insert("better", &[Pos::Adjective], "good");
        assert_eq!(lex.pos("good"), BTreeSet::from([Pos::Adjective]));
        assert_eq!(lex.lemmas("better"), BTreeSet::from(["good".to_owned()]));
        assert!(is_stop_word("The") && is_stop_word("not") && !is_stop_word("movie"));
    }
}
