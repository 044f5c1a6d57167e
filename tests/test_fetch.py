"""Fetching a hub data set from a local stand-in hub (tests/hubstand.py) with the real
huggingface_hub client: both fetch modes, faults, resume, offline mode, request counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retclip_pipeline import profile as profiles
from retclip_pipeline.events import Event
from retclip_pipeline.runner import run

from . import hubstand
from .conftest import demo_toml, run_cli, write_profile

REPO = "org/fundus"


def _split_images(root: Path, split: str) -> tuple[list[bytes], list[int], list[str]]:
    """A demo split in `datasets`' image-folder order (sorted paths), as the CSVs index it."""
    names = sorted(p.name for p in (root / split).iterdir())
    paths = sorted((root / split).rglob("*.jpg"))
    return [p.read_bytes() for p in paths], [names.index(p.parent.name) for p in paths], names


@pytest.fixture(scope="module")
def shards(demo_root) -> dict[str, bytes]:
    files = {}
    for split, count in (("train", 3), ("test", 1)):
        images, labels, names = _split_images(demo_root, split)
        files |= hubstand.parquet_shards(split, images, labels, names, count, group_rows=8)
    return files


@pytest.fixture
def hub(shards, monkeypatch, tmp_path):
    """A stand-in serving the demo set as `org/fundus`; the hub cache is the test's own."""
    from huggingface_hub import constants

    state = hubstand.Hub({REPO: hubstand.Repo(dict(shards))})
    url, server = hubstand.serve(state)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _use_cache(monkeypatch, tmp_path / "hf")
    yield state
    server.shutdown()


def _use_cache(monkeypatch, home: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))


def _convert(demo_root, folder: Path, fetch: str, sizing=None, name="p.toml") -> list[Event]:
    text = demo_toml(demo_root, workdir=str(folder / "run"), sizing=sizing)
    text = text.replace(f'dataset = "{demo_root}"', f'dataset = "{REPO}"\nfetch = "{fetch}"')
    folder.mkdir(parents=True, exist_ok=True)
    events: list[Event] = []
    run(
        profiles.load(write_profile(folder, text, name)),
        folder / "run",
        events.append,
        selected=["convert"],
    )
    return events


def _outputs(run_dir: Path) -> dict[str, bytes]:
    data = run_dir / "data"
    return {p.name: p.read_bytes() for p in sorted(data.iterdir()) if p.is_file()}


def test_modes_and_local_copy_give_identical_output(hub, demo_root, tmp_path, monkeypatch):
    sizing = {"mode": "custom", "samples": 20, "test_samples": 6}
    _convert(demo_root, tmp_path / "download", "download", sizing)
    downloaded = hub.bytes_sent()
    hub.log.clear()
    _use_cache(monkeypatch, tmp_path / "hf2")  # an empty cache: the stream must fetch
    _convert(demo_root, tmp_path / "stream", "stream", sizing)
    streamed = hub.bytes_sent()
    gets = [r for r in hub.log if r.method == "GET" and "/resolve/" in r.path]
    local = tmp_path / "local"
    local.mkdir()
    text = demo_toml(demo_root, workdir=str(local / "run"), sizing=sizing)
    run(
        profiles.load(write_profile(local, text)),
        local / "run",
        lambda e: None,
        selected=["convert"],
    )

    download_out = _outputs(tmp_path / "download" / "run")
    assert download_out == _outputs(tmp_path / "stream" / "run")
    assert download_out["train_imgs.tsv"] == _outputs(local / "run")["train_imgs.tsv"]
    # The stream reads row groups by range, never a whole shard.
    assert gets and all(r.range for r in gets)
    # Footers aside (64 KiB reads, large only beside these tiny shards), it reads less.
    footers = sum(r.sent for r in gets if r.sent == 64 * 1024)
    assert streamed - footers < downloaded / 2


