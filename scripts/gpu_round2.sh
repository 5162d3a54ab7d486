#!/usr/bin/env bash
# Second GPU round (parallel processes on one GPU): L63 speed, accuracy variants, Kolmogorov model.
set -u
export PYTHONUNBUFFERED=1
PY=python3
O=${OUT:-out}; mkdir -p $O
M=resources/models/lorenz63.pt
T0=$(date +%s)
timeout 90 $PY -m sda_gui bench assimilate --system lorenz63 --samples 1024 --steps 256 --corrections 0,1,2 --device cuda > $O/bench_l63.txt 2>&1
echo "bench done t=$(( $(date +%s) - T0 ))" >> $O/bench_l63.txt
( timeout 470 $PY -m sda_gui train --system kolmogorov --trajectories 64 --length 64 --channels 64,128,256 --blocks 2 \
    --steps 12000 --batch-size 32 --lr 5e-4 --amp --val-every 2000 --device cuda --half --time-limit 330 --out $O/kolmogorov.pt > $O/kol.txt 2>&1;
  timeout 60 $PY -m sda_gui bench assimilate --system kolmogorov --model $O/kolmogorov.pt --samples 1 --length 29 --steps 256 --corrections 1 --device cuda >> $O/kol.txt 2>&1 ) &
( timeout 200 $PY -m sda_gui train --system lorenz63 --k 2 --width 96 --depth 3 --steps 16000 --batch-size 1024 --device cuda --out $O/l63_w96.pt > $O/w96.txt 2>&1;
  timeout 240 $PY -m sda_gui evaluate --models $O/l63_w96.pt --corrections 2 --protocols sparse --device cuda --out-dir $O/ev_w96 >> $O/w96.txt 2>&1 ) &
( timeout 200 $PY -m sda_gui train --system lorenz63 --k 3 --width 128 --depth 4 --steps 16000 --batch-size 1024 --device cuda --out $O/l63_k3.pt > $O/k3.txt 2>&1;
  timeout 240 $PY -m sda_gui evaluate --models $O/l63_k3.pt --corrections 2 --protocols sparse --device cuda --out-dir $O/ev_k3 >> $O/k3.txt 2>&1 ) &
timeout 450 $PY -m sda_gui evaluate --models $M --corrections 2 --guidance mmps --protocols sparse --device cuda --out-dir $O/ev_mmps > $O/mmps.txt 2>&1 &
timeout 450 $PY -m sda_gui evaluate --models $M --corrections 2 --tau 0.5 --protocols sparse --device cuda --out-dir $O/ev_tau > $O/tau.txt 2>&1 &
timeout 450 $PY -m sda_gui evaluate --models $M --corrections 0,1,2 --device cuda --out-dir $O/ev_full > $O/full.txt 2>&1 &
wait
echo "all done t=$(( $(date +%s) - T0 ))"
cat $O/*.txt | grep -v "^step"
