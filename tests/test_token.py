"""`token check` against a local stand-in for the hub's HTTP API (reached through
HF_ENDPOINT), with the real huggingface_hub client: each outcome told apart."""

import os

import pytest

from . import hubstand
from .conftest import PATIENCE_S, run_cli
from .hubstand import BAD, GOOD


@pytest.fixture(scope="module")
def hub():
    state = hubstand.Hub(
        {"org/public": hubstand.Repo({}), "org/gated": hubstand.Repo({}, gated=True, granted=())}
    )
    url, server = hubstand.serve(state)
    yield url
    server.shutdown()


def _check(endpoint, token, dataset, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"))
    if token:
        env["HF_TOKEN"] = token
    args = ["token", "check"] + (["--dataset", dataset] if dataset else [])
    return run_cli(*args, env=env, timeout=PATIENCE_S)


@pytest.mark.parametrize(
    "token,dataset,code,words",
    [
        (GOOD, "org/public", 0, ["valid (user tester)", "org/public is readable"]),
        (None, "org/public", 0, ["no token: public data sets still work", "5,000"]),
        (BAD, "org/public", 2, ["invalid or revoked", "token login"]),
        (
            GOOD,
            "org/gated",
            2,
            ["gated", "accept its terms at https://huggingface.co/datasets/org/gated"],
        ),
        (GOOD, "org/missing", 2, ["not found, or it is private"]),
    ],
)
def test_token_check_tells_each_case_apart(hub, tmp_path, token, dataset, code, words):
    result = _check(hub, token, dataset, tmp_path)
    assert result.returncode == code, result.stdout + result.stderr
    for word in words:
        assert word in result.stdout, result.stdout
    assert "Traceback" not in result.stderr
    for secret in (GOOD, BAD):
        assert secret not in result.stdout + result.stderr


CLOSED = "http://127.0.0.1:9"  # nothing listens there: every connection is refused


def test_unreachable_hub_is_said_unchecked_never_an_invalid_token(tmp_path):
    result = _check(CLOSED, GOOD, "org/public", tmp_path)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[skip] hub not reachable (ConnectError"), result.stdout
    assert "the token from HF_TOKEN was not checked (not known to be invalid)" in lines[0]
    assert "check the network to http://127.0.0.1:9" in lines[0]
    assert lines[1].startswith("[skip] hub not reachable (")
    assert "data set org/public not checked" in lines[1]
    assert "invalid or revoked" not in result.stdout
    assert GOOD not in result.stdout + result.stderr


@pytest.fixture
def token_store(tmp_path, monkeypatch):
    """huggingface_hub's token files in the test's own folder, the hub online."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return tmp_path / "hf"


def test_a_token_is_stored_checked_online_and_unchecked_offline(hub, token_store, monkeypatch):
    from huggingface_hub import constants, get_token

    from retclip_pipeline.errors import UserError
    from retclip_pipeline.hub.access import store_token

    monkeypatch.setenv("HF_ENDPOINT", hub)
    with pytest.raises(UserError, match="refused the token .HTTP 401") as refused:
        store_token(BAD)
    assert BAD not in str(refused.value) and not (token_store / "token").exists()
    done = store_token(GOOD)
    assert done.state == "ok" and "valid, user tester" in done.detail
    assert get_token() == GOOD

    monkeypatch.setenv("HF_ENDPOINT", CLOSED)
    other = "hf_" + "offlineToken" * 3
    done = store_token(other)
    assert done.state == "skip" and done.mark == "skip"
    assert "hub not reachable (ConnectError" in done.detail
    assert "the token was not checked" in done.detail and other not in done.detail
    assert get_token() == other

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    done = store_token(GOOD)
    assert "hub not reachable (HF_HUB_OFFLINE=1)" in done.detail and get_token() == GOOD


def test_the_probe_names_why_the_hub_does_not_answer(hub, monkeypatch):
    from huggingface_hub import constants

    from retclip_pipeline.hub.reach import unreachable

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", hub)
    assert unreachable() is None  # a 401 from whoami is an answer
    monkeypatch.setenv("HF_ENDPOINT", CLOSED)
    assert unreachable().startswith("ConnectError: ")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert unreachable() == "HF_HUB_OFFLINE=1"


def test_cache_only_holds_the_client_to_its_cache_and_restores_it(monkeypatch):
    from huggingface_hub import constants

    from retclip_pipeline.errors import UserError
    from retclip_pipeline.hub import reach

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with reach.cache_only():
        with reach.cache_only():
            assert constants.HF_HUB_OFFLINE
        assert constants.HF_HUB_OFFLINE  # the outer one still holds it
    assert constants.HF_HUB_OFFLINE is False
    monkeypatch.setenv("HF_ENDPOINT", CLOSED)
    missing = pytest.raises(UserError, match=r"hub not reachable \(ConnectError.*cached files")
    with missing, reach.hub_or_cache() as reason:
        assert reason.startswith("ConnectError") and constants.HF_HUB_OFFLINE
        raise FileNotFoundError("config.json is not in the cache")
    assert constants.HF_HUB_OFFLINE is False
    with reach.hub_or_cache(needed=False) as reason:  # nothing on the hub: not asked
        assert reason is None and not constants.HF_HUB_OFFLINE


def test_the_advice_for_an_uncached_tower_names_the_real_reason(monkeypatch):
    """The cache-only hold sets the client's offline constant as HF_HUB_OFFLINE=1 does: the
    advice tells an unreachable hub from the variable."""
    from huggingface_hub import constants

    from retclip_pipeline.hub import reach
    from retclip_pipeline.model.sources import fetch_advice

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with reach.cache_only("ConnectError: [Errno 111] Connection refused"):
        advice = fetch_advice(["pubmedbert"])
    assert advice.startswith("hub not reachable (ConnectError: [Errno 111] Connection refused)")
    assert "HF_HUB_OFFLINE" not in advice and "`hf download " in advice
    assert fetch_advice(["pubmedbert"]).startswith("check the names")  # online again
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    advice = fetch_advice(["pubmedbert"])
    assert advice.startswith("offline (HF_HUB_OFFLINE=1)") and "unset HF_HUB_OFFLINE" in advice


def test_a_hub_data_set_never_listed_names_the_real_reason(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from retclip_pipeline.errors import UserError
    from retclip_pipeline.hub import reach
    from retclip_pipeline.hub.shards import list_shards

    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with reach.cache_only("ConnectError: refused"), pytest.raises(UserError) as caught:
        list_shards("org/never", ["train"], None, None)
    said = str(caught.value)
    assert said.startswith("the hub is not reachable (ConnectError: refused) and data set")
    assert "HF_HUB_OFFLINE" not in said and "connect and retry" in said
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match=r"^HF_HUB_OFFLINE=1 and data set .*unset HF_HUB"):
        list_shards("org/never", ["train"], None, None)


def test_preflight_runs_the_same_check(hub, tmp_path, demo_root):
    from .conftest import demo_toml, write_profile

    text = demo_toml(demo_root).replace(f'dataset = "{demo_root}"', 'dataset = "org/gated"')
    profile = write_profile(tmp_path, text)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub, HF_HOME=str(tmp_path / "hf"), HF_TOKEN=GOOD)
    result = run_cli("--profile", str(profile), "--check", env=env, timeout=PATIENCE_S)
    assert result.returncode == 2
    assert "[ok  ] token: token from HF_TOKEN is valid" in result.stdout
    assert "[FAIL] data set: org/gated is gated" in result.stdout
    assert GOOD not in result.stdout + result.stderr
