#![allow(clippy::unwrap_used)]

use gauntlet_attacks::{MemoryLexicon, Pos};
use gauntlet_core::codec::{VocabularyOptions, PAD_TOKEN, UNK_TOKEN};
use gauntlet_core::{InputKind, TextCodec, TokenIds, Tokenization};
use gauntlet_models::{Architecture, Network, PaddedBatch};
use tch::{nn, Device, Kind, Tensor};

use super::clean_pass::clean_pass;
use super::embedding_space::{
    fgsm, fgsm_perturbation, l2, l2_perturbation, vat_divergences, vat_labelled, vat_perturbation,
};
use super::token_space::{flips_for, hotflip_batch, sem_batch, unk_batch, SemContext};
use super::*;

/// libtorch's random generator is global and tests run on parallel threads: every test
/// holds this lock (from [`network`]) so seeded draws happen in a known order.
pub(super) static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A seeded network of `arch` without dropout over `rows` ids, 3 classes, with the
/// hyper-parameter overrides `extra`, and the held lock of libtorch's generator.
pub(super) fn network_with(
    arch: Architecture,
    rows: usize,
    extra: &[(&str, serde_json::Value)],
) -> (
    std::sync::MutexGuard<'static, ()>,
    nn::VarStore,
    Box<dyn Network>,
) {
    let guard = TORCH_RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut hyper = arch.default_hyper_parameters();
    hyper.insert("dropout".into(), 0.0.into());
    for (key, value) in extra {
        hyper.insert((*key).into(), value.clone());
    }
    let net = arch.build(&vs.root(), &hyper, rows, 3).unwrap();
    (guard, vs, net)
}

fn network(
    arch: Architecture,
    rows: usize,
) -> (
    std::sync::MutexGuard<'static, ()>,
    nn::VarStore,
    Box<dyn Network>,
) {
    network_with(arch, rows, &[])
}

pub(super) fn word_ids() -> Vec<TokenIds> {
    vec![
        TokenIds::Words(vec![2, 3, 4, 5, 6, 7]),
        TokenIds::Words(vec![8, 9, 2]),
    ]
}

pub(super) fn char_ids() -> Vec<TokenIds> {
    vec![
        TokenIds::Chars(vec![vec![2, 3, 4, 5], vec![6, 7], vec![8, 9, 2, 3, 4]]),
        TokenIds::Chars(vec![vec![5, 6, 7]]),
    ]
}

