"""``aiaudio compare``: pre-train AI-SimCLR and the baselines with one budget, evaluate all on every task.

Every model of :data:`aiaudio.baselines.BASELINES` (or the ones chosen) is pre-trained from
the same base config (default ``aiaudio/configs/quickstart.yaml``) with the same ``a.b=value``
overrides, hence the same steps, batch, data and seed, into ``out/<model>/`` (a finished run
is reused, an interrupted one resumed, as in the quickstart). Each model is then evaluated on
every task, few-shot and with a linear probe (:mod:`aiaudio.compare_tasks`). A model that
learns its descriptor (AI-SimCLR) is also read out with the all-ones descriptor (row
``ai_simclr_ones``, "AI-SimCLR i=1"), and two calibration rows that are not pre-trained join
the tables: ``logmel_stats`` (mean and std of every mel band over time) and ``untrained`` (the
base config's encoder with random weights seeded by its ``seed``), both on the first model's
front end and read out with all ones (``calibration=False`` / ``--no-calibration`` leaves them
out). The results land in ``out/results.json`` (everything), ``out/comparison.md`` (tables: models x tasks with
95 % intervals, average and mean rank, best in bold; the learned descriptors) and
``out/comparison.png``.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from aiaudio.baselines import BASELINES, baseline_overrides
from aiaudio.compare_report import descriptor_rows, descriptor_table, markdown_table, summarise
from aiaudio.compare_tasks import EVALUATIONS, CompareSettings, DatasetTask, SyntheticTask, evaluate_model
from aiaudio.data.synthetic import FACTORS
from aiaudio.modality import AudioDataConfig
from aiaudio.quickstart import CONFIG, load_model, run_config, train_model
from core.errors import UsageError
from core.config import from_dict

LABELS = {"ai_simclr": "AI-SimCLR", "simclr": "SimCLR", "simclr_frequency": "SimCLR (frequency)",
          "simclr_time": "SimCLR (time)", "looc": "LooC", "looc_pp": "LooC++", "augself": "AugSelf",
          "logmel_stats": "log-mel stats", "untrained": "untrained"}
# Rows that are not pre-trained: same front end as the trained models, read out with all ones.
CALIBRATION = ("logmel_stats", "untrained")
# A model that learns its descriptor also gets a row read out with the all-ones descriptor.
ONES_SUFFIX, ONES_LABEL = "_ones", " i=1"
TITLES = {"fewshot": "Few-shot", "probe": "Linear probe"}


def check_models(models: Sequence[str] | None) -> list[str]:
    """The chosen model names in order (default: all of ``BASELINES``).

    Raises:
        ValueError: an unknown name (lists the known ones), a repeated one or an empty list.
    """
    chosen = list(BASELINES) if models is None else list(models)
    if not chosen:
        raise UsageError(f"--models: no model given; known: {', '.join(BASELINES)}")
    for name in chosen:
        if name not in BASELINES:
            raise UsageError(f"--models: unknown model {name!r}; known: {', '.join(BASELINES)}")
    repeated = sorted({n for n in chosen if chosen.count(n) > 1})
    if repeated:
        raise UsageError(f"--models: {repeated[0]!r} given twice")
    return chosen


def open_datasets(specs: Sequence[str], split_files: Mapping[str, str], sample_rate: int, cache: str | None,
                  seed: int) -> list[DatasetTask]:
    """Open and class-split every ``--dataset`` spec (before any pre-training, so a bad path
    fails at once). A spec ``NAME=name:path?options`` names its task ``NAME``; otherwise
    tasks are named after the dataset (``esc50``; ``esc50_2`` when repeated).

    Raises:
        ValueError: bad spec or files, or a ``--split-file`` for a name no dataset has.
    """
    from aiaudio.data import parse_spec

    names, plain = [], []
    for given in specs:
        named = re.match(r"^([A-Za-z][A-Za-z0-9_-]*)=(.+)$", given)
        spec = named.group(2) if named else given
        plain.append(spec)
        try:
            base = parse_spec(spec)[0]
        except ValueError as error:
            raise UsageError(f"--dataset {spec!r}: {error}") from None
        if base == "synthetic":
            raise UsageError(f"--dataset {spec!r}: the synthetic tasks are built in (see --tasks)")
        if named and named.group(1) in names:
            raise UsageError(f"--dataset {given!r}: task name {named.group(1)!r} given twice")
        names.append(named.group(1) if named else base if base not in names else f"{base}_{names.count(base) + 1}")
    unknown = sorted(set(split_files) - set(names))
    if unknown:
        raise UsageError(f"--split-file {unknown[0]}=...: no --dataset named {unknown[0]!r} "
                         f"(datasets: {', '.join(names) or 'none'})")
    return [DatasetTask(name, spec, sample_rate, split_files.get(name), cache, seed)
            for name, spec in zip(names, plain)]


def _train_all(models: list[str], out: Path, overrides: Sequence[str], config: str | Path, progress: bool
               ) -> dict[str, dict[str, Any]]:
    info = {}
    for number, name in enumerate(models, 1):
        print(f"== model {number}/{len(models)}: {name} ({LABELS.get(name, name)})")
        reused = (out / name / "encoder.pt").is_file()
        start = time.perf_counter()
        path = train_model(name, out, overrides, progress, baseline_overrides(name), config)
        info[name] = {"encoder": str(path), "reused": reused,
                      "pretrain_s": None if reused else round(time.perf_counter() - start, 1)}
    return info


def _option_value(options: Mapping[str, Any]) -> str:
    """``k=v&k=v`` of ``--encoder`` options (booleans and None as the option parser reads them)."""
    text = {True: "true", False: "false", None: "none"}
    return "&".join(f"{k}={text[v] if v is None or isinstance(v, bool) else v}" for k, v in options.items())


def _calibration_rows(base: Any, loaded: dict[str, tuple[Any, Any, bool, list[float]]], first: str,
                      first_path: str) -> tuple[dict[str, tuple[Any, Any, bool, list[float]]], dict[str, dict]]:
    """The ``logmel_stats`` and ``untrained`` rows: encoders on the front end of model ``first``
    (its file ``first_path``), read out with the all-ones descriptor.

    ``untrained`` is the base config's architecture and options (``base``: the validated base
    config) with weights seeded by its ``seed``. Each row's ``encoder`` record is the
    ``--encoder`` value that rebuilds it in ``aiaudio probe`` / ``fewshot`` / ``measure``, and
    the row is built from that value by the same reader.
    """
    from aiaudio.downstream_setup import read_encoder
    from aiaudio.modality import AudioModality

    encoder, frontend, _, _ = loaded[first]
    ones = [1.0] * encoder.space.dim
    default_name, default_kwargs = AudioModality.default_encoder(None)  # type: ignore[arg-type]  # no state used
    name = base.encoder.name or default_name
    kwargs = {**default_kwargs, **base.encoder.kwargs}
    values = {"logmel_stats": f"logmel-stats?frontend={first_path}",
              "untrained": f"untrained:{name}?{_option_value({**kwargs, 'seed': base.seed})}&frontend={first_path}"}
    rows = {row: (read_encoder(value, "cpu")[0], frontend, False, ones) for row, value in values.items()}
    common = {"kind": "calibration", "frontend_of": first, "reused": False, "pretrain_s": None,
              "learns_descriptor": False, "fixed_descriptor": ones, "method": None, "steps": 0, "batch_size": None}
    info = {"logmel_stats": {**common, "label": LABELS["logmel_stats"], "encoder_name": "band_stats", "seed": None,
                             "encoder": values["logmel_stats"]},
            "untrained": {**common, "label": LABELS["untrained"], "encoder_name": name, "seed": base.seed,
                          "encoder": values["untrained"]}}
    return rows, info


def run_compare(out: str | Path = "runs/compare", models: Sequence[str] | None = None,
                config: str | Path | None = CONFIG, overrides: Sequence[str] = (), datasets: Sequence[str] = (),
                split_files: Mapping[str, str] | None = None, settings: CompareSettings | None = None,
                tasks: Sequence[str] = FACTORS, cache: str | None = None, progress: bool = True,
                calibration: bool = True) -> dict[str, Any]:
    """Pre-train (or reuse / resume) every model, evaluate each on every task, write the reports.

    Besides the pre-trained models, the tables hold, for every model that learns its
    descriptor, a row read out with the all-ones descriptor (``<model>_ones``, "AI-SimCLR i=1")
    and, with ``calibration``, the rows ``logmel_stats`` (mean and std of every mel band, no
    training) and ``untrained`` (the base config's encoder with seeded random weights), both
    on the first model's front end and read out with all ones.

    Args:
        out: output directory (run directories ``out/<model>/`` and the reports).
        models: names from ``BASELINES`` (default: all of them).
        config: the base YAML every model starts from (None: the quickstart's).
        overrides: ``a.b=value`` applied to every model (the model's own overrides win).
        datasets: real dataset specs (``esc50:/data/ESC-50``), evaluated after the synthetic tasks.
        split_files: task name -> MetaAudio class split file.
        settings: evaluation settings.
        tasks: synthetic tasks (factors); empty for none.
        cache: directory of decoded audio for the real datasets.
        progress: progress bars and per-task lines.
        calibration: add the ``logmel_stats`` and ``untrained`` rows.

    Returns:
        What ``results.json`` holds.

    Raises:
        ValueError / ConfigError: unknown model, task, key or bad dataset (before any training).
        RuntimeError: a pre-training run stopped early; rerunning resumes it.
    """
    out, settings, start = Path(out), settings or CompareSettings(), time.perf_counter()
    config = CONFIG if config is None else config
    models = check_models(models)
    unknown = [t for t in tasks if t not in FACTORS]
    if unknown:
        raise UsageError(f"--tasks: unknown task {unknown[0]!r}; the synthetic tasks are {list(FACTORS)}")
    configs = {m: run_config(m, out, overrides, baseline_overrides(m), config) for m in models}
    base = run_config("untrained", out, overrides, [], config) if calibration else None
    data_configs = {m: from_dict(AudioDataConfig, c.data, where="data") for m, c in configs.items()}
    rate = data_configs[models[0]].sample_rate
    task_list: list[Any] = [SyntheticTask(t) for t in tasks]
    task_list += open_datasets(datasets, split_files or {}, rate, cache, settings.seed)
    if not task_list:
        raise UsageError("nothing to evaluate: no synthetic task (--tasks) and no --dataset")
    out.mkdir(parents=True, exist_ok=True)
    info = _train_all(models, out, overrides, config, progress)
    names: list[str] = []
    loaded: dict[str, tuple[Any, Any, bool, list[float]]] = {}
    rows: list[str] = []  # table rows: each model, its all-ones readout if it learns, then the calibration
    for m in models:
        encoder, frontend = load_model(info[m]["encoder"])
        learns = configs[m].descriptor.mode == "sample"
        fixed = configs[m].descriptor.fixed_descriptor(encoder.space).tolist()
        loaded[m] = (encoder, frontend, learns, fixed)
        names = list(encoder.space.names)
        info[m].update(kind="pretrained", label=LABELS.get(m, m), learns_descriptor=learns,
                       fixed_descriptor=None if learns else fixed, encoder_name=configs[m].encoder.name,
                       method=configs[m].method.name, steps=configs[m].train.steps,
                       batch_size=configs[m].train.batch_size, seed=configs[m].seed)
        rows.append(m)
        if learns:
            ones = [1.0] * encoder.space.dim
            key = m + ONES_SUFFIX
            loaded[key] = (encoder, frontend, False, ones)
            info[key] = {**info[m], "kind": "readout", "readout_of": m, "label": LABELS.get(m, m) + ONES_LABEL,
                         "learns_descriptor": False, "fixed_descriptor": ones}
            rows.append(key)
    if base is not None:
        extra_rows, extra_info = _calibration_rows(base, loaded, models[0], info[models[0]]["encoder"])
        loaded.update(extra_rows)
        info.update(extra_info)
        rows += list(extra_rows)
    info = {r: info[r] for r in rows}
    evaluations = list(settings.evaluations)
    results: dict[str, dict[str, dict[str, Any]]] = {e: {r: {} for r in rows} for e in evaluations}
    described = {"fewshot": f"few-shot (ridge, {settings.episodes} episodes)",
                 "probe": f"a linear probe ({settings.probe_epochs} epochs)"}
    print(f"== evaluating {len(rows)} models on {len(task_list)} tasks: "
          + " and ".join(described[e] for e in evaluations))
    task_info = []
    for task in task_list:
        for m in rows:
            encoder, frontend, learns, fixed = loaded[m]
            clock = time.perf_counter()
            sources = task.sources(frontend, settings, encoder, {}, info[m]["encoder"])
            scores = evaluate_model(encoder, sources, learns, fixed, settings, progress=False)
            for evaluation in evaluations:
                results[evaluation][m][task.name] = scores[evaluation]
            if progress:
                cells = "  ".join(f"{TITLES[e].lower()} {100 * scores[e]['accuracy']:5.1f} ± "
                                  f"{100 * scores[e]['ci95']:.1f}" for e in evaluations)
                print(f"  {task.name:<10} {m:<17} {cells}  ({time.perf_counter() - clock:.0f} s)", flush=True)
        task_info.append({"name": task.name, "kind": task.kind, "spec": task.spec, "ways": sources.ways,
                          "shots": sources.shots, "note": sources.note})
    report = {"settings": asdict(settings), "config": str(config), "overrides": list(overrides),
              "datasets": list(datasets), "models": info, "tasks": task_info, "descriptor_names": names,
              "results": results, "summary": {e: summarise(results[e], rows, [t["name"] for t in task_info])
                                              for e in evaluations},
              "wall_s": round(time.perf_counter() - start, 1)}
    write_reports(report, out)
    return report


def comparison_markdown(report: Mapping[str, Any]) -> str:
    """``comparison.md``: one table per evaluation, the learned descriptors, tasks and models."""
    models, tasks = list(report["models"]), [t["name"] for t in report["tasks"]]
    labels = {m: report["models"][m]["label"] for m in models}
    s = report["settings"]
    kinds = {i.get("kind", "pretrained") for i in report["models"].values()}
    first = next(i for i in report["models"].values() if i.get("kind", "pretrained") == "pretrained")
    lines = [f"# AI-SimCLR against the baselines ({len(models)} models, {len(tasks)} tasks)", "",
             f"Same base config `{report['config']}` and budget for every model: {first['steps']} steps of batch "
             f"{first['batch_size']}, seed {first['seed']}; overrides: `{' '.join(report['overrides']) or 'none'}`. "
             "Accuracy in %, ± the 95 % interval; avg = mean accuracy over the tasks; rank = mean rank over "
             "the tasks (1 = best, ties share their places); best per column in bold. AI-SimCLR is read out "
             "with the descriptor learned per task"
             + (" (\"AI-SimCLR i=1\": the same encoder with the all-ones descriptor)" if "readout" in kinds else "")
             + ", the baselines with the fixed descriptor they were trained with."
             + (" The calibration rows are not pre-trained and use the first model's front end: \"log-mel "
                "stats\" is the mean and standard deviation of every mel band over time, \"untrained\" the base "
                "config's encoder with seeded random weights." if "calibration" in kinds else ""), ""]
    notes = {"fewshot": (f"N-way K-shot episodes (ways per task below; {s['shots']}-shot on synthetic tasks, "
                         f"{s['dataset_shots']}-shot on datasets; {s['queries']} queries per class, "
                         f"{s['episodes']} episodes, ridge readout); interval 1.96 · std / sqrt(episodes)."),
             "probe": (f"Linear probe ({s['probe_epochs']} epochs, learning rate from {s['probe_lrs']} and weight "
                       f"decay from {s['probe_weight_decays']} chosen on validation, refitted on train + "
                       "validation); accuracy on held-out test clips; interval: normal approximation "
                       "1.96 · sqrt(p (1 - p) / n) over the n test clips.")}
    for evaluation in report["results"]:
        lines += [f"## {TITLES[evaluation]}", "", notes[evaluation], "",
                  markdown_table(report["results"][evaluation], models, tasks, labels), ""]
    learners = [m for m in models if report["models"][m]["learns_descriptor"]]
    rows = descriptor_rows(report["results"], learners, tasks)
    if rows:
        lines += ["## Learned descriptors", "", "1 = invariant to the augmentation, 0 = sensitive to it; few-shot: "
                  "learned once on training episodes (\"dataset\" mode); probe: learned with the head.", "",
                  descriptor_table(rows, report["descriptor_names"]), ""]
    lines += ["## Tasks", ""] + [f"- `{t['name']}` ({t['kind']}, {t['ways']}-way {t['shots']}-shot): {t['note']}"
                                 for t in report["tasks"]]
    lines += ["", "## Models", ""] + [model_line(m, i) for m, i in report["models"].items()]
    lines += ["", f"Total wall time: {report['wall_s'] / 60:.1f} min.", ""]
    return "\n".join(lines)


def model_line(name: str, i: Mapping[str, Any]) -> str:
    """One line of the Models section of ``comparison.md``."""
    kind = i.get("kind", "pretrained")
    if kind == "calibration":
        return (f"- `{name}` ({i['label']}): calibration, not pre-trained: encoder `{i['encoder_name']}` on the "
                f"front end of `{i['frontend_of']}`, fixed descriptor {i['fixed_descriptor']} "
                f"(`--encoder {i['encoder']}`)")
    text = f"- `{name}` ({i['label']}): encoder `{i['encoder_name']}`, method `{i['method']}`, "
    if kind == "readout":
        return text + f"the encoder of `{i['readout_of']}` read out with the fixed descriptor {i['fixed_descriptor']}"
    text += "descriptor learned per task" if i["learns_descriptor"] else f"fixed descriptor {i['fixed_descriptor']}"
    return text + (", reused finished run" if i["reused"] else f", pre-trained in {i['pretrain_s']:.0f} s")


def write_reports(report: Mapping[str, Any], out: Path) -> list[Path]:
    """Write ``results.json``, ``comparison.md`` and ``comparison.png``; print the tables."""
    from aiaudio.compare_plot import comparison_figure

    text = comparison_markdown(report)
    paths = [out / "results.json", out / "comparison.md"]
    paths[0].write_text(json.dumps(report, indent=2, default=float) + "\n")
    paths[1].write_text(text)
    paths.append(comparison_figure(report, out / "comparison.png"))
    print("\n" + text)
    print("written: " + ", ".join(str(p) for p in paths))
    return paths
