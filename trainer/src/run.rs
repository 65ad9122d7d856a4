//! One trial: load, train, evaluate, report.

use crate::checkpoint::{self, RunKey};
use crate::cli::{Bf16Kernels, Cli, DeviceChoice};
use crate::data::{self, Example};
use crate::model::{self, Bert, Compute, PoolerSource};
use crate::schedule::{self, LinearSchedule};
use crate::tokenize::{BertTokenizer, Encoded};
use crate::{config::BertConfig, metrics, optim, seeds};
use anyhow::{Context, Result, bail};
use seedsweep_crds::Metrics;
use seedsweep_crds::sweep::Precision;
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
    /// `--precision`: fp32, or bf16 matrix products.
    pub precision: Precision,
    /// How the products computed: fp32, bf16 (native kernels) or bf16RoundedFp32 (`--bf16-kernels`).
    pub compute: Option<Compute>,
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
    /// The step this run resumed from (0: from the beginning); the losses and evaluations before it came from the
    /// checkpoint. (In the summary as the contract's `resumedFromStep`.)
    #[serde(skip)]
    pub resumed_from_step: u64,
    pub resumed_from: Option<std::path::PathBuf>,
    /// Checkpoints that were refused, each with the reason.
    pub resume_refused: Vec<String>,
    /// Checkpoints this run wrote.
    pub checkpoints: Vec<std::path::PathBuf>,
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
            resumed_from_step: self.resumed_from_step,
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

/// Whether this CPU multiplies bf16 natively (Linux's flag names); anywhere else it is taken not to.
fn cpu_has_native_bf16() -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return false;
    };
    let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    flags
        .split_whitespace()
        .any(|f| f == "avx512_bf16" || f == "amx_bf16")
}

