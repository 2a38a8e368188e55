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

readonly LABEL=mig_report
# shellcheck source=gpu-checks/nvml_env.sh
source gpu-checks/nvml_env.sh

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(hostname)  driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1)" >&2
timeout 20 nvidia-smi --query-gpu=index,uuid,name,mig.mode.current,mig.mode.pending --format=csv >&2 || true
timeout 45 "$PY" gpu-checks/mig_report.py
