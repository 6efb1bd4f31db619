"""Calibration baselines of ``--encoder``: ``logmel-stats`` / ``band-stats`` (band mean and std,
no training) and ``untrained:<arch>`` (seeded random weights), with the ``frontend=PATH``
option, through the core reader, both modalities and the audio downstream commands."""
import json

import pytest
import torch

from aiaudio.data.synthetic import SyntheticConfig, synthesise_batch
from aiaudio.downstream_setup import read_encoder
from aiaudio.frontend import Frontend, FrontendConfig
from aiaudio.space import audio_space
from core import InvarianceSpace, build_encoder
from core.encoders.band_stats import BandStatsEncoder
from core.encoders.calibration import build_untrained, parse_calibration
from core.encoders.file_checks import EncoderFileError, EncoderFileMissing
from core.encoders.serialise import read_encoder_option, save_encoder
from core.errors import UserError
from tests.test_cli_downstream import COMMON, SR, run  # the audio downstream CLI as the tests call it

pytestmark = pytest.mark.usefixtures("one_thread")

FEWSHOT = ["--split", "all", "--ways", "3", "--shots", "1", "--queries", "2", "--episodes", "4",
           "--descriptor", "fixed:ones"]


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    """A trained-looking audio encoder file whose extra holds a fitted 16-band front end."""
    root = tmp_path_factory.mktemp("enc")
    frontend = Frontend(FrontendConfig(sample_rate=SR, n_fft=256, hop_length=128, n_mels=16))
    waves = torch.from_numpy(synthesise_batch(range(8), SyntheticConfig(n_clips=8, seconds=0.5, sample_rate=SR)))
    frontend.fit([waves])
    encoder = build_untrained("hyper_resnet18", audio_space(), 0, in_chans=1, width=4)
    return save_encoder(encoder, root / "encoder.pt", extra={"frontend": frontend.to_dict()})


# ----------------------------------------------------------------- band statistics
def test_band_stats_are_the_mean_and_std_of_every_band_over_time():
    space = audio_space()
    enc = BandStatsEncoder(space, in_chans=2, bands=3).eval()
    x = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 2, 3, 4) ** 1.5
    z = enc(x, space.ones())
    assert z.shape == (2, 2 * 2 * 3) and enc.num_features == 12
    for b in range(2):
        means = [x[b, c, f].mean() for c in range(2) for f in range(3)]
        stds = [((x[b, c, f] - x[b, c, f].mean()) ** 2).mean().sqrt() for c in range(2) for f in range(3)]
        torch.testing.assert_close(z[b], torch.stack(means + stds))
    row = torch.tensor([[[[1.0, 3.0, 5.0, 7.0]]]])  # mean 4, population std sqrt(5)
    z = BandStatsEncoder(space, in_chans=1, bands=1)(row, space.ones())
    assert z.tolist() == [[4.0, pytest.approx(5 ** 0.5)]]


def test_band_stats_ignores_a_valid_descriptor_and_checks_it():
    space = audio_space()
    enc = BandStatsEncoder(space, in_chans=1, bands=8)
    x = torch.randn(3, 1, 8, 20)
    assert not list(enc.parameters())
    assert torch.equal(enc(x, space.descriptors[0]), enc(x, space.descriptors[-1]))
    assert torch.equal(enc(x, space.descriptors[[0, 5, 9]]), enc(x, space.ones()))
    with pytest.raises(ValueError, match="pitch_shift"):
        enc(x, torch.ones(5))
    with pytest.raises(ValueError, match="outside"):
        enc(x, torch.full((7,), 1.2))
    with pytest.raises(ValueError, match=r"\(B, 1, 8, T\)"):
        enc(torch.randn(3, 1, 9, 20), space.ones())
    plain = enc.eval().specialise(space.descriptors[3])
    assert not plain.training and torch.equal(plain(x), enc(x, space.ones()))
    assert enc.to("cpu").eval() is enc and enc.config == {"in_chans": 1, "bands": 8}
    with pytest.raises(ValueError, match="bands"):
        BandStatsEncoder(space, bands=0)