def test_stream_skips_shards_holding_no_wanted_row(hub, demo_root, tmp_path):
    # Only the first class's rows: they all live in the first train shard.
    folder = tmp_path / "one"
    folder.mkdir()
    csv = folder / "train.csv"
    lines = Path(demo_root / "prompts_train.csv").read_text().splitlines()
    csv.write_text("\n".join([lines[0]] + [x for x in lines[1:] if x.startswith(("0,", "1,"))]))
    text = demo_toml(
        demo_root, workdir=str(folder / "run"), data={"train_csv": str(csv), "test_csv": ""}
    )
    text = text.replace(f'dataset = "{demo_root}"', f'dataset = "{REPO}"\nfetch = "stream"')
    run(
        profiles.load(write_profile(folder, text)),
        folder / "run",
        lambda e: None,
        selected=["convert"],
    )
    per_file = {}
    for r in hub.log:
        if r.method == "GET" and "/resolve/" in r.path:
            per_file.setdefault(r.path.rsplit("/", 1)[1], []).append(r)
    # Every train shard's footer is read (row counts), but only the first's rows.
    assert len(per_file["train-00000-of-00003.parquet"]) == 2  # footer + one row group
    assert len(per_file["train-00001-of-00003.parquet"]) == 1
    assert "test-00000-of-00001.parquet" not in per_file


def test_rate_limit_waits_for_the_reset_and_shows_it(hub, demo_root, tmp_path):
    hub.faults = [("/resolve/", "429"), ("/api/datasets/", "429")]
    events = _convert(demo_root, tmp_path / "a", "download")
    notes = [e.message for e in events if e.kind == "progress" and e.message]
    assert any("rate limited" in n and "waiting" in n for n in notes), notes
    assert [r.status for r in hub.log].count(429) == 2
    assert (tmp_path / "a" / "run" / "data" / "train_imgs.tsv").exists()


def test_server_error_is_retried(hub, demo_root, tmp_path):
    hub.faults = [("train-00001", "500"), ("/api/datasets/", "500")]
    events = _convert(demo_root, tmp_path / "a", "download")
    assert [r.status for r in hub.log].count(500) == 2
    assert any("HTTP 500" in (e.message or "") for e in events if e.kind == "progress")


def test_dropped_connection_resumes_the_partial_file(hub, demo_root, tmp_path, shards, monkeypatch):
    from huggingface_hub import constants

    # The client writes what it received in 10 MiB chunks; these shards are ~100 KiB.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    name = "train-00000-of-00003.parquet"
    hub.faults = [(name, "drop")]
    _convert(demo_root, tmp_path / "a", "download")
    gets = [r for r in hub.log if r.method == "GET" and r.path.endswith(name)]
    assert len(gets) == 2
    size = len(shards[f"data/{name}"])
    assert gets[1].range and int(gets[1].range.split("=")[1].split("-")[0]) > 0
    # Only the unwritten tail of the last chunk before the drop is fetched twice.
    assert size <= sum(r.sent for r in gets) < size + 4096


def test_rerun_fetches_no_file_again_and_offline_reuses_the_cache(
    hub, demo_root, tmp_path, monkeypatch
):
    from huggingface_hub import constants

    _convert(demo_root, tmp_path / "a", "download")
    hub.log.clear()
    _convert(demo_root, tmp_path / "b", "download")
    assert hub.count("GET", "/resolve/") == 0 and hub.count("HEAD") == 0
    hub.log.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for mode in ("download", "stream"):
        _convert(demo_root, tmp_path / f"offline-{mode}", mode)
    assert hub.log == []
    assert _outputs(tmp_path / "a" / "run") == _outputs(tmp_path / "offline-stream" / "run")


def test_offline_names_the_missing_piece(shards, demo_root, tmp_path, monkeypatch):
    state = hubstand.Hub({REPO: hubstand.Repo(dict(shards))})
    url, server = hubstand.serve(state)
    text = demo_toml(demo_root, workdir=str(tmp_path / "run"))
    text = text.replace(f'dataset = "{demo_root}"', f'dataset = "{REPO}"\nfetch = "stream"')
    path = write_profile(tmp_path, text)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    try:  # streamed online: listed, but no shard is in the hub cache
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        first = run_cli("--profile", str(path), "--stages", "convert")
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        result = run_cli("--profile", str(path), "--stages", "convert", "--restart")
    finally:
        server.shutdown()
    assert first.returncode == 0, first.stderr
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "HF_HUB_OFFLINE=1" in line and "data/train-00000-of-00003.parquet" in line, line
    assert "Traceback" not in result.stderr
    assert (tmp_path / "hf" / "retclip" / "listings" / "org--fundus.json").is_file()


@pytest.mark.parametrize(
    "repo,words",
    [("org/missing", "not found on the hub"), ("org/gated", "accept its terms")],
)
def test_missing_and_gated_sets_end_in_one_line(hub, shards, demo_root, tmp_path, repo, words):
    from retclip_pipeline.errors import UserError

    hub.repos["org/gated"] = hubstand.Repo(dict(shards), gated=True)
    text = demo_toml(demo_root, workdir=str(tmp_path / "run"))
    text = text.replace(f'dataset = "{demo_root}"', f'dataset = "{repo}"')
    with pytest.raises(UserError, match=words):
        run(
            profiles.load(write_profile(tmp_path, text)),
            tmp_path / "run",
            lambda e: None,
            selected=["convert"],
        )


