//! The subset of a Hugging Face BERT `config.json` the encoder needs.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::Path;

fn default_initializer_range() -> f64 {
    0.02
}

fn default_position_embedding_type() -> String {
    "absolute".into()
}

#[derive(Deserialize, Clone, Debug)]
pub struct BertConfig {
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    pub vocab_size: i64,
    pub max_position_embeddings: i64,
    pub type_vocab_size: i64,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    #[serde(default)]
    pub pad_token_id: i64,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    /// HF's `BertForSequenceClassification` uses this for the head's dropout and falls back to
    /// `hidden_dropout_prob` when it is null or absent.
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    /// Some configs carry the tokenizer's casing; used by the vocab.txt fallback.
    #[serde(default)]
    pub do_lower_case: Option<bool>,
}

impl BertConfig {
    pub fn load(model_dir: &Path) -> Result<Self> {
        let path = model_dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the model config {}", path.display()))?;
        let config: BertConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a BERT config", path.display()))?;
        config
            .validate()
            .with_context(|| format!("unsupported model config {}", path.display()))?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.hidden_size <= 0 || self.num_attention_heads <= 0 || self.num_hidden_layers <= 0 {
            bail!("hidden_size, num_attention_heads and num_hidden_layers must be positive");
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        if self.position_embedding_type != "absolute" {
            bail!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            );
        }
        self.activation()?;
        Ok(())
    }

    /// The `approximate` argument of torch's gelu for the configured activation.
    pub fn activation(&self) -> Result<&'static str> {
        match self.hidden_act.as_str() {
            "gelu" => Ok("none"),
            "gelu_new" | "gelu_pytorch_tanh" => Ok("tanh"),
            other => {
                bail!("hidden_act {other:?} is not supported (gelu, gelu_new, gelu_pytorch_tanh)")
            }
        }
    }

    pub fn head_dropout(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }
}
