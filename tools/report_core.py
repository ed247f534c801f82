"""Markdown table of the core-codec figures, made from the JSON that
`tools/reproduce_core.sh` writes (results are data first, tables second).

    python -m vsa.tools.report_core results/core
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [
    # (json stem, clip, training, setting)
    ("th_s4_it2", "talking_head_indoor_woman", "10 min, restore", "scale 4, stride 1"),
    ("th_s4_it1", "talking_head_indoor_woman", "10 min, restore", "scale 4, stride 1, 1 pass"),
    ("th_s4_plain", "talking_head_indoor_woman", "10 min, restore", "scale 4, stride 1, no back-projection"),
    ("th_s4_k2", "talking_head_indoor_woman", "10 min, restore", "scale 4, stride 2"),
    ("th_s8", "talking_head_indoor_woman", "10 min, restore", "scale 8, stride 1"),
    ("th_s8_plain", "talking_head_indoor_woman", "10 min, restore", "scale 8, stride 1, no back-projection"),
    ("th_hold_tail", "talking_head_indoor_woman", "10 min, restore, first 70% only", "scale 4, stride 1, held-out 30%"),
    ("th_hold_tail_plain", "talking_head_indoor_woman", "10 min, restore, first 70% only",
     "scale 4, stride 1, held-out 30%, no back-projection"),
    ("th_rec_s4", "talking_head_indoor_woman", "10 min, reconstruct", "scale 4, stride 1"),
    ("th_rec_s4_plain", "talking_head_indoor_woman", "10 min, reconstruct", "scale 4, stride 1, no back-projection"),
    ("th_rec_s8", "talking_head_indoor_woman", "10 min, reconstruct", "scale 8, stride 1"),
    ("th_rec_s8_plain", "talking_head_indoor_woman", "10 min, reconstruct", "scale 8, stride 1, no back-projection"),
    ("street_pedestrians_static_s4", "street_pedestrians_static", "5 min, restore", "scale 4, stride 1"),
    ("street_pedestrians_static_s8", "street_pedestrians_static", "5 min, restore", "scale 8, stride 1"),
    ("person_signing_webcam_s4", "person_signing_webcam", "5 min, restore", "scale 4, stride 1"),
    ("person_signing_webcam_s8", "person_signing_webcam", "5 min, restore", "scale 8, stride 1"),
    ("person_signing_webcam_s4_plain", "person_signing_webcam", "5 min, restore", "scale 4, stride 1, no back-projection"),
    ("person_signing_webcam_s8_plain", "person_signing_webcam", "5 min, restore", "scale 8, stride 1, no back-projection"),
    ("person_signing_webcam_rec_s4", "person_signing_webcam", "5 min, reconstruct", "scale 4, stride 1"),
    ("person_signing_webcam_rec_s8", "person_signing_webcam", "5 min, reconstruct", "scale 8, stride 1"),
    ("person_signing_webcam_rec_s4_plain", "person_signing_webcam", "5 min, reconstruct",
     "scale 4, stride 1, no back-projection"),
    ("person_signing_webcam_rec_s8_plain", "person_signing_webcam", "5 min, reconstruct",
     "scale 8, stride 1, no back-projection"),
]


def table(folder: Path) -> str:
    lines = [
        "| clip | training | setting | frames scored | payload kbps | vsa PSNR | bicubic PSNR | gain | vsa SSIM | bicubic SSIM |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stem, clip, training, setting in ROWS:
        path = folder / f"{stem}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        seconds = data["frames"] / data["fps"] if data["fps"] else 0
        kbps = data["payload_bytes"] * 8 / 1000 / seconds if seconds else 0
        groups = data["metrics"]
        for group in ("all", "sent", "interpolated") if "interpolated" in groups else ("all",):
            m = groups[group]
            scored = f"{m['frames']} ({group})" if group != "all" else str(m["frames"])
            lines.append(
                f"| {clip} | {training} | {setting} | {scored} | {kbps:.1f} | {m['vsa_psnr']:.2f} | "
                f"{m['bicubic_psnr']:.2f} | {m['vsa_psnr'] - m['bicubic_psnr']:+.2f} | {m['vsa_ssim']:.3f} | "
                f"{m['bicubic_ssim']:.3f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "results/core")))
