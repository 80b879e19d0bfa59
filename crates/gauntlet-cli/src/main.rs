//! `gauntlet`: audit the robustness of a text classifier with white-box attacks, and gate CI
//! on the result.
//!
//! Subcommands:
//!
//! * `audit` runs one attack over a labelled dataset and writes a report (JSON, Markdown or
//!   JUnit), optionally gating on it inline;
//! * `gate` checks a saved JSON report against thresholds;
//! * `run` executes a declarative spec file (model, data, several attacks with their own
//!   parameters and thresholds) and writes one report per attack and the audit report;
//! * `merge` joins the reports of an audit's shards (`--shard I/N` of `audit` or `run`)
//!   into the report of the whole audit;
//! * `compare` sets two reports of the same data and attacks side by side (HTML, Markdown
//!   or JSON), and `report` renders a saved report in another format (the HTML page).
//!
//! Exit codes, the same for every subcommand: `0` every threshold held (or none was set),
//! `1` a threshold was breached, `2` an error (bad input, missing file, an attack that does
//! not fit the model...). On an error no report file is written: reports go to a
//! temporary file in the target directory and are renamed into place only when complete.
//!
//! `audit` and `run` are two spellings of one audit plan, run by the engine's one audit
//! runner (`gauntlet_attacks::audit`).
//!
//! Module map: [`args`] (command-line definitions and value parsers), [`session`] (loading a
//! model and a dataset, running a plan with a progress bar), [`audit`] (the `audit` flags
//! as a plan), [`gate`] (verdicts), [`merge`] (shards), [`compare`] (comparisons and
//! re-rendering), [`output`] (formats, atomic writes,
//! reading reports, the progress bar), [`spec`] (spec files), [`wordnet`] (locating WordNet
//! for `sem`).

mod args;
mod audit;
mod compare;
mod gate;
mod merge;
mod output;
mod session;
mod spec;
mod wordnet;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::gate::Verdict;

fn main() -> ExitCode {
    gauntlet_backends::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Audit(args) => audit::run_audit(&args),
        Command::Gate(args) => gate::run_gate(&args),
        Command::Run(args) => spec::run_spec(&args),
        Command::Merge(args) => merge::run_merge(&args),
        Command::Compare(args) => compare::run_compare(&args),
        Command::Report(args) => compare::run_report(&args),
    };
    match result {
        Ok(Verdict::Passed) => ExitCode::SUCCESS,
        Ok(Verdict::Breached) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
