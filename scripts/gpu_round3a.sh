#!/usr/bin/env bash
# Third GPU round, call 1 (short): CUDA-graph tests and Lorenz-63 sampling speed with and
# without graphs.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
O=${OUT:-out}; mkdir -p $O
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
python3 -c "import torch, h5py, scipy; print('torch', torch.__version__)"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_core_cuda_graph.py tests/test_core_guidance.py 2>&1 | tail -4
for g in --cuda-graph --no-cuda-graph; do
  timeout 90 python3 -m sda_gui bench assimilate --system lorenz63 --samples 1024 --steps 256 --corrections 0,1,2 --device cuda $g 2>&1 | tail -4
done
