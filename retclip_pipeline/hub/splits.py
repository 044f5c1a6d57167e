"""Opening the profile's data set splits: a hub data set as parquet shards (parquet.py and
shards.py), a local one through `datasets` (local.py)."""

from __future__ import annotations

from ..events import Emitter
from ..profile import Profile
from .local import SplitSource, open_local_splits


def open_splits(
    profile: Profile, splits: list[str], emit: Emitter | None = None, fetch: str | None = None
) -> dict[str, SplitSource]:
    """The named splits of the profile's data set (`fetch` overrides the profile's fetch
    mode for a hub data set)."""
    kind, where = profile.dataset_source()
    wanted = list(dict.fromkeys(splits))
    if profile.data.join == "file" and kind == "local":
        from .files import open_file_splits

        return open_file_splits(where, wanted)
    if kind == "hub":
        from .parquet import open_hub_splits

        emit = emit or Emitter(lambda event: None, "hub")
        return open_hub_splits(profile, where, wanted, emit, fetch)
    return open_local_splits(profile, kind, where, wanted)
