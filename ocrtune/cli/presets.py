"""`ocrtune presets ...`: list, show, validate, new, blend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from ocrtune.cli._options import JsonOption, PresetsDirOption, SetOption
from ocrtune.cli._output import console, error, fmt, info, print_json, table
from ocrtune.errors import InputError
from ocrtune.presets.compare import blend_values, settings
from ocrtune.presets.load import available_presets, load_preset, preset_dirs
from ocrtune.presets.sources import kind_of, read_source
from ocrtune.presets.write import blend_preset, dump, new_preset, preset_from_source

app = typer.Typer(help="List, show, validate and create presets.", no_args_is_help=True)

DirOption = Annotated[Path, typer.Option("--dir", help="Folder to write the new preset into.")]
ForceOption = Annotated[
    bool,
    typer.Option("--force", help="Overwrite an existing preset file, or shadow a preset of the same name."),
]


@app.command("list")
def list_(presets_dir: PresetsDirOption = None, as_json: JsonOption = False) -> None:
    """Table of presets: encoder, lr, weight decay, T_max, eta_min, reported H-mean."""
    dirs = presets_dir or []
    rows, records = [], []
    for name, path in available_presets(dirs).items():
        try:
            p = load_preset(path, (), dirs).preset
        except InputError as e:
            records.append({"name": name, "path": str(path), "error": e.lines[0]})
            rows.append([name, Text("invalid", style="red"), "-", "-", "-", "-", e.lines[0]])
            continue
        opt, sch = p.models.optimizer, p.models.scheduler
        hmean = p.reported.hmean if p.reported else None
        records.append(
            {
                "name": name,
                "path": str(path),
                "encoder": p.models.encoder.model_name,
                "lr": opt.lr,
                "weight_decay": opt.weight_decay,
                "T_max": sch.T_max,
                "eta_min": sch.eta_min,
                "reported_hmean": hmean,
                "description": p.description,
            }
        )
        rows.append([name, p.models.encoder.model_name, opt.lr, opt.weight_decay, sch.T_max, sch.eta_min, hmean])
    if as_json:
        print_json(records)
        return
    if not rows:
        where = ", ".join(str(d) for d in preset_dirs(dirs))
        info(f"no presets found in {where}")
        return
    cols = ["preset", "encoder", "lr", "weight decay", "T_max", "eta_min", "reported H"]
    console.print(table(None, cols, rows))


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Preset name or path.")],
    set_: SetOption = None,
    presets_dir: PresetsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the fully resolved preset (inheritance, overrides and defaults applied)."""
    loaded = load_preset(name, set_ or [], presets_dir or [])
    data = loaded.preset.model_dump(mode="json")
    if as_json:
        print_json(data)
        return
    chain = " -> ".join(str(p) for p in loaded.chain)
    print(f"# {loaded.name}: resolved from {chain}" + (f" with {len(set_)} --set" if set_ else ""))
    print(dump(data), end="")


