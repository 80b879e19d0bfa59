//! Command-line definitions (clap) and the value parsers shared with spec files: attack
//! names, budgets and report formats.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use gauntlet_attacks::audit::Shard;
use gauntlet_attacks::{AttackKind, Budget};
use gauntlet_core::DeviceChoice;

use crate::output::Format;

/// The `gauntlet` command line.
#[derive(Parser)]
#[command(
    name = "gauntlet",
    version,
    about = "Audit the robustness of text classifiers with white-box attacks, and gate CI on it",
    after_help = "Exit codes: 0 passed, 1 a threshold was breached, 2 an error."
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run one attack over a labelled dataset and write a report.
    Audit(Box<AuditArgs>),
    /// Check a saved JSON report against thresholds.
    Gate(GateArgs),
    /// Run a declarative spec file (model, data, attacks, thresholds).
    Run(RunArgs),
    /// Merge the JSON reports of the shards of one audit into the report of the whole.
    Merge(MergeArgs),
    /// Compare two reports of the same data and attacks (e.g. baseline vs hardened).
    Compare(CompareArgs),
    /// Render a saved JSON report in another format (e.g. the HTML page).
    Report(ReportArgs),
}

/// Thresholds given on the command line.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct ThresholdArgs {
    /// Fail (exit 1) when the success rate of the attack exceeds this (0..1).
    #[arg(long, value_name = "X")]
    pub max_success_rate: Option<f64>,
    /// Fail (exit 1) when the accuracy under attack falls below this (0..1).
    #[arg(long, value_name = "Y")]
    pub min_accuracy_under_attack: Option<f64>,
}

