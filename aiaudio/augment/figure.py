"""A picture of the augmentations: log-mel of each clip (rows) under each augmentation (columns)."""
from __future__ import annotations

from pathlib import Path

import torch


def augmentation_grid(columns: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write a PNG grid of spectrograms.

    Args:
        columns: ordered ``{title: (N, n_mels, frames) log-mel in dB}``, same N for all.
        path: output PNG.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = list(columns)
    n = columns[titles[0]].shape[0]
    if any(v.shape[0] != n for v in columns.values()):
        raise ValueError(f"every column needs the same number of clips ({n}): "
                         f"{ {k: v.shape[0] for k, v in columns.items()} }")
    fig, axes = plt.subplots(n, len(titles), figsize=(2.0 * len(titles), 1.6 * n), squeeze=False)
    top = max(float(v.max()) for v in columns.values())
    for j, title in enumerate(titles):
        for i in range(n):
            ax = axes[i][j]
            ax.imshow(columns[title][i].detach().float().cpu().numpy(), origin="lower", aspect="auto",
                      cmap="magma", vmin=top - 80.0, vmax=top)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
        axes[0][0].set_ylabel("mel bins")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
