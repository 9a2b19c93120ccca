#!/usr/bin/env bash
# Installs the CPU libtorch (PyTorch 2.13.0 from PyPI) into .deps/ — idempotent, skips when present.
#
# The PyPI wheel is the CUDA build; we take only torch + the two CUDA libraries that libtorch_cpu
# links against (cudart, cupti), and link against libtorch_cpu alone: a stub libtorch.so in
# .deps/libtorch-link keeps libtorch_cuda (which needs cuBLAS, cuDNN, ...) out of the process.
# GPU users: see README, "GPU".
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.deps"
torch_dir="$deps/torch-2.13.0"
link_dir="$deps/libtorch-link"
marker="$deps/.bootstrap-ok-2.13.0"

if [[ -f "$marker" && -f "$torch_dir/torch/lib/libtorch_cpu.so" && -f "$link_dir/lib/libtorch.so" ]]; then
    exit 0
fi

py="${PYTHON:-python3}"
command -v "$py" >/dev/null || { echo "bootstrap: python3 with pip is needed to fetch libtorch" >&2; exit 1; }
echo "bootstrap: installing libtorch (torch==2.13.0 wheel, ~540 MB download) into $torch_dir" >&2
rm -rf "$torch_dir" "$link_dir"
mkdir -p "$deps"
"$py" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$torch_dir" \
    torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85

lib="$torch_dir/torch/lib"
mkdir -p "$link_dir/lib"
for f in libc10.so libtorch_cpu.so; do ln -sf "$lib/$f" "$link_dir/lib/$f"; done
ln -sf "$lib/libgomp.so.1" "$link_dir/lib/libgomp.so"
# Stub: torch-sys asks for -ltorch; the real libtorch.so pulls in libtorch_cuda.
cc -shared -o "$link_dir/lib/libtorch.so" -x c /dev/null
touch "$marker"
echo "bootstrap: libtorch ready" >&2
