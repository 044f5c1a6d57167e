from pathlib import Path

import pytest

from retclip_pipeline import profile as profiles
from retclip_pipeline.errors import UserError

from .conftest import ROOT, write_profile


@pytest.mark.parametrize("name", ["demo", "demo_paired", "smoke", "full"])
def test_shipped_profiles_parse(name):
    check = name.startswith("demo")  # smoke/full point at CSVs the user adds to prompts/
    profile = profiles.load(ROOT / "profiles" / f"{name}.toml", check_files=check)
    assert profile.name
    if name in ("smoke", "full"):
        assert profile.dataset_source() == ("hub", "Peacein/color-fundus-eye")
        assert profile.sizing.mode == name


def test_every_problem_reported_at_once_with_key_and_line(tmp_path):
    path = write_profile(
        tmp_path,
        """name = "x"
colour = "red"

[data]
train_csv = "missing.csv"
image_size = "big"
jpeg_quality = 101
eyes = "three"

[sizing]
mdoe = "smoke"
""",
    )
    with pytest.raises(profiles.ProfileError) as caught:
        profiles.load(path)
    lines = str(caught.value).splitlines()
    text = "\n".join(lines)
    assert f"{path}:2: colour: unknown key" in text
    assert f"{path}:6: data.image_size: expected an integer, got 'big'" in text
    assert f"{path}:7: data.jpeg_quality: must be at most 100" in text
    assert f"{path}:8: data.eyes: expected one of 'single', 'paired'" in text
    assert f"{path}:11: sizing.mdoe: unknown key (did you mean 'mode'?)" in text
    assert f"{path}:5: data.train_csv: file not found" in text
    assert len(lines) == 6


def test_malformed_toml_is_one_user_error(tmp_path):
    path = write_profile(tmp_path, "name = \n[data\n")
    with pytest.raises(UserError, match="not valid TOML.*line 1"):
        profiles.load(path)


def test_bool_is_not_an_int(tmp_path):
    path = write_profile(tmp_path, "[data]\ntrain_csv = 'a.csv'\nimage_size = true\n")
    with pytest.raises(profiles.ProfileError, match="expected an integer, got True"):
        profiles.load(path, check_files=False)


def test_save_is_minimal_and_round_trips(tmp_path):
    profile = profiles.load(ROOT / "profiles" / "demo.toml")
    out = tmp_path / "copy.toml"
    profiles.save(profile, out)
    text = out.read_text()
    assert "jpeg_quality" not in text  # a default: left out
    assert "image_size = 64" in text
    again = profiles.load(out, check_files=False)
    assert profiles.to_dict(again) == profiles.to_dict(profile)


def test_relative_paths_resolve_against_the_profile_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = profiles.load(ROOT / "profiles" / "demo.toml")
    assert profile.resolve(profile.data.train_csv) == ROOT / "seeds/demo/prompts_train.csv"
    assert profile.workdir_path() == ROOT / "runs/demo"
    assert profile.dataset_source() == ("local", str(ROOT / "seeds/demo"))


def test_resolved_profile_has_every_default_and_absolute_paths():
    profile = profiles.load(ROOT / "profiles" / "demo.toml")
    data = profiles.to_dict(profile, resolved=True)
    assert data["data"]["jpeg_quality"] == 95
    assert Path(data["data"]["train_csv"]).is_absolute()
    assert Path(data["workdir"]).is_absolute()


def test_profile_never_holds_a_token(tmp_path):
    path = write_profile(tmp_path, "[hub]\ntoken = 'hf_abc'\n[data]\ntrain_csv='a.csv'\n")
    with pytest.raises(profiles.ProfileError, match="hub.token: unknown key"):
        profiles.load(path, check_files=False)
    keys = profiles.to_dict(profiles.Profile())["hub"]
    assert not any("token" in key for key in set(keys) - {"token_env"})


def test_paired_needs_eye_text_columns(tmp_path):
    path = write_profile(tmp_path, "[data]\ntrain_csv='a.csv'\neyes='paired'\n")
    with pytest.raises(profiles.ProfileError) as caught:
        profiles.load(path, check_files=False)
    assert "data.left_text_column: required" in str(caught.value)
    assert "data.right_text_column: required" in str(caught.value)


def test_sizing_counts():
    profile = profiles.Profile()
    assert profile.train_samples(12854) == 12854
    profile.sizing.mode = "smoke"
    assert profile.train_samples(12854) == 100
    assert profile.test_samples(3253, 100 / 12854) == 25
    profile.sizing.mode, profile.sizing.samples, profile.sizing.test_samples = "custom", 500, 80
    assert profile.train_samples(300) == 300
    assert profile.test_samples(3253, 1.0) == 80


TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"  # token-shaped, not a real token


@pytest.mark.parametrize(
    "lines,problem",
    [
        ("[train]\nlr = nan", ":4: train.lr: must be a finite number, got nan"),
        ("[train]\nweight_decay = -inf", ":4: train.weight_decay: must be a finite number"),
        ("[eval]\ntemplates = []", ":4: eval.templates: give at least one template"),
        ("[eval]\ntemplates = ['a {} b {}']", ":4: eval.templates: template 1 ('a {} b {}')"),
        ("[eval]\ntemplates = ['{x} of {}']", "template 1 ('{x} of {}') must hold exactly one {}"),
        ("[eval]\ntemplates = ['{} of {']", "template 1 ('{} of {') must hold exactly one {}"),
        ("[hub]\ntoken_env = '1TOKEN'", ":4: hub.token_env: '1TOKEN' is not an environment"),
        ("[hub]\ntoken_env = ''", ":4: hub.token_env: '' is not an environment variable name"),
    ],
)
def test_values_that_would_fail_later_are_refused_at_load(tmp_path, lines, problem):
    path = write_profile(tmp_path, f"[data]\ntrain_csv = 'a.csv'\n{lines}\n")
    with pytest.raises(profiles.ProfileError) as caught:
        profiles.load(path, check_files=False)
    message = str(caught.value)
    assert message.startswith(f"{path}:4: ") and problem in message
    assert len(message.splitlines()) == 1


def test_good_templates_pass():
    profile = profiles.from_dict(
        {"data": {"train_csv": "a.csv"}, "eval": {"templates": ["{} (fundus)", "{{x}} {}"]}},
        check_files=False,
    )
    assert profile.eval.templates[1].format("y") == "{x} y"


def test_a_token_anywhere_is_named_by_key_and_line_and_never_repeated(tmp_path):
    path = write_profile(
        tmp_path,
        f"""name = "{TOKEN}"
[hub]
token_env = "{TOKEN}"
[data]
train_csv = 'a.csv'
[eval]
templates = ["a {{}}", "{TOKEN} {{}}"]
[eval.class_names]
AMD = "{TOKEN}"
"{TOKEN}" = "glaucoma"
""",
    )
    with pytest.raises(profiles.ProfileError) as caught:
        profiles.load(path, check_files=False)
    message = str(caught.value)
    assert TOKEN[3:] not in message
    for where in (
        ":1: name",
        ":3: hub.token_env",
        ":7: eval.templates[1]",
        ":9: eval.class_names.AMD",
        ":10: eval.class_names.<a key>",
    ):
        assert f"{path}{where}: looks like a Hugging Face token" in message, message
    assert len(message.splitlines()) == 5  # nothing else: the other checks would repeat it


def test_a_token_in_any_message_is_hidden():
    problem = profiles.Problem(f"x.{TOKEN}", f"expected an integer, got 'x{TOKEN}'")
    assert TOKEN[3:] not in problem.format(None)
    assert "hf_<hidden>" in problem.format(None)


@pytest.mark.parametrize("where", ["folder", "empty"])
def test_a_profile_path_that_is_not_a_toml_file_is_one_line(tmp_path, where):
    path = tmp_path / "p.toml"
    if where == "folder":
        path.mkdir()
    else:
        path.write_text("")
    with pytest.raises(UserError) as caught:
        profiles.load(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    expected = "is a folder: give the profile's TOML file" if where == "folder" else "required"
    assert expected in message


def test_a_byte_order_mark_is_dropped_and_lines_still_count(tmp_path):
    # Windows editors save UTF-8 with a BOM; tomllib alone rejects it at line 1.
    path = tmp_path / "profile.toml"
    path.write_bytes(b'\xef\xbb\xbfname = "bom"\n[data]\nimage_size = "big"\n')
    with pytest.raises(profiles.ProfileError, match=r"profile.toml:3: data.image_size"):
        profiles.load(path, check_files=False)
    path.write_bytes(b'\xef\xbb\xbfname = "bom"\n[data]\ntrain_csv = "a.csv"\ntest_csv = "b.csv"\n')
    assert profiles.load(path, check_files=False).name == "bom"


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_device_is_no_profile(device):
    with pytest.raises(UserError, match=f"{device} is not a regular file"):
        profiles.load(device, check_files=False)