# ----------------------------------------------------------------- reading the option
def test_logmel_stats_takes_the_bands_of_the_front_end_it_will_see(encoder_file):
    enc, extra = read_encoder("logmel-stats", "cpu")
    assert isinstance(enc, BandStatsEncoder) and enc.config == {"in_chans": 1, "bands": 128} and extra == {}
    assert not enc.training and tuple(enc.space.names) == tuple(audio_space().names)
    enc, extra = read_encoder(f"logmel-stats?frontend={encoder_file}", "cpu")
    assert enc.config["bands"] == 16 and enc.num_features == 32
    assert extra["frontend"]["config"]["n_mels"] == 16 and extra["frontend"]["stats"]
    enc, _ = read_encoder("band-stats", "cpu")  # core's generic name works for audio too
    assert isinstance(enc, BandStatsEncoder)


def test_untrained_is_seeded_and_leaves_the_global_random_state_alone(encoder_file):
    state = torch.random.get_rng_state()
    a, extra = read_encoder("untrained:resnet18?width=8&seed=3", "cpu")
    b, _ = read_encoder("untrained:resnet18?width=8&seed=3", "cpu")
    c, _ = read_encoder("untrained:resnet18?width=8&seed=4", "cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.name == "resnet18" and a.config == {"in_chans": 1, "width": 8, "stem": "standard", "bands": 1, "norm": "batch"} and extra == {}
    assert not a.training
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["net.conv1.weight"], sc["net.conv1.weight"])
    default, _ = read_encoder("untrained:resnet18?width=8", "cpu")  # seed 0
    seed0 = build_untrained("resnet18", audio_space(), 0, in_chans=1, width=8)
    assert torch.equal(default.state_dict()["net.conv1.weight"], seed0.state_dict()["net.conv1.weight"])
    hyper, extra = read_encoder(f"untrained:hyper_resnet18?width=4&stem=small&frontend={encoder_file}", "cpu")
    assert hyper.config["stem"] == "small" and extra["frontend"]["config"]["n_mels"] == 16


@pytest.mark.parametrize("value, message", [
    ("untrained:resnet19", "unknown architecture 'resnet19'; known: hyper_resnet18"),
    ("untrained:", "unknown architecture ''"),
    ("untrained:resnet18?wdth=8", "wdth"),
    ("untrained:resnet18?width=eight", "cannot build resnet18"),
    ("untrained:resnet18?seed=-1", "seed='-1' must be a non-negative integer"),
    ("untrained:resnet18?width", "is not key=value"),
    ("untrained:resnet18?seed=1&seed=2", "'seed' given twice"),
    ("logmel-stats?seed=1", "unknown option 'seed'; logmel-stats takes frontend"),
    ("untrained:resnet18?in_chans=3", "3 input channel(s); audio log-mels have 1"),
])
def test_bad_values_are_user_errors_naming_the_value(value, message):
    with pytest.raises(EncoderFileError) as caught:
        read_encoder(value, "cpu")
    assert isinstance(caught.value, UserError) and message in str(caught.value)


def test_frontend_option_needs_an_encoder_file_of_the_same_space(tmp_path):
    with pytest.raises(EncoderFileMissing, match="frontend=.*nope.pt: no such file"):
        read_encoder(f"logmel-stats?frontend={tmp_path / 'nope.pt'}", "cpu")
    with pytest.raises(EncoderFileError, match="is a directory"):
        read_encoder(f"logmel-stats?frontend={tmp_path}", "cpu")
    other = tmp_path / "other.pt"
    save_encoder(build_encoder("resnet18", InvarianceSpace(["crop", "flip"]), in_chans=1, width=4), other)
    with pytest.raises(EncoderFileError, match=r"space \['crop', 'flip'\]"):
        read_encoder(f"untrained:resnet18?width=4&frontend={other}", "cpu")
    junk = tmp_path / "junk.pt"
    torch.save({"hello": 1}, junk)
    with pytest.raises(EncoderFileError, match="junk.pt"):
        read_encoder(f"logmel-stats?frontend={junk}", "cpu")


