"""Round trips of the audio downstream commands (probe, fewshot, measure, finetune) and their errors."""
import argparse
import json
import re

import pytest
import torch

from aiaudio.cli_downstream import add_downstream_commands
from aiaudio.data.synthetic import SyntheticConfig, synthesise_batch
from aiaudio.downstream_setup import parse_descriptors, stratified_split
from aiaudio.frontend import Frontend, FrontendConfig
from aiaudio.space import audio_space
from core import InvarianceSpace, build_encoder
from core.cli import run_cli
from core.encoders.serialise import save_encoder

SR = 8000
DATA = "synthetic?n_clips=30&seconds=0.5&label=pitch"
COMMON = ["--dataset", DATA, "--seconds", "0.5", "--no-progress"]


def run(argv):
    parser = argparse.ArgumentParser(prog="aiaudio")
    add_downstream_commands(parser.add_subparsers())
    return run_cli(parser, argv)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    frontend = Frontend(FrontendConfig(sample_rate=SR, n_fft=256, hop_length=128, n_mels=16))
    waves = torch.from_numpy(synthesise_batch(range(8), SyntheticConfig(n_clips=8, seconds=0.5, sample_rate=SR)))
    frontend.fit([waves])
    torch.manual_seed(0)
    encoder = build_encoder("hyper_resnet18", audio_space(), in_chans=1, width=4)
    extra = {"frontend": frontend.to_dict()}
    # a training checkpoint as the engine writes it (contract D), holding the same encoder
    torch.save({"format": "amortised-invariance-checkpoint", "version": 1, "step": 3,
                "encoder_meta": {"encoder": encoder.name, "config": dict(encoder.config),
                                 "space": encoder.space.to_dict(), "extra": extra},
                "model": {f"encoder.{k}": v for k, v in encoder.state_dict().items()}}, root / "last.pt")
    return save_encoder(encoder, root / "encoder.pt", extra=extra)


