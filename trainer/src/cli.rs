//! Command-line interface. The long flags are an interface: the operator and the local executor build these
//! command lines.

use crate::seeds::DropoutSeedFrom;
use clap::Parser;
use seedsweep_crds::Task;
use seedsweep_crds::sweep::Precision;
use std::path::PathBuf;

pub use seedsweep_crds::trial_output::DEFAULT_TERMINATION_LOG;

/// How `--precision bf16` computes its matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bf16Kernels {
    /// native on CUDA and on CPUs whose /proc/cpuinfo lists avx512_bf16 or amx_bf16, else fp32.
    Auto,
    /// libtorch's bf16 kernels, whatever the hardware.
    Native,
    /// fp32 kernels on operands and results rounded to bf16: the same roundings (up to summation order) at fp32
    /// speed.
    Fp32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// CUDA when libtorch sees a GPU, else CPU.
    Auto,
    Cpu,
    Cuda,
}

/// Fine-tunes a BERT checkpoint on a GLUE task with separate weight-initialisation (WI) and data-order (DO) seeds.
///
/// Exit codes: 0 completed (or paused at a rung as asked), 1 error, 2 usage error, 3 diverged (NaN/inf loss), 143 stopped by SIGTERM/SIGINT.
#[derive(Parser, Debug, Clone)]
#[command(name = "seedsweep-trainer", version)]
pub struct Cli {
    /// GLUE task: mrpc, rte, cola or sst2.
    #[arg(long)]
    pub task: Task,
    /// The task's directory, holding train.tsv and dev.tsv.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Hugging Face model directory: config.json, model.safetensors, tokenizer.json or vocab.txt.
    #[arg(long)]
    pub model_dir: PathBuf,
    /// Seeds the classification head's initial weights (and the pooler's if the checkpoint has none); nothing else.
    #[arg(long)]
    pub wi_seed: u64,
    /// Seeds the order of training examples in every epoch (and, by default, dropout).
    #[arg(long)]
    pub do_seed: u64,
    /// Which seed drives dropout masks when --dropout-seed is not given.
    #[arg(long, value_enum, default_value = "do")]
    pub dropout_seed_from: DropoutSeedFrom,
    /// An explicit seed for dropout masks; overrides --dropout-seed-from.
    #[arg(long)]
    pub dropout_seed: Option<u64>,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: u64,
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    #[arg(long, default_value_t = 2e-5)]
    pub learning_rate: f64,
    /// Longest tokenized pair; longer ones are truncated longest-first. Batches are padded only to their longest.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(3..))]
    pub max_seq_length: u64,
    /// Fraction of total steps over which the learning rate rises linearly from 0.
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f64,
    /// AdamW weight decay, not applied to biases and LayerNorm weights.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1e-8)]
    pub adam_epsilon: f64,
    /// Global gradient-norm clipping; 0 disables it.
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Evaluations on the full dev set per epoch, evenly spaced in steps; there is always one at the end.
    #[arg(long, default_value_t = 10)]
    pub evals_per_epoch: u64,
    /// Train on the first K training examples only.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub train_subset: Option<u64>,
    /// Evaluate on the first K dev examples only.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub dev_subset: Option<u64>,
    /// Pad every batch to --max-seq-length instead of its longest example (the fixed-length baseline).
    #[arg(long)]
    pub pad_to_max: bool,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Arithmetic of the matrix products (linear layers, attention), in training and evaluation alike. bf16 is mixed
    /// precision: fp32 weights, AdamW state, embeddings, LayerNorm, residual stream and loss; each product rounds its
    /// operands to bfloat16 and accumulates in fp32. Faster only where the hardware multiplies bf16 natively (GPUs
    /// with bf16 tensor cores, CPUs with AVX512_BF16 or AMX); see --bf16-kernels.
    #[arg(long, default_value = "fp32", value_parser = precision)]
    pub precision: Precision,
    /// Kernels of --precision bf16's products. On a CPU without native bf16, libtorch's bf16 matrix product is a
    /// scalar reference loop, many times slower than fp32; `auto` then computes the same roundings in fp32 kernels.
    #[arg(long, value_enum, default_value = "auto")]
    pub bf16_kernels: Bf16Kernels,
    /// Torch intra-op threads (default: torch's choice). 1 makes CPU runs reproducible across machines.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub threads: Option<i32>,
    /// Where to serve /metrics and /healthz; port 0 picks a free one (printed on stderr).
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: String,
    /// Sweep name, a label on every metric and in the summary.
    #[arg(long, default_value = "local")]
    pub sweep: String,
    /// Trial name, a label on every metric and in the summary (default: <task>-w<WI>-d<DO>).
    #[arg(long)]
    pub trial: Option<String>,
    /// The compact summary (≤ 4096 bytes) goes here. Failing to write the default path is only a warning.
    #[arg(long, default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,
    /// The full summary (every evaluation, the loss curve) goes here, written atomically.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Write checkpoints here (model, optimizer state, evaluations so far; the newest only): after each of --rungs'
    /// evaluations and, with --checkpoint-on-stop, when stopped by a signal.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// The sweep's rungs, as fractions of training (comma-separated, each in (0, 1]). The evaluation each rung ranks
    /// the trial by (the first at or past it) stays in the termination message however many others must go, and
    /// with --checkpoint-dir a checkpoint is written right after it.
    #[arg(long, value_delimiter = ',', value_parser = fraction)]
    pub rungs: Vec<f64>,
    /// End the run as paused (outcome `paused`, exit code 0) right after writing a rung's checkpoint: the trial
    /// waits for an exact-mode rung's decision outside the process, and --resume-from continues it.
    #[arg(long, requires_all = ["rungs", "checkpoint_dir"])]
    pub pause_at_rungs: bool,
    /// Seconds to wait for another process holding --checkpoint-dir (a Job's previous pod still writing the
    /// checkpoint it was stopped for) before going on without it.
    #[arg(long, default_value_t = 300)]
    pub checkpoint_lock_timeout: u64,
    /// On SIGTERM/SIGINT, checkpoint the steps done before exiting.
    #[arg(long, requires = "checkpoint_dir")]
    pub checkpoint_on_stop: bool,
    /// Continue from a checkpoint file, or from the newest usable one in a directory. A checkpoint of another run
    /// (model, data, seeds, settings, format) or a damaged one is refused with the reason, and the run starts from
    /// the beginning; so does a path that does not exist yet.
    #[arg(long)]
    pub resume_from: Option<PathBuf>,
    /// Log a training line on stderr every N steps.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_every: u64,
}

fn precision(s: &str) -> Result<Precision, String> {
    s.parse()
}

fn fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if f > 0.0 && f <= 1.0 {
        Ok(f)
    } else {
        Err(format!("{s} is not a fraction of training in (0, 1]"))
    }
}

impl Cli {
    pub fn trial_name(&self) -> String {
        self.trial.clone().unwrap_or_else(|| {
            seedsweep_crds::sweep::trial_name(&self.task.to_string(), self.wi_seed, self.do_seed)
        })
    }
}