@app.command()
def validate(
    names: Annotated[Optional[list[str]], typer.Argument(help="Preset names or paths (default: all).")] = None,
    set_: SetOption = None,
    presets_dir: PresetsDirOption = None,
) -> None:
    """Check presets against the schema; one located line per problem, exit 2 if any fails."""
    dirs = presets_dir or []
    targets = names or list(available_presets(dirs).values())
    if not targets:
        raise InputError("no presets to validate")
    failed = 0
    for ref in targets:
        try:
            loaded = load_preset(ref, set_ or [], dirs)
        except InputError as e:
            failed += 1
            for line in e.lines:
                error(line)
            continue
        info(f"ok  {loaded.name} ({loaded.path})")
    if failed:
        info(f"{failed} of {len(targets)} preset(s) invalid")
        raise typer.Exit(2)


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="Name of the new preset (file stem; a .yaml suffix is dropped).")],
    from_: Annotated[
        str,
        typer.Option("--from", help="Preset to start from, or a run directory (path or name under --runs-dir), "
                     "or SWEEP:TRIAL (e.g. lr-b4:7, a sweep under --runs-dir/sweeps)."),
    ],
    set_: SetOption = None,
    out_dir: DirOption = Path("presets"),
    force: ForceOption = False,
    keep_epochs: Annotated[
        bool, typer.Option("--keep-epochs", help="From a run or trial: also copy its trainer.max_epochs (e.g. a sweep's --epochs).")
    ] = False,
    keep_data: Annotated[
        bool, typer.Option("--keep-data", help="From a run or trial: also copy its datasets.root (the data it trained on).")
    ] = False,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where run directories and sweeps live.")] = Path("runs"),
    presets_dir: PresetsDirOption = None,
) -> None:
    """Write a new commented preset from an existing one, a run or a sweep trial, with --set changes.

    From a run or a trial (SWEEP:TRIAL) the preset extends the preset it started from, when
    that is found by name, with only the changed keys; else it holds every resolved setting.
    The epochs and the data root set for that run only are not copied unless --keep-epochs /
    --keep-data.
    """
    dirs = presets_dir or []
    if kind_of(from_, runs_dir, dirs) == "preset":
        if keep_epochs or keep_data:
            raise InputError("only with --from a run directory or SWEEP:TRIAL", key="--keep-epochs" if keep_epochs else "--keep-data")
        path = new_preset(name, from_, set_ or [], out_dir, dirs, force)
        info(f"wrote {path}")
        return
    src = read_source(from_, runs_dir, dirs)
    done = preset_from_source(name, src, set_ or [], out_dir, dirs, force, keep_epochs, keep_data)
    values = [v for v in done.values if v[0] != "reported"]  # reported: cleared, not yet measured
    how = f"extends {done.extends}, sets {len(values)} value(s)" if done.extends else f"standalone, {len(values)} setting(s)"
    info(f"wrote {done.path} from {done.source} ({how})")
    if done.extends:
        for key, value, note in values:
            info(f"  {key} = {fmt(value)}" + (f"  # {note}" if note else ""))
    for key, value, why in done.dropped:
        info(f"not copied: {key}={fmt(value)} ({why})")


@app.command()
def blend(
    a: Annotated[str, typer.Argument(help="First preset (weight 0).")],
    b: Annotated[str, typer.Argument(help="Second preset (weight 1).")],
    name: Annotated[str, typer.Option("--name", help="Name of the blended preset.")],
    weight: Annotated[float, typer.Option("--weight", help="0 gives A, 1 gives B.")] = 0.5,
    log: Annotated[bool, typer.Option("--log", help="Interpolate geometrically (for lr-like values).")] = False,
    set_: SetOption = None,
    out_dir: DirOption = Path("presets"),
    force: ForceOption = False,
    presets_dir: PresetsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Interpolate the numeric settings of two presets (integers rounded) into a new preset.

    --set values apply to the blended result; the table shows the values written. Settings that
    cannot be interpolated (names, flags, lists) are taken from A and listed; presets with
    different encoders get a warning naming the sizes mixed between them.
    """
    dirs = presets_dir or []
    pa, pb = load_preset(a, (), dirs), load_preset(b, (), dirs)
    values = blend_values(settings(pa.preset), settings(pb.preset), weight, log)
    done = blend_preset(name, a, b, values, weight, log, out_dir, dirs, force, set_ or [])
    caveats = done.caveats.lines()
    if as_json:
        print_json({"path": str(done.path), "values": [v.__dict__ for v in done.values], "caveats": caveats})
        for line in caveats[:1] if done.caveats.encoder is not None else []:
            info(line)  # the warning reaches a person reading the terminal too
        return
    rows = [[v.key, v.a, v.b, v.value, v.how] for v in done.values]
    console.print(table(f"{name} = blend({a}, {b}, w={weight:g})", ["key", a, b, name, "how"], rows))
    for line in caveats:
        info(line)
    info(f"wrote {done.path}")
