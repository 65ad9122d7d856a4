//! BERT encoder, pooler and sequence-classification head, laid out like Hugging Face's `BertForSequenceClassification`
//! so that checkpoints load by name.

use crate::config::BertConfig;
use crate::dropout::Dropout;
use crate::seeds;
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor, nn};

/// Every GLUE task SeedSweep runs is binary.
pub const NUM_LABELS: i64 = 2;

/// Optimizer parameter groups: HF's run_glue applies weight decay to everything but biases and LayerNorm weights.
pub const DECAY_GROUP: usize = 0;
pub const NO_DECAY_GROUP: usize = 1;

/// Whether a parameter (by its HF name) gets weight decay; the same substring rule as run_glue's `no_decay` list.
pub fn decays(name: &str) -> bool {
    !(name.contains("bias") || name.contains("LayerNorm.weight"))
}

/// Where the pooler's weights came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PoolerSource {
    Checkpoint,
    /// The checkpoint has no pooler; it was initialised from the WI seed like the head.
    WiSeed,
}

/// A var-store path that also knows the parameter's dotted HF name, which decides its weight-decay group.
struct Scope<'a> {
    path: nn::Path<'a>,
    name: String,
}

impl<'a> Scope<'a> {
    fn sub(&self, s: &str) -> Scope<'a> {
        Scope {
            path: self.path.sub(s),
            name: if self.name.is_empty() {
                s.to_string()
            } else {
                format!("{}.{s}", self.name)
            },
        }
    }

    fn param(&self, leaf: &str, dims: &[i64]) -> Tensor {
        let group = if decays(&format!("{}.{leaf}", self.name)) {
            DECAY_GROUP
        } else {
            NO_DECAY_GROUP
        };
        // Zeros: every parameter is overwritten by the checkpoint or the WI-seeded init right after.
        self.path.set_group(group).zeros(leaf, dims)
    }
}

struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn new(s: &Scope, input: i64, output: i64) -> Self {
        Linear {
            weight: s.param("weight", &[output, input]),
            bias: s.param("bias", &[output]),
        }
    }

    /// The product as `c` computes it: the fp32 parameters are rounded for this product only (their gradients come
    /// back in fp32 through the cast), as is the input.
    fn forward(&self, xs: &Tensor, c: Compute) -> Tensor {
        c.result(
            c.operand(xs)
                .linear(&c.operand(&self.weight), Some(&c.operand(&self.bias))),
        )
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
    size: i64,
}

impl LayerNorm {
    fn new(s: &Scope, size: i64, eps: f64) -> Self {
        LayerNorm {
            weight: s.param("weight", &[size]),
            bias: s.param("bias", &[size]),
            eps,
            size,
        }
    }

    /// Always in fp32, whatever the input's kind (a bf16 product's output is promoted by the residual sum before
    /// it gets here, except in the embeddings, which are fp32 already).
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.to_kind(Kind::Float).layer_norm(
            [self.size],
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn new(s: &Scope, c: &BertConfig) -> Self {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let attention = s.sub("attention");
        let this = attention.sub("self");
        let out = attention.sub("output");
        Layer {
            query: Linear::new(&this.sub("query"), h, h),
            key: Linear::new(&this.sub("key"), h, h),
            value: Linear::new(&this.sub("value"), h, h),
            attention_output: Linear::new(&out.sub("dense"), h, h),
            attention_norm: LayerNorm::new(&out.sub("LayerNorm"), h, c.layer_norm_eps),
            intermediate: Linear::new(&s.sub("intermediate").sub("dense"), h, i),
            output: Linear::new(&s.sub("output").sub("dense"), i, h),
            output_norm: LayerNorm::new(&s.sub("output").sub("LayerNorm"), h, c.layer_norm_eps),
        }
    }
}

pub struct Bert {
    pub config: BertConfig,
    vs: nn::VarStore,
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    token_type_embeddings: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    pooler: Linear,
    classifier: Linear,
    activation: &'static str,
    pub pooler_source: PoolerSource,
    /// Skip pad tokens in a masked batch (see `encode`); off reproduces the reference's fixed-shape compute.
    pub skip_padding: bool,
    /// How the matrix products (linear layers and attention) compute. Parameters, embeddings, LayerNorm, the
    /// residual stream and the loss stay fp32 whatever it is.
    pub compute: Compute,
    /// Draws the training step's dropout masks; [`Bert::reseed_dropout`] starts each step's.
    dropout: Dropout,
}

/// How the matrix products compute: `--precision` and, for bf16, `--bf16-kernels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Compute {
    Fp32,
    /// bf16 operands in libtorch's bf16 kernels (fp32 accumulation), bf16 results.
    Bf16,
    /// The same roundings in fp32 kernels: operands and results rounded to bf16 and held in fp32. A product of two
    /// bf16 values is exact in fp32, so this differs from [`Compute::Bf16`] only in summation order; on a CPU
    /// without native bf16 it runs at fp32 speed, where libtorch's bf16 matrix product is a scalar reference loop.
    Bf16RoundedFp32,
}

