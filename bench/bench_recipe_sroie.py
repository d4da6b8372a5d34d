"""The detection recipe on real receipts, measured: from scratch vs synthetic pretraining + fine-tuning.

Runs the three-command recipe of docs/quality.md with the same fine-tuning budget as the
from-scratch reference, all in this process's machine, and prints one table (val CLEval H/P/R,
IoU@0.5 H-mean, wall time per step) beside the off-the-shelf anchor:

    1. ocrtune data synth SYN --n N --style real --granularity line --size S
    2. ocrtune train --preset P --data SYN --epochs E_pre --set models.scheduler.interval=step \
           --set models.scheduler.T_max=<E_pre - warm-up epochs> --name pre
    3. ocrtune train --preset P --data SROIE --epochs E --init <pre run> --name finetune
    4. ocrtune tune-postprocess <run> --split train --space post-space.yaml, then
       ocrtune evaluate <run> --set <the tuned settings> (val: the thresholds never see it);
       for the fine-tuned run also with --objective iou (settings ranked by the IoU H-mean)
    reference: ocrtune train --preset P --data SROIE --epochs E --name scratch (and its step 4)

    python bench/bench_recipe_sroie.py --work /tmp/recipe            # CPU: cpu-demo at 512 px
    python bench/bench_recipe_sroie.py --work /tmp/recipe --preset baseline --image-size 1024 \
        --set models.encoder.pretrained=false --set trainer.precision=bf16-mixed   # a GPU

Every command is printed before it runs, so each step can be repeated by hand. Re-running with
the same --work reuses finished steps (their summary.json says completed).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SROIE = REPO.parent / "shared" / "data" / "sroie"
# Step 4's space: the default (+/- around the checkpoint's settings) stops at its lower edges on
# SROIE, so the recipe searches lower and higher thresholds and wider unclip ratios (245 settings).
POST_SPACE = """\
thresh: {values: [0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]}
box_thresh: {values: [0.1, 0.2, 0.3, 0.4, 0.5]}
box_unclip_ratio: {values: [0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5]}
"""
ANCHOR = {"name": "PP-OCRv4 mobile DBNet (rapidocr-onnxruntime, untuned)", "hmean": 0.988, "precision": 0.985,
          "recall": 0.993, "iou_hmean": 0.934}


def ocrtune() -> list[str]:
    exe = Path(sys.executable).with_name("ocrtune")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ocrtune"]


def run(cmd: list[str]) -> float:
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    return time.perf_counter() - start


def run_json(args: list[str]) -> dict:
    """An ocrtune command's ``--json`` output, the command printed first (as ``run`` does)."""
    cmd = [*ocrtune(), *args]
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    return json.loads(subprocess.run(cmd, check=True, cwd=REPO, capture_output=True, text=True).stdout)


def finished_run(runs: Path, name: str) -> Path | None:
    for p in sorted(runs.glob(f"*-{name}")):
        s = p / "summary.json"
        if s.is_file() and json.loads(s.read_text()).get("status") == "completed":
            return p
    return None


def train(args: argparse.Namespace, runs: Path, name: str, data: Path, epochs: int, extra: list[str]) -> Path:
    """One training step; a finished run with exactly these arguments is reused (its name ends
    in a hash of them, so a re-run with other settings trains anew)."""
    sets = [a for s in [f"datasets.image_size={args.image_size}", *args.set] for a in ("--set", s)]
    if name != "pre":
        sets += [a for s in args.finetune_set for a in ("--set", s)]
    elif args.pre_schedule == "fitted":
        sets += [a for s in fitted_schedule(args, epochs) for a in ("--set", s)]
    argv = ["--preset", args.preset, "--data", str(data), "--epochs", str(epochs), *sets, *extra]
    name += "-" + hashlib.sha1(" ".join(argv).encode()).hexdigest()[:6]
    done = finished_run(runs, name)
    if done is not None:
        print(f"reusing {done}")
        return done
    run([*ocrtune(), "train", *argv, "--name", name, "--runs-dir", str(runs), "--quiet"])
    out = finished_run(runs, name)
    if out is None:
        raise SystemExit(f"{name}: the run did not complete (see {runs})")
    return out


