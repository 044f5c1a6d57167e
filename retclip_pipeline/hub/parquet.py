"""A hub data set split as conversion sees it (a length, label names, and rows by index),
read from parquet shards that `fetch` downloads or streams."""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict

from ..events import Emitter
from ..profile import Profile
from .env import offline
from .retry import Retrier, library_waits_shown
from .shards import (
    Listing,
    RangeFile,
    cached_file,
    download,
    list_shards,
    missing_offline,
    remote_url,
    save_listing,
)


class ParquetSplit:
    """Rows by index over a split's shards; a row group is read once for all its wanted
    rows (the last few are kept, since conversion asks in index order)."""

    def __init__(self, name, shards, files, image_columns, label_column, label_names):
        self.name = name
        self.files = files  # one pyarrow ParquetFile per shard
        self.image_columns = image_columns
        self.label_column = label_column
        self.label_names = label_names
        self.starts = [0]  # first global row of each shard
        self.group_starts = []  # first local row of each row group, per shard
        for shard, parquet in zip(shards, files, strict=True):
            meta = parquet.metadata
            shard.rows = meta.num_rows
            self.starts.append(self.starts[-1] + meta.num_rows)
            starts, row = [], 0
            for g in range(meta.num_row_groups):
                starts.append(row)
                row += meta.row_group(g).num_rows
            self.group_starts.append(starts)
        self._groups: OrderedDict[tuple[int, int], dict] = OrderedDict()

    def __len__(self) -> int:
        return self.starts[-1]

    def _group(self, shard: int, group: int) -> dict:
        key = (shard, group)
        if key not in self._groups:
            columns = list(self.image_columns) + ([self.label_column] if self.label_column else [])
            table = self.files[shard].read_row_group(group, columns=columns)
            self._groups[key] = {c: table.column(c) for c in columns}
            while len(self._groups) > 2:
                self._groups.popitem(last=False)
        return self._groups[key]

    def rows(self, indices: list[int]) -> list[tuple[tuple[bytes | str, ...], str | None]]:
        out = []
        for index in indices:
            shard = bisect.bisect_right(self.starts, index) - 1
            local = index - self.starts[shard]
            group = bisect.bisect_right(self.group_starts[shard], local) - 1
            row = local - self.group_starts[shard][group]
            columns = self._group(shard, group)
            refs = tuple(_ref(columns[c][row].as_py()) for c in self.image_columns)
            label = columns[self.label_column][row].as_py() if self.label_column else None
            if isinstance(label, int) and self.label_names:
                label = self.label_names[label]
            out.append((refs, None if label is None else str(label)))
        return out

    def keys(self, column: str) -> list:
        """Every row's value in `column` (data.join = "key"): that column alone is read."""
        if column not in self.files[0].schema_arrow.names:
            return []
        return [v for f in self.files for v in f.read(columns=[column]).column(column).to_pylist()]


def _ref(value) -> bytes | str:
    if isinstance(value, dict):
        return value.get("bytes") or value.get("path") or b""
    return value or b""


def _label_names(parquet, column: str) -> list[str] | None:
    """ClassLabel names, from the features `datasets` stores in the parquet schema."""
    meta = parquet.schema_arrow.metadata or {}
    try:
        info = json.loads(meta[b"huggingface"])
        feature = info.get("info", info).get("features", {}).get(column, {})
        return list(feature.get("names") or []) or None
    except (KeyError, ValueError, AttributeError):
        return None


class FetchProgress:
    """One progress line for the fetch; retry waits appear as its note."""

    def __init__(self, emit: Emitter, task: str):
        self.emit, self.task = emit, task
        self.done, self.total = 0, None

    def update(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        self.emit.progress(self.task, done, total, "bytes")

    def note(self, message: str) -> None:
        self.emit.progress(self.task, self.done, self.total, "bytes", note=message)


def fetch_mode(profile: Profile) -> str:
    if profile.hub.fetch != "auto":
        return profile.hub.fetch
    return "stream" if profile.sizing.mode == "smoke" else "download"


def open_hub_splits(
    profile: Profile, repo: str, splits: list[str], emit: Emitter, mode: str | None = None
) -> dict[str, ParquetSplit]:
    """The named splits of a hub data set; `mode` None: the profile's (see fetch_mode)."""
    import pyarrow.parquet as pq

    from .client import resolve_token

    mode = mode or fetch_mode(profile)
    token = resolve_token(profile).value
    progress = FetchProgress(emit, f"hub {mode}")
    retrier = Retrier(progress.note)
    with library_waits_shown(progress.note):
        listing = list_shards(repo, splits, token, retrier)
        shards = [s for split in splits for s in listing.files[split]]
        if mode == "download":
            local = download(
                listing, shards, token, retrier, progress.update, profile.hub.fetch_workers
            )
        else:
            local = {s.path: cached_file(listing, s) for s in shards}
        files = {}
        for shard in shards:
            if local.get(shard.path):
                files[shard.path] = pq.ParquetFile(local[shard.path])
            elif offline():
                raise missing_offline(listing, shard)
            else:
                remote = RangeFile(remote_url(listing, shard), shard.size, token, retrier)
                files[shard.path] = pq.ParquetFile(remote, pre_buffer=True)
        out = {split: _split(profile, repo, split, listing, files) for split in splits}
    save_listing(listing)
    return out


def _split(profile: Profile, repo: str, split: str, listing: Listing, files) -> ParquetSplit:
    from .local import split_columns

    shards = listing.files[split]
    opened = [files[s.path] for s in shards]
    names = opened[0].schema_arrow.names
    columns, label_column = split_columns(profile, repo, split, names)
    label_names = _label_names(opened[0], label_column) if label_column else None
    return ParquetSplit(split, shards, opened, columns, label_column, label_names)


def hub_split_rows(profile: Profile, repo: str, splits: list[str], token=None) -> dict[str, int]:
    """Rows of each split from its shards' parquet footers: the listing, then one range
    request per shard not in the hub cache; no image is read. `token`: a hub.Token (the
    wizard's typed one), else the profile's."""
    import pyarrow.parquet as pq

    from .client import resolve_token

    token = (token or resolve_token(profile)).value
    retrier = Retrier(lambda message: None)
    listing = list_shards(repo, splits, token, retrier)
    rows = {}
    for split in splits:
        count = 0
        for shard in listing.files[split]:
            local = cached_file(listing, shard)
            if local is None and offline():
                raise missing_offline(listing, shard)
            source = local or RangeFile(remote_url(listing, shard), shard.size, token, retrier)
            count += pq.ParquetFile(source).metadata.num_rows
        rows[split] = count
    return rows
