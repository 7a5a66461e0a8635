#!/usr/bin/env bash
# The CUDA path end to end in a few minutes, on a machine with a GPU: one epoch of SST-2 on --device cuda in fp32
# and in bf16, eval, predict (fp32 and bf16 backends), export (ONNX, checked against PyTorch), and a 1-GPU
# torchrun; then the pretrained encoder (configs/sst2-lm.yaml: MiniLM) fine-tuned one epoch in fp32 and bf16,
# exported and predicted with, and distilled into the BiLSTM. Prints a pass/fail table and exits non-zero when a
# step failed; each step's output is kept in $LOG_DIR.
#
# Usage: bash scripts/gpu_check.sh [LOG_DIR]        (llmcls installed with the lm extra: pip install -e ".[lm]")
# DEVICE=cpu CONFIG=SMALL.yaml LM_CONFIG=SMALL-LM.yaml bash scripts/gpu_check.sh   rehearses the script itself on a
# CPU, on small configs.
set -uo pipefail
cd "$(dirname "$0")/.."

LOG_DIR=${1:-gpu-check}
DEVICE=${DEVICE:-cuda}
CONFIG=${CONFIG:-configs/sst2.yaml}
LM_CONFIG=${LM_CONFIG:-configs/sst2-lm.yaml}
RUNS="$LOG_DIR/runs"
mkdir -p "$LOG_DIR"
ONE_EPOCH=(--set train.epochs=1 --set train.plots=false)
declare -a NAMES RESULTS SECONDS_TAKEN
failed=0

check() {  # check NAME COMMAND...: run it, record pass/fail and seconds
    local name=$1
    shift
    local start=$SECONDS
    if "$@" >"$LOG_DIR/$name.log" 2>&1; then
        RESULTS+=("pass")
    else
        RESULTS+=("FAIL (exit $?, see $LOG_DIR/$name.log)")
        failed=1
    fi
    NAMES+=("$name")
    SECONDS_TAKEN+=($((SECONDS - start)))
}

python - >"$LOG_DIR/environment.log" 2>&1 <<'EOF'
import torch
print("torch", torch.__version__, "| cuda", torch.version.cuda, "| available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0), "| bf16", torch.cuda.is_bf16_supported())
EOF
cat "$LOG_DIR/environment.log"

[ "$DEVICE" = cpu ] || check cuda-available python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
check train-fp32 llmcls train --config "$CONFIG" --device "$DEVICE" --run-dir "$RUNS/fp32" --overwrite \
    "${ONE_EPOCH[@]}" --set train.precision=fp32
check train-bf16 llmcls train --config "$CONFIG" --device "$DEVICE" --run-dir "$RUNS/bf16" --overwrite \
    "${ONE_EPOCH[@]}" --set train.precision=bf16
check train-auto-says-bf16 bash -c "llmcls train --config '$CONFIG' --device '$DEVICE' --run-dir '$RUNS/auto' \\
    --overwrite --set train.epochs=1 --set train.plots=false 2>&1 | grep -q 'precision: bf16'"
check eval llmcls eval "$RUNS/fp32" --data data/sst2/test.csv --device "$DEVICE"
check predict llmcls predict "$RUNS/fp32" "a gripping, beautifully acted film" --device "$DEVICE" --backend torch
check predict-bf16 llmcls predict "$RUNS/bf16" "a dull, lifeless mess" --device "$DEVICE" --backend torch-bf16
check export-onnx llmcls export "$RUNS/fp32" --quantize int8 --seconds 0.5
check predict-onnx llmcls predict "$RUNS/fp32" "a gripping film" --backend onnx
check torchrun-1-process torchrun --nproc-per-node 1 -m llmcls train --config "$CONFIG" --device "$DEVICE" \
    --run-dir "$RUNS/torchrun" --overwrite "${ONE_EPOCH[@]}"
check resume llmcls train --resume "$RUNS/torchrun" --set train.epochs=2 --device "$DEVICE"
check lm-train-fp32 llmcls train --config "$LM_CONFIG" --device "$DEVICE" --run-dir "$RUNS/lm-fp32" --overwrite \
    "${ONE_EPOCH[@]}" --set train.precision=fp32
check lm-train-bf16 llmcls train --config "$LM_CONFIG" --device "$DEVICE" --run-dir "$RUNS/lm-bf16" --overwrite \
    "${ONE_EPOCH[@]}" --set train.precision=bf16
check lm-predict-cuda llmcls predict "$RUNS/lm-bf16" "a gripping film" --device "$DEVICE" --backend torch
check lm-export-onnx llmcls export "$RUNS/lm-bf16" --seconds 0.5
check lm-predict-onnx llmcls predict "$RUNS/lm-bf16" "a gripping film" --backend onnx
check distill llmcls distill --teacher "$RUNS/lm-bf16" --config "$CONFIG" --device "$DEVICE" \
    --run-dir "$RUNS/distilled" --overwrite "${ONE_EPOCH[@]}" --set distill.copies=1

printf '\n%-24s %8s  %s\n' step seconds result
for i in "${!NAMES[@]}"; do
    printf '%-24s %8s  %s\n' "${NAMES[$i]}" "${SECONDS_TAKEN[$i]}" "${RESULTS[$i]}"
done
for run in fp32 bf16 lm-fp32 lm-bf16 distilled; do
    [ -f "$RUNS/$run/results.json" ] && python -c "import json,sys; r=json.load(open(sys.argv[1])); \
print(f\"{sys.argv[2]}: valid accuracy {r['valid']['accuracy']:.4f}, {r['train_seconds']:.1f} s an epoch\")" \
        "$RUNS/$run/results.json" "$run"
done
exit $failed