impl Compute {
    fn operand(self, t: &Tensor) -> Tensor {
        match self {
            Compute::Fp32 => t.shallow_clone(),
            Compute::Bf16 => t.to_kind(Kind::BFloat16),
            Compute::Bf16RoundedFp32 => t.to_kind(Kind::BFloat16).to_kind(Kind::Float),
        }
    }

    fn result(self, t: Tensor) -> Tensor {
        match self {
            Compute::Fp32 | Compute::Bf16 => t,
            Compute::Bf16RoundedFp32 => t.to_kind(Kind::BFloat16).to_kind(Kind::Float),
        }
    }
}

/// Scaled dot-product attention of `[batch, heads, seq, head_dim]` queries, keys and values; `mask` is
/// `[batch, 1, 1, seq]`, true for the keys that take part. With dropout on the CPU it is written out as libtorch's
/// own math path (which is what `scaled_dot_product_attention` runs under dropout there: bf16 operands computed
/// in fp32, the result in their kind), with [`Dropout`]'s mask on the probabilities. Otherwise libtorch's fused
/// kernels, which cannot take an outside mask.
fn attention(
    dropout_masks: &Dropout,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    dropout: f64,
) -> Tensor {
    if dropout == 0.0 || q.device() != Device::Cpu {
        return Tensor::scaled_dot_product_attention(q, k, v, mask, dropout, false, None, false);
    }
    let kind = q.kind();
    let head_dim = q.size()[3] as f64;
    // The math path's scaling: the square root of 1/√d on each side, as libtorch does it.
    let scale = head_dim.sqrt().recip().sqrt();
    let q = q.to_kind(Kind::Float) * scale;
    let k = k.to_kind(Kind::Float) * scale;
    let scores = q.matmul(&k.transpose(-2, -1));
    let scores = match mask {
        Some(mask) => scores.masked_fill(&mask.logical_not(), f64::NEG_INFINITY),
        None => scores,
    };
    let probs = dropout_masks.apply(&scores.softmax(-1, Kind::Float), dropout, true);
    probs.matmul(&v.to_kind(Kind::Float)).to_kind(kind)
}

/// Formats other than safetensors that a Hugging Face model directory may hold instead.
const UNSUPPORTED_WEIGHTS: [&str; 4] = [
    "pytorch_model.bin",
    "tf_model.h5",
    "flax_model.msgpack",
    "model.safetensors.index.json",
];

/// The safetensors file of a model directory, or an error saying what to do with what is there.
pub fn weights_path(model_dir: &Path) -> Result<std::path::PathBuf> {
    if !model_dir.is_dir() {
        bail!("model directory {} does not exist", model_dir.display());
    }
    let path = model_dir.join("model.safetensors");
    if path.is_file() {
        return Ok(path);
    }
    if let Some(found) = UNSUPPORTED_WEIGHTS
        .iter()
        .find(|f| model_dir.join(f).exists())
    {
        bail!(
            "{} has {found} but no model.safetensors; only single-file safetensors checkpoints are supported. \
             Convert it, e.g. in Python: `from transformers import AutoModel; \
             AutoModel.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True, max_shard_size=\"100GB\")`",
            model_dir.display()
        );
    }
    bail!("{} has no model.safetensors", model_dir.display());
}

