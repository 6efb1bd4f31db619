"""A bad-input corpus for encoder files and downstream inputs, run through the real CLIs.

Every case calls ``aiaudio`` or ``aivision`` as a user would and expects a named failure:
exit status 2 for input the user can fix (1 for a run failure), one line on stderr that
names the file, key, clip or class at fault, no traceback, and an earlier ``--json`` report
left untouched. The last tests drive the library functions directly with clips whose
inputs are NaN, to check that the error names exactly those clips.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from aiaudio.cli import main as audio_main
from aiaudio.data.synthetic import SyntheticConfig, synthesise_batch
from aiaudio.frontend import Frontend, FrontendConfig
from aiaudio.space import audio_space
from aivision.cli import main as vision_main
from aivision.space import individual_space
from aivision.synthetic import SyntheticImageConfig, write_synthetic
from core import build_encoder
from core.analysis.invariance import measure_invariance
from core.downstream.checks import NonFiniteFeaturesError, NonFiniteLossError, TooFewClassesError
from core.downstream.clips import TensorClips
from core.downstream.fewshot import FewShotConfig, run_fewshot
from core.downstream.finetune import FinetuneConfig, fit_finetune
from core.downstream.probe import ProbeConfig, fit_probe
from core.encoders.serialise import save_encoder
from core.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 8000
AUDIO_DATA = "synthetic?n_clips=30&seconds=0.5&label=pitch"
AUDIO = ["--dataset", AUDIO_DATA, "--seconds", "0.5", "--no-progress"]
VISION_EXTRA = {"modality": "vision", "image_size": 32, "normalize": True, "mean": [0.5, 0.5, 0.5],
                "std": [0.25, 0.25, 0.25]}
PREVIOUS = {"command": "an earlier run", "accuracy": 0.75}
FAST_PROBE = ["--epochs", "1", "--lrs", "0.01", "--weight-decays", "0"]
BROKEN_STAT = "layer1.0.bn1.running_var"  # a negative variance: finite weights, NaN features


def payload(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def variant(path: Path, out: Path, edit) -> Path:
    """A copy of the encoder file ``path`` with its payload changed by ``edit(data)``."""
    data = payload(path)
    edit(data)
    torch.save(data, out)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny audio and vision encoders (good and broken), a one-class audio folder and image sets."""
    root = tmp_path_factory.mktemp("bad_input")
    frontend = Frontend(FrontendConfig(sample_rate=SR, n_fft=256, hop_length=128, n_mels=16))
    waves = synthesise_batch(range(8), SyntheticConfig(n_clips=8, seconds=0.5, sample_rate=SR))
    frontend.fit([torch.from_numpy(waves)])
    torch.manual_seed(0)
    audio = save_encoder(build_encoder("hyper_resnet18", audio_space(), in_chans=1, width=4),
                         root / "audio.pt", extra={"frontend": frontend.to_dict()})
    torch.manual_seed(0)
    vision = save_encoder(build_encoder("hyper_resnet18", individual_space(), in_chans=3, width=4),
                          root / "vision.pt", extra=VISION_EXTRA)
    for name, source in (("audio_nan_features.pt", audio), ("vision_nan_features.pt", vision)):
        variant(source, root / name, lambda d: d["state_dict"][BROKEN_STAT].fill_(-1.0))
    one_class = root / "one_class_audio" / "dog"
    one_class.mkdir(parents=True)
    for i, wave in enumerate(waves[:6]):
        sf.write(one_class / f"bark{i}.wav", wave, SR)
    one_image_class = root / "one_class_images" / "cat"
    one_image_class.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(one_image_class / f"cat{i}.png")
    images = write_synthetic(root / "images", SyntheticImageConfig(n_images=24, size=40, seed=1), label="colour")
    return {"root": root, "audio": audio, "vision": vision, "audio_nan": root / "audio_nan_features.pt",
            "vision_nan": root / "vision_nan_features.pt", "one_class_audio": one_class.parent,
            "one_class_images": one_image_class.parent, "images": f"folder:{images}"}


