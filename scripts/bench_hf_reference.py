"""The Hugging Face PyTorch reference for scripts/bench-trainer.sh: training steps of BertForSequenceClassification
at the trainer's benchmark shapes (MRPC training pairs, batch 32, padded to 128 tokens), with the optimizer the
paper's run_glue.py used (AdamW, no weight decay for biases and LayerNorm, linear schedule with warmup, gradient
clipping at 1.0). Prints one JSON object: every step's wall time and the peak RSS.

    python bench_hf_reference.py MODEL_DIR MRPC_DIR STEPS [fp32|bf16 [BATCH]]

bf16 is PyTorch's own mixed precision, as the HF Trainer's `--bf16` does it: the forward pass and the loss under
`torch.autocast(device_type="cpu", dtype=torch.bfloat16)`, backward and optimizer outside it, fp32 weights.
"""

import contextlib
import csv
import json
import resource
import sys
import time

import torch
from transformers import (
    BertForSequenceClassification,
    BertTokenizerFast,
    get_linear_schedule_with_warmup,
)


def mrpc_train(data_dir):
    # GLUE's MRPC: a header line (with a BOM), then label, id1, id2, sentence1, sentence2; quotes are literal.
    with open(f"{data_dir}/train.tsv", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [(r[3], r[4], int(r[0])) for r in rows]


def main():
    model_dir, data_dir, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    precision = sys.argv[4] if len(sys.argv) > 4 else "fp32"
    if precision not in ("fp32", "bf16"):
        sys.exit(f"precision must be fp32 or bf16, got {precision!r}")
    size = int(sys.argv[5]) if len(sys.argv) > 5 else 32
    torch.manual_seed(1)
    tokenizer = BertTokenizerFast.from_pretrained(model_dir)
    model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    model.train()
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=2e-5, betas=(0.9, 0.999), eps=1e-8)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, steps // 10), steps)
    examples = mrpc_train(data_dir)
    seconds = []
    for step in range(steps):
        batch = examples[step * size:(step + 1) * size]
        inputs = tokenizer([a for a, _, _ in batch], [b for _, b, _ in batch], padding="max_length",
                           truncation=True, max_length=128, return_tensors="pt")
        labels = torch.tensor([y for _, _, y in batch])
        start = time.perf_counter()
        with (torch.autocast(device_type="cpu", dtype=torch.bfloat16) if precision == "bf16"
              else contextlib.nullcontext()):
            loss = model(**inputs, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - start)
    print(json.dumps({
        "stepSeconds": seconds,
        "threads": torch.get_num_threads(),
        "precision": precision,
        "cpuCapability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
