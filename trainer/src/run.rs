//! One trial: load, train, evaluate, report.

use crate::cli::{Cli, DeviceChoice};
use crate::data::{self, Example};
use crate::model::{self, Bert, PoolerSource};
use crate::schedule::{self, LinearSchedule};
use crate::tokenize::{BertTokenizer, Encoded};
use crate::{config::BertConfig, metrics, optim, seeds};
use anyhow::{Context, Result, bail};
use seedsweep_crds::Metrics;
use seedsweep_crds::trainer::{EvalPoint, Outcome, TrialSummary};
use seedsweep_crds::trial_metrics::{Identity, TrialMetrics};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::Device;

/// What a run has produced so far; on any ending, including errors, the summary is built from it.
#[derive(Serialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    #[serde(skip)]
    pub total_steps: u64,
    #[serde(skip)]
    pub steps_done: u64,
    #[serde(skip)]
    pub majority_baseline: Metrics,
    #[serde(skip)]
    pub evals: Vec<EvalPoint>,
    pub task: String,
    pub device: String,
    pub dropout_seed: Option<u64>,
    pub pooler: Option<PoolerSource>,
    pub train_examples: usize,
    pub dev_examples: usize,
    /// Training examples processed, counting every epoch.
    pub examples_trained: usize,
    /// Training loss of every step, in order.
    pub train_loss: Vec<f32>,
    /// Wall time of every training step (forward, backward, optimizer), in seconds.
    pub step_seconds: Vec<f64>,
    /// Sequence length each step's batch was padded to.
    pub step_widths: Vec<usize>,
    /// Digest of each epoch's example order (DO seed) and of the head's initial weight (WI seed), so a run shows
    /// which of them it used.
    pub epoch_order_digests: Vec<String>,
    pub head_init_digest: Option<String>,
    /// Training examples per second over the whole run, evaluations excluded.
    pub train_examples_per_second: f64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    /// Peak resident memory (VmHWM) at the end of the run.
    pub peak_rss_bytes: Option<u64>,
}

/// The `--output` file: the contract's summary plus the run's details.
#[derive(Serialize)]
pub struct FullSummary<'a> {
    #[serde(flatten)]
    pub summary: &'a TrialSummary,
    #[serde(flatten)]
    pub details: &'a RunRecord,
}

impl RunRecord {
    pub fn summary(&self, id: &Identity, outcome: Outcome, reason: Option<String>) -> TrialSummary {
        TrialSummary {
            sweep: id.sweep.clone(),
            trial: id.trial.clone(),
            wi_seed: id.wi_seed,
            do_seed: id.do_seed,
            outcome,
            reason,
            steps_done: self.steps_done,
            total_steps: self.total_steps,
            majority_baseline: self.majority_baseline,
            final_metrics: match outcome {
                Outcome::Completed => self.evals.last().map(|e| e.metrics),
                _ => None,
            },
            evals: self.evals.clone(),
            dropped_evals: 0,
        }
    }
}

pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn pick_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => bail!(
            "--device cuda: libtorch sees no CUDA device (is the binary linked against libtorch_cuda.so, \
             see `ldd`, and is a GPU visible?)"
        ),
    }
}

fn tokenize(tokenizer: &BertTokenizer, examples: &[Example]) -> Result<Vec<Encoded>> {
    let texts: Vec<(&str, Option<&str>)> = examples
        .iter()
        .map(|e| (e.text_a.as_str(), e.text_b.as_deref()))
        .collect();
    tokenizer.encode_batch(&texts)
}

/// How a run ended when it did not fail.
pub struct Ending {
    pub outcome: Outcome,
    pub reason: Option<String>,
}

struct Dev {
    encoded: Vec<Encoded>,
    labels: Vec<i64>,
}

