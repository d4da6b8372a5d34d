"""`ocrtune sweep import`: W&B CSV exports and JSON records become a finished ocrtune study that
`sweep status` (and Optuna) read like any sweep; mistakes in the file are located, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from ocrtune.sweep.importer import read_table
from tests.sweep.helpers import LR, one_line

WD = "models.optimizer.weight_decay"
BS = "dataloader.batch_size"

WANDB = """\
Name,State,Runtime,models.optimizer.lr,config.models.optimizer.weight_decay,dataloader.batch_size,Tags,val/hmean,_step
lr-low,finished,120,0.0001,0.0001,4,"a,b",71.2,2
lr-mid,finished,130,0.001,0.0003,4,,85.5,2
lr-high,crashed,10,0.01,0.0001,8,,12,0
lr-nan,finished,125,0.003,0.0001,8,,,2
lr-mid2,finished,140,0.0005,0.0001,4,,80.25,2
lr-live,running,50,0.0002,0.0001,4,,60,1
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _import(cli, tmp_path: Path, file: Path, name: str, *args: str) -> tuple[int, str, str]:
    return cli("sweep", "import", file, "--name", name, "--preset", "cpu-demo", "--runs-dir", tmp_path / "runs", *args)


def _status(cli, tmp_path: Path, name: str) -> dict:
    code, out, err = cli("sweep", "status", name, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    return json.loads(out)


def _study(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'runs' / 'sweeps' / name / 'study.db'}")


def test_wandb_csv_becomes_a_finished_sweep_with_fractions_and_failed_rows(cli, tmp_path):
    csv = _write(tmp_path, "wandb.csv", WANDB)
    code, out, err = _import(cli, tmp_path, csv, "wb", "--metric", "val/hmean")
    assert code == 0, err
    assert "imported 6 runs" in out and "3 completed, 3 failed" in out
    assert "converted from percent to a fraction" in out and "values up to 85.5" in out
    assert "runs/sweeps/wb/study.db" in out
    assert "ignored columns" in err and "Tags" in err

    s = _status(cli, tmp_path, "wb")
    assert s["strategy"] == "imported" and s["state"] == "finished" and s["metric"] == "hmean"
    assert s["direction"] == "maximize" and s["reason"] == f"imported 6 runs from {csv}"
    assert s["keys"] == [LR, WD, BS] and s["epochs"] == 3  # _step counts from 0
    assert s["counts"] == {"completed": 3, "failed": 3}
    rows = [(t["params"][LR], t["status"], t["score"], t["error"]) for t in s["trials"]]
    assert rows == [
        (1e-4, "completed", pytest.approx(0.712), None),
        (1e-3, "completed", pytest.approx(0.855), None),
        (1e-2, "failed", None, "state crashed in the file"),
        (3e-3, "failed", None, "no val/hmean in the file"),
        (5e-4, "completed", pytest.approx(0.8025), None),
        (2e-4, "failed", None, "was still running when exported"),
    ]
    assert [t["params"][BS] for t in s["trials"]] == [4, 4, 8, 8, 4, 4]
    assert s["trials"][0]["duration_s"] == pytest.approx(120, abs=1)
    top = {LR: 1e-3, WD: 3e-4, BS: 4}
    assert s["best"]["trial"] == 1 and s["best"]["params"] == top and s["best"]["score"] == pytest.approx(0.855)

    study = _study(tmp_path, "wb")  # Optuna-native: params with distributions, values, states
    assert study.best_params == top and study.best_value == pytest.approx(0.855)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.FAIL] * 2 + [
        optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    dist = study.trials[0].distributions
    assert dist[LR] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)  # spans 100x: log
    assert dist[WD] == optuna.distributions.FloatDistribution(1e-4, 3e-4)  # spans 3x: linear
    assert dist[BS] == optuna.distributions.IntDistribution(4, 8)
    a = study.trials[2].user_attrs
    assert a["imported_name"] == "lr-high" and a["status"] == "failed" and a["plan"] == 0 and a["plan_slot"] == 2
    assert a["kind"] == "explore" and a["batch"] == 0 and a["params"][LR] == 1e-2

    code, text, err = cli("sweep", "status", "wb", "--runs-dir", tmp_path / "runs")  # the table, too
    assert code == 0 and "finished: imported 6 runs" in text


