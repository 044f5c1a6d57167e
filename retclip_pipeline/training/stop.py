"""Stopping at a step: Ctrl-C or SIGTERM (the wizard's stop) asks training to stop after
the step under way, which it then saves; a second one stops at once. DataLoader workers
leave the signal to the trainer. And what to change when a non-finite loss stops it."""

from __future__ import annotations

from typing import Any


class StopRequest:
    """While training: Ctrl-C or SIGTERM (the wizard's stop) asks for a stop after the
    current step, which then saves where it is; a second one stops at once."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.asked = False
        self.previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __enter__(self) -> StopRequest:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self.previous[number] = signal.signal(number, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous.clear()


def ignore_interrupts(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the trainer (see StopRequest)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def nan_advice(train: Any) -> str:
    """What to change after a non-finite loss: the keys that size a step, the weight decay
    named first when it is above the usual range (it was never named)."""
    keys = "train.lr"
    if train.weight_decay > 0.1:
        keys = f"train.weight_decay (now {train.weight_decay}) or train.lr"
    return f'Lower {keys}, or use train.precision = "bf16" or "fp32"'
