"""Markdown table of the core-codec figures, made from the JSON that
`tools/reproduce_core.sh` writes (results are data first, tables second).

    python -m vsa.tools.report_core results/core
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CLIPS = {"th": "talking_head_indoor_woman", "street_pedestrians_static": "street_pedestrians_static",
         "person_signing_webcam": "person_signing_webcam"}
# (json stem without the back-projection mode, clip, training, setting)
ROWS = [
    ("th_restore_s4", "th", "10 min, restore", "scale 4, stride 1"),
    ("th_reconstruct_s4", "th", "10 min, reconstruct", "scale 4, stride 1"),
    ("th_restore_s4_k2", "th", "10 min, restore", "scale 4, stride 2"),
    ("th_reconstruct_s4_k2", "th", "10 min, reconstruct", "scale 4, stride 2"),
    ("th_restore_s8", "th", "10 min, restore", "scale 8, stride 1"),
    ("th_reconstruct_s8", "th", "10 min, reconstruct", "scale 8, stride 1"),
    ("th_hold_tail", "th", "10 min, restore, first 70% only", "scale 4, stride 1, held-out 30%"),
    ("street_pedestrians_static_s4", "street_pedestrians_static", "5 min, restore", "scale 4, stride 1"),
    ("street_pedestrians_static_s8", "street_pedestrians_static", "5 min, restore", "scale 8, stride 1"),
    ("person_signing_webcam_s4", "person_signing_webcam", "5 min, restore", "scale 4, stride 1"),
    ("person_signing_webcam_rec_s4", "person_signing_webcam", "5 min, reconstruct", "scale 4, stride 1"),
    ("person_signing_webcam_s8", "person_signing_webcam", "5 min, restore", "scale 8, stride 1"),
    ("person_signing_webcam_rec_s8", "person_signing_webcam", "5 min, reconstruct", "scale 8, stride 1"),
]
MODES = ("auto", "always", "never")


def table(folder: Path) -> str:
    """One row per setting and frame group; vsa PSNR for each back-projection mode."""
    lines = [
        "| clip | training | setting | frames | payload kbps | bicubic PSNR | vsa PSNR, auto (default) | always | never "
        "| gain (auto) | vsa SSIM (auto) | bicubic SSIM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stem, clip, training, setting in ROWS:
        runs = {mode: folder / f"{stem}_{mode}.json" for mode in MODES}
        if not all(path.exists() for path in runs.values()):
            continue
        data = {mode: json.loads(path.read_text()) for mode, path in runs.items()}
        auto = data["auto"]
        seconds = auto["frames"] / auto["fps"] if auto["fps"] else 0
        kbps = auto["payload_bytes"] * 8 / 1000 / seconds if seconds else 0
        groups = ("all", "sent", "interpolated") if "interpolated" in auto["metrics"] else ("all",)
        for group in groups:
            m = {mode: data[mode]["metrics"][group] for mode in MODES}
            a = m["auto"]
            frames = f"{a['frames']} ({group})" if group != "all" else str(a["frames"])
            lines.append(
                f"| {CLIPS[clip]} | {training} | {setting} | {frames} | {kbps:.1f} | {a['bicubic_psnr']:.2f} | "
                f"**{a['vsa_psnr']:.2f}** | {m['always']['vsa_psnr']:.2f} | {m['never']['vsa_psnr']:.2f} | "
                f"{a['vsa_psnr'] - a['bicubic_psnr']:+.2f} | {a['vsa_ssim']:.3f} | {a['bicubic_ssim']:.3f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "results/core")))