def printed_number(out: str, header: str, row: int = 0) -> str:
    """The cell under ``header`` in the first table of ``out`` (format_table layout)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if re.search(rf"(^|  ){re.escape(header)}(  |$)", line))
    cells = lambda line: re.split(r"\s{2,}", line.strip())  # noqa: E731
    return cells(lines[start + 2 + row])[cells(lines[start]).index(header)]


def test_fewshot_round_trip_json_matches_print(encoder_file, tmp_path, capsys):
    out_json = tmp_path / "fewshot.json"
    rc = run(["fewshot", "--encoder", str(encoder_file), *COMMON, "--split", "all", "--ways", "3", "--shots", "1",
              "--queries", "2", "--episodes", "4", "--descriptor", "fixed:ones", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out_json.read_text())
    for key in ("dataset", "ways", "shots", "queries", "episodes", "readout", "descriptor_mode", "accuracy",
                "ci95", "descriptor", "descriptor_names"):
        assert key in report, key
    assert (report["dataset"], report["ways"], report["shots"], report["queries"], report["episodes"]) == (DATA, 3, 1, 2, 4)
    assert report["readout"] == "ridge" and report["descriptor_mode"] == "fixed" and report["descriptor"] == [1.0] * 7
    assert report["descriptor_names"] == list(audio_space().names)
    assert 0.0 <= report["accuracy"] <= 1.0 and report["ci95"] >= 0
    assert printed_number(out, "accuracy") == f"{report['accuracy']:.4f}"
    assert printed_number(out, "ci95") == f"{report['ci95']:.4f}"
    assert printed_number(out, "episodes") == "4"
    # the training checkpoint gives the same encoder, front end and numbers
    rc = run(["fewshot", "--encoder", str(encoder_file.parent / "last.pt"), *COMMON, "--split", "all", "--ways", "3",
              "--queries", "2", "--episodes", "4", "--descriptor", "fixed:ones", "--json", str(tmp_path / "ckpt.json")])
    assert rc == 0 and "warning" not in capsys.readouterr().err
    again = json.loads((tmp_path / "ckpt.json").read_text())
    assert (again["accuracy"], again["ci95"]) == (report["accuracy"], report["ci95"])


def test_fewshot_default_learns_the_descriptor_unless_the_encoder_ignores_it(encoder_file, tmp_path, capsys):
    flags = [*COMMON, "--split", "all", "--ways", "3", "--queries", "2", "--episodes", "3", "--train-episodes", "3",
             "--inner-steps", "2"]
    assert run(["fewshot", "--encoder", str(encoder_file), *flags, "--json", str(tmp_path / "a.json")]) == 0
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["descriptor_mode"] == "dataset" and report["descriptor"] != [1.0] * 7
    assert "--descriptor dataset with --split all" in capsys.readouterr().err
    plain = "untrained:resnet18?width=4&seed=0"
    assert run(["fewshot", "--encoder", plain, *flags, "--json", str(tmp_path / "b.json")]) == 0
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["descriptor_mode"] == "fixed" and report["descriptor"] == [1.0] * 7
    with pytest.raises(SystemExit):
        run(["fewshot", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "auto (default): 'dataset' for an encoder told its invariance" in help_text


def test_probe_round_trip(encoder_file, tmp_path, capsys):
    out_json = tmp_path / "probe.json"
    rc = run(["probe", "--encoder", str(encoder_file), *COMMON, "--epochs", "2", "--lrs", "0.01",
              "--weight-decays", "0", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out_json.read_text())
    for key in ("dataset", "task", "descriptor", "descriptor_names", "lr", "weight_decay", "val_score", "metrics",
                "trainable_params", "wall_s", "peak_mb", "train_clips", "val_clips", "test_clips"):
        assert key in report, key
    assert set(report["metrics"]) >= {"accuracy", "mean_class_accuracy"}
    assert report["train_clips"] + report["val_clips"] + report["test_clips"] == 30
    assert len(report["descriptor"]) == 7 and all(0 <= v <= 1 for v in report["descriptor"])
    assert printed_number(out, "accuracy") == f"{report['metrics']['accuracy']:.4f}"
    assert "stratified by class" in out


def test_probe_regression_and_finetune_round_trip(encoder_file, tmp_path, capsys):
    out_json = tmp_path / "reg.json"
    rc = run(["probe", "--encoder", str(encoder_file), *COMMON, "--task", "regression", "--target", "pitch_value",
              "--descriptor", "fixed", "--epochs", "2", "--lrs", "0.01", "--weight-decays", "0",
              "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out_json.read_text())
    assert set(report["metrics"]) >= {"r2"} and report["descriptor"] == [1.0] * 7
    assert printed_number(out, "r2") == f"{report['metrics']['r2']:.4f}"

    out_json = tmp_path / "finetune.json"
    rc = run(["finetune", "--encoder", str(encoder_file), *COMMON, "--blocks", "last:1", "--epochs", "1",
              "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out_json.read_text())
    for key in ("metrics", "trainable_params", "wall_s", "peak_mb", "epochs_done", "blocks"):
        assert key in report, key
    assert report["epochs_done"] == 1 and report["blocks"] == "last:1" and report["trainable_params"] > 0
    assert printed_number(out, "trainable params") == str(report["trainable_params"])
    assert printed_number(out, "accuracy") == f"{report['metrics']['accuracy']:.4f}"


def test_measure_writes_table_plot_and_json(encoder_file, tmp_path, capsys):
    out_json = tmp_path / "measure.json"
    rc = run(["measure", "--encoder", str(encoder_file), *COMMON, "--split", "all", "--clips", "6",
              "--descriptors", "ones,time:0,0,0,0,1,1,1", "--transforms", "time_shift,noise",
              "--strength", "time_shift=0.25,0.5", "--strength", "noise=10",
              "--out-dir", str(tmp_path / "inv"), "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    assert (tmp_path / "inv" / "invariance.png").stat().st_size > 1000
    assert (tmp_path / "inv" / "invariance_summary.png").is_file()
    report = json.loads(out_json.read_text())
    assert report["strengths"] == {"time_shift": [0.25, 0.5], "noise": [10.0]}
    assert report["descriptors"]["time"] == [0, 0, 0, 0, 1, 1, 1]
    assert len(report["rows"]) == 2 * 3 and len(report["summary"]) == 2 * 2
    assert printed_number(out, "cosine") == f"{report['summary'][0]['cosine']:.4f}"
    assert all(-1 <= r["cosine"] <= 1 and r["mahalanobis"] >= 0 for r in report["rows"])


def test_errors_are_one_line_and_name_the_culprit(encoder_file, tmp_path, capsys):
    cases = [
        (["fewshot", "--encoder", str(tmp_path / "missing.pt"), *COMMON], "missing.pt"),
        (["fewshot", "--encoder", str(encoder_file), "--dataset", "nope:/x", "--no-progress"], "unknown dataset 'nope'"),
        (["fewshot", "--encoder", str(encoder_file), *COMMON, "--descriptor", "fixed:2"], "fixed:2"),
        (["fewshot", "--encoder", str(encoder_file), *COMMON, "--split", "test", "--ways", "3"], "--split test"),
        (["probe", "--encoder", str(encoder_file), *COMMON, "--task", "regression"], "--target"),
        (["probe", "--encoder", str(encoder_file), *COMMON, "--task", "regression", "--target", "nope"], "'nope'"),
        (["measure", "--encoder", str(encoder_file), *COMMON, "--descriptors", "x:0.5"], "x:0.5"),
        (["measure", "--encoder", str(encoder_file), *COMMON, "--transforms", "reverb"], "reverb"),
        (["finetune", "--encoder", str(encoder_file), *COMMON, "--descriptor", "1,1"], "--descriptor"),
    ]
    other = tmp_path / "other.pt"
    save_encoder(build_encoder("hyper_resnet18", InvarianceSpace(["crop", "flip"]), in_chans=1, width=4), other)
    cases.append((["fewshot", "--encoder", str(other), *COMMON], str(other)))
    not_an_encoder = tmp_path / "junk.pt"
    torch.save({"hello": 1}, not_an_encoder)
    cases.append((["probe", "--encoder", str(not_an_encoder), *COMMON], "junk.pt"))
    for argv, culprit in cases:
        rc = run(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "error:" in line]
        assert rc == 2, argv
        assert len(lines) == 1 and culprit in lines[0] and "Traceback" not in err, (argv, err)


def test_missing_frontend_warns_and_fits_on_training_data(tmp_path, capsys):
    path = tmp_path / "plain.pt"
    torch.manual_seed(0)
    save_encoder(build_encoder("hyper_resnet18", audio_space(), in_chans=1, width=4), path)
    rc = run(["fewshot", "--encoder", str(path), *COMMON, "--split", "all", "--ways", "2", "--queries", "1",
              "--episodes", "2", "--sample-rate", str(SR)])
    captured = capsys.readouterr()
    assert rc == 0
    assert "warning:" in captured.err and "plain.pt stores no front end" in captured.err


def test_helpers_split_and_descriptor_parsing(tmp_path):
    labels = torch.tensor([0] * 10 + [1] * 5 + [2])
    train, val, test = stratified_split(labels, 0.2, 0.2, seed=3)
    assert sorted(train + val + test) == list(range(16)) and not set(train) & set(test)
    assert [int((labels[test] == c).sum()) for c in range(3)] == [2, 1, 0]
    assert stratified_split(labels, 0.2, 0.2, seed=3) == (train, val, test)
    space = audio_space()
    (tmp_path / "r.json").write_text(json.dumps({"descriptor": [0.5] * 7}))
    got = parse_descriptors(["ones,learned:0.76,0.24,0.39,0.48,0.40,0.45,0.24", f"j:{tmp_path / 'r.json'}",
                             "active:pitch_shift+noise"], space)
    assert list(got) == ["ones", "learned", "j", "active:pitch_shift+noise"]
    assert got["learned"][0].item() == pytest.approx(0.76) and got["j"].tolist() == [0.5] * 7
    assert got["active:pitch_shift+noise"].tolist() == [1, 0, 0, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="7 values"):
        parse_descriptors(["a:0.5,0.5"], space)
    with pytest.raises(ValueError, match="given twice"):
        parse_descriptors(["ones", "ones"], space)
