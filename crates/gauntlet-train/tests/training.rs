//! End-to-end training tests on small synthetic data: learning, determinism, model
//! selection, bundle round trips, and the errors a user can trigger.
#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use gauntlet_core::{Classifier, DeviceChoice, TokenIds, WhiteBox};
use gauntlet_models::{save_bundle, Architecture, NativeModel};
use gauntlet_train::testing::{split, tiny_config, toy_rows};
use gauntlet_train::{train, TrainConfig};

/// libtorch's random generator is global to the process and tests run on parallel
/// threads: every test that trains holds this lock so seeded runs stay reproducible.
static TORCH_RNG: Mutex<()> = Mutex::new(());

fn torch_rng() -> MutexGuard<'static, ()> {
    TORCH_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn every_architecture_learns_the_toy_task_and_round_trips_as_a_bundle() {
    let _rng = torch_rng();
    let dir = tempfile::tempdir().unwrap();
    for arch in Architecture::ALL {
        let config = tiny_config(arch);
        let outcome = train(
            &config,
            &split("train.tsv", toy_rows(240, 0)),
            Some(&split("dev.tsv", toy_rows(60, 1000))),
            &mut |_| {},
        )
        .unwrap();
        let best = outcome
            .history
            .iter()
            .map(|r| r.dev_accuracy)
            .fold(0.0, f64::max);
        assert!(best >= 0.9, "{arch}: best dev accuracy {best}");
        let kept = outcome.manifest.training.best_epoch.unwrap();
        let min_loss = outcome
            .history
            .iter()
            .map(|r| r.dev_loss)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(
            outcome.history[kept - 1].dev_loss,
            min_loss,
            "{arch}: kept epoch is not the lowest dev loss"
        );

        let bundle = dir.path().join(arch.name());
        save_bundle(&bundle, &outcome.manifest, &outcome.codec, &outcome.vs).unwrap();
        let model = NativeModel::load(&bundle, DeviceChoice::Cpu).unwrap();
        let ids: Vec<TokenIds> = ["the movie was great", "a dull plot"]
            .iter()
            .map(|t| model.codec().encode(t).unwrap().ids)
            .collect();
        let in_memory = NativeModel::from_parts(
            outcome.manifest.clone(),
            outcome.codec.clone(),
            outcome.vs,
            outcome.net,
        );
        assert_eq!(
            model.predict(&ids).unwrap(),
            in_memory.predict(&ids).unwrap(),
            "{arch}: reloaded bundle predicts differently"
        );
        // `predict` (the word-cnn's lookup forward pass) agrees with the network's own
        // forward pass, which `predict_embedded` runs.
        let rows: Vec<Vec<f32>> = ids.iter().map(|t| embedded(&model, t)).collect();
        let by_network = model.predict_embedded(&ids, &rows).unwrap();
        let predicted = model.predict(&ids).unwrap();
        let gap = (predicted.values.iter().zip(&by_network.values))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            gap < 1e-5,
            "{arch}: predict and the network differ by {gap}"
        );
        // The gradient calls (the word-cnn's closed form) give the network's derivative:
        // along the gradient's own direction, a central difference of the network's loss
        // equals its norm.
        let pass = model.loss_gradients(&ids, &[0, 1]).unwrap();
        for (i, (g, label)) in pass.gradients.iter().zip([0usize, 1]).enumerate() {
            let norm = g.values.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!(norm > 1e-4, "{arch}: example {i} has no gradient");
            let step = 1e-2f32;
            let loss_at = |sign: f32| {
                let moved: Vec<f32> = (rows[i].iter().zip(&g.values))
                    .map(|(e, d)| e + sign * step * d / norm)
                    .collect();
                let p = model
                    .predict_embedded(std::slice::from_ref(&ids[i]), &[moved])
                    .unwrap();
                -(p.values[label] as f64).ln()
            };
            let slope = (loss_at(1.0) - loss_at(-1.0)) / (2.0 * step as f64);
            assert!(
                (slope - norm as f64).abs() < 0.02 * norm as f64,
                "{arch}: example {i}: the loss changes at {slope} along a gradient of norm {norm}"
            );
        }
        // The kept weights are the best epoch's: reloaded dev loss equals the recorded one.
        assert!((model.manifest().metrics["dev_loss"] - min_loss).abs() < 1e-9);
    }
}

