//! Audits on the pure-Rust test models: plan spellings, shards that merge into the
//! unsharded report, and merges that must be refused.

#![allow(clippy::unwrap_used)]

use gauntlet_core::codec::PAD_ID;
use gauntlet_core::{Classifier, Example, InputKind, TextCodec, WhiteBox};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::*;
use crate::fast_path_tests::lexicon;
use crate::testing::{codec, LinearBag};
use crate::tests::{self_labelled, without_times, word_model, CHAR_TEXTS, WORD_TEXTS};
use crate::AttackKind;

struct Toy {
    codec: TextCodec,
    model: LinearBag,
}

impl AuditTarget for Toy {
    fn codec(&self) -> &TextCodec {
        &self.codec
    }
    fn classifier(&self) -> &dyn Classifier {
        &self.model
    }
    fn white_box(&self) -> Option<&dyn WhiteBox> {
        Some(&self.model)
    }
    fn digest(&self) -> &str {
        "0123abcd"
    }
}

/// `n` texts of shuffled words of `base`, labelled by the model except every fifth, which
/// gets a wrong label (so it is skipped).
fn dataset(target: &Toy, base: &[&str], n: usize, seed: u64) -> Vec<Example> {
    let words: Vec<&str> = base.iter().flat_map(|t| t.split(' ')).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let texts: Vec<String> = (0..n)
        .map(|i| {
            let mut w = words.clone();
            w.shuffle(&mut rng);
            w[..4 + i % 5].join(" ")
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let classes = target.model.labels().len();
    self_labelled(&target.model, &target.codec, &refs)
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            if i % 5 == 4 {
                e.label = (e.label + 1) % classes;
            }
            e
        })
        .collect()
}

fn word_target() -> Toy {
    let (codec, model) = word_model();
    let mut model = model
        .with_position_scales(vec![1.0, -0.5, 2.0, 0.75])
        .with_zero_padding();
    model.set_row(PAD_ID as usize, &[0.7, -0.4, 0.2]);
    Toy { codec, model }
}

fn char_target() -> Toy {
    let codec = codec(InputKind::Char, CHAR_TEXTS, 32, 6);
    let mut model = LinearBag::random(InputKind::Char, codec.size(), 4, 2, 1.0, 3)
        .with_position_scales(vec![1.0, -0.5, 2.0]);
    model.set_row(PAD_ID as usize, &[0.9, -1.1, 0.3, 0.5]);
    Toy { codec, model }
}

fn spec(kind: AttackKind) -> AttackSpec {
    AttackSpec::new(kind)
}

fn word_plan(beam: usize, batch: usize) -> AuditPlan {
    let mut random = spec(AttackKind::Random);
    random.counts_from = Some("hotflip-word".into());
    let mut loss = spec(AttackKind::LossBeam);
    loss.candidates_cap = Some(6);
    AuditPlan {
        attacks: vec![
            spec(AttackKind::HotflipWord),
            spec(AttackKind::Sem),
            spec(AttackKind::Unk),
            loss,
            random,
            spec(AttackKind::RandomGradient),
        ]
        .into_iter()
        .map(|mut a| {
            a.beam_width = Some(beam);
            a
        })
        .collect(),
        seed: Some(11),
        batch_size: Some(batch),
        gate: Some(Gate {
            max_success_rate: Some(0.5),
            ..Gate::default()
        }),
        ..AuditPlan::default()
    }
}

fn char_plan(beam: usize, batch: usize) -> AuditPlan {
    let mut loss = spec(AttackKind::LossBeam);
    loss.candidates_cap = Some(12);
    AuditPlan {
        attacks: vec![
            spec(AttackKind::HotflipChar),
            loss,
            spec(AttackKind::Random),
            spec(AttackKind::RandomGradient),
        ]
        .into_iter()
        .map(|mut a| {
            a.beam_width = Some(beam);
            a.budget = Some(BudgetSpec::Count(2));
            a
        })
        .collect(),
        seed: Some(5),
        batch_size: Some(batch),
        ..AuditPlan::default()
    }
}

fn run_plan(target: &Toy, plan: &AuditPlan, shard: Option<Shard>, data: &[Example]) -> AuditReport {
    let mut plan = plan.clone();
    plan.shard = shard;
    let resolved = plan.resolve(target, true).unwrap();
    let lexicon = lexicon();
    run(
        &resolved,
        target,
        "toy",
        Some(&lexicon),
        data,
        &AuditControl::default(),
    )
    .unwrap()
}

