"""LMDB environments: building one from the TSV/JSONL records (resumably), verifying it, and
the reader training and evaluation use.

Layout (the RET-CLIP reference reads it too):
  pairs: "0".."N-1" -> pickle((patient_id, text_id, text)), b"num_samples" -> N
  imgs:  "<patient_id>" -> pickle((left_b64, right_b64)), b"num_images" -> M
  eye_texts (paired data only): "<text_id>" -> pickle((left_text, right_text)), b"num_texts"

Each environment is built under lmdb/.building/ with its progress stored inside the same
transaction as the records, so a killed build resumes at its last commit; the finished
environment is a fresh rewrite in key order, byte-identical whatever the build's history.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import ownership
from ..atomic import replace_dir
from ..errors import DamagedOutput, UserError
from . import converted

PROGRESS_KEY = b"__retclip_next__"
COMMIT_EVERY = 1000
PICKLE_PROTOCOL = 4  # fixed, so the bytes do not change with the Python version


def _img_records(tsv: Path) -> Iterator[tuple[bytes, bytes, int]]:
    for number, line in converted.lines(tsv, rebuild=True):
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 3:
            raise converted.damaged(tsv, number, f"{len(fields)} fields, not 3", rebuild=True)
        patient_id, left, right = fields
        value = pickle.dumps((left, right), protocol=PICKLE_PROTOCOL)
        yield patient_id.encode(), value, len(line)


def _pair_records(jsonl: Path) -> Iterator[tuple[bytes, bytes, int]]:
    index = 0
    needs = ("image_ids", "text_id", "text")
    for _, record, size in converted.records(jsonl, needs, rebuild=True):
        for patient_id in record["image_ids"]:
            value = pickle.dumps(
                (patient_id, record["text_id"], record["text"]), protocol=PICKLE_PROTOCOL
            )
            yield str(index).encode(), value, size
            index += 1


def _eye_text_records(jsonl: Path) -> Iterator[tuple[bytes, bytes, int]]:
    needs = ("text_id", "text_left", "text_right")
    for _, record, size in converted.records(jsonl, needs, rebuild=True):
        value = pickle.dumps((record["text_left"], record["text_right"]), protocol=PICKLE_PROTOCOL)
        yield str(record["text_id"]).encode(), value, size


COUNT_KEYS = {"imgs": b"num_images", "pairs": b"num_samples", "eye_texts": b"num_texts"}


def records(env: str, data_dir: Path, split: str) -> tuple[Iterator, Path]:
    if env == "imgs":
        source = data_dir / f"{split}_imgs.tsv"
        return _img_records(source), source
    source = data_dir / f"{split}_texts.jsonl"
    return (_pair_records if env == "pairs" else _eye_text_records)(source), source


def _initial_map_size(source_bytes: int) -> int:
    return max(64 << 20, source_bytes * 2)


def build_env(
    dest: Path,
    building: Path,
    records: Iterator[tuple[bytes, bytes, int]],
    count_key: bytes,
    source_bytes: int,
    on_progress=None,
) -> int:
    """Write records into `building` (resuming at its stored progress), then move a fresh
    rewrite of it to `dest`. Returns the number of records."""
    import lmdb

    ownership.claim_folder(dest)  # replaced when the build is done, its files claimed then
    ownership.claim_folder(building, ("data.mdb", "lock.mdb"))  # what lmdb.open makes
    building.mkdir(parents=True, exist_ok=True)
    map_size = _initial_map_size(source_bytes)
    env = lmdb.open(str(building), map_size=map_size, subdir=True, sync=True)
    try:
        with env.begin() as txn:
            start = int(txn.get(PROGRESS_KEY, b"0"))
        pending: list[tuple[bytes, bytes]] = []
        count = done_bytes = 0
        for key, value, size in records:
            done_bytes += size
            if count < start:
                count += 1
                continue
            pending.append((key, value))
            count += 1
            if len(pending) == COMMIT_EVERY:
                map_size = _commit(env, pending, count, map_size)
                pending = []
                if on_progress:
                    on_progress(done_bytes)
        pending.append((count_key, str(count).encode()))
        _commit(env, pending, None, map_size)
        finished = dest.with_name(f".{dest.name}.copy")
        _rewrite(env, finished)
    finally:
        env.close()
    replace_dir(finished, dest)
    ownership.remove(building)
    if on_progress:
        on_progress(source_bytes)
    return count


def _rewrite(source, target: Path) -> None:
    """Copy every record, in key order, into a fresh environment. Its bytes depend only on the
    content: the building environment's pages carry stale bytes from its history (an
    interruption, a grown map), a fresh one written the same way every time does not."""
    import lmdb

    ownership.remove(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stat = source.stat()
    pages = stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
    map_size = ((pages * stat["psize"] * 3 // 2 + (4 << 20)) >> 20) << 20
    fresh = lmdb.open(str(target), map_size=map_size, subdir=True, lock=False, sync=True)
    try:
        with source.begin() as read:
            cursor = read.cursor()
            more = cursor.first()
            while more:
                with fresh.begin(write=True) as write:
                    batch = []
                    while more and len(batch) < COMMIT_EVERY:
                        batch.append((cursor.key(), cursor.value()))
                        more = cursor.next()
                    write.cursor().putmulti(batch, append=True)
    finally:
        fresh.close()


def _commit(env, pending: list[tuple[bytes, bytes]], progress: int | None, map_size: int) -> int:
    """Write one batch and the progress marker in one transaction, growing the map if full."""
    import lmdb

    while True:
        try:
            with env.begin(write=True) as txn:
                for key, value in pending:
                    txn.put(key, value)
                if progress is None:
                    txn.delete(PROGRESS_KEY)
                else:
                    txn.put(PROGRESS_KEY, str(progress).encode())
            return map_size
        except lmdb.MapFullError:
            map_size *= 2
            env.set_mapsize(map_size)


def verify(split_dir: Path, paired: bool, split: str) -> dict[str, int]:
    """Counts agree, every pair's patient has images, and one image decodes."""
    from PIL import Image

    reader = LmdbReader(split_dir)
    try:
        pairs, images = reader.num_samples, reader.num_images
        patients = set()
        for index in range(pairs):
            patient_id, _, _ = reader.pair(index)
            patients.add(patient_id)
        missing = [p for p in patients if reader.images_b64(p) is None]
        if missing:
            raise UserError(
                f"{split_dir}: {len(missing)} pairs name patients without images "
                f"(e.g. {missing[0]}): rerun with --restart --stages convert,lmdb"
            )
        if pairs:
            left, _ = reader.images_b64(reader.pair(0)[0])
            Image.open(io.BytesIO(decode_b64(left))).load()
    finally:
        reader.close()
    return {f"{split}_pairs": pairs, f"{split}_images": images}


