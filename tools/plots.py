"""The evaluation's figures, drawn with matplotlib (headless: the Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from vsa.tools.rd import pareto  # noqa: E402

_STYLE = {
    "vsa": dict(color="tab:red", marker="o", lw=2.2),
    "vsa-sr": dict(color="tab:brown", marker="o", lw=2.2),
    "bicubic": dict(color="tab:gray", marker=".", ls=":"),
    "x264-zerolatency": dict(color="tab:blue", marker="s"),
    "x264-medium": dict(color="tab:cyan", marker="s", ls="--"),
    "vp8": dict(color="tab:green", marker="^"),
    "vp9": dict(color="tab:olive", marker="v"),
    "av1": dict(color="tab:purple", marker="D"),
    "inrv": dict(color="tab:orange", marker="*", ms=10),
}


def rd_curves(points: list[dict], path: str, title: str) -> None:
    """PSNR against kbps: every point faintly, each method's Pareto front as a line."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    methods = sorted({p["method"] for p in points}, key=lambda m: list(_STYLE).index(m) if m in _STYLE else 99)
    for method in methods:
        style = _STYLE.get(method, {})
        mine = [(p["kbps"], p["psnr"]) for p in points if p["method"] == method]
        ax.scatter([r for r, _ in mine], [q for _, q in mine], s=10, alpha=0.35, color=style.get("color"))
        front = pareto(mine)
        ax.plot([r for r, _ in front], [q for _, q in front], label=method, **style)
    ax.set_xscale("log")
    ax.set_xlabel("payload kbps (log)")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def per_frame(series: dict[str, list[float]], path: str, title: str, marks: list[int] | None = None,
              mark_label: str = "") -> None:
    """PSNR per frame of each series; ``marks``: frames to draw a vertical line at (e.g. model updates)."""
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    for name, values in series.items():
        style = _STYLE.get(name.split(" ")[0], {})
        ax.plot(range(len(values)), values, label=name, color=style.get("color"), lw=1.2)
    for i, frame in enumerate(marks or []):
        ax.axvline(frame, color="0.4", lw=0.8, ls=":", label=mark_label if i == 0 and mark_label else None)
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def latent_pca(codes: torch.Tensor, path: str, title: str, split: int | None = None) -> None:
    """The clip's latent codes projected on their first two principal components (the paper's figure 1).

    ``split`` marks where the training frames end (live mode), so a reader
    can see whether the unseen half stays on the learned path.
    """
    x = codes.double() - codes.double().mean(0, keepdim=True)
    # Principal axes from the SVD: exact and deterministic, and N is small.
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    xy = (x @ v[:2].T).numpy()
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=110)
    t = range(len(xy))
    ax.plot(xy[:, 0], xy[:, 1], color="lightgray", lw=0.8, zorder=1)
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=list(t), cmap="viridis", s=14, zorder=2)
    if split is not None and 0 < split < len(xy):
        ax.scatter(xy[split:, 0], xy[split:, 1], facecolors="none", edgecolors="tab:red", s=30, lw=0.6,
                   label="not trained on", zorder=3)
        ax.legend(fontsize=8)
    fig.colorbar(sc, ax=ax, label="frame")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