/// The report without wall times and provenance of merges.
fn comparable(mut r: AuditReport) -> AuditReport {
    r.wall_time_ms = 0.0;
    r.merged_from = None;
    for a in &mut r.attacks {
        a.report = without_times(a.report.clone());
    }
    r
}

/// Asserts equal reports, naming the first attack and example that differ.
fn assert_same(a: &AuditReport, b: &AuditReport, what: &str) {
    for (x, y) in a.attacks.iter().zip(&b.attacks) {
        for (e, f) in x.report.examples.iter().zip(&y.report.examples) {
            assert_eq!(e, f, "{what}: attack {}", x.name);
        }
        assert_eq!(x, y, "{what}: attack {}", x.name);
    }
    assert_eq!(a, b, "{what}");
}

fn shards_of(target: &Toy, plan: &AuditPlan, count: usize, data: &[Example]) -> Vec<AuditReport> {
    (0..count)
        .map(|index| run_plan(target, plan, Some(Shard { index, count }), data))
        .collect()
}

#[test]
fn shards_merge_into_the_unsharded_report() {
    for (target, plan_of, base) in [
        (
            word_target(),
            word_plan as fn(usize, usize) -> AuditPlan,
            WORD_TEXTS,
        ),
        (
            char_target(),
            char_plan as fn(usize, usize) -> AuditPlan,
            CHAR_TEXTS,
        ),
    ] {
        let data = dataset(&target, base, 15, 1);
        for beam in [1, 10] {
            let mut per_batch = Vec::new();
            for batch in [3, 32] {
                let plan = plan_of(beam, batch);
                let whole = run_plan(&target, &plan, None, &data);
                assert!(whole.attacks.iter().any(|a| a.report.summary.successes > 0));
                assert!(whole.attacks[0].report.summary.skipped > 0);
                for count in [1, 2, 3, 7] {
                    let mut shards = shards_of(&target, &plan, count, &data);
                    shards.reverse();
                    let merged = merge(shards).unwrap();
                    assert_eq!(
                        merged.merged_from,
                        Some(MergedFrom {
                            count,
                            shards: (0..count).collect()
                        })
                    );
                    assert_same(
                        &comparable(merged),
                        &comparable(whole.clone()),
                        &format!("beam {beam}, batch {batch}, {count} shards"),
                    );
                }
                per_batch.push(comparable(whole));
            }
            // Results do not depend on the batch size either (it is only in the configs).
            let examples = |r: &AuditReport| -> Vec<_> {
                r.attacks
                    .iter()
                    .map(|a| a.report.examples.clone())
                    .collect()
            };
            assert_eq!(
                examples(&per_batch[0]),
                examples(&per_batch[1]),
                "beam {beam}"
            );
        }
    }
}

#[test]
fn the_gate_judges_whole_audits_only() {
    let target = word_target();
    let data = dataset(&target, WORD_TEXTS, 10, 2);
    let plan = word_plan(2, 8);
    let whole = run_plan(&target, &plan, None, &data);
    let verdict = whole.verdict.clone().unwrap();
    assert_eq!(verdict.checks.len(), plan.attacks.len());
    assert_eq!(verdict.passed, verdict.checks.iter().all(|c| c.passed));
    let shards = shards_of(&target, &plan, 2, &data);
    assert!(shards.iter().all(|s| s.verdict.is_none()));
    assert_eq!(merge(shards).unwrap().verdict, Some(verdict));
}

#[test]
fn bad_merges_are_refused_and_name_the_shard() {
    let target = word_target();
    let data = dataset(&target, WORD_TEXTS, 9, 3);
    let plan = word_plan(1, 4);
    let shards = shards_of(&target, &plan, 3, &data);
    let err = |reports: Vec<AuditReport>| {
        merge(reports)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };

    let missing = err(vec![shards[0].clone(), shards[2].clone()]);
    assert!(missing.contains("shard(s) 1/3 missing"), "{missing}");
    let doubled = err(vec![
        shards[0].clone(),
        shards[1].clone(),
        shards[1].clone(),
        shards[2].clone(),
    ]);
    assert!(doubled.contains("shard 1/3 is given twice"), "{doubled}");

    let mut other_seed = plan.clone();
    other_seed.seed = Some(12);
    let foreign = run_plan(
        &target,
        &other_seed,
        Some(Shard { index: 2, count: 3 }),
        &data,
    );
    let foreign = err(vec![shards[0].clone(), shards[1].clone(), foreign]);
    assert!(
        foreign.contains("report 3 (shard 2/3) ran other attacks or settings"),
        "{foreign}"
    );

    let other_data = dataset(&target, WORD_TEXTS, 9, 4);
    let foreign = run_plan(
        &target,
        &plan,
        Some(Shard { index: 1, count: 3 }),
        &other_data,
    );
    let foreign = err(vec![shards[0].clone(), foreign, shards[2].clone()]);
    assert!(
        foreign.contains("report 2 (shard 1/3) is of another dataset"),
        "{foreign}"
    );

    let two = shards_of(&target, &plan, 2, &data);
    let mixed = err(vec![shards[0].clone(), two[1].clone()]);
    assert!(mixed.contains("is one of 2 shards"), "{mixed}");

    let whole = run_plan(&target, &plan, None, &data);
    assert!(err(vec![whole]).contains("not a shard"));
    assert!(err(Vec::new()).contains("no report"));

    let mut tampered = shards[1].clone();
    tampered.attacks[0].report.examples[0].index = 0;
    let tampered = err(vec![shards[0].clone(), tampered, shards[2].clone()]);
    assert!(tampered.contains("belongs to shard 0/3"), "{tampered}");
}

