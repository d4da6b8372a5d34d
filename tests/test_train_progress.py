"""Progress people see: lines inside long epochs in logs, the warm-up lr said as such, the CPU
pace warning, the live bar's images/s and ETA, and evaluate/predict progress (a spinner while the
model loads on a terminal, plain lines in logs only when the job is long)."""

from __future__ import annotations

from types import SimpleNamespace

from rich.progress import Progress, ProgressSample

from ocrtune.presets.load import load_preset
from ocrtune.train.recorder import CpuPace, EpochBar, EpochLines
from ocrtune.train.resources import RunHeader, cpu_bf16_units, pace_line, pace_remedies, warmup_note


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Images:
    shape = (4, 3, 32, 32)


def _trainer(epoch: int = 0, steps: int = 400, epochs: int = 22, lr: float = 0.001):
    opt = SimpleNamespace(param_groups=[{"lr": lr}])
    return SimpleNamespace(current_epoch=epoch, max_epochs=epochs, num_training_batches=steps, is_global_zero=True,
                           callback_metrics={}, optimizers=[opt])


BATCH = {"image": Images()}


def test_epoch_lines_report_inside_a_long_epoch(capsys):
    clock = Clock()
    lines = EpochLines(every_s=60, clock=clock)
    trainer = _trainer()
    lines.on_train_epoch_start(trainer, None)
    for i in range(30):  # 30 steps of 2 s: one line at 60 s
        clock.t += 2.0
        lines.on_train_batch_end(trainer, None, None, BATCH, i)
    err = capsys.readouterr().err.splitlines()
    assert err == ["epoch 1/22  step 30/400  2.00 images/s  epoch ETA 12 min"]


def test_the_warm_up_lr_is_said_with_its_target(capsys):
    module = SimpleNamespace(preset=load_preset("cpu-demo").preset)  # warmup_epochs 1, lr 0.002
    lines = EpochLines(clock=Clock())
    lines.on_train_epoch_start(_trainer(epoch=0, lr=0.001), module)
    lines.on_train_epoch_end(_trainer(epoch=0, lr=0.001), module)
    lines.on_train_epoch_start(_trainer(epoch=1, lr=0.002), module)
    lines.on_train_epoch_end(_trainer(epoch=1, lr=0.002), module)
    first, second = capsys.readouterr().err.splitlines()
    assert "lr 0.001 (warm-up 1/1, target 0.002)" in first
    assert "lr 0.002  " in second and "warm-up" not in second
    assert warmup_note(0.002, 1) == "lr: the rate each epoch trained at; epoch 1 warms up linearly towards the target 0.002"
    assert warmup_note(0.002, 3).startswith("lr: the rate each epoch trained at; epochs 1-3 warm up")
    assert warmup_note(0.002, 0) is None


def test_a_gpu_sized_preset_on_cpu_gets_one_pace_warning():
    clock, said = Clock(), []
    pace = CpuPace(steps=3, clock=clock, out=said.append)
    trainer = _trainer(steps=400, epochs=22)
    for i in range(10):
        clock.t += 30.0 if i == 0 else 12.0  # the first step pays for start-up and is not counted
        pace.on_train_batch_end(trainer, None, None, BATCH, i)
    assert said == [pace_line(12.0, 4, 400, 22)]
    assert said[0] == ("slow on this CPU: 12.0 s/step (0.33 images/s): ~1 h 20 min an epoch of 400 steps, "
                       "~29 h 20 min for the 22 epochs left (validation not included)")


def test_the_pace_warning_suggests_the_small_encoder_only_to_runs_without_it():
    clock, said = Clock(), []
    pace = CpuPace(steps=3, clock=clock, out=said.append, remedies=pace_remedies(1024, "efficientnet_b4", "resnet10t"))
    for i in range(5):
        clock.t += 12.0
        pace.on_train_batch_end(_trainer(steps=400, epochs=22), None, None, BATCH, i)
    assert said[0].endswith("(validation not included); shorter: a GPU, a smaller datasets.image_size (now 1024) "
                            "or cpu-demo's small encoder (models.encoder.model_name=resnet10t)")
    assert pace_remedies(1024, "resnet10t", "resnet10t") == ("a GPU", "a smaller datasets.image_size (now 1024)")
    assert pace_line(7.5, 4, 107, 6, pace_remedies(1024, "resnet10t", "resnet10t")).endswith(
        "shorter: a GPU or a smaller datasets.image_size (now 1024)")


def test_the_pace_warning_suggests_bf16_to_an_fp32_run_on_a_cpu_with_bf16_units(tmp_path):
    amx = tmp_path / "cpuinfo"
    amx.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16\n")
    old = tmp_path / "old"
    old.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_bf16_units(str(amx)) == ("amx_bf16", "avx512_bf16")
    assert cpu_bf16_units(str(old)) == () and cpu_bf16_units(str(tmp_path / "absent")) == ()
    assert pace_remedies(1024, "resnet10t", "resnet10t", "32-true", ("amx_bf16",)) == (
        "a GPU", "--set trainer.precision=bf16-mixed (this CPU has amx_bf16: docs/training.md, Precision)",
        "a smaller datasets.image_size (now 1024)")
    # a run in bf16 already: not suggested
    assert pace_remedies(1024, "resnet10t", "resnet10t", "bf16-mixed", ("amx_bf16",)) == (
        "a GPU", "a smaller datasets.image_size (now 1024)")
    # no bf16 units, or only AVX512-BF16 (not measured): not suggested
    for units in ((), ("avx512_bf16",)):
        assert pace_remedies(1024, "resnet10t", "resnet10t", "32-true", units) == (
            "a GPU", "a smaller datasets.image_size (now 1024)")