/// The model's input embeddings of one text, in [`TokenIds::flat`] order.
fn embedded(model: &NativeModel, ids: &TokenIds) -> Vec<f32> {
    let table = model.embedding_table();
    ids.flat()
        .iter()
        .flat_map(|&id| table.row(id as usize).to_vec())
        .collect()
}

fn weights(outcome: gauntlet_train::TrainOutcome, dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    save_bundle(&path, &outcome.manifest, &outcome.codec, &outcome.vs).unwrap();
    fs::read(path.join("model.safetensors")).unwrap()
}

#[test]
fn same_seed_same_weights_and_another_seed_differs() {
    let _rng = torch_rng();
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(Architecture::WordCnn);
    let run = |seed| {
        train(
            &TrainConfig {
                seed,
                ..config.clone()
            },
            &split("t.tsv", toy_rows(80, 0)),
            None,
            &mut |_| {},
        )
        .unwrap()
    };
    let a = weights(run(1), dir.path(), "a");
    let b = weights(run(1), dir.path(), "b");
    let c = weights(run(2), dir.path(), "c");
    assert_eq!(
        a, b,
        "same seed, same device must give bit-identical weights"
    );
    assert_ne!(a, c);
}

#[test]
fn bad_data_and_settings_are_clear_errors() {
    let _rng = torch_rng();
    let config = tiny_config(Architecture::WordCnn);
    let mut dev = toy_rows(10, 0);
    dev[3].label = "7".into();
    let err = train(
        &config,
        &split("train.tsv", toy_rows(40, 0)),
        Some(&split("dev.tsv", dev)),
        &mut |_| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("dev.tsv:5: label \"7\""), "{err}");
    let one_label: Vec<_> = toy_rows(40, 0)
        .into_iter()
        .filter(|r| r.label == "1")
        .collect();
    let err = train(&config, &split("train.tsv", one_label), None, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("at least two"), "{err}");
    let err = train(
        &TrainConfig {
            epochs: 0,
            ..config
        },
        &split("t.tsv", toy_rows(40, 0)),
        None,
        &mut |_| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("--epochs"), "{err}");
}

#[test]
fn broken_bundles_name_the_file_and_the_problem() {
    let _rng = torch_rng();
    let dir = tempfile::tempdir().unwrap();
    let outcome = train(
        &tiny_config(Architecture::WordCnn),
        &split("t.tsv", toy_rows(40, 0)),
        None,
        &mut |_| {},
    )
    .unwrap();
    let good = dir.path().join("good");
    save_bundle(&good, &outcome.manifest, &outcome.codec, &outcome.vs).unwrap();
    let copy = |name: &str| {
        let target = dir.path().join(name);
        fs::create_dir_all(&target).unwrap();
        for entry in fs::read_dir(&good).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
        }
        target
    };
    let load_err = |path: &Path| {
        NativeModel::load(path, DeviceChoice::Cpu)
            .err()
            .unwrap()
            .to_string()
    };

    let missing = copy("missing");
    fs::remove_file(missing.join("tokenizer.json")).unwrap();
    let err = load_err(&missing);
    assert!(
        err.contains("tokenizer.json") && err.contains("missing"),
        "{err}"
    );

    let shapes = copy("shapes");
    let manifest = fs::read_to_string(shapes.join("gauntlet.toml"))
        .unwrap()
        .replace("embedding_dim = 16", "embedding_dim = 17");
    fs::write(shapes.join("gauntlet.toml"), manifest).unwrap();
    let err = load_err(&shapes);
    assert!(
        err.contains("model.safetensors") && err.contains("shape"),
        "{err}"
    );

    let version = copy("version");
    let manifest = fs::read_to_string(version.join("gauntlet.toml"))
        .unwrap()
        .replace("format_version = 1", "format_version = 2");
    fs::write(version.join("gauntlet.toml"), manifest).unwrap();
    let err = load_err(&version);
    assert!(
        err.contains("gauntlet.toml") && err.contains("unsupported format_version 2"),
        "{err}"
    );
}

