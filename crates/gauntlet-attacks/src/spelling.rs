//! Legible out-of-vocabulary spellings for the `unk` attack.
//!
//! The model reads `[UNK]` where the attack replaced a word, but the report must show text a
//! person can read and the model would map to `[UNK]`. [`oov_spelling`] tries, in this
//! order, swapping two adjacent inner characters (left to right), doubling an inner
//! character, doubling the first or last character, and appending the last character twice;
//! it returns the first variant that the codec encodes as exactly one word with the codec's
//! unknown id (special tokens of subword models aside). Invariant: a returned spelling
//! always re-encodes to `[UNK]` on its own, so the spliced text reproduces the ids the attack
//! evaluated. Subword tokenizers split most misspellings into known pieces instead, so on
//! those models few words have such a spelling.

use gauntlet_core::{Encoded, TextCodec, TokenIds, TokenRole};

/// Candidate misspellings of `word`, most legible first.
pub fn misspellings(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let build = |v: &[char]| v.iter().collect::<String>();
    // Swaps of adjacent inner characters keep the first and last letters in place.
    for k in 1..n.saturating_sub(2) {
        if chars[k] != chars[k + 1] {
            let mut v = chars.clone();
            v.swap(k, k + 1);
            out.push(build(&v));
        }
    }
    let double = |k: usize| {
        let mut v = chars.clone();
        v.insert(k, chars[k]);
        build(&v)
    };
    for k in 1..n.saturating_sub(1) {
        out.push(double(k));
    }
    if n > 0 {
        out.push(double(0));
        out.push(double(n - 1));
        let mut v = chars.clone();
        v.push(chars[n - 1]);
        v.push(chars[n - 1]);
        out.push(build(&v));
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|s| s != word && seen.insert(s.clone()));
    out
}

/// The first misspelling of `word` that `codec` (a word codec) reads as a single `[UNK]`.
pub fn oov_spelling(word: &str, codec: &TextCodec) -> Option<String> {
    let unk = codec.unk_id();
    misspellings(word)
        .into_iter()
        .find(|candidate| matches!(codec.encode(candidate), Ok(e) if reads_as(&e, unk)))
}

/// Whether the only non-special id of `encoded` is `id`.
fn reads_as(encoded: &Encoded, id: u32) -> bool {
    let TokenIds::Words(ids) = &encoded.ids else {
        return false;
    };
    let mut content = ids
        .iter()
        .zip(&encoded.roles)
        .filter(|(_, role)| **role != TokenRole::Special);
    matches!((content.next(), content.next()), (Some((&only, _)), None) if only == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_start_with_inner_swaps() {
        let m = misspellings("movie");
        assert_eq!(&m[..3], ["mvoie", "moive", "moovie"]);
        assert!(m.contains(&"moovie".to_owned()));
        assert!(!m.contains(&"movie".to_owned()));
        assert_eq!(misspellings("a"), vec!["aa".to_owned(), "aaa".to_owned()]);
    }
}
