//! `gauntlet merge`: the shards' JSON reports of one audit into the report one machine
//! would have written ([`gauntlet_attacks::audit::merge`] checks they belong together).

use anyhow::{Context, Result};
use gauntlet_attacks::audit::merge;

use crate::args::MergeArgs;
use crate::gate::{announce, Verdict};
use crate::output::{check_target, read_report, render_audit, write_atomic, Format};

/// `gauntlet merge`. Prints the merged verdict but exits 0: gating is `gauntlet gate`'s.
pub fn run_merge(args: &MergeArgs) -> Result<Verdict> {
    check_target(&args.out)?;
    let format = args.format.unwrap_or_else(|| Format::from_path(&args.out));
    let reports = args
        .reports
        .iter()
        .map(|p| read_report(p))
        .collect::<Result<Vec<_>>>()?;
    let merged = merge(reports).with_context(|| {
        let listing: Vec<String> = args
            .reports
            .iter()
            .enumerate()
            .map(|(k, p)| format!("report {} = {}", k + 1, p.display()))
            .collect();
        listing.join(", ")
    })?;
    write_atomic(&args.out, &render_audit(format, &merged)?)?;
    let shards = merged.merged_from.as_ref().map_or(0, |m| m.count);
    eprintln!("merged {shards} shards into {}", args.out.display());
    announce(&merged, true);
    Ok(Verdict::Passed)
}
