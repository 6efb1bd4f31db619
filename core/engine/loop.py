"""The pre-training loop: one loop for every method and modality.

Step numbering: step ``s`` (1-based) is the ``s``-th optimiser update. Its descriptor comes
from a generator seeded by ``(seed, s - 1)`` (identical on every rank), its augmentations
from one seeded by ``(seed, s - 1, rank)``; the method sees ``step = s - 1``. A checkpoint
``step_000000s.pt`` holds the state after ``s`` updates.

Run directory::

    run_dir/run.lock                 held by rank 0 while a run uses the directory (core.engine.rundir)
    run_dir/config.yaml              resolved config (overrides applied, defaults filled)
    run_dir/metrics.csv              rank-0 metrics (see core.engine.metrics)
    run_dir/tensorboard/             TensorBoard event files
    run_dir/checkpoints/step_NNNNNNN.pt, run_dir/checkpoints/last.pt
    run_dir/encoder.pt               exported encoder (with modality.encoder_extra()), at the end
    run_dir/loss.png                 loss curve (and monitor accuracies)

Nothing is written before the whole run has been validated (config, modality, encoder,
method, optimiser, schedule, data size, the checkpoint to resume from): a rejected run leaves
the directory as it was. Numerical faults stop the run as described in core.engine.health.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from core.config import ConfigError, save_yaml, to_plain
from core.encoders.serialise import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_encoder
from core.engine.build import build_run_method
from core.engine.checkpoint import (LAST, NonFiniteStateError, capture_rng, checkpoint_dir, restore_rng,
                                    save_checkpoint)
from core.engine.config import PretrainConfig, check_across
from core.engine.distributed import (DistContext, ResumableSampler, SigtermFlag, any_rank, barrier, derive_seed,
                                     ignore_sigterm, mean_over_ranks, run_on_main, setup_distributed,
                                     teardown_distributed)
from core.engine.health import Health, NonFiniteLossError, TrainingDivergedError, global_norm, model_state
from core.engine.metrics import MetricsWriter, descriptor_text, plot_losses
from core.engine.monitor import OnlineMonitor
from core.engine.resume import ResumePoint, check_fits, load_fitting
from core.engine.rundir import RunDirectory
from core.engine.views import method_inputs
from core.errors import DiskFullError
from core.invariance import InvarianceSpace
from core.methods import Method
from core.modality import Modality
from core.optim import build_optimizer, build_scheduler

DESCRIPTOR_STREAM, AUGMENT_STREAM, SAMPLER_STREAM, LOADER_STREAM = 1, 2, 3, 4
__all__ = ["NonFiniteLossError", "PretrainResult", "TrainingDivergedError", "descriptor_for_step", "pretrain"]


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
        skipped_files: bad files skipped by this call (``data.skip_bad``), summed over ranks;
            also the ``skipped_files`` column of ``metrics.csv`` (per logged row).
    """
    run_dir: Path
    steps: int
    checkpoint: Path
    encoder_path: Path | None
    history: list[dict] = field(default_factory=list)
    stopped: str | None = None
    method: Method | None = None
    skipped_files: int = 0


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
    generator = torch.Generator().manual_seed(derive_seed(config.seed, DESCRIPTOR_STREAM, step))
    share = config.descriptor.ones_fraction
    if share > 0 and float(torch.rand((), generator=generator)) < share:
        return space.ones()
    return space.sample(generator)


def pretrain(config: PretrainConfig, modality: Modality, resume: bool = False, progress: bool = True
             ) -> PretrainResult:
    """Pre-train ``config.method`` on ``modality``; single process or under ``torchrun``.

    Args:
        config: the validated config.
        modality: the data side (its ``data:`` already validated by its factory).
        resume: continue from the newest good checkpoint of ``run_dir/checkpoints``
            (``last.pt``, else the newest good step file; see :mod:`core.engine.resume`).
        progress: tqdm bar on rank 0.

    Raises:
        NothingToResume: ``resume`` without a good checkpoint (a ``FileNotFoundError``).
        CheckpointsExist: a fresh run into a run_dir that already holds checkpoints (a ``FileExistsError``).
        CheckpointMismatch: the checkpoint does not fit the config (other encoder, space, optimiser).
        RunDirBusy: another run holds the run directory's lock.
        ConfigError: settings that do not fit the modality (descriptor length, encoder, data size).
        NonFiniteLossError: NaN/inf loss; its subclass TrainingDivergedError: non-finite gradients,
            non-finite or diverged parameters (no checkpoint is written for that step).
        DiskFullError: the disk filled up while writing (the previous checkpoint is intact).
    """
    ctx = setup_distributed()
    deterministic = torch.are_deterministic_algorithms_enabled()
    rundir = RunDirectory(Path(config.run_dir), ctx)
    try:
        with SigtermFlag() as sigterm:
            return _Run(config, modality, ctx, rundir, resume, progress, sigterm).run()
    finally:
        rundir.release()
        torch.use_deterministic_algorithms(deterministic)
        teardown_distributed(ctx)


