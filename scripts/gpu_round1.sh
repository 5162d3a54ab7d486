#!/usr/bin/env bash
# First GPU round: train Lorenz-63 candidates and the Lorenz-96 model, time sampling, evaluate.
set -u
export PYTHONUNBUFFERED=1
PY=python3
O=${OUT:-out}; mkdir -p $O
nvidia-smi --query-gpu=name,memory.total --format=csv | tee $O/gpu.txt
$PY -c "import torch; print(torch.__version__, torch.cuda.is_available())"
T0=$(date +%s)
$PY -m sda_gui train --system lorenz63 --k 2 --width 256 --depth 5 --steps 16000 --batch-size 1024 --val-every 4000 --device cuda --out $O/l63_w256.pt 2>&1 | grep -E "^(step (4000|8000|12000|16000)|trained|error)" | tee -a $O/log.txt
echo "t=$(( $(date +%s) - T0 ))" | tee -a $O/log.txt
$PY -m sda_gui train --system lorenz63 --k 2 --width 128 --depth 4 --steps 16000 --batch-size 1024 --val-every 4000 --device cuda --out $O/l63_w128.pt 2>&1 | grep -E "^(step (4000|8000|12000|16000)|trained|error)" | tee -a $O/log.txt
echo "t=$(( $(date +%s) - T0 ))" | tee -a $O/log.txt
$PY -m sda_gui train --system lorenz96 --k 2 --trajectories 512 --length 512 --steps 12000 --batch-size 512 --val-every 4000 --device cuda --out $O/l96.pt 2>&1 | grep -E "^(step (4000|8000|12000)|trained|error)" | tee -a $O/log.txt
echo "t=$(( $(date +%s) - T0 ))" | tee -a $O/log.txt
for m in w256 w128; do
  timeout 60 $PY -m sda_gui bench assimilate --system lorenz63 --model $O/l63_$m.pt --samples 1024 --steps 256 --corrections 0,2 --device cuda 2>&1 | tee -a $O/log.txt
done
echo "t=$(( $(date +%s) - T0 ))" | tee -a $O/log.txt
timeout 300 $PY -m sda_gui evaluate --models $O/l63_w256.pt $O/l63_w128.pt --corrections 2 --cases 6 --device cuda --out-dir $O/eval 2>&1 | tee -a $O/log.txt
echo "t=$(( $(date +%s) - T0 ))" | tee -a $O/log.txt
