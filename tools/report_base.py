"""Markdown table of the base model on clips it never learned from, made from the JSON that
`tools/reproduce_base.sh --loo` writes (results are data first, tables second).

    python -m vsa.tools.report_base results/base
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(folder: str) -> str:
    rows, gains = [], []
    for path in sorted(Path(folder).glob("loo_*.json")):
        report = json.loads(path.read_text())
        m = report["metrics"]["all"]
        gain = m["vsa_psnr"] - m["bicubic_psnr"]
        gains.append(gain)
        rows.append(f"| {path.stem[4:]} | {m['frames']:.0f} | {report['payload_bytes'] * 8 / 1000 / (m['frames'] / report['fps']):.1f} "
                    f"| {m['bicubic_psnr']:.2f} | {m['vsa_psnr']:.2f} | {gain:+.2f} | {m['bicubic_ssim']:.3f} "
                    f"| {m['vsa_ssim']:.3f} |")
    if not rows:
        raise SystemExit(f"no loo_*.json in {folder}: run tools/reproduce_base.sh {folder} --loo first")
    head = ["| clip (left out of pretraining) | frames | payload kbps | bicubic PSNR | base PSNR | gain | "
            "bicubic SSIM | base SSIM |", "|---|---|---|---|---|---|---|---|"]
    foot = f"\nMean gain {sum(gains) / len(gains):+.2f} dB over {len(gains)} clips; lowest {min(gains):+.2f} dB."
    return "\n".join(head + rows) + foot


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "results/base"))
