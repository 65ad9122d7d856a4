//! The model and tokenizer against the reference transformers implementation (../shared/golden/minilm-forward.json).

mod common;

use seedsweep_trainer::model::{Bert, Compute};
use seedsweep_trainer::optim;
use seedsweep_trainer::tokenize::BertTokenizer;
use serde_json::Value;
use tch::{Device, Tensor};

fn golden() -> Vec<Value> {
    let path = common::shared_dir().join("golden/minilm-forward.json");
    let v = common::read_json(&path);
    let cases = v["cases"].as_array().expect("golden cases").clone();
    assert!(cases.len() >= 4, "the golden file has several cases");
    cases
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn check_tokens(tokenizer_dir: &std::path::Path) {
    for case in golden() {
        let max_len = case["max_length"].as_u64().unwrap() as usize;
        let tokenizer = BertTokenizer::load(tokenizer_dir, max_len, 512).unwrap();
        let a = case["text_a"].as_str().unwrap();
        let b = case["text_b"].as_str();
        let enc = tokenizer.encode(a, b).unwrap();
        assert_eq!(enc.ids, ints(&case["input_ids"]), "input ids of {a:?}");
        assert_eq!(
            enc.token_types,
            ints(&case["token_type_ids"]),
            "token types of {a:?}"
        );
    }
}

#[test]
fn tokenizer_json_matches_reference_ids() {
    check_tokens(&common::model_dir());
}

#[test]
fn vocab_txt_fallback_matches_reference_ids() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["vocab.txt", "tokenizer_config.json", "config.json"] {
        std::fs::copy(common::model_dir().join(f), dir.path().join(f)).unwrap();
    }
    check_tokens(dir.path());
}

#[test]
fn minilm_forward_matches_reference_within_1e4() {
    let model_dir = common::model_dir();
    let mut model = Bert::load(&model_dir, Device::Cpu, 0, Compute::Fp32).unwrap();
    let tokenizer = BertTokenizer::load(&model_dir, 128, 512).unwrap();
    for case in golden() {
        let ids = ints(&case["input_ids"]);
        let types = ints(&case["token_type_ids"]);
        let n = ids.len() as i64;
        let (hidden, pooled) = tch::no_grad(|| {
            model.encode(
                &Tensor::from_slice(&ids).view([1, n]),
                &Tensor::from_slice(&types).view([1, n]),
                None,
                false,
            )
        });
        let outputs = [
            ("cls", hidden.get(0).get(0)),
            ("mean_pooled", hidden.get(0).mean_dim(0, false, None)),
            ("pooler_output", pooled.get(0)),
        ];
        for (name, actual) in outputs {
            let actual = Vec::<f64>::try_from(actual.to_kind(tch::Kind::Double)).unwrap();
            let expected = floats(&case[name]);
            assert_eq!(actual.len(), expected.len(), "{name} length");
            let worst = actual
                .iter()
                .zip(&expected)
                .map(|(a, e)| (a - e).abs())
                .fold(0.0, f64::max);
            assert!(
                worst <= 1e-4,
                "{name} of {:?} differs by {worst}",
                case["text_a"]
            );
        }
        // The padded batch path must agree with the unpadded one.
        let padded_ids: Vec<i64> = ids.iter().copied().chain([tokenizer.pad_id; 5]).collect();
        let padded_types: Vec<i64> = types.iter().copied().chain([0; 5]).collect();
        let mask: Vec<i64> = ids.iter().map(|_| 1).chain([0; 5]).collect();
        // Both ways of treating pads: packed (only real tokens through the dense layers) and computed as the
        // reference does.
        for skip_padding in [true, false] {
            model.skip_padding = skip_padding;
            let (hidden_padded, pooled_padded) = tch::no_grad(|| {
                model.encode(
                    &Tensor::from_slice(&padded_ids).view([1, n + 5]),
                    &Tensor::from_slice(&padded_types).view([1, n + 5]),
                    Some(&Tensor::from_slice(&mask).view([1, n + 5])),
                    false,
                )
            });
            let diff = (pooled_padded - &pooled).abs().max().double_value(&[]);
            assert!(
                diff <= 1e-5,
                "masking (skip_padding {skip_padding}) changes the pooled output by {diff}"
            );
            let diff = (hidden_padded.narrow(1, 0, n) - &hidden)
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                diff <= 1e-5,
                "masking (skip_padding {skip_padding}) changes the hidden states by {diff}"
            );
        }
    }
}

