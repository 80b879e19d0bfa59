//! Forward throughput of one model on its three runtimes, side by side in one run: the
//! native tch model, ONNX Runtime on its ONNX export, and the tch interpreter of that graph.
//!
//! Usage: `forward_throughput NATIVE_BUNDLE ONNX_BUNDLE DATA_FILE [EXAMPLES]`; prints a
//! Markdown table (examples per second at batch 1 and 64) and the largest probability
//! difference between the runtimes. `bench/onnx_forward.sh` runs it and keeps the table.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gauntlet_core::dataset::{read_raw, resolve};
use gauntlet_core::{Classifier, DeviceChoice, TokenIds};
use gauntlet_models::NativeModel;
use gauntlet_onnx_tch::OnnxWhiteBox;
use gauntlet_ort::{OrtModel, OrtOptions};

fn throughput(model: &dyn Classifier, ids: &[TokenIds], batch: usize) -> Result<f64> {
    model.predict(&ids[..batch.min(ids.len())])?; // warm-up
    let started = Instant::now();
    for chunk in ids.chunks(batch) {
        model.predict(chunk)?;
    }
    Ok(ids.len() as f64 / started.elapsed().as_secs_f64())
}

fn max_difference(a: &dyn Classifier, b: &dyn Classifier, ids: &[TokenIds]) -> Result<f32> {
    let (pa, pb) = (a.predict(ids)?, b.predict(ids)?);
    Ok(pa
        .values
        .iter()
        .zip(&pb.values)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max))
}

fn main() -> Result<()> {
    gauntlet_backends::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: forward_throughput NATIVE_BUNDLE ONNX_BUNDLE DATA_FILE [EXAMPLES]");
    }
    let (native_dir, onnx_dir, data) = (
        PathBuf::from(&args[1]),
        PathBuf::from(&args[2]),
        PathBuf::from(&args[3]),
    );
    let n: usize = args.get(4).map_or(Ok(512), |s| s.parse())?;
    let native = NativeModel::load(&native_dir, DeviceChoice::Cpu)
        .with_context(|| format!("native bundle {}", native_dir.display()))?;
    let ort = OrtModel::load(&onnx_dir, &OrtOptions::default())?;
    let interpreter = OnnxWhiteBox::load(&onnx_dir, DeviceChoice::Cpu)?;
    let examples = resolve(&data, read_raw(&data)?, &native.manifest().labels)?;
    let ids: Vec<TokenIds> = examples
        .iter()
        .filter_map(|e| native.codec().encode(&e.text).ok())
        .map(|e| e.ids)
        .filter(|ids| !ids.is_empty())
        .take(n)
        .collect();
    println!(
        "Forward throughput on {} examples of {} ({}, CPU, {} threads), examples/second:\n",
        ids.len(),
        data.display(),
        native.manifest().architecture,
        tch::get_num_threads()
    );
    println!(
        "| runtime | batch 1 | batch 64 | ratio to native (batch 1) | ratio to native (batch 64) |"
    );
    println!("|---|---|---|---|---|");
    let runtimes: [(&str, &dyn Classifier); 3] = [
        ("native tch", &native),
        ("ONNX Runtime", &ort),
        ("tch interpreter of the ONNX graph", &interpreter),
    ];
    let mut base = (0.0, 0.0);
    for (i, (name, model)) in runtimes.iter().enumerate() {
        let one = throughput(*model, &ids, 1)?;
        let many = throughput(*model, &ids, 64)?;
        if i == 0 {
            base = (one, many);
        }
        println!(
            "| {name} | {one:.0} | {many:.0} | {:.2} | {:.2} |",
            one / base.0,
            many / base.1
        );
    }
    let sample = &ids[..ids.len().min(64)];
    println!(
        "\nLargest probability difference on 64 examples: ONNX Runtime vs native {:.2e}, interpreter vs native {:.2e}.",
        max_difference(&ort, &native, sample)?,
        max_difference(&interpreter, &native, sample)?
    );
    Ok(())
}
