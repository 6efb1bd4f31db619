"""Config files, ``a.b=value`` overrides, save_yaml and the errors that name key, file and allowed keys."""
import argparse

import pytest
import yaml

from core.config import ConfigError, apply_overrides, load_yaml, save_yaml
from core.cli import run_cli
from core.engine.cli import add_pretrain_commands
from core.engine.config import PretrainConfig, TrainConfig, load_config

TRAIN_KEYS = "batch_size, bf16, channels_last, checkpoint_every, deterministic, grad_clip, keep_checkpoints, " \
             "log_every, max_param_growth, num_workers, steps, stop_at"
TOP_KEYS = "data, descriptor, encoder, method, monitor, optim, run_dir, seed, train"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_apply_overrides_parses_yaml_values_and_copies():
    data = {"train": {"steps": 10}, "data": {"dataset": "x"}}
    out = apply_overrides(data, ["train.steps=300", "optim.lr=1e-3", "optim.betas=[0.9, 0.95]",
                                 "train.grad_clip=null", "data.frontend.n_mels=64", "method.name=moco_v2",
                                 "train.bf16=false"])
    assert out == {"train": {"steps": 300, "grad_clip": None, "bf16": False},
                   "data": {"dataset": "x", "frontend": {"n_mels": 64}},
                   "optim": {"lr": 1e-3, "betas": [0.9, 0.95]}, "method": {"name": "moco_v2"}}
    assert data == {"train": {"steps": 10}, "data": {"dataset": "x"}}  # input untouched


def test_apply_overrides_rejects_malformed_items():
    with pytest.raises(ConfigError, match=r"command line override train\.steps: expected key\.sub=value"):
        apply_overrides({}, ["train.steps"])
    with pytest.raises(ConfigError, match=r"override train\.\.steps=3"):
        apply_overrides({}, ["train..steps=3"])
    with pytest.raises(ConfigError, match=r"override =3"):
        apply_overrides({}, ["=3"])
    with pytest.raises(ConfigError, match=r"train\.steps=\[1: value .* is not valid YAML"):
        apply_overrides({}, ["train.steps=[1"])
    with pytest.raises(ConfigError, match=r"override seed\.x=1: seed is 3, not a mapping"):
        apply_overrides({"seed": 3}, ["seed.x=1"])


def test_apply_overrides_with_schema_names_unknown_keys():
    with pytest.raises(ConfigError) as err:
        apply_overrides({}, ["train.stepz=5"], schema=PretrainConfig)
    message = str(err.value)
    assert "command line override train.stepz=5" in message and "'stepz'" in message and TRAIN_KEYS in message
    with pytest.raises(ConfigError, match=rf"unknown key 'trian' in top level \(allowed: {TOP_KEYS}\)"):
        apply_overrides({}, ["trian.steps=5"], schema=PretrainConfig)
    # below the free-form data mapping any key is accepted (the modality validates it)
    assert apply_overrides({}, ["data.anything.deep=1"], schema=PretrainConfig) == {"data": {"anything": {"deep": 1}}}


def test_load_config_file_and_overrides(tmp_path):
    path = write(tmp_path / "run.yaml", "seed: 3\ntrain:\n  steps: 50\n  batch_size: 16\noptim:\n  lr: 2e-4\n")
    config = load_config(path, ["train.steps=7", "descriptor.mode=fixed", "descriptor.fixed=[1, 0.5]"])
    assert isinstance(config, PretrainConfig)
    assert (config.seed, config.train.steps, config.train.batch_size) == (3, 7, 16)
    assert config.optim.lr == pytest.approx(2e-4) and isinstance(config.optim.lr, float)
    assert config.descriptor.fixed == [1.0, 0.5]
    assert config.train.log_every == TrainConfig().log_every  # defaults filled in
    assert load_config(None) == PretrainConfig()