#[test]
fn weight_decay_skips_biases_and_layer_norm_weights_in_the_optimizer() {
    let model = Bert::load(&common::model_dir(), Device::Cpu, 0, Compute::Fp32).unwrap();
    let vars = model.var_store().variables();
    let before: Vec<(String, Tensor)> = [
        "encoder.layer.0.attention.self.query.weight",
        "embeddings.LayerNorm.weight",
        "encoder.layer.0.output.dense.bias",
    ]
    .iter()
    .map(|n| (n.to_string(), vars[*n].detach().copy()))
    .collect();
    // With zero gradients Adam's update is zero, so only the decoupled decay (lr · wd = 0.5) moves a parameter.
    let mut opt = optim::AdamW::new(model.var_store(), 0.5, 1e-8);
    opt.zero_grad();
    let zero = vars.values().fold(
        Tensor::zeros([], (tch::Kind::Float, Device::Cpu)),
        |acc, v| acc + (v * 0.0).sum(tch::Kind::Float),
    );
    zero.backward();
    opt.step(1.0);
    for (name, old) in before {
        let new = &vars[&name];
        let expected = if name.ends_with("query.weight") {
            &old * 0.5
        } else {
            old.shallow_clone()
        };
        let diff = (new - expected).abs().max().double_value(&[]);
        assert!(diff < 1e-7, "{name} moved by {diff} off its expected value");
    }
}

/// Our AdamW (written out so that checkpoints can hold its state) against libtorch's C++ `torch::optim::AdamW`, the
/// one the trainer used before: same parameters, same gradients, five steps with clipping at a varying learning
/// rate.
#[test]
fn adamw_follows_libtorchs_optimizer() {
    use tch::nn::OptimizerConfig;
    let build = |seed: i64| {
        tch::manual_seed(seed);
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let layer = root / "layer";
        let _w = layer.set_group(0).randn("weight", &[16, 8], 0.0, 1.0);
        let _b = layer.set_group(1).randn("bias", &[16], 0.0, 1.0);
        vs
    };
    let (ours_vs, theirs_vs) = (build(3), build(3));
    let mut ours = optim::AdamW::new(&ours_vs, 0.01, 1e-8);
    let mut theirs = tch::nn::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        wd: 0.01,
        eps: 1e-8,
        amsgrad: false,
    }
    .build(&theirs_vs, 1e-2)
    .unwrap();
    // Ours decays weights, not biases; libtorch's by var-store group.
    theirs.set_weight_decay_group(0, 0.01);
    theirs.set_weight_decay_group(1, 0.0);
    let loss_of = |vs: &tch::nn::VarStore, step: i64| {
        let v = vs.variables();
        let x = Tensor::arange(8, (tch::Kind::Float, Device::Cpu)) / 8.0 + step as f64;
        (v["layer.weight"].matmul(&x) + &v["layer.bias"])
            .tanh()
            .pow_tensor_scalar(2)
            .sum(tch::Kind::Float)
    };
    for step in 0..5 {
        let lr = 1e-2 * (1.0 + step as f64);
        ours.zero_grad();
        loss_of(&ours_vs, step).backward();
        ours.clip_grad_norm(1.0);
        ours.step(lr);
        theirs.zero_grad();
        loss_of(&theirs_vs, step).backward();
        theirs.clip_grad_norm(1.0);
        theirs.set_lr(lr);
        theirs.step();
    }
    for name in ["layer.weight", "layer.bias"] {
        let diff = (&ours_vs.variables()[name] - &theirs_vs.variables()[name])
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-6, "{name} differs by {diff}");
    }
}
