"""`push --run DIR --repo USER/NAME`: a finished run's export, figures and model card to a
Hugging Face model repo, as one commit.

    python -m retclip_pipeline push --run runs/full --repo USER/NAME [--private] [--dry-run]

The card is also written into the run folder (model_card.md) to be read before or after.
`--dry-run` lists what would go up and writes the card, and contacts no hub.
"""

from __future__ import annotations

from pathlib import Path

from . import PROG


def add(commands) -> None:
    parser = commands.add_parser(
        "push",
        prog=f"{PROG} push",
        help="upload a finished run's model with its card to the Hugging Face Hub",
        description="Upload a finished run's export (transformers folders and the RET-CLIP "
        "state dict), its evaluation figures and a generated model card to a Hugging Face "
        "model repo, as one commit. The token comes from the profile's hub.token_env or the "
        "stored login and needs write access.",
    )
    parser.add_argument("--run", required=True, type=Path, help="the finished run's folder")
    parser.add_argument("--repo", required=True, help="the model repo: USER/NAME or ORG/NAME")
    parser.add_argument(
        "--private", action="store_true", help="create the repo private (if it is new)"
    )
    parser.add_argument(
        "--license",
        default="other",
        help="the card's license: a hub license id such as apache-2.0 or cc-by-nc-4.0 "
        "(https://huggingface.co/docs/hub/repositories-licenses); default: other, since the "
        "weights follow the data set's terms",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would go up and write the card only"
    )
    parser.set_defaults(handler=_push)


def _push(args) -> int:
    from .. import ownership
    from ..atomic import write_text
    from ..console import make_renderer
    from ..events import Emitter, Event
    from ..hub.push import CARD, prepare, push
    from ..layout import RunLayout
    from ..units import amount

    folder = args.run.expanduser().resolve()
    upload = prepare(folder, args.repo, args.license)
    renderer = make_renderer()
    emit = Emitter(renderer, "push")
    try:
        card_path = RunLayout.of_folder(folder).model_card
        with ownership.recording(folder):  # ours: a --restart or cleanup may remove it
            ownership.claim(card_path)
            write_text(card_path, upload.files[CARD].decode("utf-8"))
        emit.log(
            f"{len(upload.files)} files, {amount(upload.size(), 'bytes')}, for {upload.repo_id}; "
            f"the card: {card_path}"
        )
        if args.dry_run:
            for name, source in sorted(upload.files.items()):
                size = len(source) if isinstance(source, bytes) else source.stat().st_size
                print(f"{name}\t{amount(size, 'bytes')}")
            emit.log("dry run: nothing sent")
            return 0
        url = push(upload, emit, private=args.private)
        renderer(Event("push", "run_finished", f"pushed as one commit: {url}"))
    finally:
        if hasattr(renderer, "close"):
            renderer.close()
    print(url)
    return 0
