//! AdamW as HF's run_glue sets it up, written out in tensor operations rather than taken from libtorch's C++
//! optimizer: a checkpoint must hold the moment estimates, and tch gives no access to the C++ optimizer's state.
//! The update is libtorch's `torch::optim::AdamW` step, operation for operation.

use crate::model::decays;
use anyhow::{Result, bail};
use std::collections::HashMap;
use tch::{Kind, Tensor, nn};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;

struct Param {
    name: String,
    tensor: Tensor,
    weight_decay: f64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// torch's AdamW (β 0.9/0.999, decoupled weight decay) over every variable of a var store, with weight decay only
/// for the parameters [`decays`] names (not biases and LayerNorm weights).
pub struct AdamW {
    params: Vec<Param>,
    eps: f64,
    /// Optimizer steps taken; the bias corrections depend on it.
    pub steps: u64,
}

impl AdamW {
    pub fn new(vs: &nn::VarStore, weight_decay: f64, eps: f64) -> AdamW {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        // A fixed order: the checkpoint's tensors and the clipping norm's sum do not depend on a hash map.
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, tensor)| Param {
                weight_decay: if decays(&name) { weight_decay } else { 0.0 },
                exp_avg: tensor.zeros_like(),
                exp_avg_sq: tensor.zeros_like(),
                name,
                tensor,
            })
            .collect();
        AdamW {
            params,
            eps,
            steps: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.tensor.zero_grad();
        }
    }

    /// Scales the gradients so that their global L2 norm is at most `max` (torch's `clip_grad_norm_`).
    pub fn clip_grad_norm(&self, max: f64) {
        tch::no_grad(|| {
            let norms: Vec<Tensor> = self
                .params
                .iter()
                .map(|p| p.tensor.grad())
                .filter(|g| g.defined())
                .map(|g| g.norm())
                .collect();
            if norms.is_empty() {
                return;
            }
            let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
            let coef = max / (total + 1e-6);
            if coef < 1.0 {
                for p in &self.params {
                    let mut g = p.tensor.grad();
                    if g.defined() {
                        let _ = g.g_mul_scalar_(coef);
                    }
                }
            }
        })
    }

    /// One update at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let correction1 = 1.0 - BETA1.powi(self.steps as i32);
        let correction2 = 1.0 - BETA2.powi(self.steps as i32);
        let step_size = lr / correction1;
        tch::no_grad(|| {
            for p in &mut self.params {
                let grad = p.tensor.grad();
                if !grad.defined() {
                    continue;
                }
                if p.weight_decay != 0.0 {
                    let _ = p.tensor.g_mul_scalar_(1.0 - lr * p.weight_decay);
                }
                // In place where torch has an in-place form, with one temporary for each of the two products:
                // the optimizer touches every parameter every step.
                let _ = p.exp_avg.lerp_(&grad, 1.0 - BETA1);
                let _ = p.exp_avg_sq.g_mul_scalar_(BETA2);
                let _ = p.exp_avg_sq.addcmul_(&grad, &(&grad * (1.0 - BETA2)));
                let mut denom = p.exp_avg_sq.sqrt();
                let _ = denom.g_div_scalar_(correction2.sqrt());
                let _ = denom.g_add_scalar_(self.eps);
                // p -= step_size · exp_avg / denom, as one addcdiv (warmup's first step has a step size of 0).
                if step_size != 0.0 {
                    let _ = denom.g_div_scalar_(-step_size);
                    let _ = p.tensor.addcdiv_(&p.exp_avg, &denom);
                }
            }
        })
    }

    /// The moment estimates, named `exp_avg.<param>` and `exp_avg_sq.<param>`, for a checkpoint.
    pub fn state(&self) -> Vec<(String, &Tensor)> {
        self.params
            .iter()
            .flat_map(|p| {
                [
                    (format!("exp_avg.{}", p.name), &p.exp_avg),
                    (format!("exp_avg_sq.{}", p.name), &p.exp_avg_sq),
                ]
            })
            .collect()
    }

    /// Restores what [`AdamW::state`] saved, after `steps` steps; every moment tensor must be there with its
    /// parameter's shape.
    pub fn load_state(&mut self, steps: u64, tensors: &HashMap<String, Tensor>) -> Result<()> {
        // Every tensor is checked before any is copied, so a refusal leaves the optimizer as it was.
        for p in &self.params {
            for key in [
                format!("exp_avg.{}", p.name),
                format!("exp_avg_sq.{}", p.name),
            ] {
                match tensors.get(&key) {
                    None => bail!("it has no tensor {key}"),
                    Some(src) if src.size() != p.tensor.size() || src.kind() != Kind::Float => {
                        bail!(
                            "tensor {key} is {:?} {:?}, the model needs {:?} {:?}",
                            src.kind(),
                            src.size(),
                            Kind::Float,
                            p.tensor.size()
                        )
                    }
                    Some(_) => {}
                }
            }
        }
        for p in &mut self.params {
            let exp_avg = &tensors[&format!("exp_avg.{}", p.name)];
            let exp_avg_sq = &tensors[&format!("exp_avg_sq.{}", p.name)];
            tch::no_grad(|| {
                p.exp_avg.copy_(exp_avg);
                p.exp_avg_sq.copy_(exp_avg_sq);
            });
        }
        self.steps = steps;
        Ok(())
    }
}
