"""The Pareto table from probe / finetune --json reports: rows, front, labels, errors, CLI."""
import json

import matplotlib.image
import pytest

from aiaudio.cli import main as aiaudio_main
from core.analysis.pareto import default_label, pareto_rows, read_reports


def probe_report(mode, accuracy, params, wall):
    return {"command": "probe", "descriptor_mode": mode, "trainable_params": params, "wall_s": wall, "peak_mb": 900.0,
            "metrics": {"accuracy": accuracy, "mean_class_accuracy": accuracy - 0.01}}


def finetune_report(blocks, accuracy, params, wall):
    return {"command": "finetune", "blocks": blocks, "trainable_params": params, "wall_s": wall, "peak_mb": 1500.0,
            "metrics": {"accuracy": accuracy, "mean_class_accuracy": accuracy}}


REPORTS = {
    "fixed.json": probe_report("fixed", 0.60, 5130, 2.0),
    "learned.json": probe_report("learned", 0.70, 5137, 3.0),
    "last1.json": finetune_report("last:1", 0.68, 600_000, 40.0),   # dearer and worse than learned: off the front
    "all.json": finetune_report("all", 0.75, 11_000_000, 300.0),
}


def test_rows_sorted_by_cost_with_the_front_marked():
    rows = pareto_rows(list(REPORTS.items()), "trainable_params", "accuracy")
    assert [r["label"] for r in rows] == ["probe (fixed)", "probe (learned)", "finetune (last:1)", "finetune (all)"]
    assert [r["front"] for r in rows] == [True, True, False, True]
    assert rows[1]["cost"] == 5137 and rows[1]["score"] == 0.70 and rows[1]["source"] == "learned.json"
    by_time = pareto_rows(list(REPORTS.items()), "wall_s", "mean_class_accuracy", labels=["a", "b", "c", "d"])
    assert [r["label"] for r in by_time] == ["a", "b", "c", "d"] and by_time[0]["score"] == pytest.approx(0.59)


def test_duplicate_labels_get_their_file_and_errors_name_the_report():
    twice = [("runs/seed0.json", REPORTS["learned.json"]), ("runs/seed1.json", REPORTS["learned.json"])]
    assert {r["label"] for r in pareto_rows(twice, "wall_s", "accuracy")} == {
        "probe (learned) [seed0]", "probe (learned) [seed1]"}
    assert default_label({"command": "finetune", "blocks": "all"}) == "finetune (all)"
    with pytest.raises(ValueError, match=r"fixed.json: no test score 'r2' \(metrics: \['accuracy'"):
        pareto_rows([("fixed.json", REPORTS["fixed.json"])], "wall_s", "r2")
    with pytest.raises(ValueError, match="cost 'flops' is not one of"):
        pareto_rows(list(REPORTS.items()), "flops", "accuracy")
    with pytest.raises(ValueError, match="2 labels for 4 reports"):
        pareto_rows(list(REPORTS.items()), "wall_s", "accuracy", labels=["a", "b"])
    with pytest.raises(ValueError, match="report nowhere.json not found"):
        read_reports(["nowhere.json"])


def test_cli_writes_table_plot_and_json(tmp_path, capsys):
    paths = []
    for name, report in REPORTS.items():
        (tmp_path / name).write_text(json.dumps(report))
        paths.append(str(tmp_path / name))
    out, rows_json = tmp_path / "pareto.png", tmp_path / "rows.json"
    rc = aiaudio_main(["pareto", *paths, "--cost", "trainable_params", "--log-x", "--out", str(out),
                       "--json", str(rows_json)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "finetune (last:1)" in printed and "Pareto front" in printed
    assert matplotlib.image.imread(out).shape[2] in (3, 4)
    saved = json.loads(rows_json.read_text())
    assert saved["cost"] == "trainable_params" and [r["front"] for r in saved["rows"]] == [True, True, False, True]
    (tmp_path / "bad.json").write_text("{not json")
    assert aiaudio_main(["pareto", str(tmp_path / "bad.json"), "--out", str(out)]) == 2
    assert "bad.json is not JSON" in capsys.readouterr().err
