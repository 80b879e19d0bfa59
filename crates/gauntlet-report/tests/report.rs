//! Comparisons (what they refuse, who resists what), the terminal table and the page shell,
//! on reports built by hand.
#![allow(clippy::unwrap_used, missing_docs)]

use gauntlet_attacks::audit::{AuditReport, DataIdentity, NamedReport};
use gauntlet_attacks::{
    AttackConfig, AttackKind, AttackReport, ExampleReport, Outcome, Prediction, Summary,
};
use gauntlet_report::{audit_page, compare, comparison_page, summary_table};

fn example(index: usize, outcome: Outcome, text: &str) -> ExampleReport {
    let before = Prediction {
        label: 0,
        probability: 0.9,
    };
    let after = Prediction {
        label: u8::from(outcome == Outcome::Success).into(),
        probability: 0.8,
    };
    ExampleReport {
        index,
        original_text: text.into(),
        adversarial_text: format!("{text} !"),
        operations: Vec::new(),
        true_label: 0,
        target_label: None,
        before,
        after,
        changes: usize::from(outcome == Outcome::Success),
        units: 3,
        fraction_changed: 0.0,
        forward_passes: 2,
        backward_passes: 1,
        wall_time_ms: 1.0,
        outcome,
        skip_reason: None,
        curve: Vec::new(),
    }
}

fn report(model: &str, outcomes: &[Outcome], kind: AttackKind) -> AuditReport {
    let examples: Vec<ExampleReport> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            example(
                i,
                *o,
                &format!("text {i} </script><img src=x onerror=alert(1)>"),
            )
        })
        .collect();
    let config = AttackConfig::new(kind);
    AuditReport {
        model: model.into(),
        data: DataIdentity {
            digest: "ab".repeat(32),
            examples: outcomes.len(),
        },
        shard: None,
        merged_from: None,
        attacks: vec![NamedReport {
            name: kind.name().into(),
            gate: Default::default(),
            counts_from: None,
            report: AttackReport {
                model: model.into(),
                seed: 0,
                notes: Vec::new(),
                cancelled: false,
                summary: Summary::compute(&examples, config.confidence, 10.0),
                config,
                examples,
            },
        }],
        verdict: None,
        cancelled: false,
        wall_time_ms: 10.0,
    }
}

use Outcome::{Failure as F, Skipped as K, Success as S};

#[test]
fn a_comparison_finds_what_each_model_resists_and_the_deltas() {
    let a = report("base@1", &[S, S, F, K, S], AttackKind::HotflipWord);
    let b = report("hard@2", &[F, S, F, F, K], AttackKind::HotflipWord);
    let c = compare(&a, "base", &b, "hard").unwrap();
    let x = &c.attacks[0];
    // Index 0: fooled A, failed on B. Index 4: fooled A, skipped on B (not resisted).
    assert_eq!(
        x.only_a_fooled.iter().map(|e| e.index).collect::<Vec<_>>(),
        [0]
    );
    assert!(x.only_b_fooled.is_empty());
    assert_eq!(
        x.only_a_fooled[0].b_adversarial,
        a.attacks[0].report.examples[0].adversarial_text
    );
    assert!((x.delta.success_rate - (x.b.success_rate - x.a.success_rate)).abs() < 1e-12);
    assert!(x.delta.success_rate < 0.0);
    let md = c.to_markdown();
    assert!(md.contains("| hotflip-word |") && md.contains("pt"), "{md}");
    let page = comparison_page(&c);
    assert!(page.html.contains("\"kind\":\"compare\""));
}

#[test]
fn comparisons_of_different_data_or_attacks_are_refused() {
    let a = report("base@1", &[S, F], AttackKind::HotflipWord);
    let mut other_data = report("hard@2", &[S, F], AttackKind::HotflipWord);
    other_data.data.digest = "cd".repeat(32);
    assert!(compare(&a, "a", &other_data, "b")
        .unwrap_err()
        .to_string()
        .contains("different data"));
    let other_attack = report("hard@2", &[S, F], AttackKind::Unk);
    assert!(compare(&a, "a", &other_attack, "b").is_err());
    let mut beam = report("hard@2", &[S, F], AttackKind::HotflipWord);
    beam.attacks[0].report.config.beam_width = 3;
    assert!(compare(&a, "a", &beam, "b")
        .unwrap_err()
        .to_string()
        .contains("different settings"));
    let mut partial = report("hard@2", &[S, F], AttackKind::HotflipWord);
    partial.cancelled = true;
    assert!(compare(&a, "a", &partial, "b")
        .unwrap_err()
        .to_string()
        .contains("partial"));
}

#[test]
fn the_terminal_table_has_a_column_per_attack() {
    let r = report("base@1", &[S, S, F, K], AttackKind::HotflipWord);
    let table = summary_table(&r);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines
            .iter()
            .all(|l| l.chars().count() == lines[0].chars().count()),
        "{table}"
    );
    assert!(table.contains("| Attack success rate"), "{table}");
    assert!(table.contains("66.7%"), "{table}");
    assert!(table.contains("hotflip-word"));
}

#[test]
fn the_page_embeds_the_report_as_inert_json() {
    let r = report("base@1", &[S, F], AttackKind::HotflipChar);
    let page = audit_page(&r);
    let tag = "<script id=\"gauntlet-data\" type=\"application/json\">";
    let start = page.html.find(tag).unwrap() + tag.len();
    let end = page.html[start..].find("</script>").unwrap() + start;
    let json = &page.html[start..end];
    assert!(!json.contains('<'));
    let back: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        back["report"]["attacks"][0]["report"]["examples"][0]["original_text"],
        "text 0 </script><img src=x onerror=alert(1)>"
    );
    assert!(page
        .html
        .contains(&format!("content=\"{}\"", page.csp.replace('\'', "&apos;"))));
}