/// `gauntlet audit`.
#[derive(Args)]
pub struct AuditArgs {
    /// Model bundle directory.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Labelled dataset (.tsv, .csv or .jsonl).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// hotflip-char, hotflip-word, sem, unk, loss-beam, random or random-gradient.
    #[arg(long, value_parser = parse_attack)]
    pub attack: AttackKind,
    /// Beam width (1 is greedy search).
    #[arg(long, value_name = "B")]
    pub beam: Option<usize>,
    /// Changes allowed per example: a count (`2`) or a fraction of the units (`0.1`, `10%`).
    /// Default: 2 words for word flips, 1 for `unk`, 10% of the characters for characters.
    #[arg(long, value_parser = parse_budget)]
    pub budget: Option<Budget>,
    /// Confidence τ at which success is reported.
    #[arg(long, value_name = "TAU")]
    pub confidence: Option<f64>,
    /// Confidences of the success-vs-τ curve, comma-separated (e.g. 0.5,0.7,0.9).
    #[arg(long, value_delimiter = ',', value_name = "TAUS")]
    pub curve: Option<Vec<f64>>,
    /// Targeted mode: drive predictions to this label (key or name).
    #[arg(long, value_name = "LABEL")]
    pub target: Option<String>,
    /// `sem`: minimum cosine similarity of a word and its replacement (-1..1).
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    pub cosine_threshold: Option<f64>,
    /// Attack only the first N examples of the dataset.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Seed of every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Most texts per model call.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// WordNet `dict` directory for `sem` (any directory holding index.noun below it).
    /// Default: $GAUNTLET_WORDNET, else $GAUNTLET_CACHE/wordnet (~/.cache/gauntlet/wordnet).
    #[arg(long, value_name = "DIR", env = "GAUNTLET_WORDNET")]
    pub wordnet: Option<PathBuf>,
    /// `sem`: take cosine similarities from these word vectors (word2vec text or binary,
    /// or GloVe) instead of the model's input embeddings.
    #[arg(long, value_name = "FILE")]
    pub sem_vectors: Option<PathBuf>,
    /// `random`: make on each example as many changes as this report's adversary did
    /// (a JSON report of the same data and limit). Default: budget-many changes.
    #[arg(long, value_name = "REPORT")]
    pub random_counts_from: Option<PathBuf>,
    /// Attack only shard I of N: the examples whose index is ≡ I (mod N), after --limit.
    /// Merge the shards' JSON reports with `gauntlet merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Report file (default: the report on stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// json, markdown or junit (default: from the --out extension, .md → markdown,
    /// .xml → junit, else json).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
    /// Inline gate.
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

/// `gauntlet gate`.
#[derive(Args)]
pub struct GateArgs {
    /// A JSON report written by `gauntlet audit`, `gauntlet run` (`audit.json`) or
    /// `gauntlet merge`.
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,
    /// Thresholds for every attack (default: those the report's plan set).
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

/// `gauntlet merge`.
#[derive(Args)]
pub struct MergeArgs {
    /// The shards' JSON reports (`audit.json` of `gauntlet run --shard`, or the `--out` of
    /// `gauntlet audit --shard`), in any order.
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// The merged report.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// json, markdown or html (default: from the --out extension).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
}

/// `gauntlet run`.
#[derive(Args)]
pub struct RunArgs {
    /// The spec file (TOML), e.g. gauntlet-audit.toml.
    #[arg(long, value_name = "FILE", default_value = "gauntlet-audit.toml")]
    pub spec: PathBuf,
    /// Output directory (overrides the spec's `out_dir`).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Device (overrides the spec's `device`).
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// Example limit (overrides the spec's `limit`).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// libtorch intra-op threads (overrides the spec's `threads`).
    #[arg(long)]
    pub threads: Option<i32>,
    /// WordNet directory for `sem` (overrides the spec's `wordnet`).
    #[arg(long, value_name = "DIR", env = "GAUNTLET_WORDNET")]
    pub wordnet: Option<PathBuf>,
    /// Word vectors for `sem`'s cosine similarity (overrides the spec's `sem_vectors`).
    #[arg(long, value_name = "FILE")]
    pub sem_vectors: Option<PathBuf>,
    /// Run only shard I of N (overrides the spec's `shard`).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Write the verdict but exit 0 on a breached threshold (errors still exit 2).
    #[arg(long)]
    pub no_gate: bool,
    /// Report formats, repeatable (overrides the spec's `formats`): json, markdown, junit
    /// (one file per attack), html (`audit.html`, the whole audit).
    #[arg(long = "format", value_name = "FORMAT", value_parser = parse_format)]
    pub formats: Vec<Format>,
}

/// `gauntlet compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// The first report (e.g. the baseline's `audit.json`).
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The second report (e.g. the hardened model's), of the same data and attacks.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Where to write the comparison (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// html, markdown or json (default: from the --out extension, else markdown).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
}

/// `gauntlet report`.
#[derive(Args)]
pub struct ReportArgs {
    /// A saved JSON report (`audit.json`, `gauntlet merge`'s output, or the server's
    /// `GET /v1/audits/{id}/report`).
    #[arg(value_name = "REPORT")]
    pub report: PathBuf,
    /// The rendered report.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// html, markdown or json (default: from the --out extension).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
}

/// Parses an attack name (`hotflip-word`; underscores are accepted too).
pub fn parse_attack(text: &str) -> Result<AttackKind, String> {
    let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
    AttackKind::ALL
        .into_iter()
        .find(|k| k.name() == wanted)
        .ok_or_else(|| {
            let known: Vec<&str> = AttackKind::ALL.iter().map(|k| k.name()).collect();
            format!(
                "unknown attack {text:?}; expected one of {}",
                known.join(", ")
            )
        })
}

/// Parses a budget (see [`Budget`]'s `FromStr`).
pub fn parse_budget(text: &str) -> Result<Budget, String> {
    text.parse()
}

/// Parses a report format name.
pub fn parse_format(text: &str) -> Result<Format, String> {
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks_and_budgets_parse() {
        assert_eq!(parse_attack("hotflip_word"), Ok(AttackKind::HotflipWord));
        assert_eq!(parse_attack("SEM"), Ok(AttackKind::Sem));
        assert!(parse_attack("hotflip")
            .err()
            .is_some_and(|e| e.contains("expected one of hotflip-char")));
        assert_eq!(parse_budget("3"), Ok(Budget::Changes(3)));
        assert_eq!(parse_budget("0.25"), Ok(Budget::Fraction(0.25)));
        assert_eq!(parse_budget("10%"), Ok(Budget::Fraction(0.1)));
        assert!(parse_budget("0").is_err());
        assert!(parse_budget("1.5").is_err());
        assert!(parse_budget("lots").is_err());
    }
}
