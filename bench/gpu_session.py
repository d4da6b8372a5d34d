"""Every GPU figure of issues 12 and 13 in one call of under 8 minutes on one GPU.

GPU time is lent rarely and in short leases, so this script is prepared and rehearsed on CPU
(``--smoke``) and run at once when a GPU is at hand. It installs nothing; the device's Python
lacks a few of ocrtune's libraries and has no fonts; both travel, with a compact copy of SROIE
(``bench/gpu_prepare.py`` makes them). Parts, in order (``--parts`` picks some):

1. ``cache``  the decoded-image cache built once for SROIE at 512 and 1024 px (all cores).
2. ``step``   per configuration, in a fresh process: images/s of the training step on batches
              already in memory and fed by the real loader (cache on, cache off), loader/preloaded,
              peak GPU memory, and the GPU's busy fraction while the loader feeds it:
              baseline (EfficientNet-B4, bf16-mixed, channels_last) at 1024 and 512 px with
              4 workers (the preset's until auto), baseline at 1024 px with 12 workers, cpu-demo at 512 px.
3. ``share``  baseline at 1024 px as 2 and 4 trials on the one GPU (``--trials-per-gpu``: each
              process capped at its share of the memory, as a sweep slot does): images/s each
              and together, busy fraction, peak memory per trial.
4. ``extent`` inference on each image's own extent against the padded square (what evaluate,
              validation and the tuning cache did before), baseline at 1024 px untrained, SROIE
              val: pixels, seconds each way, speed-up (bench/bench_infer_extent.py).
5. ``recipe`` the quality recipe of docs/quality.md with the baseline preset at 1024 px, bf16:
              from scratch vs synthetic pretraining + fine-tuning at equal budget (val CLEval / IoU
              per epoch), the epochs chosen from the time left (bench/bench_recipe_sroie.py); step 4
              (postprocess tuned on train) only with ``--recipe-tune``; ``--recipe-epochs E`` fixes
              the fine-tuning's epochs and gives the pretraining the rest, ``--no-recipe-scratch``
              skips the reference.
6. ``shapes`` (on request) the first call on each new input shape, and SROIE val inference with
              a batch's images of one extent together against one image a forward, each in a
              fresh process (bench/bench_first_shape.py, bench/bench_infer_grouping.py).

Figures go to ``OUT/gpu_session.json`` after every part (a timeout keeps what was done) and a
summary is printed. On the device (carry ``.whl`` and ``.gpudata``)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && \\
        mkdir -p ~/.fonts && cp .gpudata/fonts/* ~/.fonts/ && \\
        python3 bench/gpu_session.py --data .gpudata/sroie --out $OUT --work /tmp/gw --budget-s 515

    python bench/gpu_session.py --smoke --out /tmp/gpu-smoke      # rehearsal on CPU, tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass
class StepConfig:
    """One measured configuration of the training step (one child process)."""

    label: str
    preset: str
    size: int
    workers: int
    steps: int
    preloaded: bool = True
    loaders: tuple[str, ...] = ("cache", "no cache")
    sets: list[str] = field(default_factory=list)
    share: float | None = None   # this process's share of the GPU's memory (--trials-per-gpu)
    barrier: str | None = None   # folder: write ready-<pid>, wait for "go" before the timed steps


class MeasurementFailed(Exception):
    """A child measurement exited without its figures."""


class BusySampler(threading.Thread):
    """The GPU's busy fraction (NVML 'utilization.gpu': share of time a kernel ran) sampled every
    0.1 s; ``mean(t0, t1)`` averages the samples inside a window. None without NVML (CPU)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handle, self.nvml = pynvml.nvmlDeviceGetHandleByIndex(0), pynvml
        except Exception:  # noqa: BLE001 - no NVML: no figure, said as null
            self.handle = None

    def run(self) -> None:
        while self.handle is not None and not self.stop.wait(0.1):
            self.samples.append((time.time(), self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu / 100))

    def mean(self, t0: float, t1: float) -> float | None:
        inside = [u for t, u in self.samples if t0 <= t <= t1]
        return round(sum(inside) / len(inside), 3) if inside else None