def test_unknown_key_top_level_names_key_file_and_allowed(tmp_path):
    path = write(tmp_path / "bad.yaml", "sede: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "'sede'" in message and f"allowed: {TOP_KEYS}" in message


def test_unknown_key_nested_names_section(tmp_path):
    path = write(tmp_path / "nested.yaml", "train:\n  stepz: 10\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "config.train" in message and "'stepz'" in message and TRAIN_KEYS in message


def test_wrong_type_and_bad_value(tmp_path):
    with pytest.raises(ConfigError, match=r"typed\.yaml: config\.train\.steps: expected an integer, got 'many'"):
        load_config(write(tmp_path / "typed.yaml", "train:\n  steps: many\n"))
    with pytest.raises(ConfigError, match=r"command line override train\.batch_size=1: .*batch_size must be >= 2"):
        load_config(None, ["train.batch_size=1"])
    with pytest.raises(ConfigError, match=r"override method\.name=byol: .*'byol' is not one of"):
        load_config(None, ["method.name=byol"])
    with pytest.raises(ConfigError, match=r"override train\.steps=abc: .*expected an integer, got 'abc'"):
        load_config(None, ["train.steps=abc"])
    with pytest.raises(ConfigError, match="descriptor.fixed is only used with descriptor.mode: fixed"):
        load_config(None, ["descriptor.fixed=[1, 1]"])


def test_file_errors_blame_the_file_override_errors_blame_the_override(tmp_path):
    path = write(tmp_path / "ok.yaml", "train:\n  steps: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.steps=3", "monitor.evry=2"])
    assert "command line override monitor.evry=2" in str(err.value) and str(path) not in str(err.value)
    assert "allowed: batch_size, descriptors, every, k" in str(err.value)


def test_save_yaml_is_atomic_and_round_trips(tmp_path):
    config = load_config(None, ["train.steps=9", "optim.betas=[0.8, 0.9]", "data.dataset=synthetic"])
    path = save_yaml(config.to_dict(), tmp_path / "sub" / "config.yaml")
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.yaml"]  # no temp file left
    assert yaml.safe_load(path.read_text())["optim"]["betas"] == [0.8, 0.9]  # tuples as lists
    assert load_config(path) == config
    assert load_yaml(path)["train"]["steps"] == 9


def _cli(make_modality=None):
    parser = argparse.ArgumentParser(prog="t")
    add_pretrain_commands(parser.add_subparsers(dest="command"), make_modality or (lambda cfg: None))
    return parser


def test_cli_bad_configs_exit_with_message_not_traceback(tmp_path, capsys):
    bad = write(tmp_path / "bad.yaml", "train:\n  stepz: 10\n")
    assert run_cli(_cli(), ["pretrain", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("t pretrain: error: ") and "stepz" in err and str(bad) in err and "Traceback" not in err
    assert run_cli(_cli(), ["pretrain", "--config", str(write(tmp_path / "ok.yaml", "seed: 1\n")), "train.steps"]) == 2
    assert "command line override train.steps: expected key.sub=value" in capsys.readouterr().err


def test_cli_reports_modality_config_errors_with_the_file(tmp_path, capsys):
    def strict_modality(config):
        raise ConfigError("data: unknown key 'datset' (allowed: dataset, seconds)")

    path = write(tmp_path / "data.yaml", "data:\n  datset: x\n")
    assert run_cli(_cli(strict_modality), ["pretrain", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: data: unknown key 'datset'" in err


def test_values_that_clash_across_sections_name_their_source(tmp_path, capsys):
    path = write(tmp_path / "clash.yaml", "train:\n  steps: 10\noptim:\n  warmup_steps: 20\n")
    assert run_cli(_cli(), ["pretrain", "--config", str(path), f"run_dir={tmp_path / 'run'}"]) == 2
    assert f"error: {path}: optim.warmup_steps=20 exceeds train.steps=10" in capsys.readouterr().err
    assert run_cli(_cli(), ["pretrain", "--config", str(path), "train.steps=30", "train.steps=5"]) == 2  # the last override that set one of the keys is named
    assert "error: command line override train.steps=5: optim.warmup_steps=20 exceeds" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