def expect_error(main, argv, capsys, tmp_path, status=2, names=()):
    """Run ``main(argv + --json REPORT)`` over an existing report; return the one error line.

    Checks the exit status, one line on stderr (warnings aside) without a traceback, that it
    names every string of ``names``, and that the earlier report is unchanged.
    """
    report = tmp_path / "report.json"
    report.write_text(json.dumps(PREVIOUS))
    rc = main([*argv, "--json", str(report)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert rc == status, err
    assert "Traceback" not in err and len(errors) == 1, err
    assert len([line for line in err.splitlines() if line.strip() and ": warning: " not in line]) == 1, err
    for name in names:
        assert str(name) in errors[0], (name, errors[0])
    assert json.loads(report.read_text()) == PREVIOUS
    return errors[0]


def fewshot(encoder, *extra):
    return ["fewshot", "--encoder", str(encoder), *AUDIO, "--split", "all", "--ways", "3", "--queries", "2",
            "--episodes", "2", *extra]


# ------------------------------------------------------------------------------ encoder files

@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weight_is_refused_naming_the_tensor(files, tmp_path, capsys, value):
    bad = variant(files["audio"], tmp_path / "diverged.pt", lambda d: d["state_dict"]["layer2.0.conv1.generator.base"]
                  .view(-1)[3:5].fill_(value))
    line = expect_error(audio_main, fewshot(bad), capsys, tmp_path,
                        names=["diverged.pt", "'layer2.0.conv1.generator.base'", "2 NaN or infinite"])
    assert line.startswith("aiaudio fewshot: error: ")


def test_inf_weight_in_a_vision_encoder_stops_probe(files, tmp_path, capsys):
    bad = variant(files["vision"], tmp_path / "inf.pt", lambda d: d["state_dict"]["bn1.weight"].fill_(float("-inf")))
    expect_error(vision_main, ["probe", "--encoder", str(bad), "--dataset", files["images"], "--no-progress",
                               *FAST_PROBE], capsys, tmp_path, names=["inf.pt", "'bn1.weight'"])


def test_huge_width_is_refused_before_anything_is_built(files, tmp_path, capsys):
    bad = variant(files["audio"], tmp_path / "wide.pt", lambda d: d["config"].update(width=1000000))
    expect_error(audio_main, fewshot(bad), capsys, tmp_path, names=["wide.pt", "'width' = 1000000"])


def test_config_that_disagrees_with_the_weights_names_the_first_tensor(files, tmp_path, capsys):
    bad = variant(files["audio"], tmp_path / "wider.pt", lambda d: d["config"].update(width=8))
    expect_error(audio_main, fewshot(bad), capsys, tmp_path,
                 names=["wider.pt", "'conv1.weight'", "[8, 1, 7, 7]", "[4, 1, 7, 7]"])


def test_truncated_and_garbage_files(files, tmp_path, capsys):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(files["audio"].read_bytes()[:5000])
    expect_error(audio_main, fewshot(truncated), capsys, tmp_path, names=["truncated.pt", "corrupt"])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 40)
    expect_error(vision_main, ["fewshot", "--encoder", str(garbage), "--dataset", files["images"], "--no-progress"],
                 capsys, tmp_path, names=["garbage.pt", "corrupt"])


def test_files_that_are_not_encoder_files(files, tmp_path, capsys):
    weights_only = tmp_path / "state_dict.pt"
    torch.save(payload(files["audio"])["state_dict"], weights_only)  # a bare state dict, not an export
    expect_error(audio_main, fewshot(weights_only), capsys, tmp_path,
                 names=["state_dict.pt", "not an encoder file", "nor a training checkpoint"])
    headless = tmp_path / "last.pt"  # a training checkpoint whose model holds no encoder weights
    torch.save({"format": "amortised-invariance-checkpoint", "version": 1, "step": 3,
                "encoder_meta": {k: payload(files["audio"])[k] for k in ("encoder", "config", "space")},
                "model": {"projector.0.weight": torch.zeros(2, 2)}}, headless)
    expect_error(audio_main, fewshot(headless), capsys, tmp_path, names=["last.pt", "no encoder weights"])
    no_weights = variant(files["audio"], tmp_path / "no_weights.pt", lambda d: d.pop("state_dict"))
    expect_error(audio_main, fewshot(no_weights), capsys, tmp_path, names=["no_weights.pt", "state_dict"])
    unknown = variant(files["audio"], tmp_path / "unknown.pt", lambda d: d.update(encoder="resnet9000"))
    expect_error(audio_main, fewshot(unknown), capsys, tmp_path, names=["unknown.pt", "'resnet9000'"])


def test_encoder_of_the_other_modality(files, tmp_path, capsys):
    expect_error(audio_main, fewshot(files["vision"]), capsys, tmp_path, names=["vision.pt", "audio space"])
    expect_error(vision_main, ["fewshot", "--encoder", str(files["audio"]), "--dataset", files["images"],
                               "--no-progress"], capsys, tmp_path, names=["audio.pt", "not a vision space"])


def test_missing_file_and_directory(files, tmp_path, capsys):
    expect_error(audio_main, fewshot(tmp_path / "nowhere.pt"), capsys, tmp_path, names=["nowhere.pt", "no such file"])
    expect_error(vision_main, ["probe", "--encoder", str(files["root"]), "--dataset", files["images"],
                               "--no-progress"], capsys, tmp_path, names=[files["root"], "is a directory"])


# ---------------------------------------------------------------------------- downstream data

def test_one_class_probe_and_finetune_are_refused(files, tmp_path, capsys):
    data = f"folder:{files['one_class_audio']}"
    for command in ("probe", "finetune"):
        expect_error(audio_main, [command, "--encoder", str(files["audio"]), "--dataset", data, "--seconds", "0.5",
                                  "--no-progress", "--epochs", "1"], capsys, tmp_path,
                     names=[data, "only one class ('dog')", "at least 2 classes"])
    images = f"folder:{files['one_class_images']}"
    expect_error(vision_main, ["finetune", "--encoder", str(files["vision"]), "--dataset", images, "--no-progress",
                               "--epochs", "1"], capsys, tmp_path, names=[images, "only one class ('cat')"])


def test_more_ways_or_shots_than_the_classes_hold(files, tmp_path, capsys):
    expect_error(audio_main, fewshot(files["audio"], "--ways", "30"), capsys, tmp_path,
                 names=["fewer than --ways 30"])
    expect_error(audio_main, fewshot(files["audio"], "--shots", "20"), capsys, tmp_path,
                 names=["at least 22 clips"])


def test_nan_features_stop_fewshot_probe_and_finetune(files, tmp_path, capsys):
    line = expect_error(audio_main, fewshot(files["audio_nan"]), capsys, tmp_path,
                        names=["NaN or infinite", "of 'synthetic'"])
    assert "0.0000" not in line
    expect_error(audio_main, ["probe", "--encoder", str(files["audio_nan"]), *AUDIO, *FAST_PROBE], capsys, tmp_path,
                 names=["NaN or infinite", "of 'synthetic'"])
    expect_error(vision_main, ["finetune", "--encoder", str(files["vision_nan"]), "--dataset", files["images"],
                               "--no-progress", "--epochs", "1", "--blocks", "last:1"], capsys, tmp_path,
                 names=["NaN or infinite", "image", ".png"])


def test_nan_features_stop_measure_with_a_named_error(files, tmp_path, capsys):
    out_dir = tmp_path / "plots"
    expect_error(audio_main, ["measure", "--encoder", str(files["audio_nan"]), *AUDIO, "--split", "all", "--clips",
                              "4", "--transforms", "noise", "--strength", "noise=20", "--descriptors", "ones",
                              "--out-dir", str(out_dir)], capsys, tmp_path,
                 names=["NaN or infinite", "clean inputs", "of 'synthetic'"])
    assert not out_dir.exists()
    expect_error(vision_main, ["measure", "--encoder", str(files["vision_nan"]), "--dataset", files["images"],
                               "--no-progress", "--clips", "4", "--descriptors", "ones", "--out-dir", str(out_dir)],
                 capsys, tmp_path, names=["NaN or infinite", ".png"])


# -------------------------------------------------------------- library calls name the clips

def clips_with_nan(bad: list[int], n: int = 12, classes: int = 3) -> TensorClips:
    """``n`` random 1x16x16 inputs of ``classes`` classes; the inputs of clips ``bad`` are NaN."""
    x = torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    x[bad] = float("nan")
    return TensorClips(x, torch.arange(n) % classes, [f"class{c}" for c in range(classes)])


def tiny_audio_encoder():
    torch.manual_seed(0)
    return build_encoder("resnet18", audio_space(), in_chans=1, width=4, stem="small")


def test_library_fits_name_the_clips_with_nan_features():
    encoder = tiny_audio_encoder()
    source = clips_with_nan([4, 7])
    with pytest.raises(NonFiniteFeaturesError, match=r"2 of 12 input piece\(s\): clip 4, clip 7;"):
        run_fewshot(encoder, source, FewShotConfig(ways=3, shots=1, queries=1, episodes=4, seed=0))
    with pytest.raises(NonFiniteFeaturesError, match=r"clip 4, clip 7"):
        fit_probe(encoder, source, ProbeConfig(descriptor="fixed", epochs=1, lrs=[0.01], weight_decays=[0.0]))
    with pytest.raises(NonFiniteFeaturesError, match=r"clip 7"):
        fit_probe(encoder, source, ProbeConfig(epochs=1, lrs=[0.01], weight_decays=[0.0]))
    with pytest.raises(NonFiniteFeaturesError, match=r"their inputs already are\): (clip 4, clip 7|clip 7, clip 4);"):
        fit_finetune(encoder, source, FinetuneConfig(epochs=1, batch_size=16))
    clean = torch.randn(6, 1, 16, 16)
    clean[2] = float("nan")
    with pytest.raises(NonFiniteFeaturesError, match=r"1 of 6 input piece\(s\) \(clean inputs, descriptor 'ones'\): "
                                                     r"c\.wav;"):
        measure_invariance(encoder, clean, lambda x: x, {"same": lambda x, s, g: x}, {"same": [1.0]},
                           {"ones": encoder.space.ones()}, names=[f"{c}.wav" for c in "abcdef"])


def test_library_fits_refuse_one_class_and_name_a_diverged_probe():
    encoder = tiny_audio_encoder()
    one_class = TensorClips(torch.randn(8, 1, 16, 16), torch.zeros(8, dtype=torch.long), ["dog"])
    with pytest.raises(TooFewClassesError, match=r"only one class \('dog'\)"):
        fit_probe(encoder, one_class, ProbeConfig(descriptor="fixed", epochs=1))
    with pytest.raises(TooFewClassesError, match=r"only one class \('dog'\)"):
        fit_finetune(encoder, one_class, FinetuneConfig(epochs=1))
    # a learning rate so large that the first Adam step overflows the next loss: every candidate diverges
    targets = TensorClips(torch.randn(10, 1, 16, 16), torch.rand(10, 1))
    with pytest.raises(NonFiniteLossError, match=r"every candidate .* diverged.*lr 1e\+30"):
        fit_probe(encoder, targets, ProbeConfig(task="regression", descriptor="fixed", epochs=3, batch_size=2,
                                                lrs=[1e30], weight_decays=[0.0]))
    assert issubclass(TooFewClassesError, UserError) and not issubclass(NonFiniteLossError, UserError)
