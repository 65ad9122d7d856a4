//! AdamW as HF's run_glue sets it up.

use crate::model::{DECAY_GROUP, NO_DECAY_GROUP};
use anyhow::Result;
use tch::nn::{self, OptimizerConfig};

/// torch's AdamW (β 0.9/0.999, decoupled weight decay) over every variable of `vs`, with weight decay only for the
/// variables created in [`DECAY_GROUP`].
pub fn adamw(vs: &nn::VarStore, lr: f64, weight_decay: f64, eps: f64) -> Result<nn::Optimizer> {
    let mut opt = nn::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        wd: weight_decay,
        eps,
        amsgrad: false,
    }
    .build(vs, lr)?;
    opt.set_weight_decay_group(DECAY_GROUP, weight_decay);
    opt.set_weight_decay_group(NO_DECAY_GROUP, 0.0);
    Ok(opt)
}