fn pick_compute(precision: Precision, kernels: Bf16Kernels, device: Device) -> Compute {
    match (precision, kernels) {
        (Precision::Fp32, _) => Compute::Fp32,
        (Precision::Bf16, Bf16Kernels::Native) => Compute::Bf16,
        (Precision::Bf16, Bf16Kernels::Fp32) => Compute::Bf16RoundedFp32,
        (Precision::Bf16, Bf16Kernels::Auto) if device.is_cuda() || cpu_has_native_bf16() => {
            Compute::Bf16
        }
        (Precision::Bf16, Bf16Kernels::Auto) => Compute::Bf16RoundedFp32,
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
    state.precision = cli.precision;
    let compute = pick_compute(cli.precision, cli.bf16_kernels, device);
    state.compute = Some(compute);
    if compute == Compute::Bf16 && device == Device::Cpu && !cpu_has_native_bf16() {
        eprintln!(
            "warning: bf16 kernels on a CPU without avx512_bf16 or amx_bf16 are many times slower than fp32 \
             (--bf16-kernels fp32 computes the same roundings at fp32 speed)"
        );
    }
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
    state.majority_baseline = metrics::majority_baseline(&dev.labels);
    metrics.set_majority_baseline(&state.majority_baseline);

    let mut model = Bert::load(&cli.model_dir, device, id.wi_seed, compute)?;
    // --pad-to-max is the reference's fixed-shape batch, pads computed like real tokens.
    model.skip_padding = !cli.pad_to_max;
    state.pooler = Some(model.pooler_source);
    if model.pooler_source == PoolerSource::WiSeed {
        eprintln!("the checkpoint has no pooler; initialised it from the WI seed");
    }
    state.head_init_digest = Some(seeds::digest(&model.head_weight(), |x: f32| {
        u64::from(x.to_bits())
    }));
    let mut opt = optim::AdamW::new(model.var_store(), cli.weight_decay, cli.adam_epsilon);
    let lr_schedule = LinearSchedule::new(cli.learning_rate, cli.warmup_ratio, state.total_steps);
    let eval_at =
        seedsweep_crds::trainer::eval_steps(steps_per_epoch, cli.epochs, cli.evals_per_epoch);
    let rung_steps = seedsweep_crds::trainer::rung_steps(&eval_at, state.total_steps, &cli.rungs);
    let pad_to = cli.pad_to_max.then_some(max_len);

    state.dropout_seed = seeds::dropout_seed(
        cli.dropout_seed_from,
        cli.dropout_seed,
        id.wi_seed,
        id.do_seed,
    );
    let mut dropout_base = state.dropout_seed.unwrap_or_else(|| {
        // Not reproducible on purpose (--dropout-seed-from none): any varying value will do.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    });

    // Held for the whole run: a Job's next pod waits here until this one has written its last checkpoint.
    let _lock = match &cli.checkpoint_dir {
        Some(dir) => Some(checkpoint::lock_dir(
            dir,
            std::time::Duration::from_secs(cli.checkpoint_lock_timeout),
        )?),
        None => None,
    };
    let key = if cli.checkpoint_dir.is_some() || cli.resume_from.is_some() {
        Some(run_key(cli, id, state)?)
    } else {
        None
    };
    if let (Some(from), Some(key)) = (&cli.resume_from, &key)
        && let Some(loaded) = resume(from, key, &mut model, &mut opt, state)?
    {
        dropout_base = loaded.dropout_base_seed;
        for e in &state.evals {
            metrics.record_eval(e.index, e.step, e.progress, &e.metrics);
        }
        metrics.step.set(state.steps_done as f64);
        metrics
            .progress
            .set(state.steps_done as f64 / state.total_steps as f64);
        metrics.resumed_from_step.set(state.steps_done as f64);
    }
    // Served once the start is known: a watcher reads the step and resumed-from step only with a total.
    metrics.total_steps.set(state.total_steps as f64);
    let mut checkpointed = state.resumed_from_step;
    let save = |state: &mut RunRecord, model: &Bert, opt: &optim::AdamW| -> Result<()> {
        let (Some(dir), Some(key)) = (&cli.checkpoint_dir, &key) else {
            return Ok(());
        };
        let started = Instant::now();
        let path = save_checkpoint(dir, key, dropout_base, state, model, opt)?;
        eprintln!(
            "checkpoint at step {} written to {} in {:.1} s",
            state.steps_done,
            path.display(),
            started.elapsed().as_secs_f64()
        );
        state.checkpoints.push(path);
        Ok(())
    };

    let eval = Evaluation {
        model: &model,
        dev: &dev,
        batch_size,
        pad_id: tokenizer.pad_id,
        pad_to,
        stop,
        metrics,
    };
    // A checkpoint written on a stop that interrupted an evaluation: make it before training on.
    let step = state.steps_done;
    if eval_at.binary_search(&step).is_ok() && state.evals.last().is_none_or(|e| e.step < step) {
        let eval_start = Instant::now();
        let finished = evaluate(&eval, state)?;
        state.eval_seconds += eval_start.elapsed().as_secs_f64();
        if !finished {
            return Ok(Ending {
                outcome: Outcome::Terminated,
                reason: Some(format!(
                    "stopped by a signal after {step} steps, during an evaluation"
                )),
            });
        }
        if rung_steps.binary_search(&step).is_ok() && step < state.total_steps {
            save(state, &model, &opt)?;
            checkpointed = step;
            if cli.pause_at_rungs {
                return Ok(paused_at(step));
            }
        }
    }

    let mut window = (Instant::now(), 0usize);
    let first_epoch = state.steps_done / steps_per_epoch;
    for epoch in first_epoch..cli.epochs {
        metrics.epoch.set(epoch as f64);
        let order = seeds::epoch_order(id.do_seed, epoch, train.len());
        // A run resumed mid-epoch has this epoch's digest from its checkpoint.
        if state.epoch_order_digests.len() as u64 <= epoch {
            state
                .epoch_order_digests
                .push(seeds::digest(&order, |i: usize| i as u64));
        }
        let done_in_epoch = (state.steps_done - epoch * steps_per_epoch) as usize;
        for chunk in order.chunks(batch_size).skip(done_in_epoch) {
            if stop.load(Ordering::Relaxed) {
                if cli.checkpoint_on_stop && state.steps_done > checkpointed {
                    save(state, &model, &opt)?;
                }
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
            model.reseed_dropout(seeds::dropout_step_seed(dropout_base, state.steps_done));
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
            opt.step(lr);
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
                let finished = evaluate(&eval, state)?;
                // The examples/s window should measure training only.
                let spent = eval_start.elapsed();
                state.eval_seconds += spent.as_secs_f64();
                window.0 += spent;
                if !finished {
                    // The checkpoint lacks this step's evaluation; a run resumed from it evaluates first.
                    if cli.checkpoint_on_stop {
                        save(state, &model, &opt)?;
                    }
                    return Ok(Ending {
                        outcome: Outcome::Terminated,
                        reason: Some(format!(
                            "stopped by a signal after {step} steps, during an evaluation"
                        )),
                    });
                }
            }
            if rung_steps.binary_search(&step).is_ok() && step < state.total_steps {
                let paused = Instant::now();
                save(state, &model, &opt)?;
                checkpointed = step;
                window.0 += paused.elapsed();
                if cli.pause_at_rungs {
                    return Ok(paused_at(step));
                }
            }
        }
    }
    Ok(Ending {
        outcome: Outcome::Completed,
        reason: None,
    })
}

fn paused_at(step: u64) -> Ending {
    Ending {
        outcome: Outcome::Paused,
        reason: Some(format!(
            "paused at the rung after step {step}; --resume-from continues it"
        )),
    }
}

/// What evaluating the dev set needs besides the run's record.
struct Evaluation<'a> {
    model: &'a Bert,
    dev: &'a Dev,
    batch_size: usize,
    pad_id: i64,
    pad_to: Option<usize>,
    stop: &'a AtomicBool,
    metrics: &'a TrialMetrics,
}

/// Evaluates at the step done and records it; false when a stop was requested part-way (nothing recorded).
fn evaluate(e: &Evaluation, state: &mut RunRecord) -> Result<bool> {
    let Some(predictions) = predict(e.model, e.dev, e.batch_size, e.pad_id, e.pad_to, e.stop)?
    else {
        return Ok(false);
    };
    let step = state.steps_done;
    let m = metrics::compute(&predictions, &e.dev.labels);
    let point = EvalPoint {
        index: state.evals.len() as u32,
        step,
        progress: step as f64 / state.total_steps as f64,
        metrics: m,
    };
    e.metrics
        .record_eval(point.index, point.step, point.progress, &m);
    eprintln!(
        "eval {} at step {step}: accuracy {:.4} f1 {:.4} mcc {:.4} acc_and_f1 {:.4}",
        point.index, m.accuracy, m.f1, m.mcc, m.acc_and_f1
    );
    state.evals.push(point);
    Ok(true)
}

/// This run's identity for checkpoints: the model and data by content, the seeds and every training setting.
fn run_key(cli: &Cli, id: &Identity, state: &RunRecord) -> Result<RunKey> {
    Ok(RunKey {
        model_sha256: checkpoint::file_sha256(&model::weights_path(&cli.model_dir)?)?,
        train_sha256: checkpoint::file_sha256(&cli.data_dir.join("train.tsv"))?,
        dev_sha256: checkpoint::file_sha256(&cli.data_dir.join("dev.tsv"))?,
        task: cli.task.to_string(),
        wi_seed: id.wi_seed,
        do_seed: id.do_seed,
        dropout_seed: state.dropout_seed,
        epochs: cli.epochs,
        batch_size: cli.batch_size,
        learning_rate: cli.learning_rate,
        max_seq_length: cli.max_seq_length,
        warmup_ratio: cli.warmup_ratio,
        weight_decay: cli.weight_decay,
        adam_epsilon: cli.adam_epsilon,
        max_grad_norm: cli.max_grad_norm,
        evals_per_epoch: cli.evals_per_epoch,
        train_subset: cli.train_subset,
        dev_subset: cli.dev_subset,
        pad_to_max: cli.pad_to_max,
        precision: cli.precision,
        total_steps: state.total_steps,
    })
}

const MODEL_PREFIX: &str = "model.";

fn save_checkpoint(
    dir: &std::path::Path,
    key: &RunKey,
    dropout_base_seed: u64,
    state: &RunRecord,
    model: &Bert,
    opt: &optim::AdamW,
) -> Result<std::path::PathBuf> {
    let params: Vec<(String, tch::Tensor)> = model.var_store().variables().into_iter().collect();
    let mut tensors: Vec<(String, &tch::Tensor)> = params
        .iter()
        .map(|(name, t)| (format!("{MODEL_PREFIX}{name}"), t))
        .collect();
    tensors.extend(opt.state());
    let meta = checkpoint::Meta {
        format_version: checkpoint::FORMAT_VERSION,
        key: key.clone(),
        step: state.steps_done,
        dropout_base_seed,
        evals: state.evals.clone(),
        train_loss: state.train_loss.clone(),
        step_widths: state.step_widths.clone(),
        epoch_order_digests: state.epoch_order_digests.clone(),
        examples_trained: state.examples_trained,
        data_sha256: String::new(),
    };
    checkpoint::save(dir, meta, &tensors)
        .with_context(|| format!("writing a checkpoint in {}", dir.display()))
}

/// Restores the newest usable checkpoint at `from` (a file, or a directory of them) into the model, the optimizer
/// and the record; `None` when there is none, the refusals noted in the record.
fn resume(
    from: &std::path::Path,
    key: &RunKey,
    model: &mut Bert,
    opt: &mut optim::AdamW,
    state: &mut RunRecord,
) -> Result<Option<checkpoint::Meta>> {
    let candidates = if from.is_dir() {
        checkpoint::list(from)?
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    } else if from.exists() {
        vec![from.to_path_buf()]
    } else {
        Vec::new()
    };
    if candidates.is_empty() {
        eprintln!(
            "no checkpoint at {}: training from the beginning",
            from.display()
        );
    }
    for path in candidates {
        let restored = checkpoint::load(&path, key)
            .and_then(|loaded| restore(&loaded, model, opt).map(|()| loaded));
        match restored {
            Ok(loaded) => {
                let meta = loaded.meta;
                eprintln!(
                    "resumed from {} at step {} of {}",
                    path.display(),
                    meta.step,
                    state.total_steps
                );
                state.steps_done = meta.step;
                state.resumed_from_step = meta.step;
                state.resumed_from = Some(path);
                state.evals = meta.evals.clone();
                state.train_loss = meta.train_loss.clone();
                state.step_widths = meta.step_widths.clone();
                state.epoch_order_digests = meta.epoch_order_digests.clone();
                state.examples_trained = meta.examples_trained;
                return Ok(Some(meta));
            }
            Err(e) => {
                let why = format!("{}: {e:#}", path.display());
                eprintln!("checkpoint refused, not loaded: {why}");
                state.resume_refused.push(why);
            }
        }
    }
    Ok(None)
}

/// Copies a checked checkpoint's tensors into the model and the optimizer, after making sure every one is there
/// with the right shape (so a refusal leaves the fresh model untouched).
fn restore(loaded: &checkpoint::Loaded, model: &mut Bert, opt: &mut optim::AdamW) -> Result<()> {
    let mut vars: Vec<(String, tch::Tensor)> = model.var_store().variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in &vars {
        let key = format!("{MODEL_PREFIX}{name}");
        match loaded.tensors.get(&key) {
            Some(t) if t.size() == var.size() => {}
            Some(t) => bail!(
                "tensor {key} has shape {:?}, the model has {:?}",
                t.size(),
                var.size()
            ),
            None => bail!("it has no tensor {key}"),
        }
    }
    opt.load_state(loaded.meta.step, &loaded.tensors)?;
    for (name, var) in &mut vars {
        let src = &loaded.tensors[&format!("{MODEL_PREFIX}{name}")];
        tch::no_grad(|| var.copy_(src));
    }
    Ok(())
}
