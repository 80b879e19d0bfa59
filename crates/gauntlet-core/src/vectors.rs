//! Pretrained word vectors: word2vec text and binary files and GloVe text files. Training
//! initialises word embeddings from them (Kim's CNN-static and non-static), and the `sem`
//! attack can take its cosine similarities from them instead of the model's own table.
//!
//! Formats, told apart by their first line:
//!
//! * word2vec text: a header `COUNT DIM`, then one `word v1 … vDIM` per line;
//! * word2vec binary: the same header, then per word its bytes up to a space and `DIM`
//!   little-endian `f32`s (a newline after them is skipped);
//! * GloVe text: no header, lines as in word2vec text.
//!
//! A vocabulary word takes the vector of the same spelling, else (for a lowercasing
//! codec) of its first spelling that lowercases to it; words without one keep their random
//! initialisation, and [`Coverage`] counts both. The special rows (PAD, UNK) are never
//! overwritten. Every malformed line is an error naming the file and the line.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::classifier::EmbeddingTable;
use crate::codec::TextCodec;
use crate::error::CoreError;
use crate::manifest::EmbeddingsProvenance;

/// Vectors by word, as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct WordVectors {
    /// Vector width.
    pub dim: usize,
    /// Every word of the file (first occurrence wins), with its vector.
    pub vectors: HashMap<String, Vec<f32>>,
    /// SHA-256 of the file.
    pub digest: String,
}

/// How much of a vocabulary a file covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// Vocabulary words (special tokens aside) given a pretrained vector.
    pub found: usize,
    /// Vocabulary words, special tokens aside.
    pub words: usize,
}

/// Word vectors laid out by a model's ids for the `sem` attack's cosine constraint (see
/// [`WordVectors::similarity`]), with where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityVectors {
    /// One row per model id; zeros where the file has no vector.
    pub table: EmbeddingTable,
    /// The file, as given.
    pub file: String,
    /// SHA-256 of the file.
    pub digest: String,
    /// How much of the vocabulary the file covered.
    pub coverage: Coverage,
}

impl SimilarityVectors {
    /// What a report says of them.
    pub fn describe(&self) -> String {
        format!(
            "word vectors {} (sha256 {}, {} of {} vocabulary words)",
            self.file,
            &self.digest[..self.digest.len().min(12)],
            self.coverage.found,
            self.coverage.words
        )
    }
}

fn bad(path: &Path, line: usize, message: impl std::fmt::Display) -> CoreError {
    CoreError::Vectors(format!("{}:{line}: {message}", path.display()))
}

fn parse_header(line: &str) -> Option<(usize, usize)> {
    let mut parts = line.split_whitespace();
    let count = parts.next()?.parse().ok()?;
    let dim = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((count, dim))
}