def test_a_cpu_run_gets_the_remedies_that_fit_its_preset():
    import torch

    from ocrtune.train.fit import _pace

    probe = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")))
    big = load_preset("hybrid", ["datasets.image_size=1024"]).preset
    (pace,) = _pace(probe, False, big, "32-true")
    assert "a smaller datasets.image_size (now 1024)" in pace.remedies
    assert "cpu-demo's small encoder (models.encoder.model_name=resnet10t)" in pace.remedies
    (pace,) = _pace(probe, False, load_preset("cpu-demo").preset, "bf16-mixed")
    assert pace.remedies == ("a GPU", "a smaller datasets.image_size (now 320)")
    assert _pace(probe, True, big, "32-true") == []  # a DDP child: rank 0 warns
    gpu = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)))
    assert _pace(gpu, False, big, "bf16-mixed") == []


def test_a_quick_run_on_cpu_gets_no_pace_warning():
    clock, said = Clock(), []
    pace = CpuPace(steps=3, clock=clock, out=said.append)
    trainer = _trainer(steps=13, epochs=16)
    for i in range(13):
        clock.t += 0.5
        pace.on_train_batch_end(trainer, None, None, BATCH, i)
    assert said == [] and pace.done


def test_the_live_bar_shows_images_per_second_and_an_eta():
    bar = EpochBar()
    trainer = SimpleNamespace(datamodule=SimpleNamespace(batch_size=8))
    columns = bar.configure_columns(trainer)
    progress = Progress(*columns, auto_refresh=False)
    task = progress.add_task("Epoch 1/22", total=100)
    t = progress._tasks[task]
    t.start_time = 0.0
    progress.update(task, completed=10)
    t._progress.clear()
    t._progress.extend([ProgressSample(0.0, 0), ProgressSample(20.0, 10)])  # 10 batches in 20 s
    rendered = [str(c.render(t)) for c in columns[-2:]]
    assert rendered == ["ETA 0:03:00", "4.00 img/s"]  # 90 batches at 0.5/s; 0.5 batches/s x 8 images


def test_the_header_line_says_where_what_and_how_much():
    h = RunHeader(run_dir="runs/x", device="cpu: 2 cores", precision="32-true", n_train=51, n_val=13, batch_size=4,
                  steps_per_epoch=13, epochs=16, memory="RAM ~420 MB of 20.0 GB free")
    assert h.line() == ("run runs/x  |  cpu: 2 cores  |  32-true  |  51 train / 13 val images  |  13 steps/epoch "
                        "(batch 4)  |  16 epochs  |  RAM ~420 MB of 20.0 GB free")
    resumed = RunHeader(run_dir="runs/x", device="cpu", precision="32-true", n_train=1, n_val=1, batch_size=4,
                        steps_per_epoch=1, epochs=5, epochs_done=3)
    assert "1 step/epoch (batch 4)  |  epochs 4-5 of 5" in resumed.line()


# --- evaluate / predict progress ------------------------------------------------------------

def test_progress_in_logs_is_a_line_every_so_often_and_nothing_for_a_short_job(capsys):
    from ocrtune.cli._output import ProgressBar

    clock = Clock()
    with ProgressBar("evaluating val", unit="images", every_s=30, clock=clock) as bar:
        bar.stage("loading the model")  # drawn on a terminal only
        clock.t += 40  # a slow model load: said at the first count
        bar(0, 64)
        for done in range(8, 65, 8):
            clock.t += 10
            bar(done, 64)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "evaluating val: 0/64 images  40 s so far",
        "evaluating val: 24/64 images  0.80 images/s  ETA 50 s",
        "evaluating val: 48/64 images  0.80 images/s  ETA 20 s",
    ]
    with ProgressBar("predicting", unit="images", clock=clock) as bar:
        bar(0, 4)
        clock.t += 5
        bar(4, 4)
    assert capsys.readouterr().err == ""


def test_evaluate_shows_a_spinner_while_the_model_loads_on_a_terminal(monkeypatch):
    """On a terminal the wait before the first image (imports, model, split) is drawn, and the
    drawing is gone afterwards, so an input error is still the only line."""
    import io

    from rich.console import Console

    import ocrtune.cli._output as output

    buf = io.StringIO()
    term = Console(file=buf, force_terminal=True, width=100, highlight=False, markup=False)
    monkeypatch.setattr(output, "err_console", term)
    from ocrtune.cli._output import ProgressBar

    bar = ProgressBar("evaluating val", unit="images")
    bar.stage("loading the model")
    assert bar.bar is not None and bar.bar.tasks[0].description == "loading the model"
    assert bar.bar.tasks[0].total is None
    bar(0, 13)
    assert bar.bar.tasks[0].description == "evaluating val" and bar.bar.tasks[0].total == 13
    bar(13, 13)
    bar.__exit__(None, None, None)
    assert "loading the model" in buf.getvalue()
