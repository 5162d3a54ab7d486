#!/usr/bin/env bash
# Sampling speed on a CUDA GPU, with and without CUDA graphs (docs/benchmarks.md,
# "Lorenz-63 sampling speed" and the Kolmogorov case "On the H100"):
#
# 1. the CUDA-graph and guidance tests (graph and plain runs must give the same samples);
# 2. Lorenz-63: 1024 samples × 65 states, 256 steps, C = 0, 1, 2 (shipped lorenz63.pt);
# 3. the paper's Kolmogorov case: L = 29, one sample, 256 steps, C = 1, fp32/TF32 and bf16.
#
#   OUT=out [KOLMOGOROV_MODEL=path.pt] bash scripts/bench_sampling_gpu.sh   (from the repository root)
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
PY=${PY:-python3}
O=${OUT:-out}; mkdir -p "$O"
KOL=${KOLMOGOROV_MODEL:-sda_gui/resources/models/kolmogorov_unet.pt}
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader | tee "$O/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout 300 $PY -m pytest -q -p no:cacheprovider tests/test_core_cuda_graph.py tests/test_core_guidance.py 2>&1 | tail -4
for g in --cuda-graph --no-cuda-graph; do
  timeout 300 $PY -m sda_gui bench assimilate --system lorenz63 --samples 1024 --steps 256 --corrections 0,1,2 \
      --device cuda $g 2>&1 | tail -4 | tee -a "$O/bench.txt"
done
for run in "--cuda-graph" "--cuda-graph --amp" "--no-cuda-graph"; do
  # shellcheck disable=SC2086  # $run holds two options on purpose
  timeout 300 $PY -m sda_gui bench case --model "$KOL" --length 29 --samples 1 --steps 256 --corrections 1 \
      --device cuda $run 2>&1 | grep -v Warning | tail -6 | tee -a "$O/bench.txt"
done
