//! The HTML page: a fixed shell, the inline CSS and script of `assets/`, and the data as
//! escaped JSON.

use base64::Engine as _;
use gauntlet_attacks::audit::AuditReport;
// XML escaping is HTML5-safe for text and quoted attributes.
use gauntlet_attacks::render::xml_escape as escape;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::compare::Comparison;

const SCRIPT: &str = include_str!("../assets/report.js");
const STYLE: &str = include_str!("../assets/report.css");

/// A rendered page and the policy it runs under.
#[derive(Debug, Clone)]
pub struct Page {
    /// The whole document.
    pub html: String,
    /// Its `Content-Security-Policy`, as a `<meta>` tag of the page holds it (a server adds
    /// `frame-ancestors`, which only a header can carry: [`Page::header_policy`]).
    pub csp: String,
}

impl Page {
    /// The policy as a server sends it: the page's, and no framing by other sites.
    pub fn header_policy(&self) -> String {
        format!("{}; frame-ancestors 'none'", self.csp)
    }
}

/// The Content-Security-Policy of a page whose only scripts and styles are the inline
/// `scripts` and `styles` (allowed by hash): nothing else may run, and nothing may be
/// fetched, framed or submitted, except requests to the page's own origin when
/// `connect_self` (the server's UI calls its API).
pub fn content_security_policy(scripts: &[&str], styles: &[&str], connect_self: bool) -> String {
    let hashes = |texts: &[&str]| {
        texts
            .iter()
            .map(|t| {
                format!(
                    "'sha256-{}'",
                    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(t))
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src data: blob:; connect-src {}; base-uri 'none'; form-action 'none'",
        hashes(scripts),
        hashes(styles),
        if connect_self { "'self'" } else { "'none'" }
    )
}

/// The report page's inline script and style (a page that opens reports must allow both).
pub fn report_assets() -> (&'static str, &'static str) {
    (SCRIPT, STYLE)
}

/// JSON safe inside a `<script>` element: no `<`, `>` or `&` (so no `</script>` or
/// `<!--`), and no U+2028/U+2029.
fn script_json<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(text.len() + text.len() / 50);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn page<T: Serialize>(title: &str, data: &T) -> Page {
    let csp = content_security_policy(&[SCRIPT], &[STYLE], false);
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <noscript>This report needs JavaScript to render; its data is the JSON below.</noscript>\n\
         <main id=\"gauntlet\"></main>\n\
         <script id=\"gauntlet-data\" type=\"application/json\">{}</script>\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        escape(&csp),
        escape(title),
        script_json(data)
    );
    Page { html, csp }
}

#[derive(Serialize)]
struct AuditData<'a> {
    kind: &'static str,
    report: &'a AuditReport,
}

#[derive(Serialize)]
struct ComparisonData<'a> {
    kind: &'static str,
    comparison: &'a Comparison,
}

/// The page of one audit report.
pub fn audit_page(report: &AuditReport) -> Page {
    page(
        &format!("Gauntlet audit: {}", report.model),
        &AuditData {
            kind: "audit",
            report,
        },
    )
}

/// The page of a comparison.
pub fn comparison_page(comparison: &Comparison) -> Page {
    page(
        &format!(
            "Gauntlet comparison: {} vs {}",
            comparison.a.label, comparison.b.label
        ),
        &ComparisonData {
            kind: "compare",
            comparison,
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hostile_text_cannot_leave_the_json_block() {
        let hostile =
            "</script><script>alert(1)</script><!-- <img src=x onerror=alert(1)> & \u{2028}";
        let json = script_json(&serde_json::json!({ "text": hostile }));
        for bad in ["<", ">", "&", "\u{2028}"] {
            assert!(!json.contains(bad), "{json}");
        }
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["text"], hostile);
    }

    #[test]
    fn the_policy_names_the_inline_script_and_style_and_nothing_else() {
        let page = page("t <b>", &serde_json::json!({"kind": "audit"}));
        assert!(page.csp.starts_with("default-src 'none'"));
        assert_eq!(page.html.matches("<script>").count(), 1);
        assert!(page.html.contains("<title>t &lt;b&gt;</title>"));
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
        assert!(page.csp.contains(&hash));
        assert!(!page.html.contains("http://") || SCRIPT.contains("http://www.w3.org/2000/svg"));
        assert!(!page.html.contains("https://"));
    }
}