/// Predicts the dev set in eval mode without gradients, in the dev set's order. `None` when a stop was requested
/// part-way.
///
/// With dynamic padding the examples are batched by length (shortest first), so each batch pads to little more
/// than its own examples: the order of evaluation affects nothing but speed, unlike the training order, which the
/// data-order seed owns.
fn predict(
    model: &Bert,
    dev: &Dev,
    batch_size: usize,
    pad_id: i64,
    pad_to: Option<usize>,
    stop: &AtomicBool,
) -> Result<Option<Vec<i64>>> {
    let mut indices: Vec<usize> = (0..dev.encoded.len()).collect();
    if pad_to.is_none() {
        indices.sort_by_key(|&i| dev.encoded[i].ids.len());
    }
    let mut predictions = vec![0i64; indices.len()];
    for chunk in indices.chunks(batch_size) {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let batch = data::collate(
            &dev.encoded,
            &dev.labels,
            chunk,
            pad_id,
            pad_to,
            model.device(),
        );
        let logits = tch::no_grad(|| {
            model.logits(&batch.ids, &batch.token_types, batch.mask.as_ref(), false)
        });
        let argmax = logits.argmax(-1, false).to_device(Device::Cpu);
        let batch_predictions = Vec::<i64>::try_from(&argmax).context("reading predictions")?;
        for (&i, p) in chunk.iter().zip(batch_predictions) {
            predictions[i] = p;
        }
    }
    Ok(Some(predictions))
}

/// Runs a trial, filling `state` as it goes so that the caller can report whatever happened, errors included.
pub fn run(cli: &Cli, id: &Identity, stop: &AtomicBool, state: &mut RunRecord) -> Result<Ending> {
    state.task = cli.task.to_string();
    let metrics = Arc::new(TrialMetrics::new(id)?);
    let addr = metrics
        .serve(&cli.metrics_addr)
        .map_err(anyhow::Error::msg)?;
    eprintln!("metrics listening on http://{addr}/metrics");
    let ending = train(cli, id, stop, state, &metrics);
    metrics.done.set(1.0);
    state.train_seconds = state.step_seconds.iter().sum();
    if state.train_seconds > 0.0 {
        state.train_examples_per_second = state.examples_trained as f64 / state.train_seconds;
    }
    state.peak_rss_bytes = peak_rss_bytes();
    ending
}

