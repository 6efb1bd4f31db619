"""Tasks of ``aiaudio compare`` and the two evaluations every model gets on each.

A task is a built-in synthetic factor (``aiaudio.data.synthetic.FACTORS``: fresh labelled
clips, seed 101 for test and 102 for training, as in the quickstart) or a real dataset spec
(``esc50:/data/ESC-50``). Each yields the sources of both evaluations:

* few-shot: N-way K-shot episodes (ridge readout) on the test clips (synthetic) or the test
  classes of the class split (real data: MetaAudio split file or the seeded 70/10/20 split);
  the "dataset" descriptor is learned on the training clips / training classes;
* linear probe: trained on the training clips (validation carved off with the seed) and
  scored on held-out test clips (synthetic), or on a seeded clip-level train/val/test split
  of every class, stratified by class (real data, like ``aiaudio probe``).

Models that learn a descriptor (AI-SimCLR) are read out with the descriptor learned per task
(few-shot "dataset" mode; the probe's learned descriptor, with learning rate and weight decay
chosen on validation); the others with the fixed descriptor they were pre-trained with (plain
encoders ignore it). The extra rows of ``aiaudio compare`` (AI-SimCLR with the all-ones
descriptor, the calibration baselines) go through :func:`evaluate_model` as fixed-descriptor
models. The probe's interval is the normal approximation
``1.96 * sqrt(p (1 - p) / n)`` over its ``n`` test clips; the few-shot interval is
``1.96 * std / sqrt(episodes)``.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from aiaudio.data.synthetic import FACTOR_CLASSES
from aiaudio.quickstart import TEST_SEED, TRAIN_SEED, EvalSettings, task_clips
from core.errors import UsageError


EVALUATIONS = ("fewshot", "probe")     # what compare can run; CompareSettings.evaluations picks


@dataclass
class CompareSettings(EvalSettings):
    """Evaluation settings (the quickstart's few-shot settings for the synthetic tasks, plus
    the real-data and probe settings)."""

    dataset_shots: int = 1            # MetaAudio: 5-way 1-shot on real datasets
    dataset_seconds: float = 5.0      # MetaAudio piece length; longer clips vote over pieces
    probe_epochs: int = 30            # the probe settings default to those of `aiaudio probe`
    probe_lrs: list[float] = field(default_factory=lambda: [1e-3, 1e-2])
    probe_weight_decays: list[float] = field(default_factory=lambda: [0.0, 1e-4])
    val_fraction: float = 0.2         # of each class's training clips, for model selection
    test_fraction: float = 0.2        # real data: of each class's clips, for the probe's test
    batch_size: int = 256
    evaluations: list[str] = field(default_factory=lambda: list(EVALUATIONS))  # which to run, in order
    cache_mb: float = 2048.0          # in-memory log-mel cache per task and front end
    device: str = "cpu"

    def __post_init__(self) -> None:
        """Validate every value now, before any pre-training (errors name the setting)."""
        from core.config import ConfigError
        from core.downstream.fewshot import FewShotConfig
        from core.downstream.probe import ProbeConfig

        for key in ("clips", "max_ways", "dataset_shots"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if key == "max_ways" else 1):
                raise ConfigError(f"compare settings: {key}={value!r} must be an integer >= "
                                  f"{2 if key == 'max_ways' else 1}")
        for key in ("seconds", "dataset_seconds", "cache_mb"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"compare settings: {key}={getattr(self, key)!r} must be > 0")
        FewShotConfig(ways=self.max_ways, shots=self.shots, queries=self.queries, episodes=self.episodes,
                      seed=self.seed, train_episodes=self.train_episodes, inner_steps=self.inner_steps,
                      descriptor_init=self.descriptor_init,
                      batch_size=self.batch_size)
        ProbeConfig(lrs=list(self.probe_lrs), weight_decays=list(self.probe_weight_decays), epochs=self.probe_epochs,
                    batch_size=self.batch_size, val_fraction=self.val_fraction, seed=self.seed)
        if not 0 < self.test_fraction < 1 or self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(f"compare settings: test_fraction={self.test_fraction} must lie in (0, 1) with "
                              f"val_fraction + test_fraction < 1")
        unknown = [e for e in self.evaluations if e not in EVALUATIONS]
        if not self.evaluations or unknown or len(set(self.evaluations)) != len(self.evaluations):
            raise ConfigError(f"compare settings: evaluations={self.evaluations!r} must list fewshot and/or probe, "
                              f"each once")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"compare settings: device={self.device!r} must be 'cpu' or 'cuda'")


@dataclass
class Sources:
    """The clips one model is evaluated on for one task (already log-mels for its front end)."""

    fewshot_test: Any
    fewshot_train: Any
    probe_train: Any
    probe_val: Any | None
    probe_test: Any
    ways: int
    shots: int
    note: str


class SyntheticTask:
    """A synthetic factor as a task (classes of the factor; fresh clips for test and training)."""

    kind = "synthetic"

    def __init__(self, factor: str) -> None:
        self.name = self.spec = factor
        self._cache: dict[str, Sources] = {}

    def sources(self, frontend: Any, settings: CompareSettings, encoder: Any = None, extra: Any = None,
                encoder_path: str = "") -> Sources:
        """Log-mel sources for ``frontend`` (built once per distinct front end)."""
        key = frontend_key(frontend)
        if key not in self._cache:
            frontend = frontend.to(settings.device)
            test = task_clips(self.name, frontend, settings, TEST_SEED)
            train = task_clips(self.name, frontend, settings, TRAIN_SEED)
            ways = min(settings.max_ways, len(FACTOR_CLASSES[self.name]))
            note = (f"{settings.clips} fresh clips of {settings.seconds:g} s for test (seed {TEST_SEED}) and "
                    f"for training (seed {TRAIN_SEED})")
            self._cache[key] = Sources(test, train, train, None, test, ways, settings.shots, note)
        return self._cache[key]


class DatasetTask:
    """A real dataset as a task: opened and split by class once, before any pre-training.

    Args:
        name: the task's column name (the dataset name, numbered when given twice).
        spec: ``name:path?options`` (``aiaudio.data.open_dataset``).
        sample_rate: decode rate (the models' front end rate).
        split_file: MetaAudio class split (pickled ``[train, val, test]``), or None for the
            seeded 70/10/20 split.
        cache: directory of decoded audio, or None.
        seed: seed of the class split and of the probe's clip split.

    Raises:
        ValueError / OSError: bad spec or missing files (the message names the spec).
    """

    kind = "dataset"

    def __init__(self, name: str, spec: str, sample_rate: int, split_file: str | None, cache: str | None,
                 seed: int) -> None:
        from aiaudio.data import open_dataset, split_dataset

        self.name, self.spec, self.split_file, self.cache, self.seed = name, spec, split_file, cache, seed
        try:
            self.data = open_dataset(spec, sample_rate=sample_rate, cache=cache)
        except (ValueError, KeyError, OSError) as error:
            text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            raise UsageError(f"--dataset {spec}: {text}") from error
        if len(self.data) == 0:
            raise UsageError(f"--dataset {spec}: no clips")
        self.parts: dict[str, Any] = {"all": self.data}
        if split_file is not None or self.data.num_classes >= 3:
            self.parts.update(split_dataset(self.data, split_file=split_file, seed=seed))
            self.split_note = (f"class split from {split_file}" if split_file
                               else f"seeded 70/10/20 class split (seed {seed})")
        else:
            self.split_note = "no class split (fewer than 3 classes): few-shot on all classes"
        self._cache: dict[str, Sources] = {}

    def _args(self, encoder_path: str, settings: CompareSettings) -> argparse.Namespace:
        """The flags the ``aiaudio probe``/``fewshot`` helpers read (``aiaudio.downstream_setup``)."""
        return argparse.Namespace(
            encoder=encoder_path, dataset=self.spec, split_file=self.split_file, cache=self.cache,
            cache_mb=settings.cache_mb, seconds=settings.dataset_seconds, seed=self.seed, device=settings.device,
            no_progress=True, split="all", task="classification", target=None,
            val_fraction=settings.val_fraction, test_fraction=settings.test_fraction)

    def sources(self, frontend: Any, settings: CompareSettings, encoder: Any = None, extra: Any = None,
                encoder_path: str = "") -> Sources:
        """Few-shot sources (test / training classes) and the probe's clip-level split."""
        from aiaudio.downstream_setup import AudioSetup, choose_part, clip_split, make_clips

        key = frontend_key(frontend)
        if key in self._cache:
            return self._cache[key]
        args = self._args(encoder_path, settings)
        s = AudioSetup(encoder, extra or {}, self.data, self.parts, self.split_note, frontend.to(settings.device))
        split = "test" if "test" in self.parts else "all"
        test_part = choose_part(s, split, self.spec)
        train_part = self.parts["train"] if split == "test" else test_part
        ways = min(settings.max_ways, test_part.num_classes)
        if ways < 2:
            raise UsageError(f"--dataset {self.spec}: {test_part.num_classes} class(es) in the few-shot test part "
                             f"({self.split_note}); few-shot needs at least 2")
        test = make_clips(s, args, test_part)
        train = make_clips(s, args, train_part) if train_part is not test_part else test
        data, train_idx, val_idx, test_idx, probe_note = clip_split(args, s)
        clips = make_clips(s, args, data) if data is not test_part else test
        note = (f"few-shot on the {split} classes ({self.split_note}), descriptor learned on the "
                f"{'training' if split == 'test' else 'same'} classes; probe: {probe_note}")
        self._cache[key] = Sources(test, train, clips.subset(train_idx), clips.subset(val_idx) if val_idx else None,
                                   clips.subset(test_idx), ways, settings.dataset_shots, note)
        return self._cache[key]


def frontend_key(frontend: Any) -> str:
    """A key equal for front ends that compute the same log-mels (config and statistics)."""
    return json.dumps(frontend.to_dict(), sort_keys=True, default=str)


def probe_ci95(accuracy: float, n: int) -> float:
    """Normal-approximation 95 % half-width of an accuracy measured on ``n`` clips."""
    return 1.96 * math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / n) if n > 0 else math.nan


