#!/usr/bin/env bash
# libvgpu GPU checks (issue 4). Runs unchanged on a bare GPU machine with the
# NVIDIA driver, CUDA (nvcc), PyTorch and gcc; no network. About 4-6 minutes.
#   1. PyTorch under CUDA_DEVICE_MEMORY_LIMIT=3000m: mem_get_info total, the
#      OOM boundary, NVML's per-process usage, nvidia-smi inside.
#   2. The boundary through cudaMalloc, cudaMallocAsync, VMM, managed, graph.
#   3. Compute share: matmul alone, then SM limit 30 and 70 in two processes.
#   4. Overhead: cuLaunchKernel with and without libvgpu; start-up, 1 and 16 procs.
# Prints one table; exit status 0 when every check passed.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HERE="$ROOT/gpu-checks/libvgpu"
W="$(mktemp -d /tmp/libvgpu-gpu.XXXXXX)"
LIB="$ROOT/libvgpu/build/gpu/libvgpu.so"
LIMIT_MIB=3000
PY="${PYTHON:-python3}"
declare -a ROWS=()
FAILED=0

row() { # check, result, detail
    ROWS+=("$(printf '%-34s %-5s %s' "$1" "$2" "$3")")
    case "$2" in PASS|INFO) ;; *) FAILED=1 ;; esac
}
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2" | head -1; }
lib_env() { # region file name, then env assignments
    local region="$W/$1.cache"; shift
    env LD_PRELOAD="$LIB" CUDA_DEVICE_MEMORY_SHARED_CACHE="$region" "$@"
}

echo "== build ($(date -u +%FT%TZ))"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1 | tee "$W/card"
make -s -C "$ROOT/libvgpu" variant BUILD=build/gpu >"$W/build.log" 2>&1 || { cat "$W/build.log"; echo "build failed"; exit 1; }
nvcc -O2 -o "$W/check_alloc" "$HERE/check_alloc.cu" -lcuda >"$W/nvcc.log" 2>&1 &&
    nvcc -O2 -o "$W/check_launch" "$HERE/check_launch.cu" -lcuda >>"$W/nvcc.log" 2>&1 ||
    { cat "$W/nvcc.log"; echo "nvcc failed"; exit 1; }

echo "== 1. PyTorch memory limit"
CTX_MIB="$(timeout 120 "$PY" "$HERE/ctx_baseline.py" 2>/dev/null | tail -1)"
CTX_MIB="${CTX_MIB:-0}"
OUT="$(timeout 180 env LD_PRELOAD="$LIB" CUDA_DEVICE_MEMORY_SHARED_CACHE="$W/torch.cache" \
    CUDA_DEVICE_MEMORY_LIMIT=${LIMIT_MIB}m "$PY" "$HERE/check_torch.py" $LIMIT_MIB "$CTX_MIB" 2>"$W/torch.err" | tail -1)"
echo "$OUT"
[ "$(kv total_ok "$OUT")" = 1 ] && r=PASS || r=FAIL
row "1a torch mem_get_info total" $r "total=$(kv total_mib "$OUT") MiB"
[ "$(kv boundary_ok "$OUT")" = 1 ] && r=PASS || r=FAIL
row "1b torch OOM in [limit-64,limit]" $r "tracked=$(kv tracked_mib "$OUT") MiB"
[ "$(kv nvml_ok "$OUT")" = 1 ] && r=PASS || r=FAIL
row "1c NVML used <= limit+ctx" $r "used=$(kv nvml_used_mib "$OUT") ctx=$CTX_MIB MiB"
[ "$(kv smi_ok "$OUT")" = 1 ] && r=PASS || r=FAIL
row "1d nvidia-smi inside total" $r "total=$(kv smi_total_mib "$OUT") MiB"

echo "== 2. allocation APIs"
for mode in malloc async vmm managed graph; do
    OUT="$(timeout 120 env LD_PRELOAD="$LIB" CUDA_DEVICE_MEMORY_SHARED_CACHE="$W/alloc-$mode.cache" \
        CUDA_DEVICE_MEMORY_LIMIT=${LIMIT_MIB}m "$W/check_alloc" $mode 2>>"$W/alloc.err")"
    echo "$OUT"
    t="$(kv tracked_mib "$OUT")"; o="$(kv oom "$OUT")"
    if [ "$o" = 1 ] && [ -n "$t" ] && [ "$t" -ge $((LIMIT_MIB - 64)) ] && [ "$t" -le $LIMIT_MIB ]; then r=PASS; else r=FAIL; fi
    row "2 boundary $mode" $r "tracked=${t:-?} MiB oom=${o:-?} allocated=$(kv allocated_mib "$OUT") MiB"
