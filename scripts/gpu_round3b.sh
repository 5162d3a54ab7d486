#!/usr/bin/env bash
# Third GPU round, calls 2 and 3: Kolmogorov data at 256² and a U-Net trained in two
# time-limited chunks on one warm machine (the resumable file stays in /tmp between the
# calls), the Lorenz-63 Figure-3 protocol for the shipped k = 3 model, and the paper's
# Kolmogorov case timed on the new model.
#   CHUNK=1 BATCH=.. STEPS=.. LIMIT=.. bash scripts/gpu_round3b.sh    (then CHUNK=2)
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
O=${OUT:-out}; mkdir -p $O
T0=$(date +%s)
W=/tmp/sda; mkdir -p $W
if [ "$CHUNK" = 1 ]; then
  timeout 420 python3 -m sda_gui evaluate --models resources/models/lorenz63.pt --corrections 0,1,2 --device cuda \
      --out-dir $O/ev_k3 > $O/evaluate.txt 2>&1 &
  timeout 150 python3 -m sda_gui simulate --system kolmogorov --trajectories 64 --length 256 --seed 11 \
      --device cuda --out $W/kolmogorov_256.h5 2>&1 | tail -2
  echo "data done t=$(( $(date +%s) - T0 ))"
  RESUME=""
else
  RESUME="--resume $W/kolmogorov_unet.pt"
fi
rm -f $W/kolmogorov_unet-half.pt
timeout $(( LIMIT + 60 )) python3 -m sda_gui train --data $W/kolmogorov_256.h5 --k 2 --arch unet --channels 64,128,256 \
    --blocks 2 --steps $STEPS --batch-size $BATCH --lr 5e-4 --amp --val-every 1000 --device cuda --half \
    --time-limit $LIMIT $RESUME --out $W/kolmogorov_unet.pt 2>&1 | grep -v Warning | tail -25 | tee $O/train$CHUNK.txt
ls -la $W
cp $W/kolmogorov_unet-half.pt $O/ 2>/dev/null || cp $W/kolmogorov_unet.pt $O/kolmogorov_unet-final.pt
echo "train done t=$(( $(date +%s) - T0 ))"
wait
M=$(ls $O/kolmogorov_unet*.pt | head -1)
for g in --cuda-graph --no-cuda-graph; do
  timeout 100 python3 -m sda_gui bench case --model $M --length 29 --samples 1 --steps 256 --corrections 1 \
      --device cuda $g 2>&1 | grep -v Warning | tail -6
done
echo "all done t=$(( $(date +%s) - T0 ))"
[ -f $O/evaluate.txt ] && grep -v "^step" $O/evaluate.txt | tail -30
