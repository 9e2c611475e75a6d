#!/usr/bin/env bash
# The device check: on a machine with a Vulkan GPU, installs what the benches need (npm ci, Debian's Vulkan
# loader), then prints, each next to PyTorch when a CUDA PyTorch is importable (else alone):
#   1. the GEMM kernels' parity on this adapter (the selftest's gemm:* cases),
#   2. GEMM GFLOP/s and fraction of FP32 peak at 1024³–8192³ for every GEMM kernel variant (bench/gemm.ts),
#   3. FastViTHD forward+backward(+AdamW) images/s at 256² and 1024² (bench/train.ts),
#   4. fastvlm-0.5b training tokens/s, random weights (bench/train-lm.ts).
# Every step has its own time limit and the whole run stays under 8 minutes (`--plan` prints the limits).
# --quick runs small sizes and the tiny models, and accepts a CPU adapter (lavapipe): a smoke run for any machine.
#
# Usage: bash bench/device-check.sh [--quick] [--peak-tflops N] [--torch cuda|cpu|none] [--plan]
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK=0
PLAN=0
PEAK=()
TORCH=auto
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --plan) PLAN=1 ;;
    --peak-tflops) PEAK=(--peak-tflops "${2:?--peak-tflops needs a number}"); shift ;;
    --peak-tflops=*) PEAK=(--peak-tflops "${1#*=}") ;;
    --torch) TORCH=${2:?--torch needs cuda, cpu or none}; shift ;;
    --torch=*) TORCH=${1#*=} ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "device-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case $TORCH in auto | cuda | cpu | none) ;; *) echo "device-check: --torch must be cuda, cpu or none" >&2; exit 2 ;; esac

# Seconds for the measured steps; setup (npm ci, apt) gets the rest of the 8 minutes.
BUDGET=420
# name | limit in seconds | command. The limits add up to BUDGET at most.
if [ $QUICK = 1 ]; then
  STEPS=(
    # lavapipe compiles each GPU GEMM pipeline in seconds of LLVM time (cached by Mesa afterwards).
    "gemm parity|200|node bin/mixforge.js gpu selftest --filter gemm --full-gemm"
    "gemm|40|npx tsx bench/gemm.ts --sizes 64,128 --min-seconds 0.05 --naive-max 128"
    "fastvithd-tiny 64²|80|npx tsx bench/train.ts --model fastvithd-tiny --resolution 64 --batch 2 --steps 1"
    "fastvlm-tiny 64²|100|npx tsx bench/train-lm.ts --model fastvlm-tiny --resolution 64 --repeat 1 --steps 1"
  )
else
  STEPS=(
    "gemm parity|45|node bin/mixforge.js gpu selftest --filter gemm --full-gemm"
    "gemm 1024³–8192³|120|npx tsx bench/gemm.ts --sizes 1024,2048,4096,8192 --min-seconds 0.25"
    "fastvithd 256²|60|npx tsx bench/train.ts --model fastvithd --resolution 256 --batch 16 --steps 3"
    "fastvithd 1024²|75|npx tsx bench/train.ts --model fastvithd --resolution 1024 --batch 2 --steps 2"
    "fastvlm-0.5b 1024²|120|npx tsx bench/train-lm.ts --model fastvlm-0.5b --fast-init --resolution 1024 --repeat 1 --steps 2"
  )
fi

if [ $PLAN = 1 ]; then
  echo "budget ${BUDGET}s for the steps (of 480 s in all)"
  for s in "${STEPS[@]}"; do IFS='|' read -r name limit cmd <<<"$s"; echo "$limit	$name	$cmd"; done
  exit 0
fi

START=$(date +%s)
say() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

# ---- setup: Node, npm packages, the Vulkan loader ------------------------------------------------------
say "setup"
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none)); trying Debian's nodejs"
  as_root apt-get install -y -qq nodejs npm >/dev/null 2>&1 || true
  if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "device-check: Node.js >= 20 is not available (Debian 12's nodejs is 18); install Node 20+ first" >&2
    exit 1
  fi
fi
if [ ! -e node_modules/webgpu ] || [ ! -e node_modules/tsx ]; then
  echo "npm ci (from package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error || { echo "device-check: npm ci failed" >&2; exit 1; }
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  echo "no Vulkan loader (libvulkan.so.1): installing Debian's libvulkan1"
  { as_root apt-get update -qq && as_root apt-get install -y -qq libvulkan1; } >/dev/null 2>&1 ||
    echo "  could not install libvulkan1 (not root, or no apt-get): install it by hand"
