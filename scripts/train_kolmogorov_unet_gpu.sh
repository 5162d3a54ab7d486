#!/usr/bin/env bash
# Trains sda_gui/resources/models/kolmogorov_unet.pt (see sda_gui/resources/models/README.md): Kolmogorov
# data simulated at 256² and coarsened to 64² velocity, then the preconditioned U-Net
# 64/128/256 × 2 blocks in time-limited chunks, each resuming the last, on one CUDA GPU.
#
# The resumable fp32 + AdamW file (79 MiB) and the data stay in $WORK between chunks, so
# the chunks can be separate calls on one warm machine. The shipped model took three:
#   CHUNK=1 LIMIT=330 bash scripts/train_kolmogorov_unet_gpu.sh    (simulates the data first)
#   CHUNK=2 LIMIT=400 bash scripts/train_kolmogorov_unet_gpu.sh    (resumes)
#   CHUNK=3 LIMIT=150 bash scripts/train_kolmogorov_unet_gpu.sh    (resumes and finishes)
# A chunk stopped by its time limit leaves OUT/kolmogorov_unet-half.pt (fp16, usable);
# the chunk that finishes all STEPS leaves OUT/kolmogorov_unet.pt, the file to ship.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
PY=${PY:-python3}
O=${OUT:-out}; mkdir -p "$O"
W=${WORK:-/tmp/sda}; mkdir -p "$W"
CHUNK=${CHUNK:-1} LIMIT=${LIMIT:-330} STEPS=${STEPS:-12000} BATCH=${BATCH:-64}
T0=$(date +%s)
if [ "$CHUNK" = 1 ]; then
  timeout 600 $PY -m sda_gui simulate --system kolmogorov --trajectories 64 --length 256 --seed 11 \
      --device cuda --out "$W/kolmogorov_256.h5" 2>&1 | tail -2
  echo "data done t=$(( $(date +%s) - T0 )) s"
  RESUME=()
else
  RESUME=(--resume "$W/kolmogorov_unet.pt")
fi
# a stop by the time limit writes the fp16 copy beside the resumable file: clear the last one
rm -f "$W/kolmogorov_unet-half.pt"
timeout $(( LIMIT + 120 )) $PY -m sda_gui train --data "$W/kolmogorov_256.h5" --k 2 --arch unet --channels 64,128,256 \
    --blocks 2 --steps "$STEPS" --batch-size "$BATCH" --lr 5e-4 --amp --val-every 1000 --device cuda --half \
    --time-limit "$LIMIT" "${RESUME[@]}" --out "$W/kolmogorov_unet.pt" 2>&1 | grep -v Warning | tail -25 \
    | tee "$O/train$CHUNK.txt"
if [ -f "$W/kolmogorov_unet-half.pt" ]; then
  cp "$W/kolmogorov_unet-half.pt" "$O/" &&
    echo "chunk $CHUNK stopped at its time limit: $O/kolmogorov_unet-half.pt; run CHUNK=$(( CHUNK + 1 )) to go on"
else
  cp "$W/kolmogorov_unet.pt" "$O/" && echo "finished: $O/kolmogorov_unet.pt"
fi
echo "t=$(( $(date +%s) - T0 )) s"
