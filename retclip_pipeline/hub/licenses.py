"""The license identifiers a model card's `license:` takes on the Hugging Face Hub (its
documentation's list, docs/hub/repositories-licenses; huggingface_hub carries none). A
license outside it is `other`, with its text in the repo."""

from __future__ import annotations

from difflib import get_close_matches

from ..errors import UserError

LICENSES = (
    "apache-2.0",
    "mit",
    "openrail",
    "bigscience-openrail-m",
    "creativeml-openrail-m",
    "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m",
    "afl-3.0",
    "artistic-2.0",
    "bsl-1.0",
    "bsd",
    "bsd-2-clause",
    "bsd-3-clause",
    "bsd-3-clause-clear",
    "c-uda",
    "cc",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-2.5",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cc-by-nc-2.0",
    "cc-by-nc-3.0",
    "cc-by-nc-4.0",
    "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0",
    "cdla-permissive-1.0",
    "cdla-permissive-2.0",
    "wtfpl",
    "ecl-2.0",
    "epl-1.0",
    "epl-2.0",
    "etalab-2.0",
    "eupl-1.1",
    "agpl-3.0",
    "gfdl",
    "gpl",
    "gpl-2.0",
    "gpl-3.0",
    "lgpl",
    "lgpl-2.1",
    "lgpl-3.0",
    "isc",
    "lppl-1.3c",
    "ms-pl",
    "mpl-2.0",
    "odc-by",
    "odbl",
    "openrail++",
    "osl-3.0",
    "postgresql",
    "ofl-1.1",
    "ncsa",
    "unlicense",
    "zlib",
    "pddl",
    "lgpl-lr",
    "deepfloyd-if-license",
    "llama2",
    "gemma",
    "unknown",
    "other",
)


def check_license(value: str) -> str:
    """The hub's identifier for `value` (case aside: "Apache-2.0" is apache-2.0); a
    UserError naming the closest identifiers when the hub does not know it."""
    name = value.strip().lower()
    if name in LICENSES:
        return name
    close = get_close_matches(name, LICENSES, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise UserError(
        f"--license {value!r} is not a Hugging Face license identifier: {hint}use one of the "
        f"hub's ids (apache-2.0, mit, cc-by-4.0, cc-by-nc-4.0, ...: "
        f"https://huggingface.co/docs/hub/repositories-licenses), or other for the data "
        f"set's own terms"
    )
