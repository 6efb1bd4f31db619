"""The pre-training engine: config, loop, checkpoints, metrics, monitor and CLI plumbing.

Usage::

    from core.engine import load_config, pretrain
    config = load_config("recipe.yaml", ["train.steps=100"])
    result = pretrain(config, modality)       # modality: a core.modality.Modality
"""
from core.engine.config import (DescriptorConfig, EncoderConfig, MonitorConfig, PretrainConfig, TrainConfig,
                                config_from_dict, load_config)
from core.engine.loop import NonFiniteLossError, PretrainResult, TrainingDivergedError, descriptor_for_step, pretrain

__all__ = [
    "DescriptorConfig",
    "EncoderConfig",
    "MonitorConfig",
    "NonFiniteLossError",
    "PretrainConfig",
    "PretrainResult",
    "TrainConfig",
    "TrainingDivergedError",
    "config_from_dict",
    "descriptor_for_step",
    "load_config",
    "pretrain",
]
