"""The vision downstream commands (probe, fewshot, measure, finetune), ImageClips, the
fixed-strength image transforms and the modality-free CLI helpers they share with audio."""
import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aiaudio import downstream_setup as audio_setup
from aiaudio.space import audio_space
from aivision.augment.color import grayscale
from aivision.cli_downstream import add_downstream_commands
from aivision.clips import ImageClips, fit_images
from aivision.data import open_image_dataset
from aivision.measure import DEFAULT_STRENGTHS, MEASURE_TRANSFORMS, invariance_transforms, parse_strengths
from aivision.space import group_space, individual_space
from aivision.synthetic import SyntheticImageConfig, write_synthetic
from core import build_encoder
from core.cli import run_cli
from core.downstream import cli_common
from core.encoders.serialise import save_encoder

pytestmark = pytest.mark.usefixtures("one_thread")

EXTRA = {"modality": "vision", "image_size": 32, "normalize": True, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}
FAST_PROBE = ["--epochs", "2", "--lrs", "0.01", "--weight-decays", "0"]


def run(argv):
    parser = argparse.ArgumentParser(prog="aivision")
    add_downstream_commands(parser.add_subparsers())
    return run_cli(parser, argv)


def printed_number(out: str, header: str, row: int = 0) -> str:
    """The cell under ``header`` in the first table of ``out`` that has it (format_table layout)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if re.search(rf"(^|  ){re.escape(header)}(  |$)", line))
    cells = lambda line: re.split(r"\s{2,}", line.strip())  # noqa: E731
    return cells(lines[start + 2 + row])[cells(lines[start]).index(header)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny vision encoder (with and without its input pipeline) and a folder of PNGs."""
    root = tmp_path_factory.mktemp("vision_downstream")
    torch.manual_seed(0)
    encoder = build_encoder("hyper_resnet18", individual_space(), in_chans=3, width=4)
    images = write_synthetic(root / "images", SyntheticImageConfig(n_images=48, size=40, seed=1), label="colour")
    return {"encoder": save_encoder(encoder, root / "encoder.pt", extra=EXTRA),
            "plain": save_encoder(encoder, root / "plain.pt"),
            "data": f"folder:{images}", "root": root}


@pytest.fixture(scope="module")
def w300(tmp_path_factory):
    """A 300W copy in its published layout: 10 indoor + 10 outdoor faces with 68 landmarks."""
    root = tmp_path_factory.mktemp("w300")
    rng = np.random.default_rng(0)
    for folder, stem in (("01_Indoor", "indoor"), ("02_Outdoor", "outdoor")):
        for k in range(1, 11):
            width, height = 30 + k, 40 - k
            path = root / "300W" / folder / f"{stem}_{k:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
            points = rng.uniform(1, [width, height], size=(68, 2))
            body = "".join(f"{x:.3f} {y:.3f}\n" for x, y in points)
            path.with_suffix(".pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}}}\n")
    return root


# ------------------------------------------------------------------------------ ImageClips

def test_image_clips_center_crop_normalisation_and_cache(tmp_path):
    band = np.zeros((32, 64, 3), np.uint8)
    band[:, 16:48] = 255                      # white centre half, black sides
    for name, colour in (("a", band), ("b", 255 - band)):
        (tmp_path / name).mkdir()
        Image.fromarray(colour).save(tmp_path / name / "x.png")
    data = open_image_dataset(f"folder:{tmp_path}")
    clips = ImageClips(data, 16, normalize=False, cache_mb=1)
    x, owner = clips.pieces([0, 1])
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32 and owner.tolist() == [0, 1]
    assert clips.labels.tolist() == [0, 1] and clips.class_names == ["a", "b"]
    # short side 32 -> 16, width 64 -> 32, central 16 columns = the white band (edges antialiased)
    assert torch.all(x[0, :, :, 1:-1] == 1.0) and torch.all(x[1, :, :, 1:-1] == 0.0)
    whole = ImageClips(data, 16, normalize=False, fit="resize").pieces([0])[0]
    assert torch.all(whole[0, :, :, :3] == 0.0) and torch.all(whole[0, :, :, 6:10] == 1.0)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    normed = ImageClips(data, 16, mean, std, cache_mb=1).pieces([0, 1])[0]
    expected = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(normed, expected)
    assert clips.misses == 2 and clips.hits == 0
    clips.pieces([1, 0])
    assert clips.hits == 2 and clips.cached == [1, 0]
    tiny = ImageClips(data, 16, cache_mb=1.5 * 3 * 16 * 16 / 2**20)  # room for one uint8 image
    tiny.warm()
    assert tiny.cached == [1]
    # batched fit equals fitting the images one by one
    y = torch.randint(0, 256, (3, 3, 20, 28), dtype=torch.uint8)
    assert torch.equal(fit_images(y, 12), torch.cat([fit_images(y[i:i + 1], 12) for i in range(3)]))
    with pytest.raises(ValueError, match="fit must be"):
        ImageClips(data, 16, fit="pad")