impl WordVectors {
    /// Reads a word2vec (text or binary) or GloVe file.
    pub fn read(path: &Path) -> Result<Self, CoreError> {
        let bytes = std::fs::read(path).map_err(|source| CoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let header_end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(bytes.len());
        let first = std::str::from_utf8(&bytes[..header_end])
            .map_err(|_| bad(path, 1, "the first line is not UTF-8"))?;
        let (vectors, dim) = match parse_header(first) {
            Some((count, dim)) => {
                let body = &bytes[(header_end + 1).min(bytes.len())..];
                match std::str::from_utf8(body) {
                    Ok(text) if looks_like_text(text, dim) => {
                        (read_text(path, text, 2, Some(dim))?, dim)
                    }
                    _ => (read_binary(path, body, count, dim)?, dim),
                }
            }
            None => {
                let text = std::str::from_utf8(&bytes).map_err(|_| {
                    bad(
                        path,
                        1,
                        "not a word2vec or GloVe file (no `COUNT DIM` header and not UTF-8 text)",
                    )
                })?;
                let vectors = read_text(path, text, 1, None)?;
                let dim = vectors.values().next().map_or(0, Vec::len);
                (vectors, dim)
            }
        };
        if vectors.is_empty() || dim == 0 {
            return Err(bad(path, 1, "the file holds no vector"));
        }
        Ok(Self {
            dim,
            vectors,
            digest,
        })
    }

    /// The vector of each word of `codec`'s vocabulary that has one, by id (special rows
    /// aside), and the coverage.
    pub fn rows_for(&self, codec: &TextCodec, lowercase: bool) -> (Vec<(usize, &[f32])>, Coverage) {
        let folded: HashMap<String, &Vec<f32>> = if lowercase {
            let mut m = HashMap::new();
            let mut words: Vec<(&String, &Vec<f32>)> = self.vectors.iter().collect();
            // Deterministic: the lexicographically first spelling of a folded word wins.
            words.sort_by(|a, b| a.0.cmp(b.0));
            for (w, v) in words {
                m.entry(w.to_lowercase()).or_insert(v);
            }
            m
        } else {
            HashMap::new()
        };
        let mut rows = Vec::new();
        let mut words = 0;
        for id in 2..codec.size() as u32 {
            let Some(word) = codec.token(id) else {
                continue;
            };
            words += 1;
            if let Some(v) = self.vectors.get(word).or_else(|| folded.get(word).copied()) {
                rows.push((id as usize, v.as_slice()));
            }
        }
        let coverage = Coverage {
            found: rows.len(),
            words,
        };
        (rows, coverage)
    }

    /// The vectors laid out by `codec`'s ids for the `sem` attack's cosine constraint,
    /// with the file's identity: each word's vector, and zeros for words without one (and
    /// the special rows), so those have no neighbour.
    pub fn similarity(&self, file: &Path, codec: &TextCodec, lowercase: bool) -> SimilarityVectors {
        let (rows, coverage) = self.rows_for(codec, lowercase);
        let mut values = vec![0f32; codec.size() * self.dim];
        for (id, v) in rows {
            values[id * self.dim..(id + 1) * self.dim].copy_from_slice(v);
        }
        SimilarityVectors {
            table: EmbeddingTable {
                rows: codec.size(),
                dim: self.dim,
                values,
            },
            file: file.display().to_string(),
            digest: self.digest.clone(),
            coverage,
        }
    }

    /// The manifest's record of the file.
    pub fn provenance(
        &self,
        file: &Path,
        coverage: Coverage,
        frozen: bool,
    ) -> EmbeddingsProvenance {
        EmbeddingsProvenance {
            file: file.display().to_string(),
            digest: self.digest.clone(),
            dim: self.dim,
            found: coverage.found,
            words: coverage.words,
            frozen,
        }
    }
}

/// Whether a word2vec body is text: its first line has `dim + 1` fields.
fn looks_like_text(body: &str, dim: usize) -> bool {
    body.lines()
        .next()
        .is_some_and(|l| l.split_whitespace().count() == dim + 1)
}

fn read_text(
    path: &Path,
    text: &str,
    first_line: usize,
    dim: Option<usize>,
) -> Result<HashMap<String, Vec<f32>>, CoreError> {
    let mut out = HashMap::new();
    let mut width = dim;
    for (i, line) in text.lines().enumerate() {
        let n = first_line + i;
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let word = parts.next().unwrap_or_default();
        let values: Vec<f32> = parts
            .map(|p| {
                p.parse::<f32>()
                    .map_err(|_| bad(path, n, format!("{p:?} is not a number")))
            })
            .collect::<Result<_, _>>()?;
        let expected = *width.get_or_insert(values.len());
        if values.len() != expected {
            return Err(bad(
                path,
                n,
                format!("{} values, expected {expected}", values.len()),
            ));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(bad(path, n, "a value is not finite"));
        }
        out.entry(word.to_owned()).or_insert(values);
    }
    Ok(out)
}

fn read_binary(
    path: &Path,
    body: &[u8],
    count: usize,
    dim: usize,
) -> Result<HashMap<String, Vec<f32>>, CoreError> {
    let mut out = HashMap::with_capacity(count);
    let mut at = 0;
    for k in 0..count {
        while body.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
            at += 1;
        }
        let end = body[at.min(body.len())..]
            .iter()
            .position(|&b| b == b' ')
            .map(|p| at + p)
            .ok_or_else(|| bad(path, k + 2, format!("vector {} of {count}: no word", k + 1)))?;
        let word = std::str::from_utf8(&body[at..end])
            .map_err(|_| {
                bad(
                    path,
                    k + 2,
                    format!("vector {} of {count}: the word is not UTF-8", k + 1),
                )
            })?
            .to_owned();
        let start = end + 1;
        let stop = start + 4 * dim;
        let raw = body.get(start..stop).ok_or_else(|| {
            bad(
                path,
                k + 2,
                format!("vector {} of {count} ({word:?}) is cut short", k + 1),
            )
        })?;
        let values: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(bad(
                path,
                k + 2,
                format!("vector {word:?} has a value that is not finite"),
            ));
        }
        out.entry(word).or_insert(values);
        at = stop;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::VocabularyOptions;
    use crate::{InputKind, Tokenization};