def decode_b64(value: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(value)


class _PlainTuples(pickle.Unpickler):
    """Unpickles tuples of str and int only: a value naming any class or function is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from LMDB")


def load_plain(value: bytes) -> tuple:
    obj = _PlainTuples(io.BytesIO(value)).load()
    if not isinstance(obj, tuple) or not all(isinstance(x, (str, int)) for x in obj):
        raise pickle.UnpicklingError("LMDB value is not a plain tuple of str/int")
    return obj


REBUILD = "the lmdb stage will run again: rerun the same command (the conversion is kept)"


def verify_env(path: Path) -> None:
    """A DamagedOutput unless the environment's file holds every page its header names: a
    truncated data.mdb would otherwise kill the reader with SIGBUS at the first read of a
    missing page. Only the header is read (LMDB reads it with pread, not through the map)."""
    import lmdb

    try:
        env = lmdb.open(str(path), readonly=True, lock=False, subdir=True)
    except lmdb.Error as exc:
        raise DamagedOutput(f"{path} is not a readable LMDB ({exc}): {REBUILD}") from None
    try:
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    finally:
        env.close()
    found = (path / "data.mdb").stat().st_size
    if found < needed:
        raise DamagedOutput(
            f"{path / 'data.mdb'} is truncated ({found:,} of {needed:,} bytes): {REBUILD}"
        )


class LmdbReader:
    """Read access to one split's environments, opened lazily in the process that reads
    (py-lmdb cannot open one path twice in a process, and handles do not survive a fork).
    The environments are verified when the reader is made, before any page is read."""

    def __init__(self, split_dir: Path):
        self.split_dir = Path(split_dir)
        for env in ("pairs", "imgs"):
            if not (self.split_dir / env / "data.mdb").exists():
                raise UserError(f"no LMDB at {self.split_dir / env}: run the lmdb stage first")
        for env in ("pairs", "imgs", "eye_texts"):
            if (self.split_dir / env / "data.mdb").exists():
                verify_env(self.split_dir / env)
        self._pid: int | None = None
        self._envs: dict[str, Any] = {}
        self._counts: dict[str, int] = {}

    def _env(self, name: str):
        if self._pid != os.getpid():
            import lmdb

            self._envs = {}
            for env in ("pairs", "imgs", "eye_texts"):
                path = self.split_dir / env
                if (path / "data.mdb").exists():
                    self._envs[env] = lmdb.open(
                        str(path),
                        readonly=True,
                        lock=False,
                        readahead=False,
                        meminit=False,
                        subdir=True,
                    )
            self._pid = os.getpid()
        return self._envs.get(name)

    def _get(self, env: str, key: bytes) -> bytes | None:
        handle = self._env(env)
        if handle is None:
            return None
        with handle.begin(buffers=False) as txn:
            return txn.get(key)

    def _count(self, env: str, key: bytes) -> int:
        if env not in self._counts:
            self._counts[env] = int(self._get(env, key) or b"0")
        return self._counts[env]

    @property
    def num_samples(self) -> int:
        return self._count("pairs", b"num_samples")

    @property
    def num_images(self) -> int:
        return self._count("imgs", b"num_images")

    @property
    def paired_texts(self) -> bool:
        return self._env("eye_texts") is not None

    def _record(self, env: str, key: str, size: int) -> tuple | None:
        """The plain tuple of `size` items under `key`; a record that is anything else (a
        pickle naming a class, a damaged value) is a DamagedOutput naming the key."""
        value = self._get(env, key.encode())
        if value is None:
            return None
        try:
            record = load_plain(value)
        except (pickle.UnpicklingError, EOFError, ValueError, IndexError) as exc:
            raise DamagedOutput(
                f"{self.split_dir / env}: the record under key {key!r} is not one this "
                f"pipeline wrote ({exc}): {REBUILD}"
            ) from None
        if len(record) != size:
            raise DamagedOutput(
                f"{self.split_dir / env}: the record under key {key!r} has {len(record)} "
                f"fields, not {size}: {REBUILD}"
            )
        return record

    def pair(self, index: int) -> tuple[int | str, int, str]:
        record = self._record("pairs", str(index), 3)
        if record is None:
            raise DamagedOutput(
                f"{self.split_dir / 'pairs'} has no record under key '{index}' although it "
                f"counts {self.num_samples}: {REBUILD}"
            )
        return record  # type: ignore[return-value]

    def images_b64(self, patient_id: int | str) -> tuple[str, str] | None:
        return self._record("imgs", str(patient_id), 2)  # type: ignore[return-value]

    def eye_texts(self, text_id: int) -> tuple[str, str] | None:
        return self._record("eye_texts", str(text_id), 2)  # type: ignore[return-value]

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs, self._pid = {}, None

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers get a closed copy
        return {"split_dir": self.split_dir, "_pid": None, "_envs": {}, "_counts": self._counts}


class LmdbPairsDataset:
    """A map-style torch Dataset (DataLoader needs only __len__ and __getitem__, so this
    module imports no torch) of (left image, right image, text) pairs from one split's LMDB.

    Items are dicts: left, right (PIL images, or what `transform` makes of them), text,
    text_id, patient_id, same_image (both eyes are one image: encode it once), and for paired
    data text_left and text_right.
    """

    def __init__(self, split_dir: Path, transform=None):
        self.reader = LmdbReader(split_dir)
        self.transform = transform

    def __len__(self) -> int:
        return self.reader.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image

        patient_id, text_id, text = self.reader.pair(index)
        images = self.reader.images_b64(patient_id)
        if images is None:
            raise KeyError(f"patient {patient_id} has no images in {self.reader.split_dir}")
        left_b64, right_b64 = images
        left = Image.open(io.BytesIO(decode_b64(left_b64))).convert("RGB")
        same = left_b64 == right_b64
        right = left if same else Image.open(io.BytesIO(decode_b64(right_b64))).convert("RGB")
        if self.transform is not None:
            left = self.transform(left)
            right = left if same else self.transform(right)
        item = {
            "left": left,
            "right": right,
            "text": text,
            "text_id": text_id,
            "patient_id": patient_id,
            "same_image": same,
        }
        eye_texts = self.reader.eye_texts(text_id) if self.reader.paired_texts else None
        if eye_texts:
            item["text_left"], item["text_right"] = eye_texts
        return item
