//! Renderers of an [`AttackReport`]: JSON (the serde schema itself), a Markdown summary,
//! and JUnit XML for CI systems.
//!
//! JUnit mapping: one `<testsuite>` named after the attack, one `<testcase>` per reported
//! example (`example-<index>`); a test case *fails* when the adversary succeeded (the model
//! is not robust on it) and is *skipped* when the example was not attacked. Every text is
//! XML-escaped; control characters XML 1.0 forbids are dropped.

use std::fmt::Write as _;

use crate::error::AttackError;
use crate::report::{AttackReport, Outcome};

/// The report as pretty-printed JSON.
pub fn to_json(report: &AttackReport) -> Result<String, AttackError> {
    serde_json::to_string_pretty(report).map_err(|e| AttackError::Render(e.to_string()))
}

/// Reads a report back from JSON.
pub fn from_json(text: &str) -> Result<AttackReport, AttackError> {
    serde_json::from_str(text).map_err(|e| AttackError::Render(e.to_string()))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// A Markdown summary: the headline table, the success-vs-confidence curve and the changes
/// histogram.
pub fn to_markdown(report: &AttackReport) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(out, "## Gauntlet audit: `{}`\n", report.config.kind);
    let _ = writeln!(out, "| metric | value |\n|---|---|");
    let rows: Vec<(&str, String)> = vec![
        ("model", format!("`{}`", report.model)),
        ("seed", report.seed.to_string()),
        ("examples", s.examples.to_string()),
        ("clean accuracy", pct(s.clean_accuracy)),
        (
            "attacked / skipped",
            format!("{} / {}", s.attacked, s.skipped),
        ),
        (
            "success rate",
            format!("{} (τ = {})", pct(s.success_rate), s.confidence),
        ),
        ("accuracy under attack", pct(s.accuracy_under_attack)),
        ("mean fraction changed", pct(s.mean_fraction_changed)),
        (
            "mean passes (forward / backward)",
            format!(
                "{:.1} / {:.1}",
                s.mean_forward_passes, s.mean_backward_passes
            ),
        ),
        (
            "examples per second",
            format!("{:.2}", s.examples_per_second),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    for note in &report.notes {
        let _ = writeln!(out, "\nNote: {note}.");
    }
    if report.cancelled {
        let _ = writeln!(out, "\n**The run was cancelled; partial results.**");
    }
    let _ = writeln!(
        out,
        "\n| confidence τ | successes | success rate |\n|---|---|---|"
    );
    for p in &s.curve {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            p.confidence,
            p.successes,
            pct(p.success_rate)
        );
    }
    let h = &s.changes_histogram;
    let _ = writeln!(
        out,
        "\n| changes | 1 | 2 | 3+ |\n|---|---|---|---|\n| successes | {} | {} | {} |",
        h.one, h.two, h.three_or_more
    );
    if !s.operation_mix.is_empty() {
        let mix: Vec<String> = s
            .operation_mix
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(out, "\nOperations: {}", mix.join(", "));
    }
    out
}

/// Escapes text for XML attributes and content.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one test case per example, failed when the adversary succeeded.
pub fn to_junit(report: &AttackReport) -> String {
    let s = &report.summary;
    let name = xml_escape(&format!("gauntlet.{}", report.config.kind));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites><testsuite name=\"{name}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        report.examples.len(),
        s.successes,
        s.skipped,
        s.wall_time_ms / 1000.0
    );
    for e in &report.examples {
        let _ = write!(
            out,
            "  <testcase classname=\"{name}\" name=\"example-{}\" time=\"{:.3}\">",
            e.index,
            e.wall_time_ms / 1000.0
        );
        match e.outcome {
            Outcome::Success => {
                let message = format!(
                    "label {} → {} (p = {:.3}) after {} change(s)",
                    e.true_label, e.after.label, e.after.probability, e.changes
                );
                let _ = write!(
                    out,
                    "<failure message=\"{}\" type=\"adversarial\">{}\n→ {}</failure>",
                    xml_escape(&message),
                    xml_escape(&e.original_text),
                    xml_escape(&e.adversarial_text)
                );
            }
            Outcome::Skipped => out.push_str("<skipped/>"),
            Outcome::Failure => {}
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite></testsuites>\n");
    out
}