def test_token_is_in_no_file_a_run_writes(hub, demo_root, tmp_path, monkeypatch):
    hub.repos[REPO].gated = True
    monkeypatch.setenv("HF_TOKEN", hubstand.GOOD)
    events = _convert(demo_root, tmp_path / "a", "stream")
    assert events
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "events.jsonl" for p in written)
    for path in written:
        assert hubstand.GOOD.encode() not in path.read_bytes(), path
    assert hubstand.GOOD not in json.dumps([e.__dict__ for e in events])


def test_loose_image_repo_is_read_through_the_parquet_conversion(hub, shards, demo_root, tmp_path):
    # A repository of JPEG files: the hub serves its parquet conversion on refs/convert/parquet.
    conversion = {
        path.replace("data/", "default/").replace("-00000-of-00001", "/0000"): data
        for path, data in shards.items()
        if "test" in path
    }
    train = [p for p in sorted(shards) if "train" in p]
    for k, path in enumerate(train):
        conversion[f"default/train/{k:04d}.parquet"] = shards[path]
    hub.repos[REPO] = hubstand.Repo(
        {"train/a.jpg": b"...", "README.md": b"#"}, conversion=conversion
    )
    _convert(demo_root, tmp_path / "loose", "stream")
    assert hub.count("GET", "refs/convert/parquet") == 1  # the listing at that revision
    assert hub.count("GET", "/default/train/0000.parquet") >= 1
    hub.repos[REPO] = hubstand.Repo(dict(shards))
    _convert(demo_root, tmp_path / "parquet", "download")
    assert _outputs(tmp_path / "loose" / "run") == _outputs(tmp_path / "parquet" / "run")


def test_check_counts_a_hub_splits_rows_from_parquet_footers_alone(
    hub, demo_root, tmp_path, monkeypatch
):
    from retclip_pipeline.preflight.check import run_checks

    text = demo_toml(demo_root, workdir=str(tmp_path / "run"))
    text = text.replace(f'dataset = "{demo_root}"', f'dataset = "{REPO}"')
    path = write_profile(tmp_path, text)
    items = {item.name: item for item in run_checks(profiles.load(path), tmp_path / "run")}
    train = items["data set train"]
    assert train.ok and "[train]: 60 rows" in train.detail, train.detail
    # One range request for each shard's footer (64 KiB at most), and no whole file.
    reads = [r for r in hub.log if r.method == "GET" and ".parquet" in r.path]
    assert len(reads) == len(hub.repos[REPO].files) and all(r.range for r in reads), reads
    assert all(r.sent <= 65536 for r in reads)
    # An index beyond the split's rows is named by its line, before anything is fetched.
    csv = tmp_path / "prompts_train.csv"
    csv.write_text((demo_root / "prompts_train.csv").read_text() + "60,Healthy,a healthy fundus\n")
    path.write_text(text.replace(f"{demo_root}/prompts_train.csv", str(csv)))
    items = {item.name: item for item in run_checks(profiles.load(path), tmp_path / "run")}
    train = items["data set train"]
    assert not train.ok and "60 is outside the split (0..59)" in train.detail


@pytest.mark.parametrize("content", [b"[]", b"{", b"\xff", b'{"repo": "org/fundus"}', b"3"])
def test_a_damaged_saved_listing_offline_is_one_line(tmp_path, monkeypatch, content):
    """Offline, the data set's listing saved by an earlier run is read back: damaged, not
    UTF-8 or JSON of another shape, it was a traceback."""
    from retclip_pipeline.errors import UserError
    from retclip_pipeline.hub import shards

    _use_cache(monkeypatch, tmp_path / "hf")
    monkeypatch.setattr(shards, "_offline", lambda: ("HF_HUB_OFFLINE=1", "unset HF_HUB_OFFLINE"))
    listing = tmp_path / "hf/retclip/listings/org--fundus.json"
    listing.parent.mkdir(parents=True)
    listing.write_bytes(content)
    with pytest.raises(UserError, match="saved listing of data set org/fundus .* is damaged"):
        shards._cached_listing("org/fundus", ["train"])
    assert listing.read_bytes() == content  # the user's to delete
