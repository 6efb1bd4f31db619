"""Named audio pre-training models: AI-SimCLR and the baselines it is compared with.

Each entry is a list of config overrides applied over a base config (the quickstart's
``aiaudio/configs/quickstart.yaml`` or a recipe's YAML), so every model gets the same
budget (steps, batch, optimiser, data, seed) and differs only where listed:

=================  =====================================================================
ai_simclr          Hyper-ResNet18, a binary descriptor sampled per step (the paper)
simclr             plain ResNet18, all seven augmentations (default SimCLR)
simclr_frequency   plain ResNet18, only pitch_shift, fade_in, fade_out, noise
simclr_time        plain ResNet18, only time_mask, time_shift, time_stretch
looc               plain ResNet18, LooC with heads all / frequency / time (MoCo queues)
looc_pp            LooC++: ResNet18 with one last stage per head, features concatenated
augself            plain ResNet18, SimCLR + AugSelf heads on every augmentation's parameters
=================  =====================================================================
"""
from __future__ import annotations

from aiaudio.space import FREQUENCY_GROUP, TIME_GROUP

_PLAIN = ["encoder.name=resnet18", "descriptor.mode=fixed"]
_LOOC = [*_PLAIN, "method.name=looc", "method.looc_entries=[frequency,time]", "method.temperature=0.2",
         "method.queue_size=4096"]

BASELINES: dict[str, list[str]] = {
    "ai_simclr": ["descriptor.mode=sample"],
    "simclr": list(_PLAIN),
    "simclr_frequency": [*_PLAIN, f"descriptor.active=[{','.join(FREQUENCY_GROUP)}]"],
    "simclr_time": [*_PLAIN, f"descriptor.active=[{','.join(TIME_GROUP)}]"],
    "looc": list(_LOOC),
    "looc_pp": [*_LOOC, "encoder.name=looc_resnet18", "encoder.kwargs.branches=3"],
    "augself": [*_PLAIN, "method.name=augself", "method.augself_base=simclr"],
}


def baseline_overrides(name: str) -> list[str]:
    """The overrides of model ``name``.

    Raises:
        KeyError: unknown name (lists the known ones).
    """
    if name not in BASELINES:
        raise KeyError(f"unknown audio model {name!r}; known: {', '.join(BASELINES)}")
    return list(BASELINES[name])
