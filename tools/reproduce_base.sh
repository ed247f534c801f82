#!/usr/bin/env bash
# Rebuilds the base model that ships with vsa, and measures it on clips it never learned from.
# Needs ../shared/data/videos. Step budgets, so the weights do not depend on the machine's load.
#
#   tools/reproduce_base.sh [OUT_DIR]          # the base: OUT_DIR/base.pt and base.vsam (~15 min on 2 cores)
#   tools/reproduce_base.sh [OUT_DIR] --loo    # also one base per clip left out, scored on that clip (~2 h)
#
# To ship a new base: copy OUT_DIR/base.vsam to common/assets/base-sr.vsam and pin the SHA-256 that
# `vsa pretrain` printed in common/bases.py (BASES["sr"]); the base-asset test checks the two agree.
set -euo pipefail
V=${VIDEOS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/videos}
OUT=${1:-results/base}
STEPS=${STEPS:-12000}
mkdir -p "$OUT"
CLIPS=("$V"/*.mp4)

# The shipped base learns from the first half of every clip (--holdout-tail 0.5), so that every figure the
# README gives on a clip's second half is on frames the base never saw.
pretrain() {  # pretrain OUT VIDEOS...
  local out=$1; shift
  [ -f "$out" ] || vsa pretrain "$@" -o "$out" --steps "$STEPS" --holdout-tail 0.5 --seed 0
}
pretrain "$OUT/base.pt" "${CLIPS[@]}"

if [ "${2:-}" = "--loo" ]; then
  # Leave each clip out in turn; score the base alone on the whole of it, at scale 4 with the default payload.
  for clip in "${CLIPS[@]}"; do
    name=$(basename "$clip" .mp4)
    others=()
    for c in "${CLIPS[@]}"; do [ "$c" = "$clip" ] || others+=("$c"); done
    pretrain "$OUT/loo_$name.pt" "${others[@]}"
    [ -f "$OUT/loo_$name.vsa" ] || vsa encode "$clip" --model "$OUT/loo_$name.pt" -o "$OUT/loo_$name.vsa" --scale 4
    vsa decode "$OUT/loo_$name.vsa" --reference "$clip" --json "$OUT/loo_$name.json"
  done
  python -m vsa.tools.report_base "$OUT"
fi
