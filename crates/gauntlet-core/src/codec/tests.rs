use super::*;

fn tokenization(kind: InputKind, max_length: usize, max_word_length: usize) -> Tokenization {
    Tokenization {
        kind,
        lowercase: true,
        max_length,
        max_word_length,
        pad_token: PAD_TOKEN.into(),
        unk_token: UNK_TOKEN.into(),
        scheme: Default::default(),
    }
}

fn codec(kind: InputKind, texts: &[&str], max_length: usize, max_word_length: usize) -> TextCodec {
    let options = VocabularyOptions {
        kind,
        lowercase: true,
        min_count: 1,
        max_size: 1000,
    };
    let (tokenizer, words) = TextCodec::build(texts, &options).unwrap();
    TextCodec::new(
        tokenizer,
        &tokenization(kind, max_length, max_word_length),
        words,
    )
    .unwrap()
}

#[test]
fn word_vocabulary_is_frequency_ordered_after_specials() {
    let c = codec(InputKind::Word, &["b a a", "A c!"], 10, 0);
    assert_eq!(c.token(0), Some(PAD_TOKEN));
    assert_eq!(c.token(1), Some(UNK_TOKEN));
    assert_eq!(c.token(2), Some("a"));
    assert_eq!(c.id("!"), Some(3));
    let enc = c.encode("A zebra b").unwrap();
    assert_eq!(
        enc.ids,
        TokenIds::Words(vec![2, UNK_ID, c.id("b").unwrap()])
    );
    assert_eq!(enc.spans, vec![(0, 1), (2, 7), (8, 9)]);
    assert!(!enc.truncated);
    assert!(c.knows_word("a") && !c.knows_word("zebra"));
}

#[test]
fn char_codec_groups_characters_by_word_with_original_spans() {
    let c = codec(InputKind::Char, &["abc ab"], 10, 3);
    let enc = c.encode("  Ab  cabd x").unwrap();
    let (a, b, cc) = (c.id("a").unwrap(), c.id("b").unwrap(), c.id("c").unwrap());
    assert_eq!(
        enc.ids,
        TokenIds::Chars(vec![vec![a, b], vec![cc, a, b], vec![UNK_ID]])
    );
    assert_eq!(enc.spans, vec![(2, 4), (6, 10), (11, 12)]);
    assert!(
        enc.truncated,
        "the four-letter word exceeds max_word_length 3"
    );
    assert!(c.knows_word("abc") && !c.knows_word("ba"));
}

#[test]
fn long_texts_are_truncated_and_flagged() {
    let c = codec(InputKind::Word, &["a b c"], 2, 0);
    let enc = c.encode("a b c").unwrap();
    assert_eq!(enc.ids.positions(), 2);
    assert!(enc.truncated);
}

#[test]
fn empty_texts_are_rejected() {
    let c = codec(InputKind::Word, &["a"], 2, 0);
    assert!(matches!(c.encode("  \t "), Err(CoreError::InvalidText(_))));
}

#[test]
fn saved_tokenizer_reloads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let c = codec(InputKind::Char, &["hello world"], 5, 8);
    let path = dir.path().join("tokenizer.json");
    c.save(&path).unwrap();
    let again = TextCodec::load(
        &path,
        &tokenization(InputKind::Char, 5, 8),
        c.word_vocabulary(),
    )
    .unwrap();
    assert_eq!(
        again.encode("Hello there").unwrap(),
        c.encode("Hello there").unwrap()
    );
    assert_eq!(
        again.word_vocabulary(),
        vec!["hello".to_owned(), "world".to_owned()]
    );
}

#[test]
fn a_corrupt_tokenizer_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{not json").unwrap();
    let err = TextCodec::load(&path, &tokenization(InputKind::Word, 5, 0), []).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}
