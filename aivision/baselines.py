"""Named vision pre-training models: AI-MoCo and the baselines of the paper's tables.

Each entry is a list of config overrides applied over a base config (a recipe's YAML or
``aivision/configs/pretrain.yaml``), so every model shares the budget and differs only
where listed (all MoCo-v2, as the paper's Hyper-ResNet50 comparison):

================  ======================================================================
ai_moco           Hyper-ResNet50, descriptor sampled per step over [spatial, appearance]
moco              plain ResNet50, every augmentation (default MoCo-v2)
moco_appearance   A-MoCo: plain ResNet50, appearance augmentations only
moco_spatial      S-MoCo: plain ResNet50, spatial augmentations only
looc              LooC: plain ResNet50, heads all / spatial / appearance, one queue each
looc_pp           LooC++: ResNet50 with one last stage per head, features concatenated
augself           AugSelf on MoCo-v2: crop and colour-jitter difference heads, weight 0.5
================  ======================================================================
"""
from __future__ import annotations

_PLAIN = ["encoder.name=resnet50", "descriptor.mode=fixed"]
_MOCO = ["method.name=moco_v2"]
_LOOC = [*_PLAIN, "method.name=looc", "method.looc_entries=[spatial,appearance]"]

BASELINES: dict[str, list[str]] = {
    "ai_moco": [*_MOCO, "encoder.name=hyper_resnet50", "descriptor.mode=sample"],
    "moco": [*_MOCO, *_PLAIN],
    "moco_appearance": [*_MOCO, *_PLAIN, "descriptor.active=[appearance]"],
    "moco_spatial": [*_MOCO, *_PLAIN, "descriptor.active=[spatial]"],
    "looc": list(_LOOC),
    "looc_pp": [*_LOOC, "encoder.name=looc_resnet50", "encoder.kwargs.branches=3"],
    "augself": [*_PLAIN, "method.name=augself", "method.augself_base=moco_v2",
                "method.augself_weights={crop: 0.5, color_jitter: 0.5}"],
}


def baseline_overrides(name: str) -> list[str]:
    """The overrides of model ``name``.

    Raises:
        KeyError: unknown name (lists the known ones).
    """
    if name not in BASELINES:
        raise KeyError(f"unknown vision model {name!r}; known: {', '.join(BASELINES)}")
    return list(BASELINES[name])