class _Run:
    def __init__(self, config: PretrainConfig, modality: Modality, ctx: DistContext, rundir: RunDirectory,
                 resume: bool, progress: bool, sigterm: SigtermFlag) -> None:
        self.config, self.modality, self.ctx, self.sigterm = config, modality, ctx, sigterm
        self.space = modality.space
        self.run_dir = Path(config.run_dir)
        self.ckpt_dir = checkpoint_dir(self.run_dir)
        self.cuda = ctx.device.type == "cuda"
        train = config.train
        config.descriptor.check(self.space)
        check_across(config)
        if train.deterministic:
            if self.cuda:  # deterministic cuBLAS needs a fixed workspace (read at its first use)
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        if self.cuda:
            torch.backends.cudnn.benchmark = not train.deterministic
        rundir.lock_existing()
        point = rundir.open(resume)  # read only
        ckpt = None if point is None else point.data
        if point is not None:
            check_fits(point, config, self.space, ctx.world_size, warn=ctx.is_main)
            load_fitting(point, config, lambda: modality.load_state_dict(point.data["modality"]))
        modality.setup(ctx.device)
        self.method = build_run_method(config, modality, ctx)
        self.health = Health(float(global_norm(model_state(self.method))), train.max_param_growth)
        self.optimizer = build_optimizer(self.method, config.optim)
        self.scheduler = build_scheduler(self.optimizer, config.optim, total_steps=train.steps)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=False)  # fp16 only; bf16 needs none
        self.step = self.epoch = self.batch_in_epoch = 0
        self.saved_step, self.saved_path = -1, None
        if point is not None:
            load_fitting(point, config, lambda: self._restore(point))
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
        # everything is validated: only now take the directory and write into it
        rundir.claim(point, lambda path: save_yaml(config.to_dict(), path))
        if ckpt is not None:
            restore_rng(ckpt["rng"])  # last: nothing after this may draw from the global generators

    # ------------------------------------------------------------------ set-up
    def _restore(self, point: ResumePoint) -> None:
        ckpt = point.data
        self.method.load_state_dict(ckpt["model"])
        self.method.load_extra_state(ckpt["method_extra"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.epoch, self.batch_in_epoch = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch_in_epoch"])
        self.saved_step, self.saved_path = self.step, point.path

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
    def _last_good(self) -> str:
        return f"{self.saved_path} (step {self.saved_step})" if self.saved_path else "none written yet"

    def _diverged(self, fault: str | None) -> TrainingDivergedError:
        """The error for parameters found unhealthy after step ``self.step`` (not checkpointed)."""
        step = self.step
        where = f" with descriptor [{self.space.describe(descriptor_for_step(self.config, self.space, step - 1))}]"
        return TrainingDivergedError(
            f"{fault or 'parameters diverged on another rank'} after step {step}{where if step else ''}; "
            f"stopped without checkpointing step {step}; last good checkpoint: {self._last_good()}")

    def _train_step(self, batch: dict[str, Tensor]) -> tuple[float, float, Tensor, dict[str, float]]:
        """One update; returns (loss, lr, descriptor, logs). Raises NonFiniteLossError (loss) or
        TrainingDivergedError (gradients, or the parameters this step starts from)."""
        index, cfg, device = self.step, self.config, self.ctx.device
        descriptor = descriptor_for_step(cfg, self.space, index)
        generator = torch.Generator().manual_seed(derive_seed(cfg.seed, AUGMENT_STREAM, index, self.ctx.rank))
        raw = batch["input"].to(device, non_blocking=True)
        inputs = method_inputs(self.method.inputs, self.modality, raw, descriptor.to(device), generator,
                               getattr(self.method, "looc_entries", ()))
        if self.cuda and cfg.train.channels_last:
            inputs = channels_last(inputs)
        self.optimizer.zero_grad(set_to_none=True)
        params = list(self.method.parameters())
        state_norm = global_norm(model_state(self.method))  # what this step starts from (the last step's result)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.cuda and cfg.train.bf16):
            loss, logs = self.model(**inputs, descriptor=descriptor.to(device), step=index)
        self.scaler.scale(loss).backward()
        if cfg.train.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = global_norm(p.grad for p in params if p.grad is not None)
        if cfg.train.grad_clip is not None:
            nn.utils.clip_grads_with_norm_(params, cfg.train.grad_clip, grad_norm.float())
        value, grad_value, state_value = torch.stack(  # one device sync for the three checks
            [loss.detach().double(), grad_norm.double().to(loss.device), state_norm.to(loss.device)]).tolist()
        fault = self.health.param_fault(state_value)
        bad_params, bad_loss, bad_grad = any_rank(
            [fault is not None, not math.isfinite(value), not math.isfinite(grad_value)], self.ctx)
        if bad_params:
            raise self._diverged(fault)
        if bad_loss or bad_grad:
            what = f"non-finite loss ({value})" if bad_loss else f"non-finite gradient norm ({grad_value})"
            kind = NonFiniteLossError if bad_loss else TrainingDivergedError
            raise kind(f"{what} at step {index + 1} (epoch {self.epoch}, batch {self.batch_in_epoch}) with "
                       f"descriptor [{self.space.describe(descriptor)}]; stopped before the optimiser step, "
                       f"without checkpointing this step; last good checkpoint: {self._last_good()}")
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.method.on_step_end(index, cfg.train.steps)
        self.step += 1
        self.batch_in_epoch += 1
        return value, lr, descriptor, {k: float(v) for k, v in logs.items() if k != "loss"}

    def _save(self) -> None:
        """Check the weights (see core.engine.health), then write the checkpoint on rank 0."""
        fault = self.health.param_fault(float(global_norm(model_state(self.method))))
        if any_rank([fault is not None], self.ctx)[0]:
            raise self._diverged(fault)
        run_on_main(self.ctx, self._write, f"write the checkpoint of step {self.step}")
        self.saved_step, self.saved_path = self.step, self.ckpt_dir / LAST

    def _write(self) -> None:
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
        try:
            save_checkpoint(payload, self.ckpt_dir, self.config.train.keep_checkpoints)
        except NonFiniteStateError as err:
            raise self._diverged(str(err)) from err
        except DiskFullError as err:
            full = DiskFullError(f"{err}; the checkpoint of step {self.step} was not written, last good "
                                 f"checkpoint: {self._last_good()}")
            full.errno = err.errno
            raise full from err

    def run(self) -> PretrainResult:
        train, total = self.config.train, self.config.train.steps
        stop_at = train.stop_at if train.stop_at is not None and train.stop_at > self.step else None
        history: list[dict] = []
        stopped: str | None = None
        loader, window_s, window_n, window_skipped = None, 0.0, 0, 0
        self.skipped_total = 0
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
                batch = next(loader)
                if "skipped" in batch:  # bad files the modality skipped (data.skip_bad) in this batch
                    window_skipped += int(batch["skipped"].sum())
                loss, lr, descriptor, logs = self._train_step(batch)
                window_s, window_n = window_s + time.perf_counter() - start, window_n + 1
                history.append({"step": self.step, "loss": loss, "lr": lr, "descriptor": descriptor.tolist()})
                (term,) = any_rank([self.sigterm.requested], self.ctx)
                stopped = "sigterm" if term else "stop_at" if stop_at is not None and self.step >= stop_at else None
                stopped = None if self.step >= total else stopped  # the last step finishes the run anyway
                final = self.step == total or stopped is not None
                row: dict[str, Any] = {}
                if self.step % train.log_every == 0 or final:
                    means = mean_over_ranks({"loss": loss, "skipped": float(window_skipped), **logs}, self.ctx)
                    skipped = round(means.pop("skipped") * self.ctx.world_size)  # summed over ranks
                    row = {"step": self.step, "epoch": self.epoch, "loss": means.pop("loss"), "lr": lr,
                           "samples_per_s": samples * window_n / max(window_s, 1e-9),
                           "descriptor": descriptor_text(descriptor), **means}
                    if skipped:
                        row["skipped_files"] = skipped  # since the previous row
                        self.skipped_total += skipped
                    window_s, window_n, window_skipped = 0.0, 0, 0
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
            # A failed step leaves the iterator referenced by the traceback: its worker processes
            # would wait for work until the interpreter's exit, which then waits for them.
            if loader is not None and hasattr(loader, "_shutdown_workers"):
                loader._shutdown_workers()
            loader = None
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
                              self.method, self.skipped_total)