fn train(
    cli: &Cli,
    id: &Identity,
    stop: &AtomicBool,
    state: &mut RunRecord,
    metrics: &TrialMetrics,
) -> Result<Ending> {
    let device = pick_device(cli.device)?;
    state.device = format!("{device:?}");
    if let Some(threads) = cli.threads {
        tch::set_num_threads(threads);
    }

    // Cheap checks first, so that bad input fails before the model is read.
    model::weights_path(&cli.model_dir)?;
    let config = BertConfig::load(&cli.model_dir)?;
    let max_len = cli.max_seq_length as usize;
    let tokenizer = BertTokenizer::load(&cli.model_dir, max_len, config.max_position_embeddings)?;
    let subset = |k: Option<u64>| k.map(|k| k as usize);
    let train = data::read_split(cli.task, &cli.data_dir, "train", subset(cli.train_subset))?;
    let dev = data::read_split(cli.task, &cli.data_dir, "dev", subset(cli.dev_subset))?;
    let train_encoded = tokenize(&tokenizer, &train)?;
    let train_labels: Vec<i64> = train.iter().map(|e| e.label).collect();
    let dev = Dev {
        encoded: tokenize(&tokenizer, &dev)?,
        labels: dev.iter().map(|e| e.label).collect(),
    };
    state.train_examples = train.len();
    state.dev_examples = dev.labels.len();

    let batch_size = cli.batch_size as usize;
    let steps_per_epoch = schedule::steps_per_epoch(train.len(), batch_size);
    state.total_steps = steps_per_epoch * cli.epochs;
    metrics.total_steps.set(state.total_steps as f64);
    state.majority_baseline = metrics::majority_baseline(&dev.labels);
    metrics.set_majority_baseline(&state.majority_baseline);

    let mut model = Bert::load(&cli.model_dir, device, id.wi_seed)?;
    // --pad-to-max is the reference's fixed-shape batch, pads computed like real tokens.
    model.skip_padding = !cli.pad_to_max;
    state.pooler = Some(model.pooler_source);
    if model.pooler_source == PoolerSource::WiSeed {
        eprintln!("the checkpoint has no pooler; initialised it from the WI seed");
    }
    state.head_init_digest = Some(seeds::digest(&model.head_weight(), |x: f32| {
        u64::from(x.to_bits())
    }));
    let mut opt = optim::adamw(
        model.var_store(),
        cli.learning_rate,
        cli.weight_decay,
        cli.adam_epsilon,
    )?;
    let lr_schedule = LinearSchedule::new(cli.learning_rate, cli.warmup_ratio, state.total_steps);
    let eval_at =
        seedsweep_crds::trainer::eval_steps(steps_per_epoch, cli.epochs, cli.evals_per_epoch);
    let pad_to = cli.pad_to_max.then_some(max_len);

    state.dropout_seed = seeds::dropout_seed(
        cli.dropout_seed_from,
        cli.dropout_seed,
        id.wi_seed,
        id.do_seed,
    );
    let torch_seed = state.dropout_seed.unwrap_or_else(|| {
        // Not reproducible on purpose (--dropout-seed-from none): any varying value will do.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    });
    // torch takes an i64; the bits are what matter.
    tch::manual_seed(torch_seed as i64);

    let mut window = (Instant::now(), 0usize);
    for epoch in 0..cli.epochs {
        metrics.epoch.set(epoch as f64);
        let order = seeds::epoch_order(id.do_seed, epoch, train.len());
        state
            .epoch_order_digests
            .push(seeds::digest(&order, |i: usize| i as u64));
        for chunk in order.chunks(batch_size) {
            if stop.load(Ordering::Relaxed) {
                return Ok(Ending {
                    outcome: Outcome::Terminated,
                    reason: Some(format!(
                        "stopped by a signal after {} steps",
                        state.steps_done
                    )),
                });
            }
            let step_start = Instant::now();
            let lr = lr_schedule.lr(state.steps_done);
            opt.set_lr(lr);
            let batch = data::collate(
                &train_encoded,
                &train_labels,
                chunk,
                tokenizer.pad_id,
                pad_to,
                device,
            );
            let logits = model.logits(&batch.ids, &batch.token_types, batch.mask.as_ref(), true);
            let loss = logits.cross_entropy_for_logits(&batch.labels);
            let loss_value = loss.double_value(&[]);
            if !loss_value.is_finite() {
                return Ok(Ending {
                    outcome: Outcome::Diverged,
                    reason: Some(format!(
                        "training loss became {loss_value} at step {}",
                        state.steps_done + 1
                    )),
                });
            }
            opt.zero_grad();
            loss.backward();
            if cli.max_grad_norm > 0.0 {
                opt.clip_grad_norm(cli.max_grad_norm);
            }
            opt.step();
            state.steps_done += 1;
            state.train_loss.push(loss_value as f32);
            state.step_seconds.push(step_start.elapsed().as_secs_f64());
            state.step_widths.push(batch.width);
            window.1 += batch.size;
            state.examples_trained += batch.size;

            let step = state.steps_done;
            metrics.step.set(step as f64);
            metrics.progress.set(step as f64 / state.total_steps as f64);
            metrics.train_loss.set(loss_value);
            metrics.learning_rate.set(lr);
            if step.is_multiple_of(cli.log_every) || step == state.total_steps {
                let rate = window.1 as f64 / window.0.elapsed().as_secs_f64();
                metrics.examples_per_second.set(rate);
                eprintln!(
                    "step {step}/{} epoch {epoch} loss {loss_value:.4} lr {lr:.3e} examples/s {rate:.1}",
                    state.total_steps
                );
                window = (Instant::now(), 0);
            }

            if eval_at.binary_search(&step).is_ok() {
                let eval_start = Instant::now();
                let Some(predictions) =
                    predict(&model, &dev, batch_size, tokenizer.pad_id, pad_to, stop)?
                else {
                    return Ok(Ending {
                        outcome: Outcome::Terminated,
                        reason: Some(format!(
                            "stopped by a signal after {step} steps, during an evaluation"
                        )),
                    });
                };
                let m = metrics::compute(&predictions, &dev.labels);
                let point = EvalPoint {
                    index: state.evals.len() as u32,
                    step,
                    progress: step as f64 / state.total_steps as f64,
                    metrics: m,
                };
                metrics.record_eval(point.index, point.step, point.progress, &m);
                eprintln!(
                    "eval {} at step {step}: accuracy {:.4} f1 {:.4} mcc {:.4} acc_and_f1 {:.4}",
                    point.index, m.accuracy, m.f1, m.mcc, m.acc_and_f1
                );
                state.evals.push(point);
                // The examples/s window should measure training only.
                let spent = eval_start.elapsed();
                state.eval_seconds += spent.as_secs_f64();
                window.0 += spent;
            }
        }
    }
    Ok(Ending {
        outcome: Outcome::Completed,
        reason: None,
    })
}
