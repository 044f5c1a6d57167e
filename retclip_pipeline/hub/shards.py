"""A hub data set's rows, fetched as parquet shards in one of two ways.

- `download`: whole shards into the hub cache through `huggingface_hub` (parallel; a partial
  file resumes), then random access by index from the local files.
- `stream`: HTTP range reads of only the row groups that hold wanted rows, in index order;
  shards holding none are never read past their footer.

Both hand conversion the very same image bytes. A repository of loose images is read
through the hub's own parquet conversion (revision `refs/convert/parquet`).
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_json
from ..errors import UserError
from .env import OFFLINE_ENV, hub_api, hub_endpoint, offline, offline_reason
from .retry import Retrier

PARQUET_CONVERSION = "refs/convert/parquet"


@dataclass
class ShardFile:
    path: str
    size: int
    rows: int | None = None  # from its footer, once read


@dataclass
class Listing:
    """Which parquet files hold each split, at one pinned commit."""

    repo: str
    revision: str  # the commit the files were listed at
    files: dict[str, list[ShardFile]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Listing:
        files = {s: [ShardFile(**f) for f in fs] for s, fs in data["files"].items()}
        return cls(data["repo"], data["revision"], files)


def _listing_path(repo: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "retclip" / "listings" / (repo.replace("/", "--") + ".json")


def _split_files(paths: list[str], split: str) -> list[str]:
    """Parquet files of a split, by the `datasets` naming conventions: a folder named after
    the split (`default/train/0000.parquet`) or a file name starting with it
    (`data/train-00000-of-00004.parquet`)."""
    pattern = re.compile(rf"(^|/){re.escape(split)}([-_.][^/]*)?(/|\.parquet$)")
    found = sorted(p for p in paths if p.endswith(".parquet") and pattern.search(p))
    configs = sorted({p.split("/")[0] for p in found if p.count("/") >= 2})
    if len(configs) > 1:  # several configs in a conversion: the default one, else the first
        keep = "default" if "default" in configs else configs[0]
        found = [p for p in found if p.startswith(keep + "/")]
    return found


def list_shards(repo: str, splits: list[str], token: str | None, retrier: Retrier) -> Listing:
    """One request for the file listing (two when the repository holds loose images)."""
    if offline():
        return _cached_listing(repo, splits)
    from huggingface_hub.errors import RevisionNotFoundError

    api = hub_api()
    what = f"listing data set {repo}"
    info = retrier.call(what, lambda: _dataset_info(api, repo, None, token))
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    files = {split: _split_files(list(sizes), split) for split in splits}
    revision = info.sha
    if not all(files.values()):
        try:
            conv = retrier.call(what, lambda: _dataset_info(api, repo, PARQUET_CONVERSION, token))
        except RevisionNotFoundError:
            conv = None
        if conv is not None:
            sizes = {s.rfilename: s.size or 0 for s in conv.siblings or []}
            files = {split: _split_files(list(sizes), split) for split in splits}
            revision = conv.sha
    missing = [split for split in splits if not files[split]]
    if missing:
        raise UserError(
            f"data set {repo} has no parquet files for split {', '.join(map(repr, missing))} "
            f"(files: {', '.join(sorted(sizes)[:8]) or 'none'}): set data.train_split / "
            "data.test_split"
        )
    return Listing(repo, revision, {s: [ShardFile(p, sizes[p]) for p in files[s]] for s in splits})


def _dataset_info(api, repo: str, revision: str | None, token: str | None):
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        return api.dataset_info(repo, revision=revision, files_metadata=True, token=token)
    except GatedRepoError:
        raise UserError(
            f"data set {repo} is gated and your token has no access: accept its terms at "
            f"https://huggingface.co/datasets/{repo} (check with `token check --dataset {repo}`)"
        ) from None
    except RepositoryNotFoundError:
        raise UserError(
            f"data set {repo} not found on the hub, or private and your token cannot read "
            f"it: check hub.dataset (`python -m retclip_pipeline token check --dataset {repo}`)"
        ) from None


def save_listing(listing: Listing) -> None:
    """Kept beside the hub cache so that HF_HUB_OFFLINE=1 runs know which files to look for."""
    write_json(_listing_path(listing.repo), listing.to_json())


def _offline() -> tuple[str, str]:
    """(why only the cache is read, what to do): HF_HUB_OFFLINE=1, or a hub that did not
    answer (the cache-only hold sets the same switch)."""
    reason = offline_reason() or OFFLINE_ENV
    if reason == OFFLINE_ENV:
        return OFFLINE_ENV, "unset HF_HUB_OFFLINE"
    return f"the hub is not reachable ({reason})", "connect and retry"


def _cached_listing(repo: str, splits: list[str]) -> Listing:
    path = _listing_path(repo)
    why, fix = _offline()
    if not path.is_file():
        raise UserError(
            f"{why} and data set {repo} was never listed on this machine (no {path}): "
            f"run once online ({fix})"
        )
    try:
        listing = Listing.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(
            f"{why} and the saved listing of data set {repo} ({path}) is damaged "
            f"({type(exc).__name__}): delete it and run once online ({fix})"
        ) from None
    missing = [s for s in splits if s not in listing.files]
    if missing:
        raise UserError(
            f"{why} and split {', '.join(map(repr, missing))} of {repo} was never "
            f"fetched: run once online ({fix})"
        )
    return listing


def cached_file(listing: Listing, shard: ShardFile) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        listing.repo, shard.path, revision=listing.revision, repo_type="dataset"
    )
    return found if isinstance(found, str) else None


def missing_offline(listing: Listing, shard: ShardFile) -> UserError:
    why, fix = _offline()
    return UserError(
        f"{why} and {shard.path} of data set {listing.repo} (revision "
        f"{listing.revision[:12]}) is not in the hub cache: {fix} to fetch it"
    )


class _Cancelled(Exception):
    pass


class _ByteCounter:
    """Stands in for the tqdm bar hf_hub_download drives; adds its bytes to our progress,
    and ends the download at its next chunk once the run is interrupted (the partial file
    stays in the cache for the next run to resume)."""

    add: Callable[[int], None] = staticmethod(lambda n: None)
    stop: threading.Event

    def __init__(self, *args, initial: int = 0, **kwargs):
        self.n = initial
        type(self).add(initial)

    def update(self, n: int = 1) -> None:
        if self.stop.is_set():
            raise _Cancelled
        if n:
            self.n += n
            type(self).add(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def close(self) -> None:
        pass

    def __getattr__(self, name: str):
        # Any other bar method the client may call (xet transfers add some): a no-op.
        return lambda *args, **kwargs: None


def download(
    listing: Listing,
    shards: list[ShardFile],
    token: str | None,
    retrier: Retrier,
    progress: Callable[[int, int], None],
    workers: int,
) -> dict[str, str]:
    """Local paths of the shards, downloading those not cached, `workers` at a time."""
    from huggingface_hub import hf_hub_download

    local = {s.path: cached_file(listing, s) for s in shards}
    todo = [s for s in shards if local[s.path] is None]
    if todo and offline():
        raise missing_offline(listing, todo[0])
    total = sum(s.size for s in shards)
    done = [sum(s.size for s in shards if local[s.path])]

    def add(n: int) -> None:
        done[0] += n
        progress(min(done[0], total), total)

    stop = threading.Event()
    counter = type("Counter", (_ByteCounter,), {"add": staticmethod(add), "stop": stop})

    def fetch(shard: ShardFile) -> str:
        def attempt() -> str:
            return hf_hub_download(
                listing.repo,
                shard.path,
                repo_type="dataset",
                revision=listing.revision,
                token=token,
                tqdm_class=counter,
                endpoint=hub_endpoint(),
            )

        return retrier.call(f"downloading {shard.path} of {listing.repo}", attempt)

    progress(done[0], total)
    if todo:
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            for shard, path in zip(todo, pool.map(fetch, todo), strict=True):
                local[shard.path] = path
        except BaseException:
            stop.set()  # Ctrl-C or a failed shard: the other downloads end at their next chunk
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    progress(total, total)
    return {path: found for path, found in local.items() if found}


class RangeFile(io.RawIOBase):
    """A remote file read by HTTP range requests, for pyarrow's random access; the footer
    read is kept so that opening the parquet file costs one request."""

    def __init__(self, url: str, size: int, token: str | None, retrier: Retrier):
        self.url, self.size, self.token, self.retrier = url, size, token, retrier
        self.pos = 0
        self._tail: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.pos + size)
        if end <= self.pos:
            return b""
        data = self._read(self.pos, end)
        self.pos += len(data)
        return data

    def _read(self, start: int, end: int) -> bytes:
        if self._tail and start >= self._tail[0]:
            offset = start - self._tail[0]
            return self._tail[1][offset : offset + end - start]
        first = start
        if end == self.size and end - start < 64 * 1024:
            first = max(0, self.size - 64 * 1024)  # the whole footer in one request
        data = self.retrier.call(f"reading {self.url}", lambda: self._get(first, end))
        if end == self.size:
            self._tail = (first, data)
        return data[start - first :]

    def _get(self, start: int, end: int) -> bytes:
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        headers = build_hf_headers(token=self.token)
        headers["Range"] = f"bytes={start}-{end - 1}"
        response = get_session().get(self.url, headers=headers, follow_redirects=True)
        hf_raise_for_status(response)
        data = response.content
        if response.status_code == 200:  # the server ignored the range
            data = data[start:end]
        if len(data) != end - start:
            raise ConnectionError(f"short read: {len(data)} of {end - start} bytes")
        return data


def remote_url(listing: Listing, shard: ShardFile) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(
        listing.repo,
        shard.path,
        repo_type="dataset",
        revision=listing.revision,
        endpoint=hub_endpoint(),
    )