def evaluate_model(encoder: Any, sources: Sources, learns: bool, fixed: Sequence[float],
                   settings: CompareSettings, progress: bool = False) -> dict[str, dict[str, Any]]:
    """Few-shot and probe scores of one model on one task (those of ``settings.evaluations``).

    Args:
        encoder: the frozen encoder (moved to ``settings.device``).
        sources: the task's clips for this model's front end.
        learns: read out with a descriptor learned on the task (AI-SimCLR) instead of ``fixed``.
        fixed: ``(K,)`` the descriptor the model was pre-trained with (used when not ``learns``).

    Returns:
        ``{"fewshot": {...}, "probe": {...}}`` (the evaluations asked for), each with ``accuracy``, ``ci95`` (fractions),
        ``descriptor`` (the learned one, or None for a fixed descriptor) and details.
    """
    encoder = encoder.to(settings.device)
    scores: dict[str, dict[str, Any]] = {}
    if "fewshot" in settings.evaluations:
        scores["fewshot"] = _fewshot(encoder, sources, learns, fixed, settings, progress)
    if "probe" in settings.evaluations:
        scores["probe"] = _probe(encoder, sources, learns, fixed, settings, progress)
    return scores


def _fewshot(encoder: Any, sources: Sources, learns: bool, fixed: Sequence[float], settings: CompareSettings,
             progress: bool) -> dict[str, Any]:
    from core.downstream.fewshot import FewShotConfig, run_fewshot

    spec = "dataset" if learns else "fixed:" + ",".join(f"{float(v):g}" for v in fixed)
    config = FewShotConfig(ways=sources.ways, shots=sources.shots, queries=settings.queries,
                           episodes=settings.episodes, seed=settings.seed, descriptor=spec,
                           train_episodes=settings.train_episodes, inner_steps=settings.inner_steps,
                           batch_size=settings.batch_size, descriptor_init=settings.descriptor_init)
    shot = run_fewshot(encoder, sources.fewshot_test, config, train=sources.fewshot_train if learns else None,
                       device=settings.device, progress=progress)
    fewshot = {"accuracy": shot.accuracy, "ci95": shot.ci95, "ways": config.ways, "shots": config.shots,
               "queries": config.queries, "episodes": shot.episodes, "descriptor_mode": shot.descriptor_mode,
               "descriptor": [round(v, 4) for v in shot.descriptor] if learns else None,
               "wall_s": shot.wall_s}
    return fewshot