#[test]
fn cli_trains_evaluates_and_reports_malformed_rows() {
    let _rng = torch_rng();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.tsv");
    let body: String = toy_rows(60, 0)
        .iter()
        .map(|r| format!("{}\t{}\n", r.label, r.text))
        .collect();
    fs::write(&data, format!("label\ttext\n{body}")).unwrap();
    let bin = env!("CARGO_BIN_EXE_gauntlet-train");
    let out = dir.path().join("bundle");
    let status = Command::new(bin)
        .args([
            "train",
            "--arch",
            "word-cnn",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--hp",
            "embedding_dim=8",
            "--hp",
            "feature_maps=4",
        ])
        .arg("--train")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let manifest = fs::read_to_string(out.join("gauntlet.toml")).unwrap();
    assert!(
        manifest.contains("--hp embedding_dim=8"),
        "the command is recorded:\n{manifest}"
    );

    let eval = Command::new(bin)
        .args(["eval", "--json", "--device", "cpu"])
        .arg("--model")
        .arg(&out)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(report["examples"], 60);
    assert_eq!(report["per_class"].as_array().unwrap().len(), 2);

    // A bundle made outside training (an ONNX graph, as the HF converter writes, with no
    // training provenance) loads in eval, predict and compare through the server's loader.
    let onnx = dir.path().join("onnx");
    gauntlet_models::export::export_bundle(&out, &onnx).unwrap();
    let manifest_path = onnx.join("gauntlet.toml");
    let mut manifest: toml::Table = fs::read_to_string(&manifest_path).unwrap().parse().unwrap();
    manifest.insert("training".into(), toml::Value::Table(toml::Table::new()));
    fs::write(&manifest_path, toml::to_string(&manifest).unwrap()).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let o = Command::new(bin).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (m, d) = (onnx.as_os_str(), data.as_os_str());
    let text = run(&[
        "eval".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--model".as_ref(),
        m,
        "--data".as_ref(),
        d,
    ]);
    assert!(
        text.contains("training  unknown epochs on unknown, kept epoch unknown"),
        "{text}"
    );
    let onnx_report: serde_json::Value = serde_json::from_str(&run(&[
        "eval".as_ref(),
        "--json".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--model".as_ref(),
        m,
        "--data".as_ref(),
        d,
    ]))
    .unwrap();
    assert_eq!(
        onnx_report["accuracy"], report["accuracy"],
        "ONNX and native agree"
    );
    assert!(run(&[
        "predict".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--model".as_ref(),
        m,
        "a good movie".as_ref()
    ])
    .contains("a good movie"));
    let both = [out.as_os_str(), m];
    let compare = run(&[
        "compare".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
        "--models".as_ref(),
        both[0],
        both[1],
        "--data".as_ref(),
        d,
    ]);
    assert!(compare.contains("paired t-test"), "{compare}");

    let bad = dir.path().join("bad.tsv");
    fs::write(&bad, "label\ttext\n1\tok\nbroken line\n").unwrap();
    let eval = Command::new(bin)
        .args(["eval", "--device", "cpu"])
        .arg("--model")
        .arg(&out)
        .arg("--data")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(eval.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&eval.stderr).contains("bad.tsv:3: no tab"),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );

    let bad_hp = Command::new(bin)
        .args(["train", "--arch", "word-cnn", "--hp", "nope=1", "--out"])
        .arg(dir.path().join("x"))
        .arg("--train")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(bad_hp.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_hp.stderr).contains("no hyper-parameter \"nope\""));
}

