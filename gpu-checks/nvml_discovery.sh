#!/usr/bin/env bash
# GPU check: device discovery with the real NVML backend (hami.agent.discovery.nvml), printed as the
# registration JSON the plugin would write, next to `nvidia-smi -q` facts (UUID, memory, NUMA).
# One call on a machine with an NVIDIA GPU and driver; no network; well under a minute.
#
#   gpu-checks/nvml_discovery.sh            # from anywhere; exit 0 = every GPU matches
#
# Python >= 3.11 and pynvml (nvidia-ml-py, one pure-Python file) are needed. If the machine has
# no venv, run gpu-checks/nvml_prepare.sh beforehand on the development machine and carry the
# git-ignored directory gpu-checks/nvml_deps along with the checkout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly LABEL=nvml_discovery
# shellcheck source=gpu-checks/nvml_env.sh
source gpu-checks/nvml_env.sh

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(hostname)  driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1)  python $("$PY" -c 'import platform; print(platform.python_version())')"
timeout 30 nvidia-smi -q >"$work/smi.txt" || die "nvidia-smi -q failed"
timeout 45 "$PY" gpu-checks/nvml_report.py --smi "$work/smi.txt"
