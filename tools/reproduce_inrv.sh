#!/usr/bin/env bash
# Reproduces the INR-V figures in the README (section "INR-V codes").
# Needs ../shared/data/videos. About 16 minutes on a 2-core CPU, and port 8799 free; run it on an
# otherwise idle machine, since training budgets are wall-clock minutes.
#   usage: tools/reproduce_inrv.sh [OUT_DIR] [MINUTES]
set -euo pipefail
V=${VIDEOS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/videos}
OUT=${1:-results/inrv}
MIN=${2:-5}
CLIP=$V/person_signing_webcam.mp4
mkdir -p "$OUT"

# Seen clips: the codes learned in training, rendered at 64x64 and at 2x size and 2x frame rate.
[ -f "$OUT/seen.pt" ] || vsa train --kind inrv "$CLIP" --size 64x64 --minutes "$MIN" -o "$OUT/seen.pt"
for fmt in f16 i8; do
  vsa encode "$CLIP" --model "$OUT/seen.pt" --payload inrv --code-format $fmt -o "$OUT/seen_$fmt.vsa"
  vsa decode "$OUT/seen_$fmt.vsa" --reference "$CLIP" --json "$OUT/seen_$fmt.json" -o "$OUT/seen_$fmt.mp4"
done
vsa decode "$OUT/seen_f16.vsa" --size 128x128 --fps 60 -o "$OUT/seen_128x128_60fps.mp4" --json "$OUT/seen_2x.json"

# Inverted clips: train on the first half, invert every clip (warm-started), score the unseen half.
[ -f "$OUT/half.pt" ] || vsa train --kind inrv "$CLIP" --size 64x64 --minutes "$MIN" --holdout-tail 0.5 -o "$OUT/half.pt"
FRAMES=$(python -c "import av; print(av.open('$CLIP').streams.video[0].frames)")
vsa encode "$CLIP" --model "$OUT/half.pt" --payload inrv --codes invert -o "$OUT/invert.vsa"
vsa decode "$OUT/invert.vsa" --reference "$CLIP" --score-frames "$((FRAMES - FRAMES / 2)):$FRAMES" \
  --json "$OUT/invert_unseen.json"
vsa decode "$OUT/invert.vsa" --reference "$CLIP" --score-frames "0:$((FRAMES - FRAMES / 2))" \
  --json "$OUT/invert_seen.json"

# Live, over WebRTC on loopback: vrecv and vsend with the half-trained model. "--codes auto" sends the
# learned codes for the half it saw and inverts the rest live (3/4 of a clip's duration per clip).
HALF=$((FRAMES - FRAMES / 2))
vrecv --listen 127.0.0.1:8799 --output "$OUT/live.mp4" --no-cache -q > "$OUT/live_recv.txt" &
vsend --model "$OUT/half.pt" "$CLIP" --connect 127.0.0.1:8799 -q | tee "$OUT/live_send.txt"
wait
cat "$OUT/live_recv.txt"
vsa decode "$OUT/invert.vsa" -o "$OUT/invert.mp4"   # the same mp4 path, for a fair comparison
vsa compare "$OUT/live.mp4" "$CLIP" --frames "0:$HALF" --json "$OUT/live_seen.json"
vsa compare "$OUT/live.mp4" "$CLIP" --frames "$HALF:$FRAMES" --json "$OUT/live_unseen.json"
vsa compare "$OUT/invert.mp4" "$CLIP" --frames "$HALF:$FRAMES" --json "$OUT/offline_unseen.json"
# Inverted i8 codes rendered live at twice the size and twice the frame rate.
vrecv --listen 127.0.0.1:8799 --output "$OUT/live_2x.mp4" --size 128x128 --fps 60 --no-cache -q > "$OUT/live_2x_recv.txt" &
vsend --model "$OUT/half.pt" "$CLIP" --connect 127.0.0.1:8799 --codes invert --code-format i8 -q
wait
cat "$OUT/live_2x_recv.txt"
vsa compare "$OUT/live_2x.mp4" "$CLIP"