def test_json_records_with_nested_config(cli, tmp_path):
    runs = [
        {"name": "r1", "state": "finished", "config": {"models": {"optimizer": {"lr": 0.001, "name": "adam"}},
                                                       "datasets": {"image_size": 320}}, "summary": {"val_hmean": 0.61}},
        {"name": "r2", "state": "finished", "config": {"models": {"optimizer": {"lr": 0.0001, "name": "adamw"}},
                                                       "datasets": {"image_size": 640}}, "summary": {"val_hmean": 0.72}},
        {"name": "r3", "state": "failed", "config": {"models": {"optimizer": {"lr": 0.01, "name": "adam"}},
                                                     "datasets": {"image_size": 320}}, "summary": {}},
    ]
    file = _write(tmp_path, "runs.json", json.dumps(runs, indent=2))
    code, out, err = _import(cli, tmp_path, file, "js", "--metric", "summary.val_hmean", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert "converted" not in err  # already fractions
    assert s["keys"] == [LR, "models.optimizer.name", "datasets.image_size"]
    assert [t["status"] for t in s["trials"]] == ["completed", "completed", "failed"]
    assert s["trials"][2]["error"] == "state failed in the file"
    assert s["best"]["params"] == {LR: 1e-4, "models.optimizer.name": "adamw", "datasets.image_size": 640}
    assert s["epochs"] == 16  # no epochs column: the preset's trainer.max_epochs
    study = _study(tmp_path, "js")
    assert study.best_params == s["best"]["params"]
    assert isinstance(study.trials[0].distributions["models.optimizer.name"], optuna.distributions.CategoricalDistribution)


def test_column_maps_other_names(cli, tmp_path):
    csv = _write(tmp_path, "sheet.csv", "run,learning rate,bs,hmean\na,0.001,4,0.5\nb,0.002,8,0.6\n")
    code, _, err = _import(cli, tmp_path, csv, "sheet", "--metric", "hmean")
    assert code == 2
    assert "no column sets a preset key" in one_line(err) and "--column" in err

    code, out, err = _import(cli, tmp_path, csv, "sheet", "--metric", "hmean", "--column", f"learning rate={LR}",
                             "--column", f"bs={BS}", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert [t["params"] for t in s["trials"]] == [{LR: 0.001, BS: 4}, {LR: 0.002, BS: 8}]
    assert s["best"]["trial"] == 1

    code, _, err = _import(cli, tmp_path, csv, "other", "--metric", "hmean", "--column", f"lr={LR}")
    assert code == 2 and "--column: no column 'lr'" in one_line(err)


def test_a_misspelled_key_is_located_with_a_did_you_mean(cli, tmp_path):
    csv = _write(tmp_path, "typo.csv", "Name,models.head.thresh,models.optimizer.lr,val/hmean\na,0.3,0.001,0.5\n"
                                       "b,0.4,0.002,0.6\n")
    code, out, err = _import(cli, tmp_path, csv, "typo", "--metric", "val/hmean")
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith(f"{csv}:1:6 models.head.thresh: unknown key")
    assert "did you mean 'models.head.postprocess.thresh'" in line
    assert not (tmp_path / "runs" / "sweeps" / "typo" / "study.db").exists()  # checked before the study exists


def test_values_the_preset_rejects_are_located_at_their_cell(cli, tmp_path):
    csv = _write(tmp_path, "bad.csv", "Name,models.optimizer.lr,datasets.image_size,val/hmean\n"
                                      "a,0.001,320,0.5\nb,0.002,300,0.6\n")
    code, _, err = _import(cli, tmp_path, csv, "bad", "--metric", "val/hmean")
    assert code == 2
    assert one_line(err) == f"{csv}:3:9 datasets.image_size: must be a positive multiple of 32 (got 300; try 288)"

    records = [{"config": {"models.optimizer.lr": 1e-3}, "hmean": 0.5}, {"config": {"models.optimizer.lr": -1}, "hmean": 0.6}]
    file = _write(tmp_path, "bad.json", json.dumps(records, indent=1))
    code, _, err = _import(cli, tmp_path, file, "badj", "--metric", "hmean")
    assert code == 2
    line = one_line(err)
    at = next((n, ln.index("-1") + 1) for n, ln in enumerate(file.read_text().splitlines(), 1) if ": -1" in ln)
    assert line.startswith(f"{file}:{at[0]}:{at[1]} models.optimizer.lr: must be > 0")


def test_rules_between_keys_are_checked_per_run(cli, tmp_path):
    """lr and eta_min swept together: the range ends would clash (lr 1e-4 with eta_min 5e-3),
    but no run had that pair, so the file imports; a run that broke eta_min < lr is refused."""
    head = f"Name,{LR},models.scheduler.eta_min,val/hmean\n"
    ok = _write(tmp_path, "ok.csv", head + "a,1e-4,1e-6,0.5\nb,1e-2,5e-3,0.6\n")
    code, out, err = _import(cli, tmp_path, ok, "pairs", "--metric", "val/hmean", "--json")
    assert code == 0, err
    assert json.loads(out)["best"]["params"] == {LR: 1e-2, "models.scheduler.eta_min": 5e-3}

    bad = _write(tmp_path, "pairs.csv", head + "a,1e-4,1e-6,0.5\nb,1e-3,2e-3,0.6\n")
    code, _, err = _import(cli, tmp_path, bad, "pairs2", "--metric", "val/hmean")
    assert code == 2
    assert one_line(err).startswith(f"{bad}:3:") and "must be below models.optimizer.lr" in err


def test_an_existing_name_is_refused_unless_force(cli, tmp_path):
    csv = _write(tmp_path, "wandb.csv", WANDB)
    assert _import(cli, tmp_path, csv, "again", "--metric", "val/hmean")[0] == 0
    code, _, err = _import(cli, tmp_path, csv, "again", "--metric", "val/hmean")
    assert code == 2
    assert "exists already" in one_line(err) and "--force" in err

    small = _write(tmp_path, "small.csv", f"Name,{LR},val/hmean\nx,0.001,0.4\ny,0.002,0.45\n")
    code, _, err = _import(cli, tmp_path, small, "again", "--metric", "val/hmean", "--force")
    assert code == 0, err
    s = _status(cli, tmp_path, "again")
    assert s["counts"] == {"completed": 2} and len(_study(tmp_path, "again").trials) == 2


def test_units_and_loss_metrics(cli, tmp_path):
    csv = _write(tmp_path, "frac.csv", f"Name,{LR},hmean\na,0.001,0.5\nb,0.002,1.5\n")
    code, _, err = _import(cli, tmp_path, csv, "u1", "--metric", "hmean", "--fraction")
    assert code == 2 and one_line(err).startswith(f"{csv}:3:9 hmean: is 1.5, above 1, but --fraction")
    code, out, err = _import(cli, tmp_path, csv, "u2", "--metric", "hmean", "--percent", "--json")
    assert code == 0, err
    assert [t["score"] for t in json.loads(out)["trials"]] == [pytest.approx(0.005), pytest.approx(0.015)]
    assert "converted from percent" in err and "--percent" in err

    loss = _write(tmp_path, "loss.csv", f"Name,{LR},val/loss\na,0.001,0.9\nb,0.002,0.4\nc,0.004,nan\n")
    code, _, err = _import(cli, tmp_path, loss, "l1", "--metric", "val/loss", "--percent")
    assert code == 2 and "--percent: applies to an H-mean metric only" in one_line(err)
    code, out, err = _import(cli, tmp_path, loss, "l2", "--metric", "val/loss", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["metric"] == "val_loss" and s["direction"] == "minimize"
    assert s["best"]["trial"] == 1 and s["best"]["score"] == pytest.approx(0.4)
    assert s["trials"][2]["status"] == "failed" and s["trials"][2]["error"] == "no val/loss in the file"
    assert _study(tmp_path, "l2").direction == optuna.study.StudyDirection.MINIMIZE
    code, _, err = _import(cli, tmp_path, loss, "l3", "--metric", "val/loss", "--direction", "maximize")
    assert code == 2 and "--direction" in one_line(err)


def test_read_table_locates_quoted_and_multiline_cells(tmp_path):
    text = 'Name;Notes;models.optimizer.lr;hmean\nx;"two\nlines; ""quoted""";0,001;0.7\ny;;1e-4;0.8\n'
    t = read_table(_write(tmp_path, "semi.csv", text), "semi.csv")
    assert [h.name for h in t.headers] == ["Name", "Notes", LR, "hmean"]
    a, b = t.records
    assert a.cells["Notes"].value == 'two\nlines; "quoted"'
    assert (a.line, a.cells[LR].value, a.cells[LR].line, a.cells[LR].column) == (2, 0.001, 3, 20)
    assert (b.line, b.cells[LR].value, b.cells[LR].column, b.cells["Notes"].value) == (4, 1e-4, 4, None)


def test_a_failed_write_leaves_no_half_imported_sweep(cli, tmp_path, monkeypatch):
    from ocrtune.errors import OcrtuneError
    from ocrtune.sweep.store.study import Store

    real = Store.add_finished

    def flaky(self, plan, slot, *args, **kw):
        if slot == 2:
            raise OcrtuneError("the store went away")
        return real(self, plan, slot, *args, **kw)

    csv = _write(tmp_path, "wandb.csv", WANDB)
    monkeypatch.setattr(Store, "add_finished", flaky)
    code, _, err = _import(cli, tmp_path, csv, "half", "--metric", "val/hmean")
    assert code == 1 and "the store went away" in err
    monkeypatch.setattr(Store, "add_finished", real)
    code, _, err = _import(cli, tmp_path, csv, "half", "--metric", "val/hmean")  # no --force needed
    assert code == 0, err
    assert _status(cli, tmp_path, "half")["counts"] == {"completed": 3, "failed": 3}


def test_a_column_mixing_percent_and_fractions_is_refused_at_the_fraction(cli, tmp_path):
    """80 makes the column percent; 0.82 read as percent would silently become 0.0082."""
    csv = _write(tmp_path, "mixed.csv", f"Name,{LR},H-mean\na,0.001,80\nb,0.002,0.82\nc,0.003,75.5\n")
    code, out, err = _import(cli, tmp_path, csv, "mix", "--metric", "H-mean")
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith(f"{csv}:3:9 H-mean: the column mixes percent and fractions")
    assert "0.82" in line and "--percent" in line and "--fraction" in line and "fix the file" in line
    assert not (tmp_path / "runs" / "sweeps" / "mix" / "study.db").exists()

    pct = _write(tmp_path, "pct.csv", f"Name,{LR},hmean\na,0.001,80%\nb,0.002,0.5\n")  # % says percent
    code, _, err = _import(cli, tmp_path, pct, "mix2", "--metric", "hmean")
    assert code == 2 and one_line(err).startswith(f"{pct}:3:9 hmean: the column mixes percent and fractions")

    # an explicit --percent is taken at its word, with the located line kept as a warning
    code, out, err = _import(cli, tmp_path, csv, "mix3", "--metric", "H-mean", "--percent", "--json")
    assert code == 0, err
    assert [t["score"] for t in json.loads(out)["trials"]] == [
        pytest.approx(0.8), pytest.approx(0.0082), pytest.approx(0.755)]
    warning = next(ln for ln in err.splitlines() if ln.startswith("warning:"))
    assert warning.startswith(f"warning: {csv}:3:9 H-mean: the column mixes percent and fractions")
    assert "Traceback" not in err

    # --fraction refuses the 80 as before; values in (0, 1] with zeros only stay fractions
    code, _, err = _import(cli, tmp_path, csv, "mix4", "--metric", "H-mean", "--fraction")
    assert code == 2 and one_line(err).startswith(f"{csv}:2:9 H-mean: is 80, above 1")


def test_direction_minimize_imports_a_loss_column_ranked_lowest_first(cli, tmp_path):
    loss = _write(tmp_path, "loss.csv", f"Name,{LR},val/loss\na,0.001,0.9\nb,0.002,0.4\nc,0.004,0.65\nd,0.008,\n")
    code, out, err = _import(cli, tmp_path, loss, "lmin", "--metric", "val/loss", "--direction", "minimize", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["metric"] == "val_loss" and s["direction"] == "minimize"
    assert [t["status"] for t in s["trials"]] == ["completed"] * 3 + ["failed"]
    assert s["best"]["trial"] == 1 and s["best"]["params"] == {LR: 0.002} and s["best"]["score"] == pytest.approx(0.4)
    study = _study(tmp_path, "lmin")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and study.best_value == pytest.approx(0.4)
    code, out, err = cli("sweep", "report", "lmin", "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert [(x["rank"], x["trial"]) for x in r["ranking"]] == [(1, 1), (2, 2), (3, 0)]
    assert [x["score"] for x in r["ranking"]] == pytest.approx([0.4, 0.65, 0.9])
    assert [u["trial"] for u in r["unscored"]] == [3] and r["best"]["trial"] == 1
    from ocrtune.presets.load import load_preset

    assert load_preset(r["recommended"]["best"]).preset.models.optimizer.lr == 0.002

    # a column whose name does not say loss becomes one with --direction minimize
    err_csv = _write(tmp_path, "err.csv", f"Name,{LR},val/error\na,0.001,0.3\nb,0.002,0.5\nc,0.004,0.1\n")
    code, out, err = _import(cli, tmp_path, err_csv, "emin", "--metric", "val/error", "--direction", "minimize",
                             "--json")
    assert code == 0, err
    s = json.loads(out)
    assert (s["metric"], s["direction"], s["best"]["trial"]) == ("val_loss", "minimize", 2)
    assert s["best"]["score"] == pytest.approx(0.1) and "converted" not in err
