"""The run's state file: what each stage finished and with which settings, and a heartbeat.

Written atomically; a killed run leaves either the previous or the new state, never half.
Each finished stage also leaves a receipt (.receipts/<stage>.json: its fingerprint and
summary), so that a state file lost or damaged by hand is rebuilt from them instead of
taken for an empty run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_json
from .errors import UserError
from .layout import STATE_FILE

RECEIPTS = ".receipts"


@dataclass
class RunState:
    path: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    heartbeat: dict[str, Any] = field(default_factory=dict)
    rebuilt: str = ""  # why the state came from the receipts, when it did

    @classmethod
    def load(cls, workdir: Path) -> RunState:
        """The state file, checked: entries that are not a stage's record are dropped, and
        a finished stage's receipt stands where the file lacks it or says otherwise (valid
        JSON edited by hand, or a kill between the receipt and the state file)."""
        path = workdir / STATE_FILE
        receipts = _receipts(workdir)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("stages", {}), dict):
                raise ValueError("not a state object")
        except FileNotFoundError:
            why = "state.json is missing"
        except OSError as exc:  # a folder, or unreadable: not ours to remove
            raise UserError(
                f"cannot read {path} ({exc.strerror}): move it away; the state is then "
                f"rebuilt from the finished stages' receipts ({RECEIPTS}/)"
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            why = f"state.json is damaged ({type(exc).__name__})"
        else:
            stages = {k: v for k, v in data.get("stages", {}).items() if _is_entry(v)}
            heartbeat = data.get("heartbeat", {})
            differ = sorted(
                name
                for name, receipt in receipts.items()
                if _said(stages.get(name)) != _said(receipt)
            )
            dropped = len(stages) != len(data.get("stages", {}))
            stages |= {name: receipts[name] for name in differ}
            why = f"state.json disagrees with the receipts of {', '.join(differ)}" if differ else ""
            if dropped and not why:
                why = "state.json holds entries that are not a stage's record"
            return cls(path, stages, heartbeat if isinstance(heartbeat, dict) else {}, why)
        return cls(path, receipts, {}, why if receipts else "")

    def save(self) -> None:
        write_json(self.path, {"stages": self.stages, "heartbeat": self.heartbeat})

    def status(self, stage: str) -> str | None:
        return self.stages.get(stage, {}).get("status")

    def mark(self, stage: str, status: str, fingerprint: str, **extra: Any) -> None:
        entry = self.stages.setdefault(stage, {})
        entry.update(status=status, fingerprint=fingerprint, updated_at=time.time(), **extra)
        if status == "running":
            entry.pop("error", None)
            entry.setdefault("started_at", time.time())
        receipt = self.path.parent / RECEIPTS / f"{stage}.json"
        if status == "done":
            entry.pop("earlier", None)  # what a cut-off run's checkpoint carried: used now
            write_json(receipt, entry)
        else:
            receipt.unlink(missing_ok=True)
        self.beat(stage)

    def take_over(self, prints: dict[str, str], earlier: dict[str, str]) -> list[str]:
        """Stages recorded with the fingerprint an earlier version made for these same
        settings (`earlier`), recorded again with the current one (`prints`), so that the run
        folder can move from now on. A cut-off stage keeps the earlier one as `earlier`: its
        checkpoint still carries it (training.checkpoint.made_here). Returns their names."""
        taken = []
        for name, entry in list(self.stages.items()):
            said, status = entry.get("fingerprint"), entry.get("status")
            if said == earlier.get(name) != prints.get(name):
                kept = {k: v for k, v in entry.items() if k not in ("status", "fingerprint")}
                kept.pop("updated_at", None)
                if status != "done":
                    kept["earlier"] = said
                self.mark(name, status, prints[name], **kept)
                taken.append(name)
        return taken

    def forget(self, stage: str) -> None:
        self.stages.pop(stage, None)
        (self.path.parent / RECEIPTS / f"{stage}.json").unlink(missing_ok=True)

    def beat(self, stage: str | None) -> None:
        self.heartbeat = {"time": time.time(), "stage": stage, "pid": os.getpid()}
        self.save()


def _is_entry(entry: Any) -> bool:
    """A stage's record: a status and a fingerprint, both text."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("status"), str)
        and isinstance(entry.get("fingerprint"), str)
    )


def _said(entry: dict[str, Any] | None) -> tuple[Any, Any]:
    return (entry or {}).get("status"), (entry or {}).get("fingerprint")


def _receipts(workdir: Path) -> dict[str, dict[str, Any]]:
    stages = {}
    for receipt in sorted((workdir / RECEIPTS).glob("*.json")):
        try:
            entry = json.loads(receipt.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        if _is_entry(entry) and entry.get("status") == "done":
            stages[receipt.stem] = entry
    return stages
