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
        let dropouts = [
            ("hidden_dropout_prob", Some(self.hidden_dropout_prob)),
            (
                "attention_probs_dropout_prob",
                Some(self.attention_probs_dropout_prob),
            ),
            ("classifier_dropout", self.classifier_dropout),
        ];
        for (name, p) in dropouts {
            if let Some(p) = p
                && !(0.0..1.0).contains(&p)
            {
                bail!("{name} {p} is not a dropout probability (at least 0, below 1)");
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn minilm(change: impl FnOnce(&mut serde_json::Value)) -> Result<()> {
        let mut json = serde_json::json!({
            "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "hidden_size": 384, "intermediate_size": 1536, "layer_norm_eps": 1e-12,
            "max_position_embeddings": 512, "num_attention_heads": 12, "num_hidden_layers": 6,
            "type_vocab_size": 2, "vocab_size": 30522
        });
        change(&mut json);
        serde_json::from_value::<BertConfig>(json)?.validate()
    }

    #[test]
    fn dropout_probabilities_must_be_below_1() {
        assert!(minilm(|_| {}).is_ok());
        assert!(minilm(|c| c["hidden_dropout_prob"] = 0.0.into()).is_ok());
        let cases = [
            ("attention_probs_dropout_prob", 1.0),
            ("hidden_dropout_prob", -0.1),
            ("classifier_dropout", 1.5),
        ];
        for (field, p) in cases {
            let e = minilm(|c| c[field] = p.into()).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("{field} {p} is not a dropout probability (at least 0, below 1)")
            );
        }
    }
}
