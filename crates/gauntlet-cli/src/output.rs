//! Report formats, atomic writes, and the progress bar of attack runs.
//!
//! A report is rendered completely in memory, written to a temporary file in the target's
//! own directory, flushed, and renamed over the target: a reader (or a CI step) never sees
//! a half-written report, and a failed run leaves no file behind. The progress bar
//! ([`AttackBar`]) draws on stderr and hides itself when stderr is not a terminal (CI logs).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use gauntlet_attacks::audit::{AuditReport, DataIdentity, Gate, NamedReport};
use gauntlet_attacks::{render, AttackReport, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The full report as pretty JSON (what `gate` reads).
    Json,
    /// A Markdown summary.
    Markdown,
    /// JUnit XML, one test case per example.
    Junit,
    /// One self-contained HTML page of the whole audit (`gauntlet_report::audit_page`).
    Html,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "markdown" | "md" => Ok(Self::Markdown),
            "junit" | "xml" => Ok(Self::Junit),
            "html" | "htm" => Ok(Self::Html),
            other => Err(format!(
                "unknown report format {other:?}; expected json, markdown, junit or html"
            )),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Format {
    /// The format a file name suggests: `.md` Markdown, `.xml` JUnit, `.html` HTML,
    /// anything else JSON.
    pub fn from_path(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("md" | "markdown") => Self::Markdown,
            Some("xml") => Self::Junit,
            Some("html" | "htm") => Self::Html,
            _ => Self::Json,
        }
    }

    /// The file extension reports of this format get in an output directory.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Markdown => "md",
            Self::Junit => "xml",
            Self::Html => "html",
        }
    }

    /// Renders one attack's report (HTML pages are of whole audits: [`render_audit`]).
    pub fn render(self, report: &AttackReport) -> Result<String> {
        Ok(match self {
            Self::Json => render::to_json(report)? + "\n",
            Self::Markdown => render::to_markdown(report),
            Self::Junit => render::to_junit(report),
            Self::Html => bail!("an HTML page shows a whole audit; render it with render_audit"),
        })
    }
}

/// Checks, before any work is done, that `path` can become a file: not an existing
/// directory, and its directory either exists as a directory or can be created.
pub fn check_target(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!("{}: is a directory; --out names a file", path.display());
    }
    let mut dir = parent(path);
    // The nearest existing ancestor must be a directory.
    loop {
        if dir.exists() {
            if !dir.is_dir() {
                bail!(
                    "{}: cannot write the report there ({} is not a directory)",
                    path.display(),
                    dir.display()
                );
            }
            return Ok(());
        }
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p.to_owned(),
            _ => return Ok(()),
        }
    }
}

fn parent(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

/// Writes `contents` to `path` atomically (temporary sibling file, then rename), creating
/// the directory if needed.
pub fn write_atomic(path: &Path, contents: &str) -> Result<()> {
    let dir = parent(path);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".gauntlet-report-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(contents.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads a JSON audit report (`gauntlet audit`, `run`'s `audit.json`, `merge`). A
/// single attack's report (`run`'s `<name>.json`, or reports of earlier versions) is read
/// as an audit of that one attack, with an unknown dataset (it cannot be merged).
pub fn read_report(path: &Path) -> Result<AuditReport> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let not_a_report = || {
        format!(
            "{}: not a Gauntlet JSON report (only --format json reports can be read back)",
            path.display()
        )
    };
    let value: serde_json::Value = serde_json::from_str(&text).with_context(not_a_report)?;
    if value.get("attacks").is_some() {
        return serde_json::from_value(value).with_context(not_a_report);
    }
    let report: AttackReport = render::from_json(&text).with_context(not_a_report)?;
    Ok(AuditReport {
        model: report.model.clone(),
        data: DataIdentity {
            digest: String::new(),
            examples: report.summary.examples,
        },
        shard: None,
        merged_from: None,
        verdict: None,
        cancelled: report.cancelled,
        wall_time_ms: report.summary.wall_time_ms,
        attacks: vec![NamedReport {
            name: report.config.kind.name().to_owned(),
            gate: Gate::default(),
            counts_from: None,
            report,
        }],
    })
}

/// Renders an audit: JSON whole; Markdown attack after attack; JUnit for one attack.
pub fn render_audit(format: Format, report: &AuditReport) -> Result<String> {
    match (format, report.attacks.as_slice()) {
        (Format::Json, _) => Ok(serde_json::to_string_pretty(report)? + "\n"),
        (Format::Markdown, attacks) => attacks
            .iter()
            .map(|a| format.render(&a.report))
            .collect::<Result<Vec<_>>>()
            .map(|parts| parts.join("\n")),
        (Format::Html, _) => Ok(gauntlet_report::audit_page(report).html),
        (Format::Junit, [one]) => format.render(&one.report),
        (Format::Junit, _) => {
            bail!("JUnit holds one attack per file; use json or markdown, or `gauntlet run` with formats = [\"junit\"]")
        }
    }
}

/// A progress bar for one attack over `total` examples.
pub struct AttackBar {
    bar: ProgressBar,
}

impl AttackBar {
    /// A bar labelled with the attack's name.
    pub fn new(name: &str, total: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>14} [{bar:30}] {pos}/{len} examples  {msg}  {elapsed} (ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(name.to_owned());
        bar.set_message("0 successes");
        Self { bar }
    }

    /// The callback to hand to the engine's `RunControl`.
    pub fn update(&self, p: Progress) {
        self.bar.set_length(p.total as u64);
        self.bar.set_position(p.done as u64);
        self.bar.set_message(format!(
            "{} success{}, {} texts evaluated",
            p.successes,
            if p.successes == 1 { "" } else { "es" },
            p.evaluated
        ));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn formats_parse_and_follow_extensions() {
        assert_eq!("MD".parse::<Format>(), Ok(Format::Markdown));
        assert!("pdf".parse::<Format>().is_err());
        assert_eq!(Format::from_path(Path::new("a/r.xml")), Format::Junit);
        assert_eq!(Format::from_path(Path::new("r")), Format::Json);
    }

    #[test]
    fn atomic_writes_leave_only_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub").join("r.json");
        check_target(&target).unwrap();
        write_atomic(&target, "{}").unwrap();
        write_atomic(&target, "[]").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "[]");
        assert_eq!(fs::read_dir(dir.path().join("sub")).unwrap().count(), 1);
        assert!(check_target(dir.path()).is_err());
    }
}
