#!/usr/bin/env bash
# Reproduces the core-codec figures in the README (section "Results").
# Needs ../shared/data/videos. Takes about an hour on a 2-core CPU; run it on
# an otherwise idle machine, since training budgets are wall-clock minutes.
# Models and .vsa files already in OUT_DIR are reused, so an interrupted run
# can be continued and decoding settings re-measured cheaply.
#   usage: tools/reproduce_core.sh [OUT_DIR]
set -euo pipefail
V=${VIDEOS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/videos}
OUT=${1:-results/core}
mkdir -p "$OUT"

train() {  # train OUT_MODEL VIDEO ARGS...
  local model=$1; shift
  [ -f "$model" ] || vsa train "$@" -o "$model" --seed 0
}
encode() {  # encode MODEL VIDEO VSA ARGS...
  local model=$1 video=$2 file=$3; shift 3
  [ -f "$file" ] || vsa encode "$video" --model "$model" -o "$file" "$@"
}
decode_all() {  # decode_all VSA VIDEO NAME [ARGS...]: back-projection auto, always and never
  local file=$1 video=$2 name=$3; shift 3
  for mode in auto always never; do
    vsa decode "$file" --back-project $mode --reference "$video" --json "$OUT/${name}_$mode.json" "$@"
  done
}

TH=$V/talking_head_indoor_woman.mp4
for objective in restore reconstruct; do
  train "$OUT/th_$objective.pt" "$TH" --size 256x448 --minutes 10 --objective $objective
  for s in 4 8; do
    encode "$OUT/th_$objective.pt" "$TH" "$OUT/th_${objective}_s$s.vsa" --scale $s --stride 1
    decode_all "$OUT/th_${objective}_s$s.vsa" "$TH" "th_${objective}_s$s"
  done
  encode "$OUT/th_$objective.pt" "$TH" "$OUT/th_${objective}_s4_k2.vsa" --scale 4 --stride 2
  decode_all "$OUT/th_${objective}_s4_k2.vsa" "$TH" "th_${objective}_s4_k2"
done
vsa decode "$OUT/th_restore_s4.vsa" --iterations 1 --reference "$TH" --json "$OUT/th_restore_s4_it1_auto.json"

# Talking head with its last 30% (frames 197..281) held out of training.
train "$OUT/th_hold.pt" "$TH" --size 256x448 --minutes 10 --objective restore --holdout-tail 0.3
encode "$OUT/th_hold.pt" "$TH" "$OUT/th_hold.vsa" --scale 4 --stride 1
decode_all "$OUT/th_hold.vsa" "$TH" th_hold_tail --score-frames 197:282

# Two more clips, 5 minutes each; the webcam clip with both objectives.
for clip in street_pedestrians_static person_signing_webcam; do
  train "$OUT/$clip.pt" "$V/$clip.mp4" --size 256x320 --minutes 5 --objective restore
  for s in 4 8; do
    encode "$OUT/$clip.pt" "$V/$clip.mp4" "$OUT/${clip}_s$s.vsa" --scale $s --stride 1
    decode_all "$OUT/${clip}_s$s.vsa" "$V/$clip.mp4" "${clip}_s$s"
  done
done
clip=person_signing_webcam
train "$OUT/${clip}_rec.pt" "$V/$clip.mp4" --size 256x320 --minutes 5 --objective reconstruct
for s in 4 8; do
  encode "$OUT/${clip}_rec.pt" "$V/$clip.mp4" "$OUT/${clip}_rec_s$s.vsa" --scale $s --stride 1
  decode_all "$OUT/${clip}_rec_s$s.vsa" "$V/$clip.mp4" "${clip}_rec_s$s"
done
python -m vsa.tools.report_core "$OUT"