def test_core_reader_is_modality_free():
    space = InvarianceSpace(["a", "b"], min_active=1)
    assert parse_calibration("runs/x/encoder.pt") is None
    assert parse_calibration("logmel-stats") is None  # only the names the modality passes
    enc, _ = read_encoder_option("band-stats", "cpu", space=space, in_chans=3, band_rows=lambda extra: 10)
    assert enc.config == {"in_chans": 3, "bands": 10} and enc.space == space
    with pytest.raises(EncoderFileError, match="invariance space"):
        read_encoder_option("band-stats", "cpu")
    with pytest.raises(EncoderFileMissing, match="untrained:<arch>"):
        read_encoder_option("no/such/encoder.pt", "cpu")


def test_vision_reads_the_same_values():
    from aivision.downstream_setup import read_encoder as read_image_encoder

    enc, _ = read_image_encoder("band-stats", "cpu")
    assert enc.config == {"in_chans": 3, "bands": 224} and list(enc.space.names) == ["spatial", "appearance"]
    assert read_image_encoder("band-stats", "cpu", image_size=32)[0].config["bands"] == 32
    enc, _ = read_image_encoder("untrained:resnet18?width=4&seed=1", "cpu")
    assert enc.config["in_chans"] == 3
    with pytest.raises(EncoderFileError, match="unknown option 'x'; band-stats takes frontend"):
        read_image_encoder("band-stats?x=1", "cpu")


# ----------------------------------------------------------------- through the commands
def test_fewshot_and_probe_run_on_the_calibration_baselines(encoder_file, tmp_path, capsys):
    out = tmp_path / "stats.json"
    rc = run(["fewshot", "--encoder", f"logmel-stats?frontend={encoder_file}", *COMMON, *FEWSHOT,
              "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 0 and "warning" not in captured.err, captured.err
    report = json.loads(out.read_text())
    assert 0.0 <= report["accuracy"] <= 1.0 and report["descriptor"] == [1.0] * 7
    # without frontend=, the front end is fitted on the data with a warning (as for a file without one)
    rc = run(["fewshot", "--encoder", "untrained:resnet18?width=8&seed=0", *COMMON, *FEWSHOT,
              "--sample-rate", str(SR), "--json", str(tmp_path / "untrained.json")])
    captured = capsys.readouterr()
    assert rc == 0 and "untrained:resnet18?width=8&seed=0 stores no front end" in captured.err
    first = json.loads((tmp_path / "untrained.json").read_text())
    rc = run(["fewshot", "--encoder", "untrained:resnet18?width=8&seed=0", *COMMON, *FEWSHOT,
              "--sample-rate", str(SR), "--json", str(tmp_path / "again.json")])
    capsys.readouterr()
    again = json.loads((tmp_path / "again.json").read_text())
    assert rc == 0 and (again["accuracy"], again["ci95"]) == (first["accuracy"], first["ci95"])
    rc = run(["probe", "--encoder", f"logmel-stats?frontend={encoder_file}", *COMMON, "--descriptor", "fixed",
              "--epochs", "2", "--lrs", "0.01", "--weight-decays", "0", "--json", str(tmp_path / "probe.json")])
    capsys.readouterr()
    assert rc == 0 and 0.0 <= json.loads((tmp_path / "probe.json").read_text())["metrics"]["accuracy"] <= 1.0


def test_command_errors_and_help_name_the_calibration_values(encoder_file, capsys):
    for argv, culprit in [
        (["fewshot", "--encoder", "untrained:resnet77", *COMMON], "resnet77"),
        (["probe", "--encoder", "logmel-stats?frontend=/no/such.pt", *COMMON], "/no/such.pt"),
        (["finetune", "--encoder", f"logmel-stats?frontend={encoder_file}", *COMMON, "--epochs", "1"], "finetune"),
    ]:
        rc = run(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "error:" in line]
        assert rc == 2 and len(lines) == 1 and culprit in lines[0] and "Traceback" not in err, (argv, err)
    for command in ("fewshot", "probe", "measure", "finetune"):
        with pytest.raises(SystemExit):
            run([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "logmel-stats" in text and "untrained:ARCH" in text and "frontend=PATH" in text, command
