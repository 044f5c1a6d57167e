"""Reading the convert stage's own files back (data/<split>_imgs.tsv, _texts.jsonl,
_images.jsonl), each line checked: a line edited by hand or damaged (not UTF-8, not JSON,
JSON but no record) is one line naming the file and the line, not a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DamagedOutput, UserError


def damaged(path: Path, line: int, why: str, rebuild: bool = False) -> UserError:
    """The error for a converted file's bad line. `rebuild`: the caller is the lmdb stage,
    and the runner marks the conversion to run again; elsewhere the user reruns it."""
    message = f"{path} line {line} is not as the convert stage wrote it ({why}): "
    if rebuild:
        return DamagedOutput(message + "the convert stage will run again: rerun", "convert")
    return UserError(message + "run the convert stage again (--restart --stages convert)")


def lines(path: Path, rebuild: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, line) of a converted text file."""
    with open(path, "rb") as handle:  # decoded line by line: the error names its line
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise damaged(path, number, "not UTF-8 text", rebuild) from None
            yield number, line


def records(path: Path, needs: tuple[str, ...] = (), rebuild: bool = False) -> Iterator[tuple]:
    """(line number, record, the line's length) of a converted JSONL file; each record an
    object with `needs`."""
    for number, line in lines(path, rebuild):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise damaged(path, number, f"not JSON: {getattr(exc, 'msg', exc)}", rebuild) from None
        missing = [key for key in needs if key not in record] if isinstance(record, dict) else 0
        if missing != []:
            what = f"no {', '.join(missing)}" if missing else f"{type(record).__name__}"
            raise damaged(path, number, f"{what} where a record is due", rebuild)
        yield number, record, len(line)


def read_records(path: Path, needs: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [record for _, record, _ in records(path, needs)]
