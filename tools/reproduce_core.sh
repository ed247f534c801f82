#!/usr/bin/env bash
# Reproduces the core-codec figures in the README (section "Results").
# Needs ../shared/data/videos. Takes about 60 minutes on a 2-core CPU; run it
# on an otherwise idle machine, since training budgets are wall-clock minutes.
#   usage: tools/reproduce_core.sh [OUT_DIR]
set -euo pipefail
V=${VIDEOS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/videos}
OUT=${1:-results/core}
mkdir -p "$OUT"
vsa() { command vsa "$@"; }

TH=$V/talking_head_indoor_woman.mp4
# 1. talking head, restore objective, 10 minutes, all frames
vsa train "$TH" -o "$OUT/th.pt" --size 256x448 --minutes 10 --objective restore --seed 0
vsa encode "$TH" --model "$OUT/th.pt" -o "$OUT/th_s4.vsa" --scale 4 --stride 1
for it in 1 2 3; do
  vsa decode "$OUT/th_s4.vsa" --iterations $it --reference "$TH" --json "$OUT/th_s4_it$it.json"
done
vsa decode "$OUT/th_s4.vsa" --no-consistency --reference "$TH" --json "$OUT/th_s4_plain.json"
vsa encode "$TH" --model "$OUT/th.pt" -o "$OUT/th_s4_k2.vsa" --scale 4 --stride 2
vsa decode "$OUT/th_s4_k2.vsa" --reference "$TH" --json "$OUT/th_s4_k2.json" -o "$OUT/th_s4_k2.mp4"
vsa encode "$TH" --model "$OUT/th.pt" -o "$OUT/th_s8.vsa" --scale 8 --stride 1
vsa decode "$OUT/th_s8.vsa" --reference "$TH" --json "$OUT/th_s8.json"
vsa decode "$OUT/th_s8.vsa" --no-consistency --reference "$TH" --json "$OUT/th_s8_plain.json"

# 2. talking head, last 30% held out of training (frames 198..281)
vsa train "$TH" -o "$OUT/th_hold.pt" --size 256x448 --minutes 10 --objective restore --holdout-tail 0.3 --seed 0
vsa encode "$TH" --model "$OUT/th_hold.pt" -o "$OUT/th_hold.vsa" --scale 4 --stride 1
vsa decode "$OUT/th_hold.vsa" --reference "$TH" --score-frames 197:282 --json "$OUT/th_hold_tail.json"
vsa decode "$OUT/th_hold.vsa" --no-consistency --reference "$TH" --score-frames 197:282 \
  --json "$OUT/th_hold_tail_plain.json"

# 3. two more clips, 5 minutes each; on the webcam clip both objectives
for clip in street_pedestrians_static person_signing_webcam; do
  vsa train "$V/$clip.mp4" -o "$OUT/$clip.pt" --size 256x320 --minutes 5 --objective restore --seed 0
  for s in 4 8; do
    vsa encode "$V/$clip.mp4" --model "$OUT/$clip.pt" -o "$OUT/${clip}_s$s.vsa" --scale $s --stride 1
    vsa decode "$OUT/${clip}_s$s.vsa" --reference "$V/$clip.mp4" --json "$OUT/${clip}_s$s.json"
  done
done
for s in 4 8; do
  vsa decode "$OUT/person_signing_webcam_s$s.vsa" --no-consistency --reference "$V/person_signing_webcam.mp4" \
    --json "$OUT/person_signing_webcam_s${s}_plain.json"
done
clip=person_signing_webcam
vsa train "$V/$clip.mp4" -o "$OUT/${clip}_rec.pt" --size 256x320 --minutes 5 --objective reconstruct --seed 0
for s in 4 8; do
  vsa encode "$V/$clip.mp4" --model "$OUT/${clip}_rec.pt" -o "$OUT/${clip}_rec_s$s.vsa" --scale $s --stride 1
  vsa decode "$OUT/${clip}_rec_s$s.vsa" --reference "$V/$clip.mp4" --json "$OUT/${clip}_rec_s$s.json"
  vsa decode "$OUT/${clip}_rec_s$s.vsa" --no-consistency --reference "$V/$clip.mp4" --json "$OUT/${clip}_rec_s${s}_plain.json"
done

# 4. talking head, the paper's reconstruct objective, 10 minutes
vsa train "$TH" -o "$OUT/th_rec.pt" --size 256x448 --minutes 10 --objective reconstruct --seed 0
for s in 4 8; do
  vsa encode "$TH" --model "$OUT/th_rec.pt" -o "$OUT/th_rec_s$s.vsa" --scale $s --stride 1
  vsa decode "$OUT/th_rec_s$s.vsa" --reference "$TH" --json "$OUT/th_rec_s$s.json"
  vsa decode "$OUT/th_rec_s$s.vsa" --no-consistency --reference "$TH" --json "$OUT/th_rec_s${s}_plain.json"
done
python -m vsa.tools.report_core "$OUT"
