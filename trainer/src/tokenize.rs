//! BERT tokenization of single sentences and sentence pairs: `[CLS] a [SEP]` / `[CLS] a [SEP] b [SEP]` with token
//! type ids, longest-first truncation to the max sequence length, never padded (batches pad themselves).

use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    EncodeInput, Model, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

/// One tokenized example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<i64>,
    pub token_types: Vec<i64>,
}

pub struct BertTokenizer {
    inner: Tokenizer,
    pub pad_id: i64,
    pub max_len: usize,
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(Some(value))
}

/// Lower-casing for the vocab.txt fallback: tokenizer_config.json's `do_lower_case`, then config.json's, then BERT's
/// default (true).
fn lower_case(model_dir: &Path) -> Result<bool> {
    for file in ["tokenizer_config.json", "config.json"] {
        if let Some(v) = read_json(&model_dir.join(file))?
            && let Some(lower) = v.get("do_lower_case").and_then(|x| x.as_bool())
        {
            return Ok(lower);
        }
    }
    Ok(true)
}

fn vocab_tokenizer(model_dir: &Path) -> Result<Tokenizer> {
    let vocab = model_dir.join("vocab.txt");
    let vocab_str = vocab
        .to_str()
        .ok_or_else(|| anyhow!("{} is not valid UTF-8", vocab.display()))?;
    let wordpiece = WordPiece::from_file(vocab_str)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| anyhow!("cannot load WordPiece vocabulary {}: {e}", vocab.display()))?;
    let id = |t: &str| {
        wordpiece
            .get_vocab()
            .get(t)
            .copied()
            .ok_or_else(|| anyhow!("{} has no {t} token", vocab.display()))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let mut tokenizer = Tokenizer::new(wordpiece);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(
            true,
            true,
            None,
            lower_case(model_dir)?,
        )))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), sep),
            ("[CLS]".into(), cls),
        )));
    Ok(tokenizer)
}

impl BertTokenizer {
    /// Loads `tokenizer.json` from `model_dir`, or builds a WordPiece tokenizer from `vocab.txt` when there is none.
    /// `max_position_embeddings` is the model's limit; a longer `max_len` is an error.
    pub fn load(model_dir: &Path, max_len: usize, max_position_embeddings: i64) -> Result<Self> {
        if max_len as i64 > max_position_embeddings {
            bail!(
                "--max-seq-length {max_len} exceeds the model's max_position_embeddings {max_position_embeddings} \
                 ({})",
                model_dir.join("config.json").display()
            );
        }
        if max_len < 3 {
            bail!("--max-seq-length {max_len} leaves no room for [CLS], a token and [SEP]");
        }
        let json = model_dir.join("tokenizer.json");
        let mut inner = if json.is_file() {
            Tokenizer::from_file(&json)
                .map_err(|e| anyhow!("cannot load {}: {e}", json.display()))?
        } else if model_dir.join("vocab.txt").is_file() {
            vocab_tokenizer(model_dir)?
        } else {
            bail!(
                "{} has neither tokenizer.json nor vocab.txt",
                model_dir.display()
            );
        };
        // tokenizer.json files often pad to a fixed length; batches are padded dynamically instead.
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| anyhow!("cannot set truncation: {e}"))?;
        let pad_id = inner.token_to_id("[PAD]").map_or(0, i64::from);
        Ok(BertTokenizer {
            inner,
            pad_id,
            max_len,
        })
    }

    pub fn encode(&self, a: &str, b: Option<&str>) -> Result<Encoded> {
        Ok(self.encode_batch(&[(a, b)])?.remove(0))
    }

    pub fn encode_batch(&self, texts: &[(&str, Option<&str>)]) -> Result<Vec<Encoded>> {
        let inputs: Vec<EncodeInput> = texts
            .iter()
            .map(|&(a, b)| match b {
                Some(b) => (a, b).into(),
                None => a.into(),
            })
            .collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| anyhow!("tokenization failed: {e}"))?;
        Ok(encodings
            .into_iter()
            .map(|e| Encoded {
                ids: e.get_ids().iter().map(|&x| i64::from(x)).collect(),
                token_types: e.get_type_ids().iter().map(|&x| i64::from(x)).collect(),
            })
            .collect())
    }
}
