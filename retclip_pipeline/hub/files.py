"""A local folder of image files that the prompt CSV names one by one (data.join = "file"),
ODIR's layout: `0_left.jpg`, `0_right.jpg`, ... in one folder (or its subfolders), and a
sheet whose Left-Fundus and Right-Fundus columns give each patient's two file names."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from ..errors import UserError


class FileFolder:
    """The files under a folder, found by the name (or the path relative to the folder)
    a CSV gives; listed once. `len()` is the number of files."""

    label_column = None
    label_names = None

    def __init__(self, name: str, folder: Path):
        self.name, self.folder = name, folder
        if not folder.is_dir():
            raise UserError(
                f"data set folder not found: {folder}: hub.dataset names the folder of "
                f'image files when data.join = "file"'
            )
        self.by_name: dict[str, list[Path]] = defaultdict(list)
        self.by_stem: dict[str, list[Path]] = defaultdict(list)
        for parent, folders, files in os.walk(folder):
            folders[:] = sorted(f for f in folders if not f.startswith("."))
            for file in sorted(files):
                if not file.startswith("."):
                    path = Path(parent) / file
                    self.by_name[file].append(path)
                    self.by_stem[path.stem].append(path)
        self.count = sum(len(paths) for paths in self.by_name.values())

    def __len__(self) -> int:
        return self.count

    def find(self, value: str) -> Path | str:
        """The file a CSV cell names, or why there is none: a path relative to the folder
        (with a folder in it), else a file name anywhere under it, else a name without its
        extension. A name that more than one file under the folder has (the top folder
        included) is found nowhere: the reason names where they are."""
        name = Path(value).name
        direct = self.folder / value
        if name != value and ".." not in Path(value).parts and direct.is_file():
            return direct
        found = self.by_name.get(name) or self.by_stem.get(name) or []
        if len(found) == 1:
            return found[0]
        if not found:
            return f"no file {value!r} under {self.folder}"
        places = " and ".join(str(p.relative_to(self.folder)) for p in found[:3])
        return (
            f"{len(found)} files are named {name!r} ({places}): write the path relative to "
            f"{self.folder} in the CSV, or point hub.dataset at the one folder"
        )


def open_file_splits(where: str, wanted: list[str]) -> dict[str, FileFolder]:
    folder = FileFolder("files", Path(where))
    return {split: folder for split in wanted}
