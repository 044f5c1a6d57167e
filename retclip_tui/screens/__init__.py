"""One module a wizard step."""

from __future__ import annotations


def make(step: str):
    from .data import DataScreen
    from .evaluate import EvaluateScreen
    from .prepare import PrepareScreen
    from .save import SaveScreen
    from .sizing import SizingScreen
    from .start import StartScreen
    from .token import TokenScreen
    from .train import TrainScreen

    screens = {
        "start": StartScreen,
        "token": TokenScreen,
        "data": DataScreen,
        "sizing": SizingScreen,
        "prepare": PrepareScreen,
        "train": TrainScreen,
        "evaluate": EvaluateScreen,
        "save": SaveScreen,
    }
    return screens[step]()