def fitted_schedule(args: argparse.Namespace, epochs: int) -> list[str]:
    """The recipe's step 2: the preset's cosine stepped every step and fitted to the pretraining's
    epochs after its warm-up, so the weights handed on are annealed (docs/quality.md)."""
    from ocrtune.presets.load import load_preset
    from ocrtune.train.schedule import fitted_sets

    return fitted_sets(load_preset(args.preset, args.set, []).preset.models.scheduler, epochs)


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def best(run_dir: Path) -> dict[str, float]:
    r = max(rows(run_dir), key=lambda r: float(r["val_hmean"] or 0))
    s = json.loads((run_dir / "summary.json").read_text())
    return {"epoch": int(r["epoch"]) + 1, "hmean": float(r["val_hmean"]), "precision": float(r["val_precision"]),
            "recall": float(r["val_recall"]), "iou_hmean": float(r["val_iou_hmean"] or "nan"),
            "wall_s": float(s["wall_time_s"])}


def tuned(run_dir: Path, data: Path, space: Path, objective: str = "cleval") -> dict[str, object]:
    """Step 4: postprocess settings tuned on the train split for ``objective``, then scored once on val."""
    found = run_json(["tune-postprocess", str(run_dir), "--data", str(data), "--split", "train",
                      "--space", str(space), "--objective", objective, "--no-preset", "--json"])
    params = found["best"]["params"]
    sets = [a for k, v in params.items() for a in ("--set", f"{k}={v}")]
    val = run_json(["evaluate", str(run_dir), "--data", str(data), "--json", *sets])
    c, i = val["cleval"]["image_mean"], val["iou"]["image_mean"]
    return {"objective": objective, "settings": {k.rsplit(".", 1)[1]: v for k, v in params.items()},
            "train_hmean": found["best"]["cleval"]["image_mean"]["hmean"],
            "train_iou_hmean": found["best"]["iou"]["image_mean"]["hmean"], "hmean": c["hmean"],
            "precision": c["precision"], "recall": c["recall"], "iou_hmean": i["hmean"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="Folder for the synthetic set and the runs.")
    ap.add_argument("--data", type=Path, default=SROIE, help="Real receipts (train/val).")
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3, help="Fine-tuning budget (and the reference's epochs).")
    ap.add_argument("--synth-n", type=int, default=600)
    ap.add_argument("--synth-size", type=int, default=1024, help="Synthetic image height (SROIE scans are tall).")
    ap.add_argument("--synth-arg", action="append", default=[],
                    help="Extra argument for data synth, e.g. --synth-arg=--tight-segments (names the set's folder).")
    ap.add_argument("--pre-epochs", type=int, default=2)
    ap.add_argument("--pre-schedule", choices=("fitted", "preset"), default="fitted",
                    help="Pretraining lr schedule: the recipe's (cosine stepped every step, fitted to "
                         "--pre-epochs) or the preset's own (epoch stepping, its T_max).")
    ap.add_argument("--set", action="append", default=[], help="Extra --set for every training.")
    ap.add_argument("--finetune-set", action="append", default=[],
                    help="Extra --set for the two trainings on the real receipts (fine-tuning and the "
                         "from-scratch reference), e.g. trainer.ema.enabled=true.")
    ap.add_argument("--json", type=Path, help="Also write the figures here (after every step).")
    ap.add_argument("--no-scratch", dest="scratch", action="store_false",
                    help="Skip the from-scratch reference (already measured): pretraining and fine-tuning only.")
    ap.add_argument("--no-tune", dest="tune", action="store_false",
                    help="Skip step 4 (postprocess tuned on train): the preset's postprocess only, as "
                         "the per-epoch validation scores it (a short GPU lease spends its time training).")
    args = ap.parse_args()

    work = args.work.resolve()
    runs = work / "runs"
    syn = work / "-".join(["synth", str(args.synth_n), str(args.synth_size), *(a.strip("-") for a in args.synth_arg)])
    out: dict = {"preset": args.preset, "image_size": args.image_size, "epochs": args.epochs, "scratch": args.scratch,
                 "synth_n": args.synth_n, "synth_args": args.synth_arg, "pre_epochs": args.pre_epochs,
                 "pre_schedule": args.pre_schedule,
                 "sets": args.set, "finetune_sets": args.finetune_set, "cpu_count": os.cpu_count(), "anchor": ANCHOR,
                 "per_epoch": {}}

    def save() -> None:  # after every step: a run cut short by a time limit keeps what was done
        if args.json:
            out["load_avg"] = os.getloadavg()
            tmp = args.json.with_suffix(".tmp")
            tmp.write_text(json.dumps(out, indent=2))
            os.replace(tmp, args.json)

    def record(key: str, run_dir: Path) -> None:
        out[key] = best(run_dir)
        out["per_epoch"][key] = [{c: r[c] for c in ("epoch", "val_hmean", "val_iou_hmean", "epoch_time_s")}
                                 for r in rows(run_dir)]
        save()

    if not (syn / "jsons" / "train.json").is_file():
        out["synth_s"] = round(run([*ocrtune(), "data", "synth", str(syn), "--n", str(args.synth_n), "--style",
                                    "real", "--granularity", "line", "--size", str(args.synth_size),
                                    "--val-fraction", "0.1", *args.synth_arg]), 1)
    scratch = train(args, runs, "scratch", args.data, args.epochs, []) if args.scratch else None
    if scratch:
        record("scratch", scratch)
    pre = train(args, runs, "pre", syn, args.pre_epochs, [])
    record("pretrain", pre)
    fine = train(args, runs, "finetune", args.data, args.epochs, ["--init", str(pre)])
    record("finetune", fine)
    post: dict = {}
    if args.tune:
        space = work / "post-space.yaml"
        space.write_text(POST_SPACE)
        post = {"finetune": tuned(fine, args.data, space), "finetune_iou": tuned(fine, args.data, space, "iou")}
        if scratch:
            post["scratch"] = tuned(scratch, args.data, space)
        out["postprocess_tuned_on_train"] = post
        save()

    print()
    print("| model | best epoch | val CLEval H | P | R | IoU@0.5 H | training wall |")
    print("|---|---|---|---|---|---|---|")
    for label, key in ((f"from scratch, {args.epochs} epochs", "scratch"),
                       (f"synthetic pretraining ({args.synth_n} images, {args.pre_epochs} epochs) + {args.epochs} "
                        "epochs fine-tuning", "finetune")):
        if key not in out:
            continue
        b = out[key]
        print(f"| {label} | {b['epoch']} | {b['hmean']:.3f} | {b['precision']:.3f} | {b['recall']:.3f} | "
              f"{b['iou_hmean']:.3f} | {b['wall_s']:.0f} s |")
        for t in ([post[key]] + ([post["finetune_iou"]] if key == "finetune" else [])) if post else []:
            tuned_to = ", ".join(f"{k} {v}" for k, v in t["settings"].items()) or "its own settings scored best"
            print(f"| ... + tune-postprocess on train, --objective {t['objective']} ({tuned_to}) | "
                  f"{b['epoch']} | {t['hmean']:.3f} | {t['precision']:.3f} | {t['recall']:.3f} | {t['iou_hmean']:.3f} | - |")
    a = ANCHOR
    print(f"| {a['name']} | - | {a['hmean']:.3f} | {a['precision']:.3f} | {a['recall']:.3f} | {a['iou_hmean']:.3f} | - |")
    if not scratch:
        print(f"\npretraining cost {out['pretrain']['wall_s']:.0f} s; load average {os.getloadavg()[0]:.1f}")
        return
    d = (out["finetune"]["hmean"] - out["scratch"]["hmean"]) * 100
    di = (out["finetune"]["iou_hmean"] - out["scratch"]["iou_hmean"]) * 100
    print(f"\nfine-tuned vs scratch: CLEval {d:+.2f} pp, IoU {di:+.2f} pp "
          f"(pretraining cost {out['pretrain']['wall_s']:.0f} s); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
