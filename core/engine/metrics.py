"""Rank-0 metrics: ``metrics.csv``, TensorBoard scalars, the tqdm bar and ``loss.png``.

CSV columns: ``step, epoch, loss, lr, samples_per_s, descriptor`` (bit string such as
``"1011001"``, or comma-separated values for a non-binary fixed descriptor), then the
method's other logs and the monitor's accuracies in order of first appearance (a new
column rewrites the file with the widened header; missing cells are empty).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from torch import Tensor
from tqdm.auto import tqdm

from core.fileio import atomic_write

BASE_COLUMNS = ["step", "epoch", "loss", "lr", "samples_per_s", "descriptor"]


def descriptor_text(descriptor: Tensor) -> str:
    """``"1011001"`` for a binary descriptor ``(K,)``, else ``"0.5,1,..."``."""
    values = [float(v) for v in descriptor.detach().cpu().flatten()]
    if all(v in (0.0, 1.0) for v in values):
        return "".join(str(int(v)) for v in values)
    return ",".join(f"{v:g}" for v in values)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a metrics CSV (``([], [])`` when missing)."""
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    text = buffer.getvalue().encode("utf-8")
    atomic_write(path, lambda handle: handle.write(text))


def truncate_csv(path: Path, last_step: int) -> None:
    """Drop rows with ``step > last_step`` (resume: those steps are run again)."""
    columns, rows = read_csv(path)
    if columns:
        _write_csv(path, columns, [r for r in rows if r.get("step") and int(r["step"]) <= last_step])


class MetricsWriter:
    """CSV + TensorBoard + progress bar; everything is a no-op when ``enabled`` is False.

    Args:
        run_dir: the run directory.
        enabled: True on rank 0 only.
        total_steps: the run's length (progress bar total).
        start_step: steps already done (resume); CSV rows after it are dropped and
            TensorBoard events from ``start_step + 1`` on are purged.
        progress: show the tqdm bar.
    """

    def __init__(self, run_dir: Path, enabled: bool, total_steps: int, start_step: int, progress: bool) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.csv"
        self.columns: list[str] = []
        self.tb = None
        self.bar = None
        if not enabled:
            return
        truncate_csv(self.path, start_step)
        self.columns = read_csv(self.path)[0]
        from torch.utils.tensorboard import SummaryWriter  # slow import: rank 0 only

        # events after start_step (a crashed run's, or an older run's) are hidden by TensorBoard
        self.tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=start_step + 1)
        self.bar = tqdm(total=total_steps, initial=start_step, desc="pretrain", disable=not progress,
                        dynamic_ncols=True)

    def log(self, row: dict[str, Any]) -> None:
        """Append one row (must hold ``step``); numbers also go to TensorBoard."""
        if not self.enabled:
            return
        new = [k for k in row if k not in self.columns]
        if new:
            order = BASE_COLUMNS + [k for k in row if k not in BASE_COLUMNS]
            self.columns = ([c for c in BASE_COLUMNS if c in self.columns or c in row]
                            + [c for c in self.columns if c not in BASE_COLUMNS]
                            + [k for k in order if k not in self.columns and k not in BASE_COLUMNS])
            _write_csv(self.path, self.columns, read_csv(self.path)[1])
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, restval="", lineterminator="\n").writerow(
                {k: _cell(v) for k, v in row.items()})
        step = int(row["step"])
        for key, value in row.items():
            if key not in ("step", "epoch", "descriptor") and isinstance(value, (int, float)):
                group = "monitor" if key.startswith("knn") else "train"
                self.tb.add_scalar(f"{group}/{key}", value, step)
        if "loss" in row and self.bar is not None:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row.get('lr', 0.0):.2e}", refresh=False)

    def advance(self, steps: int = 1) -> None:
        """Move the progress bar."""
        if self.bar is not None:
            self.bar.update(steps)

    def close(self) -> None:
        """Flush TensorBoard and close the bar."""
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def plot_losses(csv_path: Path, png_path: Path) -> Path | None:
    """Loss (and monitor accuracies, if any) against step from ``metrics.csv`` as a PNG.

    Returns:
        ``png_path``, or None when the CSV holds no loss rows.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns, rows = read_csv(csv_path)
    loss = [(int(r["step"]), float(r["loss"])) for r in rows if r.get("loss")]
    if not loss:
        return None
    knn = [c for c in columns if c.startswith("knn")]
    fig = Figure(figsize=(10 if knn else 6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2 if knn else 1, 1)
    ax.plot([s for s, _ in loss], [v for _, v in loss], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("pre-training loss")
    ax.grid(alpha=0.3)
    if knn:
        ax2 = fig.add_subplot(1, 2, 2)
        for column in knn:
            points = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
            ax2.plot([s for s, _ in points], [v for _, v in points], marker="o", ms=3, label=column)
        ax2.set_xlabel("step")
        ax2.set_ylabel("k-NN accuracy")
        ax2.set_title("online monitor")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    return png_path