def test_image_clips_regression_targets_and_fit(w300):
    data = open_image_dataset(f"300w:{w300}?split=all")
    clips = ImageClips(data, 24)
    assert clips.fit == "resize" and clips.class_names is None
    assert clips.labels.shape == (20, 136) and torch.equal(clips.labels, torch.from_numpy(data.targets))
    assert clips.pieces([3, 0])[0].shape == (2, 3, 24, 24)


# ------------------------------------------------------------------------------ measure transforms

def test_strength_transforms_are_deterministic_and_exact_at_the_ends():
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    transforms = invariance_transforms(MEASURE_TRANSFORMS)
    for name, transform in transforms.items():
        strength = DEFAULT_STRENGTHS[name][-1]
        a = transform(x, strength, torch.Generator().manual_seed(5))
        b = transform(x, strength, torch.Generator().manual_seed(5))
        assert a.shape == x.shape and torch.equal(a, b), name
        assert not torch.allclose(a, x), name
    g = torch.Generator().manual_seed(0)
    assert torch.equal(transforms["flip"](x, 1.0, g), x.flip(-1))
    assert torch.equal(transforms["crop"](x, 1.0, g), x) and torch.equal(transforms["rotation"](x, 0.0, g), x)
    torch.testing.assert_close(transforms["grayscale"](x, 1.0, g), grayscale(x))
    # 360 degrees resamples at float32-rounded grid positions (sin 2pi != 0): 7e-7 off on [0, 1]
    # pixels; atol 1e-4 leaves ~140x, a wrong angle moves pixels by ~0.5.
    torch.testing.assert_close(transforms["rotation"](x, 360.0, g)[..., 2:-2, 2:-2], x[..., 2:-2, 2:-2],
                               rtol=0, atol=1e-4)
    assert parse_strengths(["blur=1,3"], {"blur": [0.5]}) == {"blur": [1.0, 3.0]}
    for items, message in ((["crop=1.5"], "out of range"), (["reverb=1"], "reverb"), (["blur"], "name=v1")):
        with pytest.raises((ValueError, KeyError), match=message):
            parse_strengths(items, {"crop": [0.5], "blur": [1.0]})


# ------------------------------------------------------------------------------ commands

