"""Bad-input corpus, configs and the command line: every case ends in one named line and a
documented exit status (2 for the user's mistake, 1 for a failed run or an internal error),
never a traceback unless ``--debug`` / ``AI_DEBUG=1`` asks for one, and no file written."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from aiaudio.cli import main as audio_main
from aivision.cli import main as vision_main
from core.cli import run_cli



def run(main, argv, capsys):
    """Run a CLI in-process; returns (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err: str, *needles: str) -> str:
    """The error line of ``err``; asserts it is one line with every needle and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], (needle, err)
    return errors[0]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def run_dir(tmp_path):
    return tmp_path / "run"


CASES_FILE = [
    # (name, YAML text, words the error line must hold)
    ("duplicate_key", "train:\n  steps: 3\ntrain:\n  steps: 4\n", ["cfg.yaml", "duplicate key 'train'", "line 3"]),
    ("duplicate_nested_key", "optim:\n  lr: 0.1\n  lr: 0.2\n", ["cfg.yaml", "duplicate key 'lr'", "line 3"]),
    ("syntax_error", "train: [1,\n", ["cfg.yaml", "not valid YAML", "line 2"]),
    ("top_level_list", "- 1\n- 2\n", ["cfg.yaml", "expected a mapping"]),
    ("unknown_key", "trian:\n  steps: 3\n", ["cfg.yaml", "'trian'", "allowed"]),
    ("wrong_type", "train:\n  steps: many\n", ["cfg.yaml", "train.steps", "integer"]),
    ("bad_value", "train:\n  steps: -4\n", ["cfg.yaml", "steps"]),
    ("tab_indent", "train:\n\tsteps: 3\n", ["cfg.yaml", "not valid YAML"]),
]


@pytest.mark.parametrize("name,text,needles", CASES_FILE, ids=[c[0] for c in CASES_FILE])
def test_bad_config_file_is_a_named_user_error(tmp_path, run_dir, capsys, name, text, needles):
    config = write(tmp_path / "cfg.yaml", text)
    before = config.read_bytes()
    status, _, err = run(audio_main, ["pretrain", "--config", config, "--no-progress", f"run_dir={run_dir}"], capsys)
    assert status == 2
    one_line_error(err, *needles)
    assert config.read_bytes() == before and not run_dir.exists()


CASES_OVERRIDE = [
    ("no_equals", ["train.steps"], ["train.steps", "expected key.sub=value"]),
    ("empty_key", ["=3"], ["override =3"]),
    ("unknown_key", ["train.stepz=5"], ["train.stepz=5", "'stepz'"]),
    ("bad_yaml_value", ["train.steps=[1,"], ["train.steps=[1,", "not valid YAML"]),
    ("wrong_type", ["train.steps=abc"], ["train.steps=abc", "integer"]),
    ("into_scalar", ["seed.x=1"], ["seed.x=1", "expected an integer"]),
]


@pytest.mark.parametrize("name,overrides,needles", CASES_OVERRIDE, ids=[c[0] for c in CASES_OVERRIDE])
def test_bad_override_names_the_override(tmp_path, run_dir, capsys, name, overrides, needles):
    status, _, err = run(audio_main, ["pretrain", "--no-progress", f"run_dir={run_dir}", *overrides], capsys)
    assert status == 2
    one_line_error(err, *needles)
    assert not run_dir.exists()


def test_override_checked_against_other_keys_names_the_override_not_the_file(tmp_path, run_dir, capsys):
    """A value that is valid alone but not with the file's other keys is the override's fault:
    the line names the override beside the file, not the file alone."""
    config = write(tmp_path / "cfg.yaml", f"run_dir: {run_dir}\ntrain:\n  steps: 10\n")
    status, _, err = run(audio_main, ["pretrain", "--config", config, "--no-progress", "optim.warmup_steps=50"],
                         capsys)
    assert status == 2
    one_line_error(err, "optim.warmup_steps=50", "exceeds")
    assert not (run_dir / "config.yaml").exists()


def test_override_after_a_flag_is_taken(tmp_path, run_dir, capsys):
    """Overrides are accepted anywhere on the line (argparse alone rejects words after a flag)."""
    status, _, err = run(audio_main, ["pretrain", f"run_dir={run_dir}", "--no-progress", "train.stepz=3"], capsys)
    assert status == 2
    one_line_error(err, "train.stepz=3", "'stepz'")  # parsed as an override, not "unrecognized arguments"
    status, _, err = run(vision_main, ["pretrain", "--no-progress", f"run_dir={run_dir}", "--resume", "optim.lrr=1"],
                         capsys)
    assert status == 2
    one_line_error(err, "optim.lrr=1")


@pytest.mark.parametrize("words", [["--no-progress", "notanoverride"], ["--resume", "notanoverride"],
                                   ["a.b=1", "--resume", "notanoverride"]])
def test_stray_word_among_overrides_is_named(tmp_path, capsys, words):
    """A bare word where overrides go is refused with status 2, naming the word (as a usage error
    or as a malformed override, depending on where argparse places it)."""
    try:
        status = audio_main(["pretrain", f"run_dir={tmp_path / 'r'}", *words])
    except SystemExit as stop:
        status = stop.code
    assert status == 2
    err = capsys.readouterr().err
    assert "notanoverride" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_command_without_overrides_takes_none(capsys):
    with pytest.raises(SystemExit) as stop:
        audio_main(["encoders", "a.b=1"])
    assert stop.value.code == 2
    assert "unrecognized arguments: a.b=1" in capsys.readouterr().err


def test_missing_config_file(tmp_path, capsys):
    status, _, err = run(vision_main, ["pretrain", "--config", tmp_path / "nope.yaml", "--no-progress"], capsys)
    assert status == 2
    one_line_error(err, "nope.yaml", "not found")


def test_vision_config_duplicate_key(tmp_path, run_dir, capsys):
    config = write(tmp_path / "v.yaml", "seed: 1\nseed: 2\n")
    status, _, err = run(vision_main, ["pretrain", "--config", config, "--no-progress", f"run_dir={run_dir}"], capsys)
    assert status == 2
    one_line_error(err, "v.yaml", "duplicate key 'seed'")


def _toy_parser(error: BaseException) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy")
    sub = parser.add_subparsers(dest="command")

    def fail(args: argparse.Namespace) -> int:
        raise error

    sub.add_parser("go").set_defaults(func=fail)
    return parser


@pytest.mark.parametrize("error,status,needle", [
    (ZeroDivisionError("division by zero"), 1, "internal error (ZeroDivisionError: division by zero)"),
    (FileNotFoundError(2, "No such file or directory", "/data/x.wav"), 2, "/data/x.wav: No such file"),
    (OSError(28, "No space left on device", "/run/ckpt.pt"), 1, "disk full while writing /run/ckpt.pt"),
], ids=["internal", "missing_file", "disk_full"])
def test_run_cli_reports_escaping_errors_in_one_line(capsys, monkeypatch, error, status, needle):
    monkeypatch.delenv("AI_DEBUG", raising=False)
    assert run_cli(_toy_parser(error), ["go"]) == status
    line = one_line_error(capsys.readouterr().err, needle)
    assert line.startswith("toy go: error: ")
    if status == 1 and "internal" in needle:
        assert "--debug" in line


def test_debug_flag_and_env_show_the_traceback(capsys, monkeypatch):
    monkeypatch.delenv("AI_DEBUG", raising=False)
    with pytest.raises(ZeroDivisionError):
        run_cli(_toy_parser(ZeroDivisionError("x")), ["go", "--debug"])
    monkeypatch.setenv("AI_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        run_cli(_toy_parser(ZeroDivisionError("x")), ["go"])
    monkeypatch.setenv("AI_DEBUG", "0")
    assert run_cli(_toy_parser(ZeroDivisionError("x")), ["go"]) == 1


def test_debug_in_a_real_process_prints_the_traceback(tmp_path):
    """The console script itself: one line and 2 without --debug, the traceback with it."""
    config = write(tmp_path / "cfg.yaml", "a: 1\na: 2\n")
    env = {k: v for k, v in os.environ.items() if k != "AI_DEBUG"}
    cmd = [sys.executable, "-m", "aiaudio.cli", "pretrain", "--config", str(config), "--no-progress"]
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, env=env, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "duplicate key 'a'" in debug.stderr


def test_debug_reaches_errors_a_command_reports_itself(tmp_path, capsys, monkeypatch):
    """Downstream commands report their own errors; --debug lets those through too, and the
    flag does not outlive the command."""
    from core.encoders.serialise import EncoderFileMissing
    from core.errors import debug_requested

    monkeypatch.delenv("AI_DEBUG", raising=False)
    argv = ["fewshot", "--encoder", tmp_path / "none.pt", "--dataset", "synthetic"]
    status, _, err = run(audio_main, argv, capsys)
    assert status == 2
    one_line_error(err, "none.pt", "no such file")
    with pytest.raises(EncoderFileMissing):
        audio_main([str(a) for a in [*argv, "--debug"]])
    assert not debug_requested()
