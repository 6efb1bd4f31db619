"""The pre-training loop: one loop for every method and modality.

Step numbering: step ``s`` (1-based) is the ``s``-th optimiser update. Its descriptor comes
from a generator seeded by ``(seed, s - 1)`` (identical on every rank), its augmentations
from one seeded by ``(seed, s - 1, rank)``; the method sees ``step = s - 1``. A checkpoint
``step_000000s.pt`` holds the state after ``s`` updates.

Run directory::

    run_dir/config.yaml              resolved config (overrides applied, defaults filled)
    run_dir/metrics.csv              rank-0 metrics (see core.engine.metrics)
    run_dir/tensorboard/             TensorBoard event files
    run_dir/checkpoints/step_NNNNNNN.pt, run_dir/checkpoints/last.pt
    run_dir/encoder.pt               exported encoder (with modality.encoder_extra()), at the end
    run_dir/loss.png                 loss curve (and monitor accuracies)
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from core.config import ConfigError, save_yaml, to_plain
from core.encoders.registry import build_encoder
from core.encoders.serialise import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_encoder
from core.engine.checkpoint import (LAST, capture_rng, checkpoint_dir, load_checkpoint, restore_rng,
                                    resume_checkpoint, save_checkpoint, step_files)
from core.engine.config import PretrainConfig, changed_keys
from core.engine.distributed import (DistContext, ResumableSampler, SigtermFlag, any_rank, barrier, derive_seed,
                                     ignore_sigterm, mean_over_ranks, setup_distributed, teardown_distributed)
from core.engine.metrics import MetricsWriter, descriptor_text, plot_losses
from core.engine.monitor import OnlineMonitor
from core.engine.views import method_inputs
from core.errors import RunError
from core.invariance import InvarianceSpace
from core.methods import Method, build_method
from core.modality import Modality
from core.optim import build_optimizer, build_scheduler

DESCRIPTOR_STREAM, AUGMENT_STREAM, SAMPLER_STREAM, LOADER_STREAM = 1, 2, 3, 4


class NonFiniteLossError(RunError, RuntimeError):
    """The loss became NaN or infinite; the message names the step and the descriptor."""


@dataclass
class PretrainResult:
    """Attributes:
        run_dir: the run directory.
        steps: steps completed (the checkpoint's step).
        checkpoint: ``run_dir/checkpoints/last.pt``.
        encoder_path: ``run_dir/encoder.pt``, or None when the run stopped early.
        history: one dict per step run by this call on this rank:
            ``{"step", "loss", "lr", "descriptor": list[float]}``.
        stopped: None when all ``train.steps`` are done, ``"sigterm"`` or ``"stop_at"``.
        method: the trained method on this rank (unwrapped from DistributedDataParallel).
    """
    run_dir: Path
    steps: int
    checkpoint: Path
    encoder_path: Path | None
    history: list[dict] = field(default_factory=list)
    stopped: str | None = None
    method: Method | None = None


def channels_last(inputs: dict[str, Any]) -> dict[str, Any]:
    """Every 4-D view among a step's inputs (lists of keys included) in channels-last format."""
    def convert(value: Any) -> Any:
        if isinstance(value, Tensor) and value.dim() == 4:
            return value.contiguous(memory_format=torch.channels_last)
        return [convert(v) for v in value] if isinstance(value, list) else value
    return {name: convert(value) for name, value in inputs.items()}


def descriptor_for_step(config: PretrainConfig, space: InvarianceSpace, step: int) -> Tensor:
    """The ``(K,)`` descriptor of 0-based step ``step``: identical on every rank."""
    if config.descriptor.mode == "fixed":
        return config.descriptor.fixed_descriptor(space)
    return space.sample(torch.Generator().manual_seed(derive_seed(config.seed, DESCRIPTOR_STREAM, step)))


def pretrain(config: PretrainConfig, modality: Modality, resume: bool = False, progress: bool = True
             ) -> PretrainResult:
    """Pre-train ``config.method`` on ``modality``; single process or under ``torchrun``.

    Args:
        config: the validated config.
        modality: the data side (its ``data:`` already validated by its factory).
        resume: continue from ``run_dir/checkpoints/last.pt``.
        progress: tqdm bar on rank 0.

    Raises:
        FileNotFoundError: ``resume`` without a checkpoint.
        FileExistsError: a fresh run into a run_dir that already holds checkpoints.
        ConfigError: settings that do not fit the modality (descriptor length, encoder, data size).
        NonFiniteLossError: NaN/inf loss (no checkpoint is written for that step).
    """
    ctx = setup_distributed()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        with SigtermFlag() as sigterm:
            return _Run(config, modality, ctx, resume, progress, sigterm).run()
    finally:
        torch.use_deterministic_algorithms(deterministic)
        teardown_distributed(ctx)


class _Run:
    def __init__(self, config: PretrainConfig, modality: Modality, ctx: DistContext, resume: bool,
                 progress: bool, sigterm: SigtermFlag) -> None:
        self.config, self.modality, self.ctx, self.sigterm = config, modality, ctx, sigterm
        self.space = modality.space
        self.run_dir = Path(config.run_dir)
        self.ckpt_dir = checkpoint_dir(self.run_dir)
        self.cuda = ctx.device.type == "cuda"
        train = config.train
        config.descriptor.check(self.space)
        if train.deterministic:
            if self.cuda:  # deterministic cuBLAS needs a fixed workspace (read at its first use)
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        if self.cuda:
            torch.backends.cudnn.benchmark = not train.deterministic
        ckpt = self._open_run_dir(resume)
        if ckpt is not None:
            modality.load_state_dict(ckpt["modality"])
        modality.setup(ctx.device)
        self.method = self._build_method()
        self.optimizer = build_optimizer(self.method, config.optim)
        self.scheduler = build_scheduler(self.optimizer, config.optim, total_steps=train.steps)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=False)  # fp16 only; bf16 needs none
        self.step = self.epoch = self.batch_in_epoch = 0
        self.saved_step, self.saved_path = -1, None
        if ckpt is not None:
            self._restore(ckpt)
        self.model: nn.Module = self.method
        if ctx.distributed:
            self.model = nn.parallel.DistributedDataParallel(
                self.method, device_ids=[ctx.device.index] if self.cuda else None)
        self.dataset = modality.train_dataset()
        self.sampler = ResumableSampler(self.dataset, ctx.world_size, ctx.rank,
                                        derive_seed(config.seed, SAMPLER_STREAM))
        self.batches_per_epoch = self.sampler.epoch_length // train.batch_size
        if self.batches_per_epoch == 0:
            raise ConfigError(f"the training set holds {len(self.dataset)} items: too few for "
                              f"train.batch_size={train.batch_size} on {ctx.world_size} rank(s)")
        self.progress = progress
        self.monitor = OnlineMonitor(modality, config.monitor, ctx.device) if ctx.is_main else None
        if ckpt is not None:
            restore_rng(ckpt["rng"])  # last: nothing after this may draw from the global generators

    # ------------------------------------------------------------------ set-up
    def _open_run_dir(self, resume: bool) -> dict[str, Any] | None:
        ckpt = None
        if resume:
            path = resume_checkpoint(self.run_dir)
            ckpt = load_checkpoint(path)
            changed = changed_keys(ckpt["config"], to_plain(self.config.to_dict()))
            if changed and self.ctx.is_main:
                warnings.warn(f"resuming {path} with a config that differs in {changed}", stacklevel=3)
            if ckpt.get("world_size", self.ctx.world_size) != self.ctx.world_size:
                warnings.warn(f"resuming {path} written by {ckpt['world_size']} rank(s) on "
                              f"{self.ctx.world_size}: the data order changes", stacklevel=3)
        elif step_files(self.ckpt_dir) or (self.ckpt_dir / LAST).exists():
            raise FileExistsError(f"{self.ckpt_dir} already holds checkpoints; resume that run "
                                  f"(--resume) or choose another run_dir")
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(self.config.to_dict(), self.run_dir / "config.yaml")
        return ckpt

    def _build_method(self) -> Method:
        default_name, default_kwargs = self.modality.default_encoder()
        name = self.config.encoder.name or default_name
        kwargs = {**default_kwargs, **self.config.encoder.kwargs}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)  # same initial weights on every rank and resume
            try:
                encoder = build_encoder(name, self.space, **kwargs)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"encoder: cannot build {name!r} with {kwargs}: {err}") from err
            name = self.config.method.name
            if name in ("looc", "augself") and type(self.modality).sample_params is Modality.sample_params:
                raise ConfigError(f"method {name} needs augmentation parameters, which the {self.modality.name} "
                                  "modality does not expose (Modality.sample_params / render)")
            target_dims = self.modality.target_dims() if name == "augself" else None
            for entry in self.config.method.looc_entries or ():
                try:
                    self.modality.entry_augmentations(entry)
                except KeyError as err:
                    raise ConfigError(f"method.looc_entries: {err.args[0]}") from err
            try:
                method = build_method(encoder, self.config.method, seed=self.config.seed, target_dims=target_dims)
            except ValueError as err:
                raise ConfigError(f"method: {err}") from err
        if method.inputs == "looc":
            d = descriptor_for_step(self.config, self.space, 0)
            if self.config.descriptor.mode != "fixed" or not bool((d == 1).all()):
                raise ConfigError("method looc pre-trains with every augmentation on: set descriptor.mode: fixed "
                                  "with neither descriptor.fixed nor descriptor.active")
        if self.ctx.distributed and self.config.method.batch_norm == "sync":
            if self.cuda:
                method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
            elif self.ctx.is_main:
                warnings.warn("method.batch_norm=sync needs CUDA; keeping per-rank BatchNorm on CPU")
        method = method.to(self.ctx.device)
        if self.cuda and self.config.train.channels_last:
            method = method.to(memory_format=torch.channels_last)
        return method

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.method.load_state_dict(ckpt["model"])
        self.method.load_extra_state(ckpt["method_extra"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.epoch, self.batch_in_epoch = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch_in_epoch"])
        self.saved_step, self.saved_path = self.step, self.ckpt_dir / LAST

    def _loader(self) -> Any:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch)
        self.sampler.set_start(self.batch_in_epoch * self.config.train.batch_size)
        generator = torch.Generator().manual_seed(derive_seed(self.config.seed, LOADER_STREAM, self.epoch, self.ctx.rank))
        return iter(DataLoader(self.dataset, batch_size=self.config.train.batch_size, sampler=self.sampler,
                               num_workers=self.config.train.num_workers, drop_last=True,
                               pin_memory=self.cuda, generator=generator, worker_init_fn=ignore_sigterm))

    # -------------------------------------------------------------- training
    def _train_step(self, batch: dict[str, Tensor]) -> tuple[float, float, Tensor, dict[str, float]]:
        """One update; returns (loss, lr, descriptor, logs). Raises NonFiniteLossError."""
        index, cfg, device = self.step, self.config, self.ctx.device
        descriptor = descriptor_for_step(cfg, self.space, index)
        generator = torch.Generator().manual_seed(derive_seed(cfg.seed, AUGMENT_STREAM, index, self.ctx.rank))
        raw = batch["input"].to(device, non_blocking=True)
        inputs = method_inputs(self.method.inputs, self.modality, raw, descriptor.to(device), generator,
                               getattr(self.method, "looc_entries", ()))
        if self.cuda and cfg.train.channels_last:
            inputs = channels_last(inputs)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.cuda and cfg.train.bf16):
            loss, logs = self.model(**inputs, descriptor=descriptor.to(device), step=index)
        value = float(loss.detach().float())
        (bad,) = any_rank([not math.isfinite(value)], self.ctx)
        if bad:
            last = f"{self.saved_path} (step {self.saved_step})" if self.saved_path else "none written yet"
            raise NonFiniteLossError(
                f"non-finite loss ({value}) at step {index + 1} (epoch {self.epoch}, batch "
                f"{self.batch_in_epoch}) with descriptor [{self.space.describe(descriptor)}]; stopped "
                f"without checkpointing this step; last good checkpoint: {last}")
        self.scaler.scale(loss).backward()
        if cfg.train.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.method.parameters(), cfg.train.grad_clip)
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.method.on_step_end(index, cfg.train.steps)
        self.step += 1
        self.batch_in_epoch += 1
        return value, lr, descriptor, {k: float(v) for k, v in logs.items() if k != "loss"}

    def _save(self) -> None:
        if self.ctx.is_main:
            encoder = self.method.encoder
            payload = {
                "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": self.step,
                "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "world_size": self.ctx.world_size,
                "config": to_plain(self.config.to_dict()),
                "encoder_meta": {"encoder": encoder.name, "config": dict(encoder.config),
                                 "space": self.space.to_dict(), "extra": self.modality.encoder_extra()},
                "model": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "method_extra": self.method.extra_state(), "modality": self.modality.state_dict(),
                "rng": capture_rng(),
            }
            save_checkpoint(payload, self.ckpt_dir, self.config.train.keep_checkpoints)
        self.saved_step, self.saved_path = self.step, self.ckpt_dir / LAST
        barrier(self.ctx)

    def run(self) -> PretrainResult:
        train, total = self.config.train, self.config.train.steps
        stop_at = train.stop_at if train.stop_at is not None and train.stop_at > self.step else None
        history: list[dict] = []
        stopped: str | None = None
        loader, window_s, window_n = None, 0.0, 0
        samples = train.batch_size * self.ctx.world_size
        self.metrics = MetricsWriter(self.run_dir, self.ctx.is_main, total, self.step, self.progress)
        self.model.train()
        try:
            while self.step < total and stopped is None:
                start = time.perf_counter()
                if self.batch_in_epoch >= self.batches_per_epoch:
                    self.epoch, self.batch_in_epoch, loader = self.epoch + 1, 0, None
                if loader is None:
                    loader = self._loader()
                loss, lr, descriptor, logs = self._train_step(next(loader))
                window_s, window_n = window_s + time.perf_counter() - start, window_n + 1
                history.append({"step": self.step, "loss": loss, "lr": lr, "descriptor": descriptor.tolist()})
                (term,) = any_rank([self.sigterm.requested], self.ctx)
                stopped = "sigterm" if term else "stop_at" if stop_at is not None and self.step >= stop_at else None
                stopped = None if self.step >= total else stopped  # the last step finishes the run anyway
                final = self.step == total or stopped is not None
                row: dict[str, Any] = {}
                if self.step % train.log_every == 0 or final:
                    means = mean_over_ranks({"loss": loss, **logs}, self.ctx)
                    row = {"step": self.step, "epoch": self.epoch, "loss": means.pop("loss"), "lr": lr,
                           "samples_per_s": samples * window_n / max(window_s, 1e-9),
                           "descriptor": descriptor_text(descriptor), **means}
                    window_s, window_n = 0.0, 0
                if self.monitor is not None and (self.monitor.due(self.step) or (final and self.monitor.active)):
                    row = {"step": self.step, "epoch": self.epoch, **row, **self.monitor.evaluate(self.method.encoder)}
                if row:
                    self.metrics.log(row)
                self.metrics.advance()
                if self.step % train.checkpoint_every == 0 or final:
                    self._save()
            if self.saved_step != self.step:
                self._save()
        finally:
            self.metrics.close()
        encoder_path = None
        if self.ctx.is_main:
            plot_losses(self.run_dir / "metrics.csv", self.run_dir / "loss.png")
            if stopped is None:
                encoder_path = save_encoder(self.method.encoder, self.run_dir / "encoder.pt",
                                            extra=self.modality.encoder_extra())
        elif stopped is None:
            encoder_path = self.run_dir / "encoder.pt"
        barrier(self.ctx)
        return PretrainResult(self.run_dir, self.step, self.ckpt_dir / LAST, encoder_path, history, stopped,
                              self.method)