def _probe(encoder: Any, sources: Sources, learns: bool, fixed: Sequence[float], settings: CompareSettings,
           progress: bool) -> dict[str, Any]:
    from core.downstream.probe import ProbeConfig, fit_probe

    probe_config = ProbeConfig(descriptor="learned" if learns else "fixed",
                               fixed=None if learns else [float(v) for v in fixed],
                               lrs=list(settings.probe_lrs), weight_decays=list(settings.probe_weight_decays),
                               epochs=settings.probe_epochs, batch_size=settings.batch_size,
                               val_fraction=settings.val_fraction, seed=settings.seed)
    _, fitted = fit_probe(encoder, sources.probe_train, probe_config, val=sources.probe_val, device=settings.device,
                          progress=progress, test=sources.probe_test)
    accuracy, n_test = float(fitted.metrics["accuracy"]), len(sources.probe_test)
    probe = {"accuracy": accuracy, "ci95": probe_ci95(accuracy, n_test), "ci_method": "normal approximation",
             "test_clips": n_test, "mean_class_accuracy": float(fitted.metrics["mean_class_accuracy"]),
             "descriptor_mode": probe_config.descriptor,
             "descriptor": [round(v, 4) for v in fitted.descriptor] if learns else None,
             "lr": fitted.lr, "weight_decay": fitted.weight_decay, "val_score": fitted.val_score,
             "wall_s": fitted.wall_s}
    return probe