pub(super) fn run<T>(net: &dyn Network, ids: &[TokenIds], f: impl FnOnce(&Batch<'_>) -> T) -> T {
    run_labelled(net, ids, &[0, 2], f)
}

/// `f` on the padded batch of `ids` with class ids `labels`.
fn run_labelled<T>(
    net: &dyn Network,
    ids: &[TokenIds],
    labels: &[i64],
    f: impl FnOnce(&Batch<'_>) -> T,
) -> T {
    let padded = PaddedBatch::new(ids, net.min_len(), Device::Cpu).unwrap();
    let targets = Tensor::from_slice(labels);
    f(&Batch {
        ids,
        padded: &padded,
        targets: &targets,
        unlabeled: None,
    })
}

#[test]
fn fgsm_and_l2_raise_the_loss_at_small_epsilon() {
    for arch in Architecture::ALL {
        let (_rng, _vs, net) = network(arch, 12);
        let ids = if arch == Architecture::CharCnnLstm {
            char_ids()
        } else {
            word_ids()
        };
        run(net.as_ref(), &ids, |batch| {
            let f = fgsm(net.as_ref(), batch, 1e-3, 0.5);
            let l = l2(net.as_ref(), batch, 1e-2, 1.0);
            for (name, Pending { loss: step, .. }) in [("fgsm", f), ("l2", l)] {
                let (clean, adv) = (
                    step.clean.double_value(&[]),
                    step.adversarial.unwrap().double_value(&[]),
                );
                assert!(
                    adv >= clean,
                    "{arch} {name}: adversarial {adv} < clean {clean}"
                );
            }
        });
    }
}

#[test]
fn perturbations_have_the_stated_norms() {
    let (_rng, _vs, net) = network(Architecture::WordCnn, 12);
    let ids = word_ids();
    run(net.as_ref(), &ids, |batch| {
        let embedded = net.embed(batch.padded);
        let loss = net
            .logits(&embedded, batch.padded, true)
            .cross_entropy_for_logits(batch.targets);
        let gradient = Tensor::run_backward(&[&loss], &[&embedded], true, false).remove(0);
        let delta = fgsm_perturbation(&gradient, batch.padded, 0.25);
        let mask = batch.padded.mask.unsqueeze(-1).expand_as(&delta);
        let real = delta.masked_select(&mask.gt(0.0)).abs();
        let padding = delta.masked_select(&mask.eq(0.0));
        assert!(
            (real - 0.25).abs().max().double_value(&[]) < 1e-7,
            "FGSM is ε·sign(g) at real positions"
        );
        assert_eq!(
            padding.abs().sum(Kind::Float).double_value(&[]),
            0.0,
            "padding is never perturbed"
        );
        for r in [l2_perturbation(&gradient, batch.padded, 0.7), {
            let log_p = net
                .logits(&embedded, batch.padded, true)
                .log_softmax(-1, Kind::Float)
                .detach();
            vat_perturbation(net.as_ref(), &embedded, batch.padded, &log_p, 0.7, 0.1)
        }] {
            let norms = r
                .reshape([2, -1])
                .norm_scalaropt_dim(2.0, [1].as_slice(), false);
            let norms = Vec::<f32>::try_from(norms).unwrap();
            assert!(
                norms.iter().all(|n| (n - 0.7).abs() < 1e-5),
                "per-example L2 norm must be ε: {norms:?}"
            );
        }
    });
}

#[test]
fn vat_takes_one_mean_over_labelled_and_unlabelled_examples() {
    // Miyato Eq. 8: with 2 labelled and 4 unlabelled texts the divergence term is the mean
    // of all 6, not mean(labelled) + mean(unlabelled).
    let (_rng, _vs, net) = network(Architecture::BiRnn, 12);
    let ids = word_ids();
    let extra: Vec<TokenIds> = (0..4)
        .map(|i| TokenIds::Words(vec![2 + i, 5, 9 - i, 3]))
        .collect();
    let unlabeled = PaddedBatch::new(&extra, net.min_len(), Device::Cpu).unwrap();
    let padded = PaddedBatch::new(&ids, net.min_len(), Device::Cpu).unwrap();
    let targets = Tensor::from_slice(&[0i64, 2]);
    let batch = Batch {
        ids: &ids,
        padded: &padded,
        targets: &targets,
        unlabeled: Some(&unlabeled),
    };
    tch::manual_seed(3);
    let combined = vat_labelled(net.as_ref(), &batch, 0.5, 0.1, 1.0)
        .loss
        .adversarial
        .unwrap()
        .double_value(&[]);
    // The same random directions, drawn in the same order.
    tch::manual_seed(3);
    let labelled = vat_divergences(net.as_ref(), &padded, 0.5, 0.1);
    let unlabelled = vat_divergences(net.as_ref(), &unlabeled, 0.5, 0.1);
    let sum = |t: &Tensor| t.sum(Kind::Double).double_value(&[]);
    let one_mean = (sum(&labelled) + sum(&unlabelled)) / 6.0;
    let two_means = sum(&labelled) / 2.0 + sum(&unlabelled) / 4.0;
    assert!(
        (combined - one_mean).abs() < 1e-6,
        "{combined} vs {one_mean}"
    );
    assert!(
        (combined - two_means).abs() > 1e-4,
        "the sizes must make the means differ"
    );
}

#[test]
fn top_r_hotflip_changes_exactly_r_characters_per_example() {
    let (_rng, _vs, net) = network(Architecture::CharCnnLstm, 12);
    let ids = char_ids();
    for ratio in [0.2, 0.5, 1.0] {
        run(net.as_ref(), &ids, |batch| {
            let pass = clean_pass(net.as_ref(), batch, 0.0);
            let flipped = hotflip_batch(net.as_ref(), batch, &pass, ratio);
            let before = Vec::<i64>::try_from(batch.padded.ids.flatten(0, -1)).unwrap();
            let after = Vec::<i64>::try_from(flipped.ids.flatten(0, -1)).unwrap();
            let per_example = before.len() / ids.len();
            for (i, example) in ids.iter().enumerate() {
                let range = i * per_example..(i + 1) * per_example;
                let changed: Vec<usize> =
                    range.clone().filter(|&k| before[k] != after[k]).collect();
                assert_eq!(
                    changed.len() as i64,
                    flips_for(example.positions(), ratio),
                    "ratio {ratio}, example {i}"
                );
                for k in changed {
                    assert_ne!(before[k], 0, "padding must not be flipped");
                    assert!(after[k] >= 2, "flips never introduce PAD or UNK");
                }
            }
        });
    }
}

#[test]
fn unk_regularizer_replaces_exactly_one_word() {
    let (_rng, _vs, net) = network(Architecture::WordCnn, 12);
    let ids = word_ids();
    run(net.as_ref(), &ids, |batch| {
        let pass = clean_pass(net.as_ref(), batch, 0.0);
        let adversarial = unk_batch(net.as_ref(), batch, &pass, 1, 1);
        let diff = adversarial
            .ids
            .ne_tensor(&batch.padded.ids)
            .sum_dim_intlist([1].as_slice(), false, Kind::Int64);
        assert_eq!(Vec::<i64>::try_from(diff).unwrap(), vec![1, 1]);
        let unks = adversarial.ids.eq(1).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(unks, 2);
    });
}

/// With `words` = 3, the UNK regularizer replaces each example's three best words by the
/// estimate `g·(e_unk − e_i)` (computed here on the host from the clean pass), every word
/// of a shorter text, and never a word that is UNK already.
#[test]
fn unk_words_replace_the_best_estimated_words_together() {
    let (_rng, _vs, net) = network(Architecture::WordCnn, 40);
    let ids: Vec<TokenIds> = (0..10u32)
        .map(|i| {
            TokenIds::Words(
                (0..2 + i % 6)
                    // An UNK already in place in some texts: it must not count as a pick.
                    .map(|j| {
                        if (i + j) % 5 == 4 {
                            1
                        } else {
                            2 + (i * 7 + j * 5) % 38
                        }
                    })
                    .collect(),
            )
        })
        .collect();
    let labels: Vec<i64> = (0..10).map(|i| i % 3).collect();
    let (pass, adversarial) = run_labelled(net.as_ref(), &ids, &labels, |batch| {
        let pass = clean_pass(net.as_ref(), batch, 0.0);
        let adversarial = unk_batch(net.as_ref(), batch, &pass, 1, 3);
        (pass, adversarial)
    });
    let table = net.embedding().detach();
    let unk = table.get(1);
    let width = adversarial.ids.size()[1];
    let mut sets_that_differ_from_the_first_three = 0;
    for (i, example) in ids.iter().enumerate() {
        let TokenIds::Words(words) = example else {
            unreachable!()
        };
        let row = adversarial.ids.get(i as i64);
        let after: Vec<i64> = Vec::try_from(&row).unwrap();
        let mut estimates: Vec<(f64, usize)> = (0..words.len())
            .filter(|&j| words[j] != 1)
            .map(|j| {
                let g = pass.gradient.get(i as i64).get(j as i64);
                let e = table.get(i64::from(words[j]));
                ((g * (&unk - e)).sum(Kind::Float).double_value(&[]), j)
            })
            .collect();
        estimates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut expected: Vec<usize> = estimates.iter().take(3).map(|&(_, j)| j).collect();
        expected.sort_unstable();
        let replaced: Vec<usize> = (0..words.len())
            .filter(|&j| words[j] != 1 && after[j] == 1)
            .collect();
        assert_eq!(replaced, expected, "example {i}: {estimates:?}");
        assert!(
            (0..width as usize).all(|j| j < words.len() && after[j] as u32 == words[j]
                || replaced.contains(&j)
                || j >= words.len() && after[j] == 0),
            "example {i}: only the picked words change ({after:?} from {words:?})"
        );
        if expected
            != (0..words.len())
                .filter(|&j| words[j] != 1)
                .take(3)
                .collect::<Vec<_>>()
        {
            sets_that_differ_from_the_first_three += 1;
        }
    }
    assert!(
        sets_that_differ_from_the_first_three > 0,
        "precondition: the estimates do not just pick each text's first words"
    );
}

/// With `candidates` covering every word, the UNK regularizer replaces the word whose
/// replacement has the highest true loss (found here by brute force, one text at a time),
/// which on this model is not always the first-order pick.
#[test]
fn unk_candidates_keep_the_replacement_with_the_highest_true_loss() {
    let (_rng, _vs, net) = network(Architecture::WordCnn, 40);
    let ids: Vec<TokenIds> = (0..12u32)
        .map(|i| TokenIds::Words((0..3 + i % 6).map(|j| 2 + (i * 7 + j * 5) % 38).collect()))
        .collect();
    let labels: Vec<i64> = (0..12).map(|i| i % 3).collect();
    let (first_order, searched, width) = run_labelled(net.as_ref(), &ids, &labels, |batch| {
        let pass = clean_pass(net.as_ref(), batch, 0.0);
        let changed = |adversarial: &PaddedBatch| -> Vec<usize> {
            let diff = adversarial
                .ids
                .ne_tensor(&batch.padded.ids)
                .to_kind(Kind::Int64)
                .argmax(1, false);
            Vec::<i64>::try_from(diff)
                .unwrap()
                .into_iter()
                .map(|j| j as usize)
                .collect()
        };
        (
            changed(&unk_batch(net.as_ref(), batch, &pass, 1, 1)),
            changed(&unk_batch(net.as_ref(), batch, &pass, 20, 1)),
            batch.padded.ids.size()[1] as usize,
        )
    });
    let mut disagreements = 0;
    for (i, example) in ids.iter().enumerate() {
        let TokenIds::Words(words) = example else {
            unreachable!()
        };
        let loss_with_unk_at = |j: usize| {
            let mut edited = words.clone();
            edited[j] = 1;
            let one = [TokenIds::Words(edited)];
            // Padded like the batch, so the two forward passes see the same shapes.
            let padded = PaddedBatch::new(&one, width, Device::Cpu).unwrap();
            net.forward(&padded, false)
                .cross_entropy_for_logits(&Tensor::from_slice(&[labels[i]]))
                .double_value(&[])
        };
        let losses: Vec<f64> = (0..words.len()).map(loss_with_unk_at).collect();
        let worst = losses.iter().copied().fold(f64::MIN, f64::max);
        assert!(
            (losses[searched[i]] - worst).abs() < 1e-5,
            "example {i}: kept position {} (loss {}), the worst is {worst} ({losses:?})",
            searched[i],
            losses[searched[i]]
        );
        if (losses[first_order[i]] - worst).abs() > 1e-5 {
            disagreements += 1;
        }
    }
    assert!(
        disagreements > 0,
        "precondition: the first-order estimate misses the worst word somewhere"
    );
}

#[test]
fn sem_regularizer_flips_only_to_allowed_words() {
    let texts = ["good great film movie bad awful"];
    let options = VocabularyOptions {
        kind: InputKind::Word,
        lowercase: true,
        min_count: 1,
        max_size: 100,
    };
    let (tokenizer, _) = TextCodec::build(&texts, &options).unwrap();
    let tokenization = Tokenization {
        kind: InputKind::Word,
        lowercase: true,
        max_length: 10,
        max_word_length: 1,
        pad_token: PAD_TOKEN.into(),
        unk_token: UNK_TOKEN.into(),
        scheme: Default::default(),
    };
    let codec = TextCodec::new(tokenizer, &tokenization, Vec::new()).unwrap();
    let mut lexicon = MemoryLexicon::new();
    lexicon
        .insert("good", &[Pos::Adjective], "good")
        .insert("great", &[Pos::Adjective], "great");
    lexicon
        .insert("film", &[Pos::Noun], "film")
        .insert("movie", &[Pos::Noun], "movie");
    let id = |w: &str| codec.id(w).unwrap();
    let (_rng, _vs, net) = network(Architecture::WordCnn, codec.size());
    let ids = vec![
        TokenIds::Words(vec![id("good"), id("film"), id("bad")]),
        TokenIds::Words(vec![id("awful"), id("bad")]),
    ];
    let mut context = SemContext::new(codec.clone(), Box::new(lexicon));
    run(net.as_ref(), &ids, |batch| {
        // Threshold −1 admits any cosine, so only the lexicon constraints decide.
        let pass = clean_pass(net.as_ref(), batch, 0.0);
        let adversarial = sem_batch(net.as_ref(), batch, &pass, -1.0, &mut context);
        let after = Vec::<i64>::try_from(adversarial.ids.flatten(0, -1)).unwrap();
        let t = after.len() / 2;
        let first: Vec<i64> = after[..3].to_vec();
        let allowed = [(id("good"), id("great")), (id("film"), id("movie"))];
        let changed: Vec<usize> = (0..3)
            .filter(|&j| first[j] != i64::from(ids[0].flat()[j]))
            .collect();
        assert_eq!(
            changed.len(),
            1,
            "one semantic flip in the first example: {first:?}"
        );
        let j = changed[0];
        assert!(
            allowed
                .iter()
                .any(|&(a, b)| i64::from(a) == i64::from(ids[0].flat()[j])
                    && first[j] == i64::from(b))
        );
        assert_eq!(
            &after[t..t + 2],
            &[i64::from(id("awful")), i64::from(id("bad"))],
            "no allowed flip: unchanged"
        );
    });
}

#[test]
fn regularizer_none_is_plain_cross_entropy_and_validation_names_flags() {
    let (_rng, _vs, net) = network(Architecture::WordCnn, 12);
    let ids = word_ids();
    run(net.as_ref(), &ids, |batch| {
        let mut none = Regularizer::new(AdversarialConfig::default(), None).unwrap();
        let step = none.backward(net.as_ref(), batch).unwrap();
        let expected = net
            .forward(batch.padded, true)
            .cross_entropy_for_logits(batch.targets);
        assert_eq!(step.clean.double_value(&[]), expected.double_value(&[]));
        assert!(step.adversarial.is_none());
    });
    let hotflip = AdversarialConfig {
        method: Method::Hotflip,
        ..Default::default()
    };
    assert!(hotflip
        .validate(InputKind::Word)
        .unwrap_err()
        .to_string()
        .contains("--adv hotflip"));
    let alpha = AdversarialConfig {
        alpha: 1.5,
        ..Default::default()
    };
    assert!(alpha
        .validate(InputKind::Word)
        .unwrap_err()
        .to_string()
        .contains("--alpha"));
    for (candidates, unk_words, method, flag) in [
        (0, 1, Method::Unk, "--candidates must"),
        (3, 1, Method::Fgsm, "--adv fgsm"),
        (1, 0, Method::Unk, "--unk-words must"),
        (1, 2, Method::Fgsm, "--unk-words applies"),
        (3, 2, Method::Unk, "give one of them"),
    ] {
        let config = AdversarialConfig {
            method,
            candidates,
            unk_words,
            ..Default::default()
        };
        assert!(config
            .validate(InputKind::Word)
            .unwrap_err()
            .to_string()
            .contains(flag));
    }
    assert!(Regularizer::new(
        AdversarialConfig {
            method: Method::Sem,
            ..Default::default()
        },
        None
    )
    .is_err());
}
