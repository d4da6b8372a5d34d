"""``ocrtune data stats|check|synth`` end to end through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ocrtune.cli.app import app as root
from ocrtune.data.formats import read_json

runner = CliRunner()


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    args = ["data", "synth", str(out), "--n", "5", "--seed", "4", "--size", "320"]
    result = runner.invoke(root, args)
    assert result.exit_code == 0, result.output
    assert "wrote 4 train + 1 val images" in result.stdout
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_check_passes_on_clean_synthetic_set(synth_dir: Path) -> None:
    result = runner.invoke(root, ["data", "check", str(synth_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "OK (train: 4 images, 0 problems, val: 1 images, 0 problems)" in result.stderr


def test_stats_json_numbers_match_the_files(synth_dir: Path) -> None:
    result = runner.invoke(root, ["data", "stats", str(synth_dir), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    anns = read_json(synth_dir / "jsons" / "train.json")
    counts = [len(im.words) for im in anns.values()]
    assert stats["split"] == "train"
    assert stats["images"] == stats["annotated_images"] == 4
    assert stats["words"] == sum(counts)
    assert stats["words_per_image"] == {
        "min": min(counts), "mean": round(sum(counts) / 4, 3), "max": max(counts)}
    assert stats["long_side"] == {"min": 320, "max": 320}
    assert stats["vertices"] == {"4": sum(counts)}
    assert stats["problems"] == {"total": 0, "by_kind": {}, "first": []}


def test_stats_table_renders(synth_dir: Path) -> None:
    result = runner.invoke(root, ["data", "stats", str(synth_dir), "--split", "val"])
    assert result.exit_code == 0, result.output
    assert "words/image" in result.stdout and "polygon vertices" in result.stdout


def test_check_fails_on_injected_degenerate_word(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "ds")
    path = ds / "jsons" / "train.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    name = next(iter(raw["images"]))
    raw["images"][name]["words"]["9999"] = {"points": [[1, 1], [5, 5]]}
    raw["images"][name]["words"]["9998"] = {"points": [[-10, 2], [50, 2], [50, 12], [-10, 12]]}
    text = json.dumps(raw, indent=1)
    path.write_text(text, encoding="utf-8")
    lines_of = text.splitlines()
    line_9999 = next(i for i, t in enumerate(lines_of, 1) if t.strip().startswith('"9999":'))
    line_9998 = next(i for i, t in enumerate(lines_of, 1) if t.strip().startswith('"9998":'))

    result = runner.invoke(root, ["data", "check", str(ds)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:{line_9999}:5 images.{name}.words.9999: degenerate:")
    assert lines[1].startswith(f"{path}:{line_9998}:5 images.{name}.words.9998: clipped:")
    assert "FAILED" in result.stderr

    stats = json.loads(runner.invoke(root, ["data", "stats", str(ds), "--json"]).stdout)
    assert stats["problems"]["by_kind"] == {"clipped": 1, "degenerate": 1}
    assert stats["problems"]["first"][0] | {"message": ""} == {
        "kind": "degenerate", "file": str(path), "line": line_9999, "column": 5, "image": name,
        "word": "9999", "message": "", "dropped": True}
    assert stats["vertices"]["2"] == 1
    assert stats["words"] == stats["vertices"]["4"]  # the clipped word is kept, the 2-point one not


def test_check_reports_missing_and_unlisted_images(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "ds")
    images = sorted((ds / "images" / "train").iterdir())
    images[0].unlink()
    (ds / "images" / "train" / "extra.jpg").write_bytes(images[1].read_bytes())
    (ds / "images" / "val" / "broken.jpg").write_bytes(b"not a jpeg")
    result = runner.invoke(root, ["data", "check", str(ds)])
    assert result.exit_code == 1
    out = result.stdout
    assert f"images.{images[0].name}: missing-image:" in out
    assert "images.extra.jpg: unannotated:" in out
    assert "broken.jpg images.broken.jpg: unreadable:" in out
    only_val = runner.invoke(root, ["data", "check", str(ds), "--split", "val"])
    assert only_val.exit_code == 1 and "missing-image" not in only_val.stdout


def test_malformed_json_exits_2_with_located_line(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "ds")
    (ds / "jsons" / "val.json").write_text('{"images": {\n  "a.jpg": {"words": [}\n}}')
    for command in (["check", str(ds)], ["stats", str(ds), "--split", "val"]):
        result = runner.invoke(root, ["data", *command])
        assert result.exit_code == 2
        assert result.stderr.startswith(f"{ds / 'jsons' / 'val.json'}:2:")
        assert "Traceback" not in result.output


def test_missing_split_and_directory_exit_2(synth_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(root, ["data", "stats", str(synth_dir), "--split", "test"])
    assert result.exit_code == 2
    assert "split 'test' not found" in result.stderr and "splits found: train, val" in result.stderr
    result = runner.invoke(root, ["data", "check", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "dataset directory not found" in result.stderr


def test_sroie_style_layout_is_accepted(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "ds")
    (ds / "jsons").rename(ds / "annotations")
    result = runner.invoke(root, ["data", "stats", str(ds), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["annotation"] == str(ds / "annotations" / "train.json") and stats["words"] > 0


def test_synth_refuses_existing_dataset_without_force(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "ds")
    result = runner.invoke(root, ["data", "synth", str(ds), "--n", "2", "--size", "128"])
    assert result.exit_code == 2 and "--force" in result.stderr
    args = ["data", "synth", str(ds), "--n", "2", "--size", "128", "--val-fraction", "0.5"]
    result = runner.invoke(root, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert len(read_json(ds / "jsons" / "train.json")) == 1
    assert len(list((ds / "images" / "train").iterdir())) == 1


def test_check_decodes_images_and_reports_truncated_files(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "ds")
    victim = sorted((ds / "images" / "train").iterdir())[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])  # header intact, pixels cut off
    result = runner.invoke(root, ["data", "check", str(ds)])
    assert result.exit_code == 1
    assert victim.name in result.stdout and "unreadable" in result.stdout
    stats = runner.invoke(root, ["data", "stats", str(ds), "--json"])
    assert stats.exit_code == 0  # stats reads headers only and stays fast


def test_synth_bad_options_exit_2_and_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "s5"
    result = runner.invoke(root, ["data", "synth", str(out), "--n", "2", "--seed", "-1"])
    assert result.exit_code == 2 and "--seed" in result.output
    assert not out.exists()
    result = runner.invoke(root, ["data", "synth", str(out), "--n", "2", "--val-fraction", "1.5"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "--val-fraction: must be in [0, 1), got 1.5"
    assert not out.exists()
    result = runner.invoke(root, ["data", "synth", str(out), "--n", "2", "--size", "96"])
    assert result.exit_code == 0, result.output  # the retry is not blocked by leftovers


def test_synth_into_a_plain_file_is_one_line_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("keep")
    result = runner.invoke(root, ["data", "synth", str(target), "--n", "1"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{target}: not a directory; give a folder for the dataset"
    assert target.read_text() == "keep"


def test_synth_force_never_replaces_a_real_dataset(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "real")
    (ds / "ocrtune-synth.json").unlink()  # as if the images came from elsewhere
    scan = sorted((ds / "images" / "train").iterdir())[0]
    scan.rename(scan.with_name("scan-0001.jpg"))
    before = {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()}
    for force in (["--force"], []):
        result = runner.invoke(root, ["data", "synth", str(ds), "--n", "2", "--size", "96", *force])
        assert result.exit_code == 2
        assert result.stderr == (
            f"{ds}: folder holds a dataset that ocrtune did not synthesise (no ocrtune-synth.json), "
            "which synth never replaces, even with --force: choose another folder, or delete this "
            "one yourself\n")
        assert {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()} == before


def test_synth_force_refuses_a_set_made_before_the_marker(synth_dir: Path, tmp_path: Path) -> None:
    """Names that look synthetic prove nothing: without the hashed marker, never replaced."""
    ds = _copy(synth_dir, tmp_path / "old")
    (ds / "ocrtune-synth.json").unlink()
    before = {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()}
    result = runner.invoke(root, ["data", "synth", str(ds), "--n", "2", "--size", "96", "--force"])
    assert result.exit_code == 2 and "did not synthesise (no ocrtune-synth.json)" in result.stderr
    assert {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()} == before


def test_synth_force_refuses_an_edited_set_naming_the_file(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "edited")
    victim = sorted((ds / "images" / "train").iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")  # a hand edit keeps the name
    before = {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()}
    result = runner.invoke(root, ["data", "synth", str(ds), "--n", "2", "--size", "96", "--force"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{victim}: changed since ocrtune synthesised this dataset (its sha256 differs from "
        "ocrtune-synth.json); --force replaces only a dataset synth wrote and nobody changed since: "
        "choose another folder, or delete the dataset yourself\n")
    assert {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()} == before

    untouched = _copy(synth_dir, tmp_path / "untouched")  # the same set, unedited: replaced
    result = runner.invoke(root, ["data", "synth", str(untouched), "--n", "2", "--size", "96", "--force"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (untouched / "images" / "train").iterdir()) == ["receipt_00000.jpg"]


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--workers", "0", "--workers: must be at least 1, got 0"),
    ("--workers", "-2", "--workers: must be at least 1, got -2"),
    ("--workers", "abc", "--workers: must be a whole number of processes or 'all', got 'abc'"),
    ("--workers", "1.5", "--workers: must be a whole number of processes or 'all', got '1.5'"),
    ("--granularity", "char", "--granularity: must be one of word|line, got 'char'"),
    ("--style", "fancy", "--style: must be one of plain|real, got 'fancy'"),
    ("--effects", "fading,glow", "--effects: unknown effect 'glow' (choose from fading,smudges,creases,"
                                 "marks,stamp,shadow,light, or all, or none)"),
])
def test_synth_bad_new_options_are_one_line_exit_2(tmp_path: Path, option: str, value: str, message: str) -> None:
    out = tmp_path / "bad"
    result = runner.invoke(root, ["data", "synth", str(out), "--n", "2", "--size", "96", option, value])
    assert result.exit_code == 2
    assert result.stderr == message + "\n" and result.stdout == ""
    assert not out.exists()


def test_synth_in_parallel_real_style_line_boxes_end_to_end(tmp_path: Path) -> None:
    args = ["--n", "6", "--seed", "2", "--size", "256", "--style", "real", "--granularity", "line"]
    one = runner.invoke(root, ["data", "synth", str(tmp_path / "one"), *args, "--workers", "1"])
    two = runner.invoke(root, ["data", "synth", str(tmp_path / "two"), *args, "--workers", "2"])
    assert one.exit_code == two.exit_code == 0, one.output + two.output
    assert "line segments) to" in two.stdout and "images/s" in two.stdout and "2 processes" in two.stdout
    for name in ("jsons/train.json", "jsons/val.json", "ocrtune-synth.json", "images/train/receipt_00003.jpg"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    marker = json.loads((tmp_path / "two" / "ocrtune-synth.json").read_text())
    assert (marker["style"], marker["granularity"], len(marker["effects"])) == ("real", "line", 7)
    texts = [w.text for im in read_json(tmp_path / "two" / "jsons" / "train.json").values() for w in im.words]
    assert any(" " in t for t in texts)  # phrases are one box
    check = runner.invoke(root, ["data", "check", str(tmp_path / "two")])
    assert check.exit_code == 0, check.output


def test_synth_tight_segments_end_to_end_and_only_with_the_real_style(tmp_path: Path) -> None:
    args = ["--n", "4", "--seed", "2", "--size", "256", "--style", "real", "--granularity", "line", "--tight-segments"]
    one = runner.invoke(root, ["data", "synth", str(tmp_path / "one"), *args, "--workers", "1"])
    two = runner.invoke(root, ["data", "synth", str(tmp_path / "two"), *args, "--workers", "2"])
    assert one.exit_code == two.exit_code == 0, one.output + two.output
    for name in ("jsons/train.json", "ocrtune-synth.json", "images/train/receipt_00002.jpg"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert json.loads((tmp_path / "two" / "ocrtune-synth.json").read_text())["tight_segments"] is True
    plain = runner.invoke(root, ["data", "synth", str(tmp_path / "plain"), "--n", "2", "--size", "96",
                                 "--tight-segments"])
    assert plain.exit_code == 2 and plain.stdout == ""
    assert plain.stderr == ("--tight-segments: needs --style real (the plain receipts have no columns to set "
                            "apart)\n")
    assert not (tmp_path / "plain").exists()


def test_empty_placeholder_split_passes_check(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "ds")
    (ds / "images" / "test").mkdir()  # a folder waiting for test images, nothing annotated
    result = runner.invoke(root, ["data", "check", str(ds)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "OK (train: 4 images, 0 problems, val: 1 images, 0 problems, test: 0 images, 0 problems)" in result.stderr


def test_empty_split_is_a_problem_when_asked_for(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "ds")
    (ds / "images" / "test").mkdir()
    result = runner.invoke(root, ["data", "check", str(ds), "--split", "test"])
    assert result.exit_code == 1
    assert result.stdout == f"{ds / 'images' / 'test'}: empty-split: split folder holds no images\n"
    assert "FAILED (test: 0 images, 1 problems)" in result.stderr
    stats = json.loads(runner.invoke(root, ["data", "stats", str(ds), "--split", "test", "--json"]).stdout)
    assert stats["problems"]["by_kind"] == {"empty-split": 1}


def test_empty_split_is_a_problem_when_annotated(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "ds")
    for image in (ds / "images" / "val").iterdir():
        image.unlink()  # jsons/val.json still lists the image
    result = runner.invoke(root, ["data", "check", str(ds)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{ds / 'images' / 'val'}: empty-split: split folder holds no images"
    assert len(lines) == 2 and "missing-image" in lines[1]
    assert "val: 0 images, 2 problems" in result.stderr


def test_stats_says_it_does_not_decode_images(synth_dir: Path, tmp_path: Path) -> None:
    ds = _copy(synth_dir, tmp_path / "ds")
    victim = sorted((ds / "images" / "train").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:600])  # header intact, pixels cut off
    check = runner.invoke(root, ["data", "check", str(ds), "--split", "train"])
    assert check.exit_code == 1 and "unreadable" in check.stdout
    table = runner.invoke(root, ["data", "stats", str(ds)])
    assert table.exit_code == 0
    assert "problems (image headers only)" in table.stdout
    assert "ocrtune data check` also decodes every image" in table.stderr
    stats = json.loads(runner.invoke(root, ["data", "stats", str(ds), "--json"]).stdout)
    assert stats["images_decoded"] is False


def test_stats_table_is_not_wrapped_at_80_columns_when_piped(synth_dir: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    ds = _copy(synth_dir, tmp_path / ("a-rather-long-folder-name-" * 2) / "ds")
    path = ds / "jsons" / "train.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    name = next(iter(raw["images"]))
    raw["images"][name]["words"]["9999"] = {"points": [[1, 1], [5, 5]]}
    path.write_text(json.dumps(raw), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    code = "from ocrtune.cli.app import main; main()"
    out = subprocess.run(
        [sys.executable, "-c", code, "data", "stats", str(ds)],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    lines = out.splitlines()
    assert lines[0] == f"train: {ds / 'images' / 'train'}" and len(lines[0]) > 80
    problem = next(t for t in lines if "9999" in t)
    assert problem.startswith(f"  {path}:1:") and problem.endswith("at least 3 are needed")
    assert max(len(t) for t in lines) > 160  # a located problem line is never cut


def test_synth_errors_and_progress_print_nothing_extra_when_piped(synth_dir: Path, tmp_path: Path) -> None:
    """The bar opens on a terminal only, once the inputs are checked: piped stderr holds the
    one error line and nothing before it, and a successful run leaves stderr empty."""
    result = runner.invoke(root, ["data", "synth", str(synth_dir), "--n", "6"])
    assert result.exit_code == 2
    assert result.stderr == f"{synth_dir}: folder already holds a dataset (overwrite it with --force)\n"
    result = runner.invoke(root, ["data", "synth", str(tmp_path / "new"), "--n", "2", "--size", "96"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_an_empty_train_or_val_folder_fails_check_even_unannotated(tmp_path: Path) -> None:
    ds = tmp_path / "e1"
    for split in ("train", "val"):
        (ds / "images" / split).mkdir(parents=True)  # what training reads: nothing there
    result = runner.invoke(root, ["data", "check", str(ds)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{ds / 'images' / s}: empty-split: split folder holds no images"
                                          for s in ("train", "val")]
