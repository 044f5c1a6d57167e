"""The run's state file: what each stage finished and with which settings, and a heartbeat.

Written atomically; a killed run leaves either the previous or the new state, never half.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_json

STATE_FILE = "state.json"


@dataclass
class RunState:
    path: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    heartbeat: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, workdir: Path) -> RunState:
        path = workdir / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except json.JSONDecodeError:
            # Only our atomic writer touches it, so this is someone's hand edit: start afresh.
            return cls(path)
        return cls(path, data.get("stages", {}), data.get("heartbeat", {}))

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
        self.beat(stage)

    def forget(self, stage: str) -> None:
        self.stages.pop(stage, None)

    def beat(self, stage: str | None) -> None:
        self.heartbeat = {"time": time.time(), "stage": stage, "pid": os.getpid()}
        self.save()
