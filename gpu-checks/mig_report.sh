#!/usr/bin/env bash
# GPU check (read-only): the GPU's MIG capability and current instances with the real NVML
# backend (hami.agent.mig.nvml): MIG mode (current/pending), the profiles and placements the
# plugin would register, the GPU/compute instances that exist. It never switches MIG mode and
# never creates or destroys an instance: a lent machine's settings stay as they are.
#
#   gpu-checks/mig_report.sh            # JSON on stdout; exit 0 = the report could be read
#
# Needs what nvml_discovery.sh needs (Python >= 3.11, pynvml; gpu-checks/nvml_prepare.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { printf 'mig_report: ERROR: %s\n' "$*" >&2; exit 2; }

pick_python() {
  local candidate
  for candidate in "${PYTHON:-}" .venv/bin/python python3 python3.13 python3.12 python3.11; do
    [[ -n "$candidate" ]] || continue
    command -v "$candidate" >/dev/null 2>&1 || [[ -x "$candidate" ]] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  die "no Python >= 3.11 found (set \$PYTHON)"
}

command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: is the NVIDIA driver installed?"
PY="$(pick_python)"
export PYTHONPATH="$PWD/src:$PWD/gpu-checks/nvml_deps${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c 'import pynvml' 2>/dev/null ||
  die "pynvml is not importable by $PY: pip install nvidia-ml-py, or run gpu-checks/nvml_prepare.sh here first and carry gpu-checks/nvml_deps"

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(hostname)  driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1)" >&2
timeout 20 nvidia-smi --query-gpu=index,uuid,name,mig.mode.current,mig.mode.pending --format=csv >&2 || true
timeout 45 "$PY" gpu-checks/mig_report.py
