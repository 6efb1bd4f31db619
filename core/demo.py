"""What a descriptor changes: small reports used by the quickstart demos of both CLIs."""
from __future__ import annotations

import time
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from core.analysis.interpolation import interpolation_curve  # lives there now; re-exported here
from core.encoders.base import InvarianceEncoder


@torch.no_grad()
def descriptor_effects(
    encoder: InvarianceEncoder, x: Tensor, descriptors: Mapping[str, Tensor], reference: str
) -> list[dict]:
    """How far each descriptor moves the features (and kernels) from a reference descriptor.

    Args:
        encoder: any encoder (put in eval mode here).
        x: input batch ``(B, C, H, W)``.
        descriptors: label -> descriptor ``(K,)``; must contain ``reference``.
        reference: the label everything is compared with (e.g. the all-ones default).

    Returns:
        One dict per descriptor: ``label``, ``descriptor`` (list), ``cosine`` (mean cosine
        similarity of features to the reference's), ``feature_change`` (relative L2
        distance) and, for encoders with generated kernels, ``kernel_change`` (relative
        L2 distance of all generated kernels).
    """
    if reference not in descriptors:
        raise ValueError(f"reference {reference!r} is not among the descriptors {list(descriptors)}")
    encoder.eval()
    kernels = getattr(encoder, "generate_kernels", None)
    flat_kernels = lambda d: torch.cat([k.flatten() for k in kernels(d).values()])  # noqa: E731
    ref = encoder(x, descriptors[reference])
    ref_kernels = flat_kernels(descriptors[reference]) if kernels else None
    rows = []
    for label, d in descriptors.items():
        z = ref if label == reference else encoder(x, d)
        row = {
            "label": label,
            "descriptor": [round(float(v), 3) for v in d],
            "cosine": float(F.cosine_similarity(z, ref, dim=1).mean()),
            "feature_change": float((z - ref).norm() / ref.norm()),
        }
        if kernels:
            k = ref_kernels if label == reference else flat_kernels(d)
            row["kernel_change"] = float((k - ref_kernels).norm() / ref_kernels.norm())
        rows.append(row)
    return rows


@torch.no_grad()
def specialise_check(encoder: InvarianceEncoder, x: Tensor, d: Tensor, repeats: int = 3) -> dict:
    """Max difference between ``specialise(d)(x)`` and ``encoder(x, d)`` and both timings."""
    encoder.eval()
    plain = encoder.specialise(d)

    def best_time(fn) -> tuple[float, Tensor]:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        return min(times), out

    t_enc, z_enc = best_time(lambda: encoder(x, d))
    t_plain, z_plain = best_time(lambda: plain(x))
    return {"max_abs_diff": float((z_enc - z_plain).abs().max()), "encoder_s": t_enc, "specialised_s": t_plain}


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Plain-text table; ``columns`` holds (key, header, format spec) triples."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append([format(row[key], spec) if key in row else "-" for key, _, spec in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def demo_report(
    encoder: InvarianceEncoder,
    x: Tensor,
    descriptors: Mapping[str, Tensor],
    reference: str,
    interpolate: tuple[str, str],
    specialise_on: str,
) -> str:
    """The quickstart's printed report: descriptor effects, an interpolation, specialise.

    Args:
        encoder, x: the encoder and an input batch ``(B, C, H, W)``.
        descriptors: label -> descriptor ``(K,)``.
        reference: label every descriptor is compared with.
        interpolate: two labels to interpolate between.
        specialise_on: label of the descriptor to bake in with ``specialise``.
    """
    names = encoder.space.names
    rows = descriptor_effects(encoder, x, descriptors, reference)
    for row in rows:
        row["values"] = "[" + " ".join(f"{v:.2f}" for v in row["descriptor"]) + "]"
    columns = [
        ("label", "descriptor", "s"),
        ("values", "values (" + ", ".join(names) + ")", "s"),
        ("cosine", "feature cos", ".3f"),
        ("feature_change", "feature dL2", ".3f"),
        ("kernel_change", "kernel dL2", ".3f"),
    ]
    start, end = interpolate
    curve = interpolation_curve(encoder, x, descriptors[start], descriptors[end], steps=5)
    check = specialise_check(encoder, x, descriptors[specialise_on])
    return "\n".join(
        [
            f"What each descriptor changes, relative to {reference!r}:",
            format_table(rows, columns),
            "",
            f"Interpolating from {start!r} to {end!r}:",
            format_table(curve, [("t", "t", ".2f"), ("cosine_to_start", f"cos to {start}", ".3f"),
                                 ("cosine_to_end", f"cos to {end}", ".3f")]),
            "",
            f"specialise({specialise_on!r}): max |difference| {check['max_abs_diff']:.2e}; forward "
            f"{check['encoder_s'] * 1e3:.1f} ms through the encoder, {check['specialised_s'] * 1e3:.1f} ms specialised",
        ]
    )