    fn binary(words: &[(&str, &[f32])]) -> Vec<u8> {
        let dim = words[0].1.len();
        let mut out = format!("{} {dim}\n", words.len()).into_bytes();
        for (w, v) in words {
            out.extend(w.as_bytes());
            out.push(b' ');
            for x in *v {
                out.extend(x.to_le_bytes());
            }
            out.push(b'\n');
        }
        out
    }

    #[test]
    fn text_binary_and_glove_files_read_alike() {
        let dir = tempfile::tempdir().unwrap();
        let words: [(&str, &[f32]); 2] =
            [("good", &[0.5, -1.0, 2.0]), ("Film", &[1.0, 0.0, -0.25])];
        let text = dir.path().join("v.txt");
        std::fs::write(&text, "2 3\ngood 0.5 -1 2\nFilm 1 0 -0.25\n").unwrap();
        let bin = dir.path().join("v.bin");
        std::fs::write(&bin, binary(&words)).unwrap();
        let glove = dir.path().join("g.txt");
        std::fs::write(&glove, "good 0.5 -1 2\nFilm 1 0 -0.25\n").unwrap();
        let a = WordVectors::read(&text).unwrap();
        let b = WordVectors::read(&bin).unwrap();
        let c = WordVectors::read(&glove).unwrap();
        assert_eq!(a.dim, 3);
        assert_eq!(a.vectors, b.vectors);
        assert_eq!(a.vectors, c.vectors);
        assert_eq!(a.vectors["Film"], [1.0, 0.0, -0.25]);
        assert_ne!(a.digest, b.digest);
    }

    #[test]
    fn similarity_tables_follow_the_codec_ids_with_zeros_for_missing_words() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.txt");
        std::fs::write(&path, "3 2\nGood 1 2\nfilm 3 4\nunused 5 6\n").unwrap();
        let vectors = WordVectors::read(&path).unwrap();
        let options = VocabularyOptions {
            kind: InputKind::Word,
            lowercase: true,
            min_count: 1,
            max_size: 100,
        };
        let (tokenizer, words) = TextCodec::build(&["film good bad"], &options).unwrap();
        let tokenization = Tokenization {
            kind: InputKind::Word,
            lowercase: true,
            max_length: 10,
            max_word_length: 0,
            pad_token: "[PAD]".into(),
            unk_token: "[UNK]".into(),
            scheme: Default::default(),
        };
        let codec = TextCodec::new(tokenizer, &tokenization, words).unwrap();
        let sim = vectors.similarity(&path, &codec, true);
        assert_eq!((sim.table.rows, sim.table.dim), (codec.size(), 2));
        let row = |w: &str| sim.table.row(codec.id(w).unwrap() as usize).to_vec();
        assert_eq!(row("film"), [3.0, 4.0]);
        assert_eq!(row("good"), [1.0, 2.0], "a lowercasing codec folds Good");
        assert_eq!(row("bad"), [0.0, 0.0]);
        assert_eq!(sim.table.row(0), [0.0, 0.0], "special rows stay zero");
        assert_eq!((sim.coverage.found, sim.coverage.words), (2, 3));
        assert!(sim.describe().contains("2 of 3"), "{}", sim.describe());
    }

    #[test]
    fn malformed_files_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.txt");
        for (text, needle) in [
            (
                "2 3\ngood 0.5 -1 2\nbad 1 0\n",
                "v.txt:3: 2 values, expected 3",
            ),
            (
                "2 3\ngood 0.5 x 2\nbad 1 0 1\n",
                "v.txt:2: \"x\" is not a number",
            ),
            ("", "holds no vector"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = WordVectors::read(&path)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let mut cut = binary(&[("good", &[0.5, -1.0, 2.0])]);
        cut.truncate(cut.len() - 5);
        std::fs::write(&path, cut).unwrap();
        let e = WordVectors::read(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("cut short"), "{e}");
    }
}
