//! Audit reports for people: the self-contained HTML page ([`audit_page`]) and comparisons
//! of two reports of the same data and attacks ([`compare`], [`comparison_page`]).
//!
//! Invariants:
//! * a page is one file that fetches nothing: its CSS and script are inline, its charts
//!   inline SVG, and its `Content-Security-Policy` (a `<meta>` tag, also what the server
//!   sends as a header: [`Page::csp`]) allows only that script and style, by hash;
//! * report data reach the page only as JSON in a non-executable `<script
//!   type="application/json">` block, with `<`, `>`, `&` and the line separators escaped,
//!   so no text can close the block; the script builds the DOM from it with text nodes only;
//! * a page renders the report schema the CLI and the server share, so both look the same.

mod compare;
mod html;
mod terminal;

pub use compare::{compare, AttackComparison, Comparison, Delta, FooledExample, Side, SideMetrics};
pub use html::{audit_page, comparison_page, content_security_policy, report_assets, Page};
pub use terminal::summary_table;

/// Why two reports cannot be compared.
#[derive(Debug, thiserror::Error)]
#[error("cannot compare: {0}")]
pub struct CompareError(pub String);
