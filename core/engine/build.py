"""Building a run's method: encoder, method, checks of what the modality must provide, and
device placement (sync BatchNorm under DDP on CUDA, channels-last on CUDA)."""
from __future__ import annotations

import warnings

import torch
from torch import nn

from core.config import ConfigError
from core.encoders.descriptor_norm import DescriptorBatchNorm2d
from core.encoders.registry import build_encoder
from core.engine.config import PretrainConfig
from core.engine.distributed import DistContext
from core.methods import Method, build_method
from core.modality import Modality


def build_run_method(config: PretrainConfig, modality: Modality, ctx: DistContext) -> Method:
    """The method of ``config`` on ``modality``'s space, on ``ctx.device``, with the same initial
    weights on every rank and on every resume (seeded by ``config.seed``).

    Raises:
        ConfigError: an encoder or method the config cannot build, or one the modality cannot feed.
    """
    cuda = ctx.device.type == "cuda"
    default_name, default_kwargs = modality.default_encoder()
    name = config.encoder.name or default_name
    kwargs = {**default_kwargs, **config.encoder.kwargs}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # same initial weights on every rank and resume
        try:
            encoder = build_encoder(name, modality.space, **kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"encoder: cannot build {name!r} with {kwargs}: {err}") from err
        name = config.method.name
        if name in ("looc", "augself") and type(modality).sample_params is Modality.sample_params:
            raise ConfigError(f"method {name} needs augmentation parameters, which the {modality.name} "
                              "modality does not expose (Modality.sample_params / render)")
        target_dims = modality.target_dims() if name == "augself" else None
        for entry in config.method.looc_entries or ():
            try:
                modality.entry_augmentations(entry)
            except KeyError as err:
                raise ConfigError(f"method.looc_entries: {err.args[0]}") from err
        try:
            method = build_method(encoder, config.method, seed=config.seed, target_dims=target_dims)
        except ValueError as err:
            raise ConfigError(f"method: {err}") from err
    if method.inputs == "looc":
        fixed = config.descriptor.mode == "fixed"
        if not fixed or not bool((config.descriptor.fixed_descriptor(modality.space) == 1).all()):
            raise ConfigError("method looc pre-trains with every augmentation on: set descriptor.mode: fixed "
                              "with neither descriptor.fixed nor descriptor.active")
    if config.method.batch_norm == "sync" and any(isinstance(m, DescriptorBatchNorm2d) for m in method.modules()):
        raise ConfigError("method.batch_norm=sync turns every BatchNorm into SyncBatchNorm, which keeps no "
                          "statistics per descriptor: use it with encoder norm: batch, or keep encoder norm: "
                          "descriptor with method.batch_norm: shuffle or local")
    if ctx.distributed and config.method.batch_norm == "sync":
        if cuda:
            method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
        elif ctx.is_main:
            warnings.warn("method.batch_norm=sync needs CUDA; keeping per-rank BatchNorm on CPU")
    method = method.to(ctx.device)
    if cuda and config.train.channels_last:
        method = method.to(memory_format=torch.channels_last)
    return method
