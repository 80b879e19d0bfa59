//! The bundled demo model loads through the public API, carries its provenance, and
//! classifies unambiguous sentences the way a reader would.
#![allow(clippy::unwrap_used, missing_docs)]

use gauntlet_core::{Classifier, DeviceChoice, InputKind, TokenIds, WhiteBox};
use gauntlet_models::NativeModel;

#[test]
fn demo_bundle_loads_with_provenance_and_classifies_sensibly() {
    let model = NativeModel::load(&gauntlet_tests::demo_bundle(), DeviceChoice::Cpu).unwrap();
    let manifest = model.manifest();
    assert_eq!(manifest.architecture, "word-cnn");
    assert_eq!(model.input_kind(), InputKind::Word);
    assert!(manifest
        .training
        .command
        .as_deref()
        .is_some_and(|c| c.contains("gauntlet-train train --arch word-cnn")));
    assert!(
        manifest.metrics["dev_accuracy"] >= 0.8,
        "{:?}",
        manifest.metrics
    );
    let names: Vec<&str> = model.labels().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["negative", "positive"]);

    let texts = [
        "a wonderful , moving and beautifully acted film",
        "a boring , stupid and painfully bad movie",
    ];
    let ids: Vec<TokenIds> = texts
        .iter()
        .map(|t| model.codec().encode(t).unwrap().ids)
        .collect();
    let probs = model.predict(&ids).unwrap();
    assert_eq!(probs.argmax(0).0, 1, "{probs:?}");
    assert_eq!(probs.argmax(1).0, 0, "{probs:?}");

    // The white-box view agrees with the black-box one.
    let table = model.embedding_table();
    let embedded: Vec<Vec<f32>> = ids
        .iter()
        .map(|i| {
            i.flat()
                .iter()
                .flat_map(|&id| table.row(id as usize).to_vec())
                .collect()
        })
        .collect();
    let again = model.predict_embedded(&ids, &embedded).unwrap();
    for (a, b) in probs.values.iter().zip(&again.values) {
        assert!((a - b).abs() < 1e-5);
    }
    let grads = model.loss_gradients(&ids, &[1, 0]).unwrap();
    assert_eq!(
        grads.gradients[0].values.len(),
        ids[0].positions() * table.dim
    );
}