#[test]
fn adv_none_is_bit_identical_to_clean_training() {
    use gauntlet_train::adversarial::{AdversarialConfig, Method};
    let _rng = torch_rng();
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(Architecture::WordCnn);
    let clean = weights(
        train(&config, &split("t.tsv", toy_rows(80, 0)), None, &mut |_| {}).unwrap(),
        dir.path(),
        "clean",
    );
    let none = AdversarialConfig {
        method: Method::None,
        epsilon: 0.3,
        alpha: 0.1,
        ..Default::default()
    };
    let outcome = train(
        &TrainConfig {
            adversarial: none,
            ..config
        },
        &split("t.tsv", toy_rows(80, 0)),
        None,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(outcome.manifest.training.adversarial["method"], "none");
    assert_eq!(weights(outcome, dir.path(), "none"), clean);
}

#[test]
fn every_adversarial_method_trains_and_is_recorded_in_the_manifest() {
    use gauntlet_train::adversarial::{AdversarialConfig, Method};
    let _rng = torch_rng();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (Architecture::WordCnn, Method::Dropout),
        (Architecture::WordCnn, Method::Fgsm),
        (Architecture::BiRnn, Method::L2),
        (Architecture::BiRnn, Method::Vat),
        (Architecture::WordCnn, Method::Unk),
        (Architecture::CharCnnLstm, Method::Hotflip),
    ];
    for (arch, method) in cases {
        let adversarial = AdversarialConfig {
            method,
            epsilon: if method == Method::Dropout { 0.2 } else { 0.05 },
            ..Default::default()
        };
        let unlabeled = if method == Method::Vat {
            vec!["a lovely plot".to_owned(), "really dull".to_owned()]
        } else {
            Vec::new()
        };
        let config = TrainConfig {
            adversarial,
            unlabeled,
            epochs: 2,
            ..tiny_config(arch)
        };
        let mut saw_adversarial_loss = false;
        let outcome = train(&config, &split("t.tsv", toy_rows(60, 0)), None, &mut |p| {
            if let gauntlet_train::Progress::EpochEnd(r) = p {
                saw_adversarial_loss |= r.adversarial_loss.is_some();
            }
        })
        .unwrap();
        assert_eq!(
            saw_adversarial_loss,
            method != Method::Dropout,
            "{method:?}"
        );
        let record = &outcome.manifest.training.adversarial;
        assert_eq!(record["method"], method.name());
        assert!(
            record.contains_key("epsilon") && record.contains_key("alpha"),
            "{record:?}"
        );
        let normalized = outcome.manifest.hyper_parameters["normalize_embeddings"]
            == serde_json::Value::Bool(true);
        assert_eq!(normalized, method.normalizes_embeddings(), "{method:?}");
        // The hardened bundle loads straight back (normalized embeddings included).
        let bundle = dir.path().join(method.name());
        save_bundle(&bundle, &outcome.manifest, &outcome.codec, &outcome.vs).unwrap();
        NativeModel::load(&bundle, DeviceChoice::Cpu).unwrap();
    }
    let bad = TrainConfig {
        adversarial: AdversarialConfig {
            method: Method::Hotflip,
            ..Default::default()
        },
        ..tiny_config(Architecture::WordCnn)
    };
    let err = train(&bad, &split("t.tsv", toy_rows(40, 0)), None, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--adv hotflip"), "{err}");
}

/// 60 toy rows with every third label flipped: at a high learning rate a model overfits
/// them, so its lowest dev loss comes early.
fn noisy_toy_rows() -> Vec<gauntlet_core::dataset::RawExample> {
    let mut rows = toy_rows(60, 0);
    for r in rows.iter_mut().step_by(3) {
        r.label = if r.label == "0" {
            "1".into()
        } else {
            "0".into()
        };
    }
    rows
}

#[test]
fn the_saved_bundle_is_the_kept_epoch_not_the_last() {
    let _rng = torch_rng();
    let dir = tempfile::tempdir().unwrap();
    // Noisy training labels and a high learning rate: the model overfits, so the lowest dev
    // loss comes before the last epoch and a restore that does nothing is visible.
    let train_rows = noisy_toy_rows();
    let config = TrainConfig {
        epochs: 12,
        learning_rate: 0.05,
        ..tiny_config(Architecture::WordCnn)
    };
    let dev_rows = toy_rows(40, 1000);
    let outcome = train(
        &config,
        &split("train.tsv", train_rows),
        Some(&split("dev.tsv", dev_rows.clone())),
        &mut |_| {},
    )
    .unwrap();
    let kept = outcome.manifest.training.best_epoch.unwrap();
    let last = outcome.history.last().unwrap().dev_loss;
    let kept_loss = outcome.history[kept - 1].dev_loss;
    assert!(
        kept < config.epochs && (last - kept_loss).abs() > 1e-3,
        "precondition: the kept epoch {kept} must differ from the last ({:?})",
        outcome
            .history
            .iter()
            .map(|r| r.dev_loss)
            .collect::<Vec<_>>()
    );
    let bundle = dir.path().join("kept");
    save_bundle(&bundle, &outcome.manifest, &outcome.codec, &outcome.vs).unwrap();
    let model = NativeModel::load(&bundle, DeviceChoice::Cpu).unwrap();
    let pairs: Vec<(TokenIds, usize)> = dev_rows
        .iter()
        .map(|r| {
            let label = model
                .manifest()
                .labels
                .iter()
                .position(|l| l.key == r.label)
                .unwrap();
            (model.codec().encode(&r.text).unwrap().ids, label)
        })
        .collect();
    let reloaded = gauntlet_train::evaluate(&model, &pairs, 64).unwrap();
    assert!(
        (reloaded.mean_loss - kept_loss).abs() < 1e-4,
        "the reloaded bundle's dev loss {} is not the kept epoch's {kept_loss} (last epoch: {last})",
        reloaded.mean_loss
    );
}

#[test]
fn early_stopping_ends_after_patience_epochs_without_a_lower_dev_loss() {
    let _rng = torch_rng();
    // The overfitting setting of the test above: dev loss bottoms out early, then rises.
    let train_rows = noisy_toy_rows();
    let run = |patience: Option<usize>| {
        let config = TrainConfig {
            epochs: 12,
            patience,
            learning_rate: 0.05,
            ..tiny_config(Architecture::WordCnn)
        };
        train(
            &config,
            &split("train.tsv", train_rows.clone()),
            Some(&split("dev.tsv", toy_rows(40, 1000))),
            &mut |_| {},
        )
        .unwrap()
    };
    let full = run(None);
    let losses: Vec<f64> = full.history.iter().map(|r| r.dev_loss).collect();
    // Where a patience of 2 must stop, worked out from the full run's dev losses.
    let patience = 2;
    let mut best = (f64::INFINITY, 0);
    let mut stop = losses.len();
    for (i, &loss) in losses.iter().enumerate() {
        if loss < best.0 {
            best = (loss, i + 1);
        }
        if i + 1 - best.1 >= patience {
            stop = i + 1;
            break;
        }
    }
    assert!(
        stop < 12,
        "precondition: the full run must overfit: {losses:?}"
    );
    let early = run(Some(patience));
    let early_losses: Vec<f64> = early.history.iter().map(|r| r.dev_loss).collect();
    // Same seed, so the epochs run are the full run's first ones, and the run ends exactly
    // `patience` epochs after the lowest dev loss, which it keeps.
    assert_eq!(early_losses, losses[..stop], "{losses:?}");
    assert_eq!(early.manifest.training.epochs, Some(stop));
    assert_eq!(early.manifest.training.patience, Some(patience));
    assert_eq!(early.manifest.training.best_epoch, Some(best.1));
    assert_eq!(full.manifest.training.epochs, Some(12));

    let zero = TrainConfig {
        patience: Some(0),
        ..tiny_config(Architecture::WordCnn)
    };
    let err = train(&zero, &split("t.tsv", toy_rows(40, 0)), None, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--patience"), "{err}");
}

#[test]
fn pretrained_vectors_start_the_embeddings_and_freezing_keeps_them() {
    let _rng = torch_rng();
    let dir = tempfile::tempdir().unwrap();
    // Vectors for two toy words (one spelled with a capital, found by lowercasing) and one
    // word the vocabulary lacks.
    let file = dir.path().join("vectors.txt");
    fs::write(
        &file,
        "3 4\ngreat 0.5 -0.25 1 2\nDull -1 0.5 0.25 -2\nzebra 1 1 1 1\n",
    )
    .unwrap();
    let run = |freeze: bool| {
        let config = TrainConfig {
            epochs: 2,
            embeddings: Some(file.clone()),
            freeze_embeddings: freeze,
            ..tiny_config(Architecture::WordCnn)
        };
        let outcome = train(
            &config,
            &split("train.tsv", toy_rows(80, 0)),
            Some(&split("dev.tsv", toy_rows(20, 1000))),
            &mut |_| {},
        )
        .unwrap();
        let bundle = dir.path().join(format!("b-{freeze}"));
        save_bundle(&bundle, &outcome.manifest, &outcome.codec, &outcome.vs).unwrap();
        NativeModel::load(&bundle, DeviceChoice::Cpu).unwrap()
    };
    let row = |m: &NativeModel, word: &str| {
        let id = (0..m.codec().size() as u32)
            .find(|&i| m.codec().token(i) == Some(word))
            .unwrap();
        m.embedding_table().row(id as usize).to_vec()
    };
    let frozen = run(true);
    assert_eq!(row(&frozen, "great"), [0.5, -0.25, 1.0, 2.0]);
    assert_eq!(row(&frozen, "dull"), [-1.0, 0.5, 0.25, -2.0]);
    let record = frozen.manifest().training.embeddings.clone().unwrap();
    assert_eq!((record.found, record.dim, record.frozen), (2, 4, true));
    assert!(record.words > 2 && record.digest.len() == 64);
    assert_eq!(frozen.manifest().hyper_parameters["embedding_dim"], 4);
    let tuned = run(false);
    assert_ne!(
        row(&tuned, "great"),
        [0.5, -0.25, 1.0, 2.0],
        "non-static embeddings move"
    );

    let char_config = TrainConfig {
        embeddings: Some(file.clone()),
        ..tiny_config(Architecture::CharCnnLstm)
    };
    let e = train(
        &char_config,
        &split("train.tsv", toy_rows(20, 0)),
        None,
        &mut |_| {},
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("reads characters"), "{e}");
}

/// The mean adversarial loss of `method` (its own perturbation, ε as given) on `rows`, for
/// a trained network: what the method's training term minimises.
fn adversarial_loss(
    outcome: &gauntlet_train::TrainOutcome,
    method: gauntlet_train::adversarial::Method,
    epsilon: f64,
    rows: &[gauntlet_core::dataset::RawExample],
) -> f64 {
    use gauntlet_models::PaddedBatch;
    use gauntlet_train::adversarial::{AdversarialConfig, Batch, Regularizer};
    let ids: Vec<TokenIds> = rows
        .iter()
        .map(|r| outcome.codec.encode(&r.text).unwrap().ids)
        .collect();
    let labels: Vec<i64> = rows.iter().map(|r| r.label.parse().unwrap()).collect();
    let padded = PaddedBatch::new(&ids, outcome.net.min_len(), tch::Device::Cpu).unwrap();
    let targets = tch::Tensor::from_slice(&labels);
    let mut regularizer = Regularizer::new(
        AdversarialConfig {
            method,
            epsilon,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let batch = Batch {
        ids: &ids,
        padded: &padded,
        targets: &targets,
        unlabeled: None,
    };
    // The gradients this accumulates are never used: the model is only measured.
    let step = regularizer.backward(outcome.net.as_ref(), &batch).unwrap();
    step.adversarial.unwrap().double_value(&[])
}

#[test]
fn each_hardening_method_lowers_its_own_adversarial_loss_against_the_baseline() {
    use gauntlet_train::adversarial::{AdversarialConfig, Method};
    let _rng = torch_rng();
    let held_out = toy_rows(120, 5000);
    for (arch, method, epsilon) in [
        (Architecture::WordCnn, Method::Fgsm, 0.5),
        (Architecture::BiRnn, Method::L2, 2.0),
        (Architecture::BiRnn, Method::Vat, 2.0),
        (Architecture::WordCnn, Method::Unk, 0.05),
        (Architecture::CharCnnLstm, Method::Hotflip, 0.05),
    ] {
        let trained = |m: Method| {
            let mut config = tiny_config(arch);
            // No dropout: the comparison is between the two trainings, not two dropout draws.
            config
                .hyper
                .insert("dropout".into(), serde_json::json!(0.0));
            // L2 and VAT train on normalized embeddings (Miyato et al.): so does their
            // baseline, or one ε would mean different distances on the two models.
            if method.normalizes_embeddings() {
                config
                    .hyper
                    .insert("normalize_embeddings".into(), serde_json::json!(true));
            }
            config.adversarial = AdversarialConfig {
                method: m,
                epsilon,
                ..Default::default()
            };
            train(
                &config,
                &split("t.tsv", toy_rows(240, 0)),
                Some(&split("d.tsv", toy_rows(60, 1000))),
                &mut |_| {},
            )
            .unwrap()
        };
        let (baseline, hardened) = (trained(Method::None), trained(method));
        let (b, h) = (
            adversarial_loss(&baseline, method, epsilon, &held_out),
            adversarial_loss(&hardened, method, epsilon, &held_out),
        );
        assert!(
            h < b,
            "{arch:?} {method:?}: adversarial loss hardened {h} vs baseline {b}"
        );
        // And the hardened model still learned the task.
        let accuracy = hardened
            .history
            .iter()
            .map(|e| e.dev_accuracy)
            .fold(0.0, f64::max);
        assert!(
            accuracy > 0.9,
            "{arch:?} {method:?}: dev accuracy {accuracy}"
        );
        eprintln!("{arch:?} {method:?}: adversarial loss {b:.4} (baseline) -> {h:.4} (hardened)");
    }
}