#[test]
fn the_three_spellings_are_one_plan() {
    let toml_text = r#"
        model = "models/m"
        data = "data/test.tsv"
        limit = 20
        seed = 3
        shard = "1/4"
        [gate]
        max_success_rate = 0.5
        [[attack]]
        kind = "hotflip-word"
        beam = 4
        budget = "10%"
        [[attack]]
        kind = "random"
        counts_from = "hotflip-word"
        budget = 2
        target = "pos"
        min_accuracy_under_attack = 0.4
    "#;
    let json_text = r#"{
        "model": "models/m", "dataset": {"name": "data/test.tsv"}, "limit": 20, "seed": 3,
        "shard": "1/4", "gate": {"max_success_rate": 0.5},
        "attacks": [
            {"kind": "hotflip_word", "beam_width": 4, "budget": {"fraction": 0.1}},
            {"kind": "random", "counts_from": "hotflip-word", "budget": {"changes": 2},
             "target_label": "pos", "min_accuracy_under_attack": 0.4}
        ]}"#;
    let from_toml: AuditPlan = toml::from_str(toml_text).unwrap();
    let from_json: AuditPlan = serde_json::from_str(json_text).unwrap();
    let budgets = |p: &AuditPlan| -> Vec<_> {
        p.attacks
            .iter()
            .map(|a| a.budget.as_ref().map(|b| b.resolve().unwrap()))
            .collect()
    };
    assert_eq!(budgets(&from_toml), budgets(&from_json));
    let mut a = from_toml.clone();
    let mut b = from_json.clone();
    for p in [&mut a, &mut b] {
        p.attacks.iter_mut().for_each(|x| x.budget = None);
    }
    assert_eq!(a, b);
    assert_eq!(from_toml.shard, Some(Shard { index: 1, count: 4 }));
    let back: AuditPlan =
        serde_json::from_str(&serde_json::to_string(&from_toml).unwrap()).unwrap();
    assert_eq!(back, from_toml);
    assert_eq!(from_toml.validate().unwrap(), ["hotflip-word", "random"]);

    for (text, needle) in [
        (
            r#"{"dataset": "d", "attacks": [], "x": 1}"#,
            "unknown field `x`",
        ),
        (
            r#"{"dataset": "d", "attacks": [{"kind": "hotflip"}]}"#,
            "unknown variant",
        ),
        (
            r#"{"dataset": "d", "attacks": [], "shard": "4/0"}"#,
            "invalid shard",
        ),
        (
            r#"{"dataset": {"nme": "d"}, "attacks": []}"#,
            "unknown field `nme`",
        ),
    ] {
        let e = serde_json::from_str::<AuditPlan>(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(needle), "{text}: {e}");
    }
    // An index not below N parses (each number is fine) and the plan is inconsistent.
    let plan: AuditPlan =
        serde_json::from_str(r#"{"dataset": "d", "attacks": [{"kind": "unk"}], "shard": "4/4"}"#)
            .unwrap();
    let e = plan.validate().unwrap_err();
    assert!(matches!(e, AuditError::Inconsistent(_)), "{e}");
    assert!(e.to_string().contains("shard 4/4"), "{e}");
}

