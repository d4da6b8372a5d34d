"""Format readers/writers: golden round-trips, located errors, and sanitize reports."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ocrtune.data.formats import (
    Annotations,
    ImageAnnotation,
    KeyIndex,
    Word,
    dumps_icdar_txt,
    dumps_json,
    dumps_submission_csv,
    loads_json,
    locate_key,
    read_icdar_dir,
    read_icdar_txt,
    read_json,
    read_submission_csv,
    sanitize,
    write_icdar_dir,
    write_json,
    write_submission_csv,
)
from ocrtune.errors import InputError

GOLDEN = Path(__file__).parent / "golden" / "formats"
SROIE_VAL = Path("/work/shared/data/sroie/annotations/val.json")


# ----------------------------------------------------------------------------- competition JSON


def test_json_golden_round_trips_byte_for_byte(tmp_path: Path) -> None:
    src = GOLDEN / "competition.json"
    anns = read_json(src)
    out = write_json(anns, tmp_path / "out.json", indent=2)
    assert out.read_bytes() == src.read_bytes()


def test_json_golden_parsed_into_typed_records() -> None:
    anns = read_json(GOLDEN / "competition.json")
    assert list(anns) == ["receipt_a.jpg", "receipt_b.jpg", "receipt_c.jpg"]
    a = anns["receipt_a.jpg"]
    assert (a.width, a.height) == (640, 480)
    assert [w.id for w in a.words] == ["0001", "0002", "0003"]
    first, second, third = a.words
    assert first.text == "아메리카노" and not first.ignore
    assert first.points.dtype == np.float64 and first.points.shape == (4, 2)
    assert first.extra == {"orientation": "Horizontal", "language": ["ko"], "tags": []}
    assert second.points[0].tolist() == [200.5, 20.25]
    assert third.ignore and third.points.shape == (6, 2)
    assert anns["receipt_b.jpg"].words == [] and anns["receipt_c.jpg"].width is None
    assert anns.extra == {"info": {"version": "1.0", "source": "hand-written golden file"}}
    assert anns.n_words == 4


def test_json_keeps_ints_as_ints_and_floats_as_floats() -> None:
    text = json.dumps({"images": {"x.jpg": {"words": {
        "1": {"points": [[1, 2], [3, 2], [3, 4]]},
        "2": {"points": [[1.0, 2.0], [3.0, 2.0], [3.0, 4.0]]},
    }}}})
    assert dumps_json(loads_json(text)) == text


@pytest.mark.skipif(not SROIE_VAL.is_file(), reason="shared SROIE copy not present")
def test_json_round_trips_real_sroie_file() -> None:
    raw = SROIE_VAL.read_text(encoding="utf-8")
    anns = read_json(SROIE_VAL)
    assert len(anns) == 69 and anns.n_words == 3668
    assert dumps_json(anns) == raw


def test_json_writes_new_records_and_reads_them_back(tmp_path: Path) -> None:
    words = [
        Word("0001", [[0.123456, 1], [10, 1], [10, 5.5], [0, 5.5]], text="A,B"),
        Word("0002", [[0, 0], [4, 0], [4, 4]], ignore=True),
    ]
    anns = Annotations([ImageAnnotation("n.jpg", words, 20, 10)])
    path = write_json(anns, tmp_path / "new.json", decimals=2)
    raw = json.loads(path.read_text(encoding="utf-8"))
    word1 = raw["images"]["n.jpg"]["words"]["0001"]
    assert list(word1) == ["points", "text"] and word1["points"][0] == [0.12, 1.0]
    assert raw["images"]["n.jpg"]["words"]["0002"]["ignore"] is True
    assert (raw["images"]["n.jpg"]["img_w"], raw["images"]["n.jpg"]["img_h"]) == (20, 10)
    back = read_json(path)
    assert back["n.jpg"].words[1].ignore and back["n.jpg"].words[0].text == "A,B"
    assert np.allclose(back["n.jpg"].words[0].points, np.round(words[0].points, 2))


def test_json_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"images": {\n  "a.jpg": {"words": {}},\n  "b.jpg": {"words": {},}\n}}\n')
    with pytest.raises(InputError) as err:
        read_json(path)
    (problem,) = err.value.problems
    assert problem.file == str(path) and problem.line == 3 and problem.column is not None
    assert str(problem).startswith(f"{path}:3:") and "invalid JSON" in str(problem)


def test_json_structure_errors_give_key_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        '{"images": {\n'
        '  "a.jpg": {"words": {\n'
        '    "0001": {"points": [[0, 0], [1, 0], [1, 1]]},\n'
        '    "0003": {"points": [[0, 0], [1, "x"], [1, 1]]}\n'
        "  }},\n"
        '  "b.jpg": {"img_w": 10},\n'
        '  "c.jpg": {"words": {"0001": {"text": "no points"}}}\n'
        "}}\n"
    )
    with pytest.raises(InputError) as err:
        read_json(path)
    by_key = {p.key: p for p in err.value.problems}
    assert set(by_key) == {
        "images.a.jpg.words.0003.points", "images.b.jpg", "images.c.jpg.words.0001"}
    assert by_key["images.a.jpg.words.0003.points"].line == 4
    assert "point 1" in by_key["images.a.jpg.words.0003.points"].message
    assert by_key["images.b.jpg"].line == 6
    assert "missing key 'words'" in by_key["images.b.jpg"].message
    assert "missing key 'points'" in by_key["images.c.jpg.words.0001"].message
    assert all(p.file == str(path) for p in err.value.problems)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"pictures": {}}', "missing key 'images'"),
        ('{"images": []}', "'images' must be an object"),
        ("[1, 2]", "top level must be an object"),
        ('{"images": {"a.jpg": {"words": {"1": {"points": [[0,0],[1,0]], "text": 5}}}}}', "string"),
        ('{"images": {"a.jpg": {"words": {}, "img_w": -3}}}', "positive integer"),
    ],
)
def test_json_bad_structure_is_input_error(text: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        loads_json(text, "x.json")


def test_locate_key_finds_keys_not_values() -> None:
    text = '{"images": {\n "a.jpg": {"text": "words",\n  "words" : {\n   "1": {}}}}}'
    assert locate_key(text, ["images", "a.jpg", "words"]) == (3, 3)
    assert locate_key(text, ["images", "a.jpg", "words", "1"]) == (4, 4)
    assert locate_key(text, ["images", "a.jpg", "words", "1", "points"]) == (4, 4)  # deepest found
    assert locate_key(text, ["nothing"]) == (None, None)


def _key_paths(obj: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            paths.append((*prefix, key))
            paths.extend(_key_paths(value, (*prefix, key)))
    return paths


@pytest.mark.parametrize("indent", [None, 1, 2, "\t"])
@pytest.mark.parametrize("ascii_only", [False, True])
def test_key_index_locates_like_locate_key(indent: int | str | None, ascii_only: bool) -> None:
    # names that repeat at other depths, non-ASCII, quotes and a value equal to a key
    data = {"images": {
        "a.jpg": {"words": {"1": {"points": [[0, 0]], "text": "words"}, "2": {"points": []}},
                  "img_w": 3},
        "영수증 \"b\".jpg": {"words": {"2": {"text": "1", "points": [[1, 2]]}, "words": {}}},
        "1": {"words": {}},
    }, "info": {"images": 1}}
    text = json.dumps(data, indent=indent, ensure_ascii=ascii_only)
    index = KeyIndex(text)
    paths = _key_paths(data) + [("images", "a.jpg", "words", "9"), ("nothing",), ("images", "zz")]
    for keys in paths:
        assert index.locate(keys) == locate_key(text, keys), keys
    assert index.locate(["images", "a.jpg", "words", "1"])[0] is not None


def test_located_reads_the_text_once_for_many_problems(tmp_path: Path) -> None:
    """Locating every problem of a file costs one index of it, not one search per problem."""
    from ocrtune.data.stats import scan_split

    from PIL import Image

    ds = tmp_path / "ds"
    (ds / "images" / "train").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (40, 30)).save(ds / "images" / "train" / name)
    words = {f"{i:04d}": {"points": [[1, 1], [1, 1], [1, 1], [1, 1]]} for i in range(300)}
    text = json.dumps({"images": {"a.jpg": {"words": words}, "b.jpg": {"words": words}}}, indent=1)
    (ds / "jsons").mkdir()
    (ds / "jsons" / "train.json").write_text(text, encoding="utf-8")
    built: list[int] = []
    real_init = KeyIndex.__init__

    def counting_init(self: KeyIndex, text: str) -> None:
        built.append(len(text))
        real_init(self, text)

    def no_search(text: str, keys: object) -> None:
        raise AssertionError(f"searched the whole text for {keys}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(KeyIndex, "__init__", counting_init)
        mp.setattr("ocrtune.data.formats.validate.locate_key", no_search)
        stats = scan_split(ds, "train")
    degenerate = [p for p in stats.problems if p.kind == "degenerate"]
    assert len(degenerate) == 600 and built == [len(text)]
    lines = text.splitlines()
    for p in degenerate:
        assert lines[p.line - 1][p.column - 1:].startswith(f'"{p.word}":'), p
    assert degenerate[300].image == "b.jpg" and degenerate[300].line > degenerate[299].line


def test_json_duplicate_ids_and_names_are_located_errors(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text(
        '{"images": {\n'
        '  "a.jpg": {"words": {\n'
        '    "0001": {"points": [[0, 0], [1, 0], [1, 1]]},\n'
        '    "0001": {"points": [[5, 5], [6, 5], [6, 6]]}\n'
        "  }},\n"
        '  "b.jpg": {"words": {}},\n'
        '  "b.jpg": {"words": {}}\n'
        "}}\n"
    )
    with pytest.raises(InputError) as err:
        read_json(path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:6:3 images.b.jpg: duplicate image name (a JSON reader keeps only the last)",
        f"{path}:3:5 images.a.jpg.words.0001: duplicate word id (a JSON reader keeps only the last)",
    ]


@pytest.mark.parametrize(("words", "message"), [
    ("null", "'words' must be an object, got null"),
    ("[]", "'words' must be an object, got array"),
])
def test_json_words_of_the_wrong_type(words: str, message: str) -> None:
    text = '{"images": {\n "a.jpg": {"words": ' + words + "}}}"
    with pytest.raises(InputError) as err:
        loads_json(text, "x.json")
    assert [str(p) for p in err.value.problems] == [f"x.json:2:12 images.a.jpg.words: {message}"]


def test_json_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_json(tmp_path / "nope.json")


# ----------------------------------------------------------------------------- ICDAR2015 txt


def test_icdar_golden_round_trips_byte_for_byte(tmp_path: Path) -> None:
    src = GOLDEN / "gt_img_7.txt"
    ann = read_icdar_txt(src)
    assert ann.name == "img_7.jpg"
    texts = ["Genaxis Theatre", "[06]", "###", "Hello, world, again", ""]
    assert [w.text for w in ann.words] == texts
    assert [w.ignore for w in ann.words] == [False, False, True, False, False]
    assert ann.words[3].points.tolist() == [[10.5, 10], [50, 10], [50, 30.25], [10.5, 30]]
    assert dumps_icdar_txt(ann) == src.read_text(encoding="utf-8")


def test_icdar_reads_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "gt_img_1.txt"
    path.write_bytes("\ufeff1,2,3,2,3,4,1,4,첫 단어\r\n5,6,7,6,7,8,5,8,###\r\n".encode())
    ann = read_icdar_txt(path)
    assert [w.text for w in ann.words] == ["첫 단어", "###"]
    assert ann.words[0].points[0].tolist() == [1.0, 2.0]
    assert dumps_icdar_txt(ann) == "1,2,3,2,3,4,1,4,첫 단어\n5,6,7,6,7,8,5,8,###\n"


def test_icdar_lines_with_and_without_transcript_round_trip(tmp_path: Path) -> None:
    text = "1,2,3,2,3,4,1,4\n1,2,3,2,3,4,1,4,\n1,2,3,2,3,4,1,4,word\n1,2,3,2,3,4,1,4,###\n"
    path = tmp_path / "gt_img_2.txt"
    path.write_text(text)
    ann = read_icdar_txt(path)
    assert [w.text for w in ann.words] == [None, "", "word", "###"]
    assert dumps_icdar_txt(ann) == text
    made = ImageAnnotation("x.jpg", [
        Word("1", [[0, 0], [4, 0], [4, 2], [0, 2]]),  # no transcript: no trailing comma
        Word("2", [[0, 0], [4, 0], [4, 2], [0, 2]], ignore=True),
    ])
    assert dumps_icdar_txt(made) == "0,0,4,0,4,2,0,2\n0,0,4,0,4,2,0,2,###\n"


def test_icdar_directory_round_trip(tmp_path: Path) -> None:
    anns = Annotations([
        ImageAnnotation("img_1.jpg", [Word("0001", [[0, 0], [4, 0], [4, 2], [0, 2]], "a,b")]),
        ImageAnnotation("img_2.jpg", []),
    ])
    files = write_icdar_dir(anns, tmp_path / "gt")
    assert [f.name for f in files] == ["gt_img_1.txt", "gt_img_2.txt"]
    back = read_icdar_dir(tmp_path / "gt")
    assert list(back) == ["img_1.jpg", "img_2.jpg"]
    assert back["img_1.jpg"].words[0].text == "a,b" and back["img_2.jpg"].words == []


def test_icdar_bad_lines_are_located(tmp_path: Path) -> None:
    path = tmp_path / "gt_x.txt"
    path.write_text("1,2,3,2,3,4,1,4,ok\n1,2,3,oops,3,4,1,4,bad\n\n1,2,3,4\n")
    with pytest.raises(InputError) as err:
        read_icdar_txt(path)
    assert [p.line for p in err.value.problems] == [2, 4]
    assert "numbers" in err.value.problems[0].message


def test_icdar_writer_rejects_non_quadrilateral() -> None:
    ann = ImageAnnotation("a.jpg", [Word("7", [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0.5]])])
    with pytest.raises(InputError, match="4 points"):
        dumps_icdar_txt(ann)


# ----------------------------------------------------------------------------- submission CSV


def test_csv_golden_round_trips_byte_for_byte(tmp_path: Path) -> None:
    src = GOLDEN / "submission.csv"
    anns = read_submission_csv(src)
    assert list(anns) == ["receipt_a.jpg", "receipt_b.jpg", "receipt_c.jpg", "odd, name.jpg"]
    assert [len(w.points) for w in anns["receipt_a.jpg"].words] == [4, 4]
    assert anns["receipt_b.jpg"].words == []
    assert anns["receipt_c.jpg"].words[0].points.shape == (6, 2)
    out = write_submission_csv(anns, tmp_path / "out.csv")
    assert out.read_bytes() == src.read_bytes()


def test_csv_writes_mapping_with_empty_detections(tmp_path: Path) -> None:
    preds = {
        "a.jpg": [np.array([[0, 0], [10.25, 0], [10.25, 5], [0, 5]])],
        "b.jpg": [],
        "c.jpg": [np.arange(16, dtype=float).reshape(8, 2), np.array([[1, 1], [2, 1], [2, 2]])],
    }
    text = dumps_submission_csv(preds)
    assert text.splitlines() == [
        "filename,polygons",
        "a.jpg,0 0 10.25 0 10.25 5 0 5",
        "b.jpg,",
        "c.jpg,0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15|1 1 2 1 2 2",
    ]
    path = write_submission_csv(preds, tmp_path / "s.csv")
    back = read_submission_csv(path)
    assert back["b.jpg"].words == []
    assert np.array_equal(back["c.jpg"].words[0].points, preds["c.jpg"][0])


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("file,polys\na.jpg,\n", 1, "header"),
        ("", 1, "header"),
        ("filename,polygons\na.jpg,0 0 1 0 1 1\nb.jpg,0 0 1 0 1\n", 3, "odd number"),
        ("filename,polygons\na.jpg,0 0 1 x 1 1\n", 2, "numbers"),
        ("filename,polygons\na.jpg,\na.jpg,\n", 3, "duplicate"),
        ("filename,polygons\na.jpg,1 2,3\n", 2, "expected 2 fields"),
        ('filename,polygons\nb.jpg,\na.jpg,"1 2 3 4\n', 3, "unterminated quoted field"),
        ('filename,polygons\na.jpg,"1 2 3 4\nb.jpg,5 6 7 8\n', 2, "unterminated quoted field"),
        ('filename,polygons\na.jpg,"1 2 3 4"x\n', 2, "malformed CSV"),
        ('filename,polygons\n"a\nb.jpg",\nc.jpg,1 2 3\n', 4, "odd number"),  # start line
    ],
)
def test_csv_bad_input_is_located(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_submission_csv(path)
    problem = err.value.problems[0]
    assert problem.file == str(path) and problem.line == line and fragment in problem.message


def test_submission_csv_with_huge_rows_reads_back(tmp_path):
    rng = np.random.default_rng(0)
    preds = {"a.jpg": [rng.uniform(0, 1000, (24, 2)) for _ in range(600)]}
    path = tmp_path / "big.csv"
    write_submission_csv(preds, path)
    assert path.stat().st_size > 131072
    back = read_submission_csv(path)
    assert len(back["a.jpg"].words) == 600


@pytest.mark.parametrize(
    "body, message",
    [
        ("filename,polygons\na.jpg,0 0 nan 0 1 1 0 1\n", "finite"),
        ("filename,polygons\na.jpg,0 0 1e400 0 1 1 0 1\n", "finite"),
    ],
)
def test_submission_csv_bad_numbers_are_located(tmp_path, body, message):
    path = tmp_path / "p.csv"
    path.write_text(body)
    with pytest.raises(InputError) as e:
        read_submission_csv(path)
    assert "p.csv:2" in e.value.lines[0] and message in e.value.lines[0]


def test_utf16_csv_is_an_input_error(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("filename,polygons\na.jpg,\n", encoding="utf-16")
    with pytest.raises(InputError, match="not UTF-8"):
        read_submission_csv(path)


# ----------------------------------------------------------------------------- sanitize


def _image_with_every_problem() -> ImageAnnotation:
    return ImageAnnotation("r.jpg", [
        Word("good", [[1, 1], [9, 1], [9, 4], [1, 4]]),
        Word("two-points", [[1, 1], [5, 5]]),
        Word("flat", [[0, 0], [5, 0], [10, 0], [5, 0]]),
        Word("bowtie", [[10, 10], [20, 20], [20, 10], [10, 20]]),
        Word("edge", [[-5, 30], [30, 30], [30, 40], [-5, 40]]),
        Word("gone", [[200, 200], [210, 200], [210, 210]]),
    ], width=100, height=50)


def test_sanitize_reports_each_kind_with_image_and_word() -> None:
    clean, problems = sanitize(_image_with_every_problem(), file="train.json")
    assert Counter(p.kind for p in problems) == {"degenerate": 3, "repaired": 1, "clipped": 1}
    by_word = {p.word: p for p in problems}
    assert set(by_word) == {"two-points", "flat", "bowtie", "edge", "gone"}
    assert all(p.image == "r.jpg" and p.file == "train.json" for p in problems)
    assert by_word["two-points"].dropped and "2 point" in by_word["two-points"].message
    assert by_word["flat"].dropped and "zero area" in by_word["flat"].message
    assert by_word["gone"].dropped and "outside" in by_word["gone"].message
    assert not by_word["bowtie"].dropped and not by_word["edge"].dropped
    edge = by_word["edge"]
    assert str(edge) == "train.json images.r.jpg.words.edge: clipped: " + edge.message
    assert [w.id for w in clean.words] == ["good", "bowtie", "edge"]


def test_sanitize_fixes_geometry() -> None:
    original = _image_with_every_problem()
    clean, _ = sanitize(original)
    good, bowtie, edge = clean.words
    assert good is original.words[0]  # untouched words are passed through as is
    assert edge.points.tolist() == [[0, 30], [30, 30], [30, 40], [0, 40]]
    # largest part of the bow-tie is one triangle of area 25, clockwise on screen
    x, y = bowtie.points[:, 0], bowtie.points[:, 1]
    signed = 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
    assert signed == pytest.approx(25.0)
    assert original.words[4].points[0].tolist() == [-5, 30]  # input not mutated


def test_sanitize_without_size_does_not_clip() -> None:
    ann = ImageAnnotation("r.jpg", [Word("1", [[-5, -5], [5, -5], [5, 5], [-5, 5]])])
    clean, problems = sanitize(ann)
    assert problems == [] and clean.words[0].points.min() == -5
    clean, problems = sanitize(ann, 10, 10)
    assert [p.kind for p in problems] == ["clipped"] and clean.words[0].points.min() == 0


def test_data_core_modules_load_no_torch_typer_or_rich() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import ocrtune.data.formats, ocrtune.data.images, ocrtune.data.layout\n"
        "import ocrtune.data.synthetic, ocrtune.data.stats\n"
        "print(sorted(m for m in ('torch', 'lightning', 'typer', 'rich') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