done

echo "== 3. compute share"
BASE="$(kv rate "$(timeout 120 "$PY" "$HERE/check_share.py" 15 2>/dev/null)")"
START=$(( $(date +%s) + 25 ))
timeout 150 env LD_PRELOAD="$LIB" CUDA_DEVICE_MEMORY_SHARED_CACHE="$W/s30.cache" CUDA_DEVICE_SM_LIMIT=30 \
    GPU_CORE_UTILIZATION_POLICY=force "$PY" "$HERE/check_share.py" 30 $START >"$W/s30" 2>&1 &
P30=$!
timeout 150 env LD_PRELOAD="$LIB" CUDA_DEVICE_MEMORY_SHARED_CACHE="$W/s70.cache" CUDA_DEVICE_SM_LIMIT=70 \
    GPU_CORE_UTILIZATION_POLICY=force "$PY" "$HERE/check_share.py" 30 $START >"$W/s70" 2>&1 &
P70=$!
wait $P30 $P70
R30="$(kv rate "$(cat "$W/s30")")"; R70="$(kv rate "$(cat "$W/s70")")"
read -r S30 S70 OK3 <<<"$("$PY" - "$BASE" "$R30" "$R70" <<'PYEOF'
import sys
try:
    base, r30, r70 = (float(x) for x in sys.argv[1:4])
    s30, s70 = 100 * r30 / base, 100 * r70 / base
    print(f"{s30:.1f} {s70:.1f} {int(abs(s30 - 30) <= 5 and abs(s70 - 70) <= 5)}")
except ValueError:
    print("? ? 0")
PYEOF
)"
[ "$OK3" = 1 ] && r=PASS || r=FAIL
row "3 share 30/70 within +-5 points" $r "alone=${BASE:-?} it/s -> ${S30}% / ${S70}%"

echo "== 4. overhead"
RAW="$(kv launch_ns "$(timeout 120 "$W/check_launch" launch)")"
WITH="$(kv launch_ns "$(timeout 120 lib_env launch "$W/check_launch" launch)")"
read -r DELTA OK4 <<<"$("$PY" -c "import sys
try:
    d=float('$WITH')-float('$RAW'); print(f'{d:.1f}', int(d<=100))
except ValueError: print('? 0')")"
[ "$OK4" = 1 ] && r=PASS || r=FAIL
row "4a cuLaunchKernel extra <= 100 ns" $r "raw=${RAW:-?} ns with=${WITH:-?} ns extra=${DELTA} ns"
startup() { # n, with(1)/without(0) -> max ms over n concurrent processes
    local n=$1 lib=$2 i
    for i in $(seq "$n"); do
        if [ "$lib" = 1 ]; then lib_env "start$n" CUDA_DEVICE_MEMORY_LIMIT=1g "$W/check_launch" startup >"$W/st.$n.$lib.$i" 2>&1 &
        else "$W/check_launch" startup >"$W/st.$n.$lib.$i" 2>&1 & fi
    done
    wait
    cat "$W"/st."$n"."$lib".* | sed -n 's/startup_ms=//p' | sort -n | tail -1
}
S1A="$(startup 1 0)"; S1B="$(startup 1 1)"; S16A="$(startup 16 0)"; S16B="$(startup 16 1)"
row "4b first CUDA call, 1 process" INFO "without=${S1A:-?} ms with=${S1B:-?} ms"
row "4c first CUDA call, 16 processes" INFO "max without=${S16A:-?} ms with=${S16B:-?} ms"

echo
echo "libvgpu GPU checks - $(date -u +%F) - $(cat "$W/card")"
printf '%-34s %-5s %s\n' "check" "result" "detail"
for r in "${ROWS[@]}"; do echo "$r"; done
[ "$FAILED" = 0 ] && echo "ALL PASS" || echo "SOME FAILED (logs in $W)"
exit $FAILED
