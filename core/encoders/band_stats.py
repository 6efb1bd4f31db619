"""A calibration baseline that needs no training: the mean and spread of every input row.

For an input ``(B, C, F, T)`` -- for audio a log-mel spectrogram, whose rows are the mel
bands -- the features are, for every channel and row, the mean and the standard deviation
over the last axis (time), concatenated: ``(B, 2·C·F)``. This is the classic "bag of frames"
summary of a spectrogram: a pre-trained encoder read out the same way (few-shot, linear
probe) should beat it, or it has learned little beyond the front end's statistics.

It has no weights, so it is not a pre-training architecture: it is not in
:data:`core.encoders.registry.ENCODERS` and cannot be stored in an encoder file. The
downstream commands build it from ``--encoder band-stats`` (audio: ``logmel-stats``), see
:mod:`core.encoders.calibration`. The descriptor is checked and then ignored, as the plain
ResNet baselines do.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from core.encoders.base import InvarianceEncoder
from core.invariance import InvarianceSpace


class BandStats(nn.Module):
    """``(B, C, F, T) -> (B, 2·C·F)``: per channel and row, the mean over ``T`` and the
    standard deviation over ``T`` (population form, divisor ``T``).

    Feature order: all means (channel-major, then row), then all standard deviations in the
    same order, i.e. ``[mean[c, f] for c, f] + [std[c, f] for c, f]``.

    Args:
        in_chans: C, the input channels.
        bands: F, the rows (mel bands; image rows for images).
    """

    def __init__(self, in_chans: int = 1, bands: int = 128) -> None:
        super().__init__()
        for key, value in (("in_chans", in_chans), ("bands", bands)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"band_stats: {key} must be a positive integer, got {value!r}")
        self.in_chans, self.bands = in_chans, bands
        self.num_features = 2 * in_chans * bands

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_chans or x.shape[2] != self.bands:
            raise ValueError(f"band_stats expects inputs (B, {self.in_chans}, {self.bands}, T), got "
                             f"{tuple(x.shape)}")
        mean = x.mean(dim=-1)
        std = x.std(dim=-1, correction=0)
        return torch.cat([mean.flatten(1), std.flatten(1)], dim=1)


class BandStatsEncoder(InvarianceEncoder):
    """The :class:`BandStats` features as an :class:`InvarianceEncoder` (descriptor ignored).

    Args:
        space: the invariance space descriptors are checked against.
        in_chans: input channels (1 for log-mels).
        bands: input rows (the front end's ``n_mels`` for log-mels).
    """

    conditioned = False  # its features never depend on the descriptor: nothing to learn there

    def __init__(self, space: InvarianceSpace, in_chans: int = 1, bands: int = 128) -> None:
        super().__init__()
        self.space = space
        self.name = "band_stats"
        self.config = {"in_chans": in_chans, "bands": bands}
        self.net = BandStats(in_chans, bands)
        self.num_features = self.net.num_features

    def forward(self, x: Tensor, inv: Tensor) -> Tensor:
        """``(B, C, F, T)`` -> ``(B, 2·C·F)``; ``inv`` is checked but has no effect."""
        self.check_descriptor(inv, x)
        return self.net(x)

    def specialise(self, inv: Tensor) -> BandStats:
        """A copy of the plain module (every descriptor gives the same one)."""
        self._single_descriptor(inv)
        return copy.deepcopy(self.net)


def band_stats(space: InvarianceSpace, **kwargs) -> BandStatsEncoder:
    """Band mean and standard deviation, no weights (kwargs: ``in_chans``, ``bands``)."""
    return BandStatsEncoder(space, **kwargs)