def test_fewshot_round_trip(files, tmp_path, capsys):
    out_json = tmp_path / "fewshot.json"
    rc = run(["fewshot", "--encoder", str(files["encoder"]), "--dataset", files["data"], "--no-progress",
              "--ways", "3", "--queries", "2", "--episodes", "4", "--descriptor", "fixed:ones", "--json",
              str(out_json)])
    captured = capsys.readouterr()
    assert rc == 0 and "warning" not in captured.err
    report = json.loads(out_json.read_text())
    assert (report["ways"], report["shots"], report["queries"], report["episodes"]) == (3, 1, 2, 4)
    assert report["classes"] == 6 and report["clips"] == 48 and report["split"] == "all"
    assert report["descriptor"] == [1.0] * 5 and report["descriptor_names"] == list(individual_space().names)
    assert (report["image_size"], report["mean"], report["std"]) == (32, EXTRA["mean"], EXTRA["std"])
    assert 0 <= report["accuracy"] <= 1 and report["ci95"] >= 0
    assert printed_number(captured.out, "accuracy") == f"{report['accuracy']:.4f}"
    # the dataset descriptor mode learns on the train classes of a seeded class split
    rc = run(["fewshot", "--encoder", str(files["encoder"]), "--dataset", "synthetic?n_images=45&size=32&label=position",
              "--no-progress", "--split", "test", "--ways", "2", "--queries", "1", "--episodes", "2",
              "--descriptor", "dataset", "--train-episodes", "2", "--inner-steps", "1", "--json", str(out_json)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads(out_json.read_text())
    assert report["classes"] == 2 and report["descriptor_mode"] == "dataset" and "70/10/20" in report["split_source"]


def test_probe_and_finetune_round_trip(files, tmp_path, capsys):
    out_json = tmp_path / "probe.json"
    rc = run(["probe", "--encoder", str(files["encoder"]), "--dataset", files["data"], "--no-progress",
              *FAST_PROBE, "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out_json.read_text())
    for key in ("task", "descriptor", "descriptor_names", "lr", "weight_decay", "val_score", "metrics",
                "trainable_params", "wall_s", "peak_mb", "split_source", "image_size", "input_source"):
        assert key in report, key
    assert report["task"] == "classification" and set(report["metrics"]) >= {"accuracy", "mean_class_accuracy"}
    assert report["train_clips"] + report["val_clips"] + report["test_clips"] == 48
    assert "image-level split stratified by class" in report["split_source"]
    assert len(report["descriptor"]) == 5 and all(0 <= v <= 1 for v in report["descriptor"])
    assert printed_number(out, "accuracy") == f"{report['metrics']['accuracy']:.4f}"

    rc = run(["finetune", "--encoder", str(files["encoder"]), "--dataset", files["data"], "--no-progress",
              "--blocks", "last:1", "--epochs", "1", "--descriptor", "1,0,1,0,1", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out_json.read_text())
    assert report["epochs_done"] == 1 and report["blocks"] == "last:1" and report["trainable_params"] > 0
    assert report["train_clips"] + report["test_clips"] == 48 and report["val_clips"] == 0
    assert printed_number(out, "trainable params") == str(report["trainable_params"])


def test_regression_probe_reports_r2_on_the_published_split(files, w300, tmp_path, capsys):
    out_json = tmp_path / "reg.json"
    rc = run(["probe", "--encoder", str(files["encoder"]), "--dataset", f"300w:{w300}", "--no-progress",
              "--descriptor", "fixed", *FAST_PROBE, "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out_json.read_text())
    assert report["task"] == "regression" and set(report["metrics"]) == {"r2"}
    assert (report["train_clips"], report["val_clips"], report["test_clips"]) == (6, 6, 8)
    assert report["split_source"].startswith("published split of 300w") and len(report["targets"]) == 136
    assert printed_number(out, "r2") == f"{report['metrics']['r2']:.4f}"
    rc = run(["probe", "--encoder", str(files["encoder"]), "--dataset", f"300w:{w300}?split=all", "--no-progress",
              "--descriptor", "fixed", "--target", "x0,y0", *FAST_PROBE, "--json", str(out_json)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads(out_json.read_text())
    assert report["targets"] == ["x0", "y0"] and "image-level split random" in report["split_source"]


def test_measure_writes_table_plot_and_json(files, tmp_path, capsys):
    out_json = tmp_path / "measure.json"
    rc = run(["measure", "--encoder", str(files["encoder"]), "--dataset", files["data"], "--no-progress",
              "--clips", "6", "--descriptors", "ones,spatial:1,1,0,0,0", "active:color_jitter+grayscale",
              "--transforms", "crop,flip,blur", "--strength", "crop=0.5", "--strength", "blur=1,2",
              "--out-dir", str(tmp_path / "inv"), "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    assert (tmp_path / "inv" / "invariance.png").stat().st_size > 1000
    assert (tmp_path / "inv" / "invariance_summary.png").is_file()
    report = json.loads(out_json.read_text())
    assert report["strengths"] == {"crop": [0.5], "flip": [1.0], "blur": [1.0, 2.0]}
    assert list(report["descriptors"]) == ["ones", "spatial", "active:color_jitter+grayscale"]
    assert report["descriptors"]["spatial"] == [1, 1, 0, 0, 0] and report["clips"] == 6
    assert len(report["rows"]) == 3 * 4 and len(report["summary"]) == 3 * 3
    assert all(-1 <= r["cosine"] <= 1 and r["mahalanobis"] >= 0 for r in report["rows"])
    assert printed_number(out, "cosine") == f"{report['summary'][0]['cosine']:.4f}"


def test_errors_are_one_line_and_name_the_culprit(files, tmp_path, capsys):
    enc, data = str(files["encoder"]), ["--dataset", files["data"], "--no-progress"]
    one_channel, audio, vit = tmp_path / "gray.pt", tmp_path / "audio.pt", tmp_path / "vit.pt"
    save_encoder(build_encoder("resnet18", group_space(), in_chans=1, width=4), one_channel)
    save_encoder(build_encoder("hyper_resnet18", audio_space(), in_chans=1, width=4), audio)
    save_encoder(build_encoder("prompt_vit_small", group_space(), img_size=32, patch_size=8, embed_dim=32, depth=1,
                               num_heads=2, num_prompts=2), vit)
    bad = tmp_path / "bad"
    (bad / "cls").mkdir(parents=True)
    (bad / "cls" / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(bad / "cls" / "fine.png")
    cases = [
        (["fewshot", "--encoder", str(tmp_path / "missing.pt"), *data], "missing.pt"),
        (["fewshot", "--encoder", enc, "--dataset", "nope:/x", "--no-progress"], "unknown dataset 'nope'"),
        (["probe", "--encoder", enc, "--dataset", "cub200:/no/such/dir", "--no-progress"], "/no/such/dir"),
        (["probe", "--encoder", enc, "--dataset", "synthetic?colour=1"], "no option 'colour'"),
        (["probe", "--encoder", str(one_channel), *data], "1 input channel"),
        (["probe", "--encoder", str(audio), *data], "not a vision space"),
        (["probe", "--encoder", str(vit), *data, "--image-size", "48"], "--image-size 48"),
        (["probe", "--encoder", enc, *data, "--split", "published"], "--split published"),
        (["probe", "--encoder", enc, *data, "--task", "regression"], "--task regression"),
        (["fewshot", "--encoder", enc, *data, "--descriptor", "fixed:2"], "fixed:2"),
        (["fewshot", "--encoder", enc, *data, "--split", "test", "--ways", "3"], "--split test"),
        (["fewshot", "--encoder", enc, *data, "--split", "train", "--split-file", "nope.json"], "nope.json"),
        (["measure", "--encoder", enc, *data, "--transforms", "reverb"], "reverb"),
        (["measure", "--encoder", enc, *data, "--descriptors", "x:0.5"], "x:0.5"),
        (["finetune", "--encoder", enc, *data, "--descriptor", "1,1"], "--descriptor"),
        (["measure", "--encoder", enc, "--dataset", f"folder:{bad}", "--no-progress"], "broken.png"),
    ]
    for argv, culprit in cases:
        rc = run(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "error:" in line]
        assert rc == 2, (argv, err)
        assert len(lines) == 1 and culprit in lines[0] and "Traceback" not in err, (argv, err)
        assert lines[0].startswith(f"aivision {argv[0]}: error: ")


def test_missing_input_pipeline_warns_and_uses_the_flags(files, tmp_path, capsys):
    out_json = tmp_path / "f.json"
    rc = run(["fewshot", "--encoder", str(files["plain"]), "--dataset", files["data"], "--no-progress",
              "--image-size", "24", "--ways", "2", "--queries", "1", "--episodes", "2", "--json", str(out_json)])
    captured = capsys.readouterr()
    assert rc == 0
    assert "aivision fewshot: warning:" in captured.err and "plain.pt stores no input pipeline" in captured.err
    report = json.loads(out_json.read_text())
    assert report["image_size"] == 24 and report["mean"] == pytest.approx([0.485, 0.456, 0.406])


# ------------------------------------------------------------------------------ shared helpers

def test_shared_helpers_serve_both_modalities(tmp_path, capsys):
    assert audio_setup.stratified_split is cli_common.stratified_split
    assert audio_setup.parse_descriptors is cli_common.parse_descriptors
    labels = torch.tensor([0] * 10 + [1] * 5 + [2])
    train, val, test = cli_common.stratified_split(labels, 0.2, 0.2, seed=3)
    assert [int((labels[test] == c).sum()) for c in range(3)] == [2, 1, 0] and len(train + val + test) == 16
    space = group_space()
    (tmp_path / "r.json").write_text(json.dumps({"descriptor": [0.25, 0.75]}))
    got = cli_common.parse_descriptors(["ones,spatial:1,0", f"j:{tmp_path / 'r.json'}", "active:appearance"], space)
    assert {k: v.tolist() for k, v in got.items()} == {"ones": [1, 1], "spatial": [1, 0], "j": [0.25, 0.75],
                                                       "active:appearance": [0, 1]}
    with pytest.raises(ValueError, match="need 2 values in \\[0, 1\\], one per spatial, appearance"):
        cli_common.parse_descriptors(["a:0.5,0.5,0.5"], space)
    with pytest.raises(ValueError, match="need 7 values"):
        audio_setup.parse_vector("0.5,0.5", "--fixed")
    assert audio_setup.parse_vector("ones", "--fixed") is None
    with audio_setup.cli_errors("probe") as status:
        raise KeyError("no such field")
    assert status == [2] and capsys.readouterr().err.strip() == "aiaudio probe: error: no such field"
    assert cli_common.floats_arg("1e-3, 0.1") == [1e-3, 0.1]
    with pytest.raises(argparse.ArgumentTypeError):
        cli_common.floats_arg("a,b")
    cli_common.write_json(str(tmp_path / "deep" / "out.json"), {"x": torch.tensor(1.5).item()})
    assert json.loads(Path(tmp_path / "deep" / "out.json").read_text()) == {"x": 1.5}