#[test]
fn invalid_plans_name_the_problem() {
    let target = word_target();
    let check = |plan: AuditPlan, needle: &str| {
        let e = plan
            .resolve(&target, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(needle), "{needle}: {e}");
    };
    check(AuditPlan::default(), "lists no attack");
    let one = |a: AttackSpec| AuditPlan {
        attacks: vec![a],
        ..AuditPlan::default()
    };
    check(
        AuditPlan {
            limit: Some(0),
            ..one(spec(AttackKind::Unk))
        },
        "`limit`",
    );
    check(
        one(spec(AttackKind::HotflipChar)),
        "needs a character-level model",
    );
    check(one(spec(AttackKind::Sem)), "needs a lexicon");
    let mut a = spec(AttackKind::HotflipWord);
    a.target = Some(LabelRef::Name("nope".into()));
    check(one(a), "is not a label of the model");
    let mut a = spec(AttackKind::HotflipWord);
    a.max_success_rate = Some(1.5);
    check(one(a), "max_success_rate = 1.5");
    let mut a = spec(AttackKind::Random);
    a.counts_from = Some("later".into());
    check(one(a), "names no earlier attack");
    let mut a = spec(AttackKind::HotflipWord);
    a.name = Some("bad name".into());
    check(one(a), "must be letters");
    // Repeated kinds get numbered names.
    let plan = AuditPlan {
        attacks: vec![spec(AttackKind::Unk), spec(AttackKind::Unk)],
        ..AuditPlan::default()
    };
    assert_eq!(plan.validate().unwrap(), ["unk", "unk-2"]);
}

/// Records what a checkpoint would (finished attacks, the running attack's examples) and
/// cancels the run once `stop_after` new examples have finished.
struct Interrupter<'a> {
    cancel: &'a std::sync::atomic::AtomicBool,
    stop_after: usize,
    told: std::sync::Mutex<(usize, AuditResume)>,
}

impl AuditObserver for Interrupter<'_> {
    fn example_finished(&self, attack: usize, example: &crate::ExampleReport) {
        let mut told = self.told.lock().unwrap();
        assert_eq!(
            attack,
            told.1.finished.len(),
            "examples come attack by attack"
        );
        assert!(told
            .1
            .partial
            .insert(example.index, example.clone())
            .is_none());
        told.0 += 1;
        if told.0 >= self.stop_after {
            self.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn attack_finished(&self, partial: &AuditReport) {
        let mut told = self.told.lock().unwrap();
        let last = partial.attacks.last().unwrap();
        if !last.report.cancelled {
            told.1.finished.push(last.clone());
            told.1.partial.clear();
        }
    }
}

#[test]
fn interrupted_audits_resume_into_the_uninterrupted_report() {
    for (target, plan, base) in [
        (word_target(), word_plan(3, 4), WORD_TEXTS),
        (char_target(), char_plan(3, 4), CHAR_TEXTS),
    ] {
        let data = dataset(&target, base, 12, 3);
        let whole = run_plan(&target, &plan, None, &data);
        let resolved = plan.clone().resolve(&target, true).unwrap();
        let lexicon = lexicon();
        let mut resume = AuditResume::default();
        let mut interruptions = 0;
        let mut evaluated = 0;
        let resumed = loop {
            let cancel = std::sync::atomic::AtomicBool::new(false);
            let observer = Interrupter {
                cancel: &cancel,
                stop_after: 5,
                told: std::sync::Mutex::new((0, resume.clone())),
            };
            let report = run(
                &resolved,
                &target,
                "toy",
                Some(&lexicon),
                &data,
                &AuditControl {
                    cancel: Some(&cancel),
                    observer: Some(&observer),
                    resume: Some(&resume),
                },
            )
            .unwrap();
            let (told, next) = observer.told.into_inner().unwrap();
            evaluated += told;
            if !report.cancelled {
                break report;
            }
            interruptions += 1;
            resume = next;
        };
        // Each example was attacked once: resumed results are taken, not recomputed.
        assert_eq!(evaluated, plan.attacks.len() * data.len());
        // 12 examples × every attack, 5 at a time: many interruptions, some mid-attack.
        assert!(interruptions >= plan.attacks.len() * 2, "{interruptions}");
        assert_same(
            &comparable(resumed),
            &comparable(whole),
            "resumed after interruptions",
        );
    }
}

#[test]
fn a_resume_from_another_plan_is_refused() {
    let target = word_target();
    let data = dataset(&target, WORD_TEXTS, 6, 4);
    let plan = word_plan(2, 8);
    let whole = run_plan(&target, &plan, None, &data);
    let mut reordered = plan.clone();
    reordered.attacks.swap(0, 1);
    let resolved = reordered.resolve(&target, true).unwrap();
    let resume = AuditResume {
        finished: whole.attacks[..1].to_vec(),
        ..AuditResume::default()
    };
    let lexicon = lexicon();
    let err = run(
        &resolved,
        &target,
        "toy",
        Some(&lexicon),
        &data,
        &AuditControl {
            resume: Some(&resume),
            ..AuditControl::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot resume"), "{err}");
}
