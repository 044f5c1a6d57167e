"""Questions the wizard asks before it does something a user may not expect."""

from .question import Question

__all__ = ["Question"]
