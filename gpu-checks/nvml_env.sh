# Shared preamble of the NVML GPU checks (sourced by nvml_discovery.sh and mig_report.sh, which
# set LABEL first): die, a Python >= 3.11, the driver's nvidia-smi, pynvml on PYTHONPATH
# (a venv's, or gpu-checks/nvml_deps from nvml_prepare.sh). Leaves PY set; cwd is the checkout.
# shellcheck shell=bash

die() { printf '%s: ERROR: %s\n' "$LABEL" "$*" >&2; exit 2; }

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
