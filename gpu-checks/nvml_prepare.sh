#!/usr/bin/env bash
# Copy pynvml (nvidia-ml-py, pure Python) from this checkout's venv into gpu-checks/nvml_deps, so
# gpu-checks/nvml_discovery.sh runs on a bare GPU machine without pip or network. Carry the
# (git-ignored) gpu-checks/nvml_deps directory with the checkout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src="$(.venv/bin/python -c 'import pynvml; print(pynvml.__file__)')"
mkdir -p gpu-checks/nvml_deps
cp "$src" gpu-checks/nvml_deps/
printf '*\n!.gitignore\n' >gpu-checks/nvml_deps/.gitignore
echo "gpu-checks/nvml_deps: $(ls gpu-checks/nvml_deps)"
