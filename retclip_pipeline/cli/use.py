"""`embed` and `query`: the trained model from the command line.

python -m retclip_pipeline embed --run RUN_DIR (--images DIR | --texts FILE) [--out F]
python -m retclip_pipeline query --run RUN_DIR "text"          top images of the test split
python -m retclip_pipeline query --run RUN_DIR --image PATH    top texts and classes
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from . import PROG

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
CHECKPOINT_HELP = (
    "checkpoint to use, a .pt file (default: the one evaluation reads: the run's "
    'eval.checkpoint if set, else the training\'s best.pt, else its latest; "init": the '
    "untrained starting weights)"
)


def add(commands) -> None:
    parser = commands.add_parser(
        "embed", prog=f"{PROG} embed", help="embeddings of images or texts from a trained run"
    )
    parser.add_argument("--run", required=True, type=Path, help="run directory")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="a folder of images (searched recursively)")
    source.add_argument("--texts", type=Path, help="a text file, one text a line")
    parser.add_argument("--out", type=Path, help="output .pt (default: embeddings_*.pt here)")
    parser.add_argument("--checkpoint", type=_checkpoint, help=CHECKPOINT_HELP)
    parser.set_defaults(handler=embed)
    parser = commands.add_parser(
        "query", prog=f"{PROG} query", help="top images for a text, or texts for an image"
    )
    parser.add_argument("--run", required=True, type=Path, help="run directory")
    parser.add_argument("text", nargs="?", help="a text: its top images of the test split")
    parser.add_argument("--image", type=Path, help="an image: its top texts and classes")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--checkpoint", type=_checkpoint, help=CHECKPOINT_HELP)
    parser.set_defaults(handler=query)


def _checkpoint(value: str) -> str:
    """A --checkpoint path is the user's, read from where the command runs (as `run`'s is),
    not from the run folder the run's own profile lives in."""
    return value if value == "init" else str(Path(value).expanduser().resolve())


def embed(args) -> int:
    import torch

    from .. import api
    from ..atomic import atomic_open

    run = api.load(args.run, args.checkpoint)
    if args.images:
        paths = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {args.images}")
        data = {
            "paths": [str(p) for p in paths],
            "patient": run.encode_images(paths),
            "eye": run.encode_images(paths, eye=True),
        }
        out = args.out or Path("embeddings_images.pt")
    else:
        if not args.texts.is_file():
            raise UserError(f"text file not found: {args.texts}")
        try:
            lines = args.texts.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise UserError(f"{args.texts} is not UTF-8 text: save it as UTF-8") from None
        texts = [line.strip() for line in lines if line.strip()]
        if not texts:
            raise UserError(f"{args.texts} holds no text: write one text a line")
        data = {"texts": texts, "patient": run.encode_texts(texts)}
        out = args.out or Path("embeddings_texts.pt")
    try:
        with atomic_open(out, "wb") as handle:
            torch.save(data, handle)
    except OSError as exc:  # a folder, no such folder, read-only, full
        raise UserError(f"cannot write {out} ({exc.strerror}): choose another --out") from None
    print(f"{len(data['patient'])} embeddings ({run.description}) written to {out}")
    return 0


def query(args) -> int:
    import torch

    from .. import api
    from ..evaluation.features import split_images, split_texts
    from ..layout import RunLayout

    if bool(args.text) == bool(args.image):
        raise UserError("give either a text or --image PATH")
    if args.k < 1:
        raise UserError(f"--k {args.k}: give how many to show, at least 1")
    run = api.load(args.run, args.checkpoint)
    features = RunLayout.of(run.profile, run.folder).features("test_imgs")
    paired = run.profile.data.eyes == "paired"
    if args.text:
        if not features.exists():
            raise UserError(f"{features} is missing: run the evaluate stage first")
        images = torch.load(features, weights_only=True)
        records = {r["image_id"]: r for r in split_images(run.folder, "test")}
        scores = (
            torch.nn.functional.normalize(images["patient"], dim=-1)
            @ run.encode_texts([args.text])[0]
        )
        best = scores.topk(min(args.k, len(scores)))
        print(f"top {'patients' if paired else 'images'} of the test split for: {args.text}")
        for rank, (score, index) in enumerate(zip(best.values, best.indices, strict=True), 1):
            image_id = images["ids"][index]
            record = records.get(image_id, {})
            name = f"{'patient' if paired else 'image'} {record.get('key', image_id)}"
            labels = _labels(record)
            print(
                f"{rank}. {name}{f' ({labels})' if labels else ''}, similarity {float(score):.3f}"
            )
        return 0
    texts = split_texts(run.folder, "test")
    vectors = run.encode_texts([t["text"] for t in texts])
    image = run.encode_images([args.image])[0]
    best = (vectors @ image).topk(min(args.k, len(texts)))
    print(f"top texts of the test split for {args.image}:")
    for rank, (score, index) in enumerate(zip(best.values, best.indices, strict=True), 1):
        record = texts[int(index)]
        labels = _labels(record)
        print(
            f"{rank}. {f'[{labels}] ' if labels else ''}{record['text'][:150]} ({float(score):.3f})"
        )
    if not run.labels():
        print(
            "classes: none to choose from: the run has no class labels (its profile's "
            "data.label_column is empty)"
        )
        return 0
    print(
        "classes: "
        + ", ".join(f"{label} {p:.2f}" for label, p in run.classify([args.image], top=args.k)[0])
    )
    return 0


def _labels(record: dict) -> str:
    """A record's class: its patient-level label, else each eye's, else nothing."""
    if record.get("label"):
        return str(record["label"])
    eyes = [
        f"{side}: {record[f'label_{side}']}"
        for side in ("left", "right")
        if record.get(f"label_{side}")
    ]
    return "; ".join(eyes)
