"""A data set split read through `datasets` (a local folder, or a hub id the library loads),
images left undecoded; and the column rules every split obeys, hub parquet ones included."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..profile import Profile


@dataclass
class SplitSource:
    """One split of the data set, images left undecoded: rows give raw bytes or file paths."""

    name: str
    dataset: object  # datasets.Dataset with image columns cast to Image(decode=False)
    image_columns: tuple[str, ...]
    label_column: str | None
    label_names: list[str] | None

    def __len__(self) -> int:
        return len(self.dataset)

    def rows(self, indices: list[int]) -> list[tuple[tuple[bytes | str, ...], str | None]]:
        """For each index: (one image reference per eye, the data set's label name)."""
        batch = self.dataset.select(indices)
        columns = {c: batch[c] for c in self.image_columns}
        labels = batch[self.label_column] if self.label_column else [None] * len(indices)
        out = []
        for i in range(len(indices)):
            refs = tuple(_image_ref(columns[c][i]) for c in self.image_columns)
            label = labels[i]
            if label is not None and self.label_names is not None and isinstance(label, int):
                label = self.label_names[label]
            out.append((refs, None if label is None else str(label)))
        return out

    def keys(self, column: str) -> list:
        """Every row's value in `column` (data.join = "key")."""
        return list(self.dataset[column]) if column in self.dataset.column_names else []


def _image_ref(value: dict | None) -> bytes | str:
    if not value:
        return b""
    return value.get("bytes") or value.get("path") or b""


def read_image_ref(ref: bytes | str) -> bytes:
    if isinstance(ref, bytes):
        return ref
    return Path(ref).read_bytes()


def quiet_datasets() -> None:
    """Our own progress events replace the library's bars."""
    import logging

    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    # Its own stderr handler, bound to the stderr of the moment it was imported, would print
    # each error a second time (or fail on a closed stream): the records reach the root
    # logger, where the run shows them as warnings.
    library = logging.getLogger("datasets")
    for handler in list(library.handlers):
        if type(handler) is logging.StreamHandler:
            library.removeHandler(handler)


def _source(profile: Profile, where: str, split: str, dataset) -> SplitSource:
    import datasets

    columns, label_column = split_columns(profile, where, split, dataset.column_names)
    for column in columns:
        dataset = dataset.cast_column(column, datasets.Image(decode=False))
    label_names = None
    if label_column:
        feature = dataset.features[label_column]
        label_names = list(getattr(feature, "names", None) or []) or None
    return SplitSource(split, dataset, columns, label_column, label_names)


def split_columns(
    profile: Profile, where: str, split: str, names: list[str]
) -> tuple[tuple[str, ...], str | None]:
    """(the image column of each eye, the label column if the split has it), checked
    against the split's columns."""
    data = profile.data
    if data.eyes == "single":
        columns = {"image_column": data.image_column}
    else:
        columns = {
            "left_image_column": data.left_image_column,
            "right_image_column": data.right_image_column,
        }
    for key, column in columns.items():
        if column not in names:
            raise UserError(
                f"data set {where} split {split!r} has no column {column!r} "
                f"(columns: {', '.join(names)}): set data.{key}"
            )
    label_column = data.dataset_label_column or None
    if label_column and label_column not in names:
        label_column = None
    return tuple(columns.values()), label_column


def open_local_splits(
    profile: Profile, kind: str, where: str, wanted: list[str]
) -> dict[str, SplitSource]:
    """The splits in one `datasets` call (a local image folder's files are listed once, not
    once per split)."""
    import datasets

    quiet_datasets()
    token = None
    options = {}
    if kind == "local" and Path(where).is_dir():
        check_image_folder(Path(where), wanted)
    if kind == "local" and all((Path(where) / split).is_dir() for split in wanted):
        # An image folder with one subfolder per split: naming them spares datasets its
        # search of ~45 layout patterns over every file (8.7 s -> 3.2 s for 16k images).
        options["data_files"] = {split: f"{split}/**" for split in wanted}
    try:
        loaded = datasets.load_dataset(where, split=wanted, token=token, **options)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise UserError(
                f"data set {where} has no split {', '.join(map(repr, wanted))} among its "
                f"splits: set data.train_split / data.test_split ({exc})"
            ) from None
        raise UserError(f"cannot read data set {where}: {exc}") from None
    except FileNotFoundError as exc:
        raise UserError(f"data set not found: {where} ({exc}); check hub.dataset") from None
    except datasets.exceptions.DatasetGenerationError as exc:  # a file it could not read
        cause = exc.__cause__ or exc
        raise UserError(
            f"cannot read data set {where}: {type(cause).__name__}: {cause}: check its files "
            f"(an empty or damaged parquet, CSV or JSON file?)"
        ) from None
    except Exception as exc:  # the hub client raises many types; name the set and the cause
        name = type(exc).__name__
        if "NotFound" in name or "Gated" in name or "Repository" in name or "HTTP" in name:
            raise UserError(
                f"cannot open data set {where}: {name}: {exc}; check hub.dataset and your token"
            ) from None
        raise
    return {
        split: _source(profile, where, split, dataset)
        for split, dataset in zip(wanted, loaded, strict=True)
    }


def check_image_folder(root: Path, wanted: list[str]) -> None:
    """An image folder's rows are its image files in path order, and a CSV's index counts
    them: an image that lies where the split's others do not (in a folder named like an
    image, `train/00000.jpg/`, or a level deeper than the rest) would be read as one more
    row and move every later index onto the wrong image. Such a layout is one line naming
    the path, before anything is read."""
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    suffixes = {suffix.lower() for suffix in ImageFolder.EXTENSIONS}
    splits = [split for split in wanted if (root / split).is_dir()]
    for folder in [root / split for split in splits] or [root]:
        depths: dict[int, list[Path]] = {}
        for parent, folders, files in os.walk(folder):
            here = Path(parent)
            folders[:] = sorted(f for f in folders if not f.startswith((".", "__")))
            for name in folders:
                if Path(name).suffix.lower() in suffixes:
                    raise UserError(
                        f"{here / name} is a folder named like an image in data set {root}: "
                        f"its images would be read as rows of their own and every later "
                        f"index would point at the wrong image; rename it or move it out "
                        f"of {folder}"
                    )
            for name in sorted(files):
                if Path(name).suffix.lower() in suffixes and not name.startswith("."):
                    depths.setdefault(len(here.relative_to(folder).parts), []).append(here / name)
        if splits and len(depths) > 1:
            usual = max(depths, key=lambda depth: len(depths[depth]))
            odd = min(depths, key=lambda depth: (len(depths[depth]), -depth))
            levels = "deeper" if odd > usual else "less deep"
            raise UserError(
                f"{depths[odd][0]} lies {abs(odd - usual)} folder level(s) {levels} than the "
                f"other images of the {folder.name} split (such as {depths[usual][0]}): it "
                f"would be read as a row and move every later index onto the wrong image; "
                f"put every image of the split at the same depth under {folder}"
            )
