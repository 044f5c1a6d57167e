"""`token check` against a local stand-in for the hub's HTTP API (reached through
HF_ENDPOINT), with the real huggingface_hub client: each outcome told apart."""

import os

import pytest

from . import hubstand
from .conftest import run_cli
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
    return run_cli(*args, env=env, timeout=120)


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


def test_unreachable_hub(tmp_path):
    result = _check("http://127.0.0.1:9", GOOD, "org/public", tmp_path)
    assert result.returncode == 2
    assert "the hub is unreachable at http://127.0.0.1:9" in result.stdout
    assert GOOD not in result.stdout + result.stderr


def test_preflight_runs_the_same_check(hub, tmp_path, demo_root):
    from .conftest import demo_toml, write_profile

    text = demo_toml(demo_root).replace(f'dataset = "{demo_root}"', 'dataset = "org/gated"')
    profile = write_profile(tmp_path, text)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub, HF_HOME=str(tmp_path / "hf"), HF_TOKEN=GOOD)
    result = run_cli("--profile", str(profile), "--check", env=env, timeout=120)
    assert result.returncode == 2
    assert "[ok  ] token: token from HF_TOKEN is valid" in result.stdout
    assert "[FAIL] data set: org/gated is gated" in result.stdout
    assert GOOD not in result.stdout + result.stderr
