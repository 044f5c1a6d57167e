"""The LMDB stage's layout (read by an independent reader written from the reference's
description), its byte-identical resume, and the safe reader."""

import pickle

import lmdb
import pytest

from retclip_pipeline.data.lmdb_io import (
    COMMIT_EVERY,
    LmdbPairsDataset,
    LmdbReader,
    build_env,
    load_plain,
)


def _records(count: int, fail_at: int | None = None):
    for i in range(count):
        if i == fail_at:
            raise KeyboardInterrupt
        value = pickle.dumps((f"left{i}" * 50, f"right{i}" * 50), protocol=4)
        yield str(i).encode(), value, 100


def test_interrupted_build_resumes_to_identical_bytes(tmp_path):
    count = COMMIT_EVERY * 3 + 123
    whole = tmp_path / "whole"
    build_env(whole, tmp_path / "b1", _records(count), b"num_images", 10_000)
    resumed = tmp_path / "resumed"
    for fail_at in (COMMIT_EVERY + 17, COMMIT_EVERY * 2 + 999):
        with pytest.raises(KeyboardInterrupt):
            build_env(resumed, tmp_path / "b2", _records(count, fail_at), b"num_images", 10_000)
        assert not resumed.exists() and (tmp_path / "b2").exists()
    build_env(resumed, tmp_path / "b2", _records(count), b"num_images", 10_000)
    assert (whole / "data.mdb").read_bytes() == (resumed / "data.mdb").read_bytes()
    assert not (tmp_path / "b2").exists()


def test_map_grows_when_full(tmp_path):
    big = ((str(i).encode(), b"x" * 200_000, 200_000) for i in range(600))
    assert build_env(tmp_path / "big", tmp_path / "b", big, b"num_images", 1) == 600
    env = lmdb.open(str(tmp_path / "big"), readonly=True, lock=False)
    with env.begin() as txn:
        assert txn.get(b"num_images") == b"600"
        assert txn.get(b"__retclip_next__") is None


def test_reader_refuses_anything_but_plain_tuples():
    assert load_plain(pickle.dumps((1, 2, "x"))) == (1, 2, "x")
    with pytest.raises(pickle.UnpicklingError):
        load_plain(pickle.dumps(len))  # a reference to a function: a global
    with pytest.raises(pickle.UnpicklingError):
        load_plain(pickle.dumps({"a": 1}))
    with pytest.raises(pickle.UnpicklingError):
        load_plain(pickle.dumps((1.5,)))


def test_reader_needs_both_environments(tmp_path):
    from retclip_pipeline.errors import UserError

    with pytest.raises(UserError, match="run the lmdb stage first"):
        LmdbReader(tmp_path)


def test_dataset_works_in_dataloader_workers(built_demo):
    from torch.utils.data import DataLoader

    dataset = LmdbPairsDataset(built_demo / "lmdb" / "train", transform=lambda image: image.size)
    assert len(dataset) > 0
    loader = DataLoader(
        dataset,
        batch_size=8,
        num_workers=2,
        collate_fn=lambda items: [(i["text_id"], i["left"]) for i in items],
    )
    seen = [text_id for batch in loader for text_id, _ in batch]
    assert sorted(seen) == list(range(len(dataset)))
    item = dataset[0]
    assert item["same_image"] and item["left"] == (32, 32)


def test_reference_style_reader_reads_the_built_lmdb(built_demo):
    """Read the way the RET-CLIP reference does: plain lmdb, pickle.loads, urlsafe base64."""
    import base64
    import io
    import json

    from PIL import Image

    split = built_demo / "lmdb" / "train"
    pairs = lmdb.open(
        str(split / "pairs"),
        readonly=True,
        create=False,
        lock=False,
        readahead=False,
        meminit=False,
    )
    imgs = lmdb.open(
        str(split / "imgs"), readonly=True, create=False, lock=False, readahead=False, meminit=False
    )
    data = built_demo / "data"
    texts = [json.loads(line) for line in (data / "train_texts.jsonl").read_text().splitlines()]
    with pairs.begin(buffers=True) as txn_pairs, imgs.begin(buffers=True) as txn_imgs:
        samples = int(txn_pairs.get(b"num_samples").tobytes().decode("utf-8"))
        images = int(txn_imgs.get(b"num_images").tobytes().decode("utf-8"))
        assert samples == len(texts)
        assert images == len((data / "train_imgs.tsv").read_text().splitlines())
        for index in range(samples):
            patient_id, text_id, text = pickle.loads(txn_pairs.get(str(index).encode()).tobytes())
            assert (text_id, text, [patient_id]) == (
                texts[index]["text_id"],
                texts[index]["text"],
                texts[index]["image_ids"],
            )
            left, right = pickle.loads(txn_imgs.get(str(patient_id).encode()).tobytes())
            image = Image.open(io.BytesIO(base64.urlsafe_b64decode(left)))
            assert image.size == (32, 32) and left == right
    pairs.close()
    imgs.close()