fi
icds=$(ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null | tr '\n' ' ')
echo "Vulkan drivers (ICDs): ${icds:-none}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/nvidia-smi: /'
  if ! grep -qls nvidia /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null; then
    cat <<'EOF'
  The NVIDIA driver is here but its Vulkan driver (nvidia_icd.json) is not, so WebGPU cannot use the GPU.
  In a container, start it with NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics (the "graphics" capability
  mounts libGLX_nvidia and the ICD file); on a host, install the driver's Vulkan part (Debian: the
  nvidia-vulkan-icd / libnvidia-gl package matching the driver version).
EOF
  fi
fi
info=$(node bin/mixforge.js gpu info --json 2>&1)
if ! printf '%s' "$info" | grep -q '"isCpu"'; then
  echo "$info" | tail -5
  echo "device-check: no WebGPU adapter at all (see above)" >&2
  exit 1
fi
adapter=$(printf '%s' "$info" | node -e 'const a=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(`${a.description||a.device}|${a.isCpu}|${a.enabled.subgroups}`)')
IFS='|' read -r name is_cpu subgroups <<<"$adapter"
echo "WebGPU adapter: $name (CPU implementation: $is_cpu; subgroups: $subgroups)"
if [ "$is_cpu" = true ] && [ $QUICK = 0 ]; then
  cat >&2 <<EOF
device-check: the only Vulkan adapter is a CPU implementation ($name), no GPU. Either the machine has no GPU,
or the GPU's Vulkan driver is missing (see the ICD lines above; for NVIDIA in a container, the "graphics" driver
capability). Run with --quick for a smoke run on the CPU adapter.
EOF
  exit 3
fi

# ---- PyTorch: the comparison runs only where torch sees CUDA (or when --torch says otherwise) ----------
PY=""
if [ "$TORCH" = auto ] || [ "$TORCH" = cuda ]; then
  for p in "${PYTHON:-python3}" /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
      PY=$(command -v "$p"); TORCH=cuda; break
    fi
  done
  if [ -z "$PY" ]; then
    [ "$TORCH" = cuda ] && echo "--torch cuda: no python3 here imports a torch that sees CUDA" >&2
    TORCH=none
  fi
elif [ "$TORCH" = cpu ]; then
  for p in "${PYTHON:-python3}" /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import torch' 2>/dev/null; then PY=$(command -v "$p"); break; fi
  done
  [ -z "$PY" ] && { echo "--torch cpu: no python3 here imports torch" >&2; TORCH=none; }
fi
if [ "$TORCH" = none ]; then
  echo "PyTorch: no CUDA PyTorch found, engine figures alone"
else
  echo "PyTorch: $("$PY" -c 'import torch; print(torch.__version__)') on $TORCH via $PY"
fi

# ---- the measured steps -----------------------------------------------------------------------------
setup_s=$(($(date +%s) - START))
echo "setup took ${setup_s}s"
STEP_START=$(date +%s)
failed=0
for s in "${STEPS[@]}"; do
  IFS='|' read -r name limit cmd <<<"$s"
  left=$((BUDGET - ($(date +%s) - STEP_START)))
  if [ "$left" -lt 15 ]; then say "$name: skipped, the time budget is spent"; continue; fi
  [ "$limit" -gt "$left" ] && limit=$left
  args=()
  case $cmd in
    *bench/gemm.ts*) args=("${PEAK[@]}"); [ "$TORCH" != none ] && args+=(--torch "$TORCH" --python "$PY") ;;
    *bench/train.ts* | *bench/train-lm.ts*)
      if [ "$TORCH" = none ]; then args=(--skip-torch); else args=(--device "$TORCH" --python "$PY"); fi ;;
  esac
  say "$name (limit ${limit}s)"
  t0=$(date +%s)
  # shellcheck disable=SC2086 # the command line is split on purpose
  timeout --kill-after=10 "$limit" $cmd "${args[@]}" 2>&1 | grep -v 'artificially reduced'
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "-- $name: stopped at its ${limit}s limit"; failed=1
  elif [ "$rc" != 0 ]; then
    echo "-- $name: failed (exit $rc)"; failed=1
  else
    echo "-- $name: $(($(date +%s) - t0))s"
  fi
done
say "done in $(($(date +%s) - START))s"
exit $failed
