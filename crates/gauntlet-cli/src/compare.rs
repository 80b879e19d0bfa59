//! `gauntlet compare A.json B.json` (two reports of the same data and attacks, side by
//! side: `gauntlet_report::compare`) and `gauntlet report R.json --out R.html` (a saved
//! report in another format).

use std::path::Path;

use anyhow::{bail, Result};

use crate::args::{CompareArgs, ReportArgs};
use crate::gate::Verdict;
use crate::output::{check_target, read_report, render_audit, write_atomic, Format};

/// A report's label in a comparison: its file stem, or its directory's name for the
/// `audit.json` of `gauntlet run`.
fn label(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    match (stem.as_deref(), path.parent().and_then(Path::file_name)) {
        (Some("audit"), Some(dir)) => dir.to_string_lossy().into_owned(),
        (Some(stem), _) => stem.to_owned(),
        _ => path.display().to_string(),
    }
}

/// `gauntlet compare`.
pub fn run_compare(args: &CompareArgs) -> Result<Verdict> {
    if let Some(out) = &args.out {
        check_target(out)?;
    }
    let format = args
        .format
        .or_else(|| args.out.as_deref().map(Format::from_path))
        .unwrap_or(Format::Markdown);
    let (a, b) = (read_report(&args.a)?, read_report(&args.b)?);
    let (la, mut lb) = (label(&args.a), label(&args.b));
    if la == lb {
        lb.push_str(" (B)");
    }
    let comparison = gauntlet_report::compare(&a, &la, &b, &lb)?;
    let text = match format {
        Format::Html => gauntlet_report::comparison_page(&comparison).html,
        Format::Markdown => comparison.to_markdown(),
        Format::Json => serde_json::to_string_pretty(&comparison)? + "\n",
        Format::Junit => bail!("a comparison renders as html, markdown or json"),
    };
    match &args.out {
        Some(out) => {
            write_atomic(out, &text)?;
            eprintln!("wrote {}", out.display());
        }
        None => print!("{text}"),
    }
    Ok(Verdict::Passed)
}

/// `gauntlet report`.
pub fn run_report(args: &ReportArgs) -> Result<Verdict> {
    check_target(&args.out)?;
    let format = args.format.unwrap_or_else(|| Format::from_path(&args.out));
    let report = read_report(&args.report)?;
    write_atomic(&args.out, &render_audit(format, &report)?)?;
    eprintln!("wrote {}", args.out.display());
    Ok(Verdict::Passed)
}