impl Bert {
    /// Builds the model on `device` from `model_dir` (config.json + model.safetensors). The classification head (and
    /// the pooler when the checkpoint lacks one) is initialised from `wi_seed`.
    pub fn load(model_dir: &Path, device: Device, wi_seed: u64, compute: Compute) -> Result<Bert> {
        let weights = weights_path(model_dir)?;
        let config = BertConfig::load(model_dir)?;
        let activation = config.activation()?;
        let vs = nn::VarStore::new(device);
        let root = Scope {
            path: vs.root(),
            name: String::new(),
        };
        let c = &config;
        let emb = root.sub("embeddings");
        let word_embeddings = emb
            .sub("word_embeddings")
            .param("weight", &[c.vocab_size, c.hidden_size]);
        let position_embeddings = emb
            .sub("position_embeddings")
            .param("weight", &[c.max_position_embeddings, c.hidden_size]);
        let token_type_embeddings = emb
            .sub("token_type_embeddings")
            .param("weight", &[c.type_vocab_size, c.hidden_size]);
        let embedding_norm = LayerNorm::new(&emb.sub("LayerNorm"), c.hidden_size, c.layer_norm_eps);
        let encoder = root.sub("encoder").sub("layer");
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::new(&encoder.sub(&i.to_string()), c))
            .collect();
        let pooler = Linear::new(
            &root.sub("pooler").sub("dense"),
            c.hidden_size,
            c.hidden_size,
        );
        let classifier = Linear::new(&root.sub("classifier"), c.hidden_size, NUM_LABELS);
        let mut model = Bert {
            config,
            vs,
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embedding_norm,
            layers,
            pooler,
            classifier,
            activation,
            pooler_source: PoolerSource::Checkpoint,
            skip_padding: true,
            compute,
            dropout: Dropout::default(),
        };
        model.pooler_source = model.load_weights(&weights)?;
        model.init_head(wi_seed);
        Ok(model)
    }

    /// Copies every encoder/pooler parameter from the checkpoint, accepting names with or without the `bert.` prefix
    /// and the old `gamma`/`beta` LayerNorm names. The checkpoint's own classifier, if any, is ignored: the head is
    /// the WI seed's.
    fn load_weights(&self, path: &Path) -> Result<PoolerSource> {
        let file: HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .into_iter()
            .collect();
        let prefix = if file.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let mut pooler = PoolerSource::Checkpoint;
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut var) in vars {
            if name.starts_with("classifier.") {
                continue;
            }
            let mut candidates = vec![format!("{prefix}{name}")];
            if let Some(stem) = name.strip_suffix("LayerNorm.weight") {
                candidates.push(format!("{prefix}{stem}LayerNorm.gamma"));
            } else if let Some(stem) = name.strip_suffix("LayerNorm.bias") {
                candidates.push(format!("{prefix}{stem}LayerNorm.beta"));
            }
            let Some(src) = candidates.iter().find_map(|c| file.get(c)) else {
                if name.starts_with("pooler.") {
                    pooler = PoolerSource::WiSeed;
                    continue;
                }
                bail!(
                    "{}: tensor {} is missing (the checkpoint has {} tensors, e.g. {:?})",
                    path.display(),
                    candidates[0],
                    file.len(),
                    file.keys().take(3).collect::<Vec<_>>()
                );
            };
            if src.size() != var.size() {
                bail!(
                    "{}: tensor {} has shape {:?} but config.json implies {:?}",
                    path.display(),
                    candidates[0],
                    src.size(),
                    var.size()
                );
            }
            tch::no_grad(|| var.copy_(&src.to_kind(Kind::Float)));
        }
        if pooler == PoolerSource::WiSeed
            && ["pooler.dense.weight", "pooler.dense.bias"]
                .iter()
                .any(|n| file.contains_key(&format!("{prefix}{n}")))
        {
            bail!(
                "{}: the checkpoint has only part of the pooler",
                path.display()
            );
        }
        Ok(pooler)
    }

    fn init_head(&mut self, wi_seed: u64) {
        let h = self.config.hidden_size as usize;
        let std = self.config.initializer_range;
        let set = |dst: &mut Tensor, values: Vec<f32>, dims: &[i64]| {
            let src = Tensor::from_slice(&values).view(dims);
            tch::no_grad(|| dst.copy_(&src));
        };
        set(
            &mut self.classifier.weight,
            seeds::head_init(wi_seed, NUM_LABELS as usize, h, std),
            &[NUM_LABELS, h as i64],
        );
        tch::no_grad(|| {
            let _ = self.classifier.bias.zero_();
        });
        if self.pooler_source == PoolerSource::WiSeed {
            set(
                &mut self.pooler.weight,
                seeds::pooler_init(wi_seed, h, std),
                &[h as i64, h as i64],
            );
            tch::no_grad(|| {
                let _ = self.pooler.bias.zero_();
            });
        }
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The classification head's weight as it is now (row-major), for digests and tests.
    pub fn head_weight(&self) -> Vec<f32> {
        let w = self.classifier.weight.to_device(Device::Cpu).flatten(0, -1);
        Vec::<f32>::try_from(&w).expect("the head weight is f32")
    }

    /// Runs the encoder and pooler. `ids`/`token_types` are `[batch, seq]` int64; `mask` is `[batch, seq]` with 1 for
    /// real tokens, or `None` when the batch has no padding. Returns `(last hidden state, pooled output)`.
    pub fn encode(
        &self,
        ids: &Tensor,
        token_types: &Tensor,
        mask: Option<&Tensor>,
        train: bool,
    ) -> (Tensor, Tensor) {
        let c = &self.config;
        let cm = self.compute;
        let (b, s) = ids.size2().expect("ids are [batch, seq]");
        let positions = Tensor::arange(s, (Kind::Int64, ids.device())).unsqueeze(0);
        // padding_idx only changes the backward pass: HF's embedding gives the PAD row no gradient.
        let embeddings =
            Tensor::embedding(&self.word_embeddings, ids, c.pad_token_id, false, false)
                + Tensor::embedding(&self.position_embeddings, &positions, -1, false, false)
                + Tensor::embedding(&self.token_type_embeddings, token_types, -1, false, false);
        let h = c.hidden_size;
        // Packed: only the real tokens go through the embeddings' norm, the projections and the feed-forward
        // layers (nearly all the compute); attention scatters them back to [batch, seq]. Pad positions never
        // influence real ones (they are masked keys), so this changes no result beyond float rounding.
        let real = mask
            .filter(|_| self.skip_padding)
            .map(|m| m.reshape([b * s]).nonzero().squeeze_dim(1));
        let embeddings = match &real {
            Some(real) => embeddings.view([b * s, h]).index_select(0, real),
            None => embeddings,
        };
        let dropout = |t: &Tensor, p: f64| self.dropout.apply(t, p, train);
        let mut xs = dropout(
            &self.embedding_norm.forward(&embeddings),
            c.hidden_dropout_prob,
        );
        let unpack_width = |t: &Tensor, width: i64| match &real {
            Some(real) => Tensor::zeros([b * s, width], (t.kind(), t.device()))
                .index_copy(0, real, t)
                .view([b, s, width]),
            None => t.shallow_clone(),
        };
        let unpack = |t: &Tensor| unpack_width(t, h);
        let unpack3 = |t: &Tensor| unpack_width(t, 3 * h);
        let attention_mask = mask.map(|m| m.to_kind(Kind::Bool).view([b, 1, 1, s]));
        let heads = c.num_attention_heads;
        let head_dim = h / heads;
        let attention_dropout = if train {
            c.attention_probs_dropout_prob
        } else {
            0.0
        };
        for layer in &self.layers {
            // One [h, 3h] product instead of three [h, h] ones, and one scatter.
            let weight = Tensor::cat(
                &[&layer.query.weight, &layer.key.weight, &layer.value.weight],
                0,
            );
            let bias = Tensor::cat(&[&layer.query.bias, &layer.key.bias, &layer.value.bias], 0);
            let qkv = cm.result(
                cm.operand(&xs)
                    .linear(&cm.operand(&weight), Some(&cm.operand(&bias))),
            );
            let qkv = unpack3(&qkv)
                .view([b, s, 3, heads, head_dim])
                .permute([2, 0, 3, 1, 4]);
            let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
            let context = cm
                .result(attention(
                    &self.dropout,
                    &q,
                    &k,
                    &v,
                    attention_mask.as_ref(),
                    attention_dropout,
                ))
                .transpose(1, 2)
                .contiguous();
            let context = match &real {
                Some(real) => context.view([b * s, h]).index_select(0, real),
                None => context.view([b, s, h]),
            };
            // A bf16 product plus the fp32 residual is fp32: the residual stream never leaves fp32.
            let attended = layer.attention_norm.forward(
                &(dropout(
                    &layer.attention_output.forward(&context, cm),
                    c.hidden_dropout_prob,
                ) + &xs),
            );
            let inner = layer
                .intermediate
                .forward(&attended, cm)
                .gelu(self.activation);
            xs = layer.output_norm.forward(
                &(dropout(&layer.output.forward(&inner, cm), c.hidden_dropout_prob) + &attended),
            );
        }
        // Pad positions of the returned hidden state are zeros when packed.
        let xs = unpack(&xs);
        let pooled = self.pooler.forward(&xs.select(1, 0), cm).tanh();
        (xs, pooled)
    }

    /// Starts an optimizer step's dropout masks: they depend on `seed` and their order in the step alone.
    pub fn reseed_dropout(&self, seed: i64) {
        self.dropout.reseed(seed);
    }

    /// Class logits `[batch, NUM_LABELS]`, fp32 whatever the precision (the loss is computed in fp32).
    pub fn logits(
        &self,
        ids: &Tensor,
        token_types: &Tensor,
        mask: Option<&Tensor>,
        train: bool,
    ) -> Tensor {
        let (_, pooled) = self.encode(ids, token_types, mask, train);
        self.classifier
            .forward(
                &self
                    .dropout
                    .apply(&pooled, self.config.head_dropout(), train),
                self.compute,
            )
            .to_kind(Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_decay_skips_biases_and_layer_norm_weights() {
        assert!(decays("encoder.layer.0.attention.self.query.weight"));
        assert!(decays("embeddings.word_embeddings.weight"));
        assert!(decays("classifier.weight"));
        assert!(!decays("encoder.layer.0.output.dense.bias"));
        assert!(!decays("encoder.layer.3.attention.output.LayerNorm.weight"));
        assert!(!decays("embeddings.LayerNorm.bias"));
    }

    /// The attention written out for dropout against libtorch's math path given the same dropout mask (its
    /// `dropout_mask` argument exists for such checks), with a key padding mask, in fp32 and bf16.
    #[test]
    fn written_out_attention_is_libtorchs_math_path_with_our_mask() {
        tch::manual_seed(3);
        let (b, heads, s, d) = (3, 4, 10, 8);
        let lengths = Tensor::from_slice(&[10i64, 7, 4]);
        let mask = Tensor::arange(s, (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .lt_tensor(&lengths.unsqueeze(1))
            .view([b, 1, 1, s]);
        let p = 0.3;
        for kind in [Kind::Float, Kind::BFloat16] {
            let [q, k, v] = [0, 1, 2].map(|_| Tensor::randn([b, heads, s, d], (kind, Device::Cpu)));
            let masks = Dropout::default();
            masks.reseed(11);
            let ours = attention(&masks, &q, &k, &v, Some(&mask), p);
            assert_eq!(ours.kind(), kind);
            // The first mask drawn after a reseed is mask number 0 of its seed.
            let keep = crate::dropout::keep_mask(&mut Vec::new(), 11, 0, &[b, heads, s, s], p, 1);
            // Called directly, the math path takes an additive mask (the public function converts a bool one).
            let additive = Tensor::zeros([b, 1, 1, s], (kind, Device::Cpu))
                .masked_fill(&mask.logical_not(), f64::NEG_INFINITY);
            let (reference, _) = Tensor::internal_scaled_dot_product_attention_math(
                &q,
                &k,
                &v,
                Some(&additive),
                p,
                false,
                Some(&keep),
                None,
                false,
            );
            let diff = (ours.to_kind(Kind::Float) - reference.to_kind(Kind::Float))
                .abs()
                .max()
                .double_value(&[]);
            // bf16: the two round the scaled products at different points, within a bf16 step.
            let tolerance = if kind == Kind::Float { 1e-5 } else { 2e-2 };
            assert!(diff < tolerance, "{kind:?}: differs by {diff}");
        }
    }
}