# ---------------------------------------------------------------- child: one step configuration
def measure_step(cfg: StepConfig, data: Path, device: str) -> dict:
    """Seconds per step on held batches and through the loader; peak memory; the timed windows."""
    import itertools

    import torch

    from ocrtune.presets.load import load_preset
    from ocrtune.sweep.run.gpu_share import limit_gpu_memory
    from ocrtune.sweep.run.launcher import SLOT_GPU_ENV, SLOT_GPU_FRACTION_ENV
    from ocrtune.train.datamodule import DetectionDataModule
    from ocrtune.train.fit import precision_for
    from ocrtune.train.module import DBNetModule

    share = None  # the memory fraction applied, through the sweep slot's own mechanism (gpu_share.py)
    if cfg.share is not None:
        share = limit_gpu_memory({SLOT_GPU_ENV: "0", SLOT_GPU_FRACTION_ENV: str(cfg.share)})
    dev = torch.device(device)
    preset = load_preset(cfg.preset, [*cfg.sets, f"datasets.image_size={cfg.size}"]).preset
    precision = precision_for(preset, "gpu" if dev.type == "cuda" else "cpu")
    amp = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    torch.manual_seed(preset.seed)
    net = DBNetModule(preset.model_dump(mode="json")).to(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)  # as fit() does for mixed precision on a GPU
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
    model, loss_fn = net.model.train(), net.loss
    bs = preset.dataloader.batch_size

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def datamodule(cache: bool) -> DetectionDataModule:
        ds = preset.datasets.model_copy(update={"cache": cache, "root": str(data)})
        dm = DetectionDataModule(data, ds, bs, cfg.workers, pin_memory=dev.type == "cuda", seed=preset.seed,
                                 pad=preset.dataloader.pad)
        dm.prepare()
        return dm

    def endless(cache: bool):
        loader = datamodule(cache).train_dataloader()
        while True:
            yield from loader

    warmup = max(2, 2 * cfg.workers)  # as many as the loader prefetches: timed steps wait for fresh batches

    def run(batches, wait: bool = False) -> tuple[float, float, float]:
        it = iter(batches)
        for _ in range(warmup):
            step(next(it))
        sync()
        if wait and cfg.barrier:
            Path(cfg.barrier, f"ready-{os.getpid()}").touch()
            while not Path(cfg.barrier, "go").exists():
                time.sleep(0.02)
        t0 = time.time()
        for _ in range(cfg.steps):
            step(next(it))
        sync()
        t1 = time.time()
        return (t1 - t0) / cfg.steps, t0, t1

    def step(batch: dict) -> None:
        batch = {k: (v.to(dev, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
        with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(batch["image"])
        loss = loss_fn(out, batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out: dict = {"config": asdict(cfg), "precision": precision, "encoder": preset.models.encoder.model_name,
                 "batch": bs, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"}
    if cfg.preloaded:
        held = list(itertools.islice(endless(True), 8))
        if dev.type == "cuda":
            held = [{k: (v.pin_memory() if torch.is_tensor(v) else v) for k, v in b.items()} for b in held]
        s, t0, t1 = run(itertools.cycle(held))
        out["preloaded"] = {"s_per_step": s, "img_s": bs / s, "t0": t0, "t1": t1}
    for label in cfg.loaders:
        s, t0, t1 = run(endless(label == "cache"), wait=True)
        out[label] = {"s_per_step": s, "img_s": bs / s, "t0": t0, "t1": t1}
        if "preloaded" in out:
            out[label]["loader_over_preloaded"] = s / out["preloaded"]["s_per_step"]
    if dev.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        out["gpu_memory_mb"] = torch.cuda.get_device_properties(dev).total_memory / 2**20
        out["share"] = share
    return out


# ---------------------------------------------------------------- parent: the session
class Session:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.t_start = args, time.time()
        self.out = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.figures: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "budget_s": args.budget_s,
                              "smoke": args.smoke, "parts": {}}
        self.busy = BusySampler()
        self.busy.start()

    def left(self) -> float:
        return self.args.budget_s - (time.time() - self.t_start)

    def save(self) -> None:
        path = self.out / "gpu_session.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.figures, indent=2, default=str))
        os.replace(tmp, path)

    def log(self, msg: str) -> None:
        print(f"[{time.time() - self.t_start:6.1f} s] {msg}", flush=True)

    def child(self, cfgs: list[StepConfig]) -> list[dict]:
        """Run configurations in parallel child processes (one each); release a shared barrier
        once every child is warm, so that their timed steps overlap."""
        barrier = Path(tempfile.mkdtemp(prefix="gpu-session-"))
        procs = []
        for i, cfg in enumerate(cfgs):
            cfg.barrier = str(barrier) if len(cfgs) > 1 else None
            res = barrier / f"result-{i}.json"
            cmd = [sys.executable, __file__, "--child", json.dumps(asdict(cfg)), "--child-out", str(res),
                   "--data", str(self.args.data), "--device", self.args.device]
            procs.append((subprocess.Popen(cmd, env=self.env()), res))
        if len(cfgs) > 1:
            while len(list(barrier.glob("ready-*"))) < len(cfgs) and all(p.poll() is None for p, _ in procs):
                time.sleep(0.05)
            (barrier / "go").touch()
        results = []
        for p, res in procs:
            if p.wait() != 0 or not res.is_file():  # recorded; the other measurements go on
                raise MeasurementFailed(f"{cfgs[0].label}: exit {p.returncode} (its traceback is above)")
            results.append(json.loads(res.read_text()))
        return results

    def env(self) -> dict[str, str]:
        env = dict(os.environ, OCRTUNE_CACHE=str(self.cache_dir))
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        return env

    @property
    def cache_dir(self) -> Path:
        return self.args.work / "cache"

    # -- parts
    def part_cache(self) -> None:
        """Decode every image once into the shared cache (what the first trial on a machine pays)."""
        from ocrtune.presets.load import load_preset
        from ocrtune.train.datamodule import DetectionDataModule

        os.environ["OCRTUNE_CACHE"] = str(self.cache_dir)
        fig = {}
        for size in self.sizes():
            preset = load_preset("baseline", [f"datasets.image_size={size}"]).preset
            ds = preset.datasets.model_copy(update={"cache": True, "root": str(self.args.data)})
            dm = DetectionDataModule(self.args.data, ds, preset.dataloader.batch_size, self.args.cache_workers,
                                     seed=preset.seed, pad=preset.dataloader.pad)
            dm.prepare()
            t = time.perf_counter()
            n = sum(len(b["image"]) for b in dm.train_dataloader()) + sum(len(b["image"]) for b in dm.val_dataloader())
            fig[str(size)] = {"images": n, "seconds": round(time.perf_counter() - t, 2),
                              "workers": self.args.cache_workers}
            self.log(f"cache at {size} px: {n} images in {fig[str(size)]['seconds']} s")
        self.figures["parts"]["cache"] = fig

    def part_step(self) -> None:
        big, small = self.sizes()[-1], self.sizes()[0]
        every = {"big": StepConfig(f"baseline {big}px, 4 workers", "baseline", big, 4, self.args.steps,
                                   sets=self.sets()),
                 "big-many": StepConfig(f"baseline {big}px, {self.args.many_workers} workers", "baseline", big,
                                        self.args.many_workers, self.args.steps, preloaded=True, loaders=("cache",),
                                        sets=self.sets()),
                 "small": StepConfig(f"baseline {small}px, 4 workers", "baseline", small, 4, self.args.steps,
                                     sets=self.sets()),
                 "demo": StepConfig(f"cpu-demo {small}px, 4 workers", "cpu-demo", small, 4, self.args.steps)}
        configs = [every[k] for k in self.args.step_configs]
        rows = []
        for cfg in configs:
            try:
                (r,) = self.child([cfg])
            except MeasurementFailed as e:
                rows.append({"config": asdict(cfg), "error": str(e)})
                self.figures["parts"]["step"] = rows
                self.log(f"failed: {e}")
                continue
            for k in ("preloaded", "cache", "no cache"):
                if k in r:
                    r[k]["busy"] = self.busy.mean(r[k]["t0"], r[k]["t1"])
            rows.append(r)
            self.figures["parts"]["step"] = rows
            self.save()
            self.log(self.step_line(r))

    def part_share(self) -> None:
        size = self.sizes()[-1]
        rows = []
        for k in self.args.shares:
            cfgs = [StepConfig(f"baseline {size}px, {k} trials on the GPU", "baseline", size, 4, self.args.steps,
                               preloaded=False, loaders=("cache",), sets=self.sets(), share=1 / k) for _ in range(k)]
            try:
                res = self.child(cfgs)
            except MeasurementFailed as e:
                rows.append({"trials_per_gpu": k, "error": str(e)})
                self.figures["parts"]["share"] = rows
                self.log(f"failed: {e}")
                continue
            t0 = max(r["cache"]["t0"] for r in res)
            t1 = min(r["cache"]["t1"] for r in res)
            row = {"trials_per_gpu": k, "img_s_each": [round(r["cache"]["img_s"], 2) for r in res],
                   "img_s_total": round(sum(r["cache"]["img_s"] for r in res), 2),
                   "overlap_s": round(t1 - t0, 2), "busy": self.busy.mean(t0, t1),
                   "peak_memory_mb_each": [round(r.get("peak_memory_mb", 0)) for r in res]}
            rows.append(row)
            self.figures["parts"]["share"] = rows
            self.save()
            self.log(f"{k} trials per GPU: {row['img_s_total']} img/s together ({row['img_s_each']} each), "
                     f"busy {row['busy']}, peak memory {row['peak_memory_mb_each']} MB")

    def part_extent(self) -> None:
        """The GPU speed-up of inference on each image's own extent (the CPU's is in docs)."""
        a = self.args
        cmd = [sys.executable, str(REPO / "bench" / "bench_infer_extent.py"), "--data", str(a.data),
               "--preset", "cpu-demo" if a.smoke else "baseline", "--size", str(self.sizes()[-1]),
               "--device", a.device, "--json", str(self.out / "extent.json"), *(["--limit", "4"] if a.smoke else [])]
        rc = subprocess.run(cmd, env=self.env(), timeout=max(30, self.left() - 60)).returncode
        if rc != 0:
            raise RuntimeError(f"bench_infer_extent.py: exit {rc} (its traceback is above)")
        fig = json.loads((self.out / "extent.json").read_text())
        self.figures["parts"]["extent"] = fig
        self.log(f"own extent: {fig['pixels_extent_over_square']:.2f} of the square's pixels, "
                 f"{fig['speedup']:.2f}x ({fig['seconds']['square']:.1f} s -> {fig['seconds']['extent']:.1f} s)")

    def part_shapes(self) -> None:
        """The first call on each new input shape (bench_first_shape.py), and validation-style
        inference with a batch's images of one extent together against one image a forward, each
        in a fresh process so that its own kernel set-up counts (bench_infer_grouping.py)."""
        a = self.args
        preset, size = ("cpu-demo", 256) if a.smoke else ("baseline", self.sizes()[-1])
        runs = {"first_shape": ["bench_first_shape.py", "--preset", preset, "--size", str(size)],
                "grouped": ["bench_infer_grouping.py", "--preset", preset, "--size", str(size), "--budgets", "all",
                            "--data", str(a.data)],
                "one_a_forward": ["bench_infer_grouping.py", "--preset", preset, "--size", str(size), "--budgets", "0",
                                  "--data", str(a.data)]}
        fig: dict = {}
        for name, (script, *args) in runs.items():
            out = self.out / f"{name}.json"
            cmd = [sys.executable, str(REPO / "bench" / script), *args, "--device", a.device, "--json", str(out)]
            t = time.perf_counter()
            rc = subprocess.run(cmd, env=self.env(), timeout=max(30, self.left() - 10)).returncode
            fig[name] = {"exit": rc, "process_s": round(time.perf_counter() - t, 1),
                         **({"figures": json.loads(out.read_text())} if out.is_file() else {})}
            self.figures["parts"]["shapes"] = fig
            self.save()
        g, o = (fig[k].get("figures", {}).get("seconds", {}) for k in ("grouped", "one_a_forward"))
        if g and o:
            self.log(f"SROIE val inference in a fresh process: {sum(g.values()):.1f} s with a batch's images of one "
                     f"extent together, {sum(o.values()):.1f} s one image a forward")

    def part_recipe(self) -> None:
        """Fit the trainings into the time left: epochs from the measured throughput.

        Without ``--recipe-epochs`` the three trainings (scratch, pretraining, fine-tuning) get
        equal epochs; with it the fine-tuning gets that many and the pretraining what is left."""
        a = self.args
        step = {r["config"]["label"]: r for r in self.figures["parts"].get("step", [])}
        fast = next((r for r in step.values() if r["config"]["workers"] == a.many_workers and "cache" in r), None)
        img_s = fast["cache"]["img_s"] if fast else a.assume_img_s
        n_train = sum(1 for _ in (a.data / "images" / "train").iterdir())
        n_val = max(1, sum(1 for _ in (a.data / "images" / "val").iterdir()))
        epoch_s = n_train / img_s + a.val_epoch_s
        # data synth keeps a tenth for val, which costs as SROIE's val does per image
        pre_epoch_s = a.synth_n * 0.9 / img_s + a.val_epoch_s * a.synth_n * 0.1 / n_val
        trainings = 3 if a.recipe_scratch else 2
        fixed = (trainings * a.run_start_s + a.synth_n / a.synth_img_s
                 + (trainings * a.post_tune_s if a.recipe_tune else 0))  # a tune per SROIE run, one more for the IoU
        spare = self.left() - fixed - 20 - a.after_recipe_s
        if a.smoke:
            epochs = pre_epochs = 1
        elif a.recipe_epochs:
            epochs = a.recipe_epochs
            rest = spare - epochs * epoch_s * (trainings - 1)
            pre_epochs = int(max(1, min(a.max_epochs, rest / pre_epoch_s)))
            if rest < pre_epoch_s:
                self.log(f"recipe: warning: {epochs} epochs leave {rest:.0f} s for pretraining, under one epoch "
                         f"(~{pre_epoch_s:.0f} s): the call will run past --budget-s")
        else:
            epochs = int(max(1, min(a.max_epochs, spare / ((trainings - 1) * epoch_s + pre_epoch_s))))
            pre_epochs = epochs
        self.log(f"recipe: {img_s:.0f} img/s -> ~{epoch_s:.0f} s an epoch, {spare:.0f} s to spend: "
                 + (f"{epochs} epochs from scratch, " if a.recipe_scratch else "")
                 + f"{pre_epochs} synthetic, {epochs} fine-tuning")
        work = a.work / "recipe"
        cmd = [sys.executable, str(REPO / "bench" / "bench_recipe_sroie.py"), "--work", str(work),
               "--data", str(a.data), "--preset", "baseline" if not a.smoke else "cpu-demo",
               "--image-size", str(self.sizes()[-1]), "--epochs", str(epochs), "--pre-epochs", str(pre_epochs),
               "--synth-n", str(a.synth_n), "--synth-size", str(a.synth_size), "--json", str(self.out / "recipe.json"),
               *[x for s in [*self.sets(), f"dataloader.num_workers={a.many_workers}"] for x in ("--set", s)],
               # the recipe's step 3 (docs/quality.md): the cosine stepped every step and fitted to the
               # run, an EMA scored; square batches (padding to the batch is measured on the CPU only;
               # add it with --set)
               *[x for s in [*self.fitted(epochs), "trainer.ema.enabled=true"] for x in ("--finetune-set", s)],
               *([] if a.recipe_tune else ["--no-tune"]), *([] if a.recipe_scratch else ["--no-scratch"])]
        t = time.perf_counter()
        rc = subprocess.run(cmd, env=self.env()).returncode
        fig = {"epochs": epochs, "pre_epochs": pre_epochs, "scratch": a.recipe_scratch,
               "assumed_epoch_s": round(epoch_s, 1),
               "seconds": round(time.perf_counter() - t, 1), "exit": rc}
        if (self.out / "recipe.json").is_file():
            fig["figures"] = json.loads((self.out / "recipe.json").read_text())
        self.figures["parts"]["recipe"] = fig

    # -- helpers
    def fitted(self, epochs: int) -> list[str]:
        """The ``--set`` values that fit the preset's cosine to ``epochs``, stepped every step."""
        from ocrtune.presets.load import load_preset
        from ocrtune.train.schedule import fitted_sets

        preset = load_preset("cpu-demo" if self.args.smoke else "baseline").preset
        return fitted_sets(preset.models.scheduler, epochs)

    def sizes(self) -> list[int]:
        return [128, 192] if self.args.smoke else [512, 1024]

    def sets(self) -> list[str]:
        # no hub here: from scratch; bf16 is what the baseline's 'auto' precision picks on a GPU
        return ["models.encoder.pretrained=false", *self.args.set]

    @staticmethod
    def step_line(r: dict) -> str:
        parts = [f"{k} {r[k]['img_s']:.1f} img/s"
                 + (f" ({r[k]['loader_over_preloaded']:.2f}x)" if "loader_over_preloaded" in r[k] else "")
                 + (f" busy {r[k]['busy']}" if r[k].get("busy") is not None else "")
                 for k in ("preloaded", "cache", "no cache") if k in r]
        mem = f", peak {r['peak_memory_mb']:.0f} MB" if "peak_memory_mb" in r else ""
        return f"{r['config']['label']} ({r['encoder']}, {r['precision']}): " + "; ".join(parts) + mem

    def run(self) -> None:
        import torch

        self.figures["env"] = {"torch": torch.__version__, "cuda": torch.version.cuda, "cores": os.cpu_count(),
                               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                               "data": str(self.args.data)}
        self.log(f"session: {self.figures['env']}")
        for part in self.args.parts:
            t = time.time()
            if self.left() < 15:  # a part cut by the call's limit would lose what came back with it
                self.figures["parts"][part] = {"skipped": f"{self.left():.0f} s of the budget left"}
                self.log(f"part {part} skipped: no time left")
                continue
            try:
                getattr(self, f"part_{part}")()
            except Exception as e:  # noqa: BLE001 - one part's failure must not lose the others' figures
                self.figures["parts"].setdefault(part, {"error": f"{type(e).__name__}: {e}"})
                self.log(f"part {part} failed: {type(e).__name__}: {e}")
            self.figures.setdefault("part_seconds", {})[part] = round(time.time() - t, 1)
            self.save()
            self.log(f"part {part} done in {time.time() - t:.0f} s; {self.left():.0f} s of the budget left")
        self.busy.stop.set()
        self.figures["total_s"] = round(time.time() - self.t_start, 1)
        self.save()


def smoke_data(work: Path) -> Path:
    """Tiny synthetic receipts standing in for SROIE in the CPU rehearsal."""
    root = work / "smoke-data"
    if not (root / "jsons" / "train.json").is_file():
        subprocess.run([sys.executable, "-m", "ocrtune", "data", "synth", str(root), "--n", "24",
                        "--size", "256", "--val-fraction", "0.25", "--granularity", "line"], check=True, cwd=REPO)
    return root


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, help="SROIE (images/{train,val}, annotations); --smoke makes its own")
    ap.add_argument("--out", type=Path, default=Path("gpu-session"))
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temp folder)")
    ap.add_argument("--parts", nargs="+", default=["cache", "step", "share", "extent", "recipe"],
                    choices=["cache", "step", "share", "extent", "recipe", "shapes"])
    ap.add_argument("--budget-s", type=float, default=450, help="the whole session; the recipe gets what is left")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    ap.add_argument("--many-workers", type=int, default=12)
    ap.add_argument("--cache-workers", type=int, default=min(16, os.cpu_count() or 1))
    ap.add_argument("--shares", type=int, nargs="+", default=[2, 4], help="trials per GPU to measure")
    ap.add_argument("--step-configs", nargs="+", default=["big", "big-many", "small", "demo"],
                    choices=["big", "big-many", "small", "demo"],
                    help="step part: baseline at the large size with 4 and with --many-workers workers, at the "
                         "small size, cpu-demo at the small size")
    ap.add_argument("--recipe-tune", action="store_true",
                    help="recipe: also tune the postprocess on train (step 4: scratch, fine-tuned, fine-tuned for the "
                         "IoU; about 3 x --post-tune-s, 2 x without the scratch run)")
    ap.add_argument("--recipe-epochs", type=_positive, default=None,
                    help="recipe: this many fine-tuning (and scratch) epochs; the pretraining gets the time left "
                         "(default: equal epochs for all, fitted to the time left)")
    ap.add_argument("--no-recipe-scratch", dest="recipe_scratch", action="store_false",
                    help="recipe: skip the from-scratch reference (measured in an earlier lease)")
    ap.add_argument("--after-recipe-s", type=float, default=0.0,
                    help="seconds kept for the parts listed after the recipe")
    ap.add_argument("--max-epochs", type=int, default=30, help="recipe: at most this many epochs per training")
    ap.add_argument("--synth-n", type=int, default=1000)
    ap.add_argument("--synth-size", type=int, default=1024)
    ap.add_argument("--synth-img-s", type=float, default=60.0, help="rendering rate assumed for the budget")
    ap.add_argument("--run-start-s", type=float, default=90.0,
                    help="a training's start-up assumed for the budget: on the H200, 2026-12-04, B4 at 1024 px, "
                         "~20 s to its first step and ~70 s more in its first epoch (the convolution set-up "
                         "for each new input shape, bench/bench_first_shape.py)")
    ap.add_argument("--val-epoch-s", type=float, default=9.5,
                    help="SROIE's validation per epoch assumed for the budget (H200, B4 at 1024 px: 15 to 16.5 s an "
                         "epoch, 54 steps of them at 65 images/s)")
    ap.add_argument("--post-tune-s", type=float, default=40.0,
                    help="the recipe's step 4 (train-split maps, 245 settings, one val pass) assumed, per tune "
                         "(scratch unless --no-recipe-scratch, fine-tuned, fine-tuned for the IoU)")
    ap.add_argument("--assume-img-s", type=float, default=60.0, help="training rate when the step part did not run")
    ap.add_argument("--set", action="append", default=[], help="extra --set for every baseline measurement")
    ap.add_argument("--device", default=None)
    ap.add_argument("--smoke", action="store_true", help="CPU rehearsal: tiny data, sizes and steps")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        cfg = StepConfig(**{k: tuple(v) if k == "loaders" else v for k, v in json.loads(args.child).items()})
        r = measure_step(cfg, args.data, args.device)
        args.child_out.write_text(json.dumps(r))
        return

    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="gpu-session-work-"))).resolve()
    args.out = args.out.resolve()
    if args.smoke:
        args.data = smoke_data(args.work)
        args.steps, args.many_workers, args.cache_workers = 2, 2, 2
        args.synth_n, args.synth_size, args.run_start_s = 16, 256, 25.0
        args.set, args.shares = [*args.set, "dataloader.batch_size=2"], [2]
    elif args.data is None:
        ap.error("--data: the SROIE folder (bench/gpu_prepare.py makes a compact copy in .gpudata/sroie)")
    args.data = args.data.resolve()
    if args.device == "cpu" and not args.smoke:
        print("no GPU here: these figures would be CPU figures; use --smoke for a rehearsal", file=sys.stderr)
        raise SystemExit(2)
    Session(args).run()


if __name__ == "__main__":
    main()
