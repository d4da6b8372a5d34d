"""The quality anchor's detections as competition JSON: PP-OCRv4 mobile DBNet, untuned.

docs/quality.md compares every recipe with an off-the-shelf detector that needs no training:
PP-OCRv4 mobile via the rapidocr-onnxruntime package (the model ships inside the wheel). This
writes its boxes for a split's images, so `ocrtune evaluate-json` scores them exactly as it
scores ours (and `--metric iou` says why it misses what it misses). rapidocr is not an ocrtune
dependency: install it in a separate environment (it pins its own numpy and OpenCV):

    python -m venv /tmp/anchor && /tmp/anchor/bin/pip install rapidocr-onnxruntime
    /tmp/anchor/bin/python bench/anchor_predict.py ../shared/data/sroie/images/val anchor-val.json
    ocrtune evaluate-json ../shared/data/sroie/annotations/val.json anchor-val.json --metric iou

Detection only (no angle classifier, no recognition), the package's default settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", type=Path, help="folder of images")
    ap.add_argument("out", type=Path, help="competition JSON to write")
    args = ap.parse_args()
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        sys.exit("rapidocr-onnxruntime is not installed here; see this script's docstring")
    if not args.images.is_dir():
        sys.exit(f"{args.images}: not a folder")
    engine = RapidOCR()
    images = {}
    start = time.perf_counter()
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for p in paths:
        boxes, _ = engine(str(p), use_det=True, use_cls=False, use_rec=False)
        words = {f"{k + 1:04d}": {"points": [[float(x), float(y)] for x, y in box]} for k, box in enumerate(boxes or [])}
        images[p.name] = {"words": words}
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"images": images}))
    tmp.replace(args.out)
    n = sum(len(v["words"]) for v in images.values())
    print(f"wrote {args.out}: {len(images)} images, {n} boxes in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
