"""Old import path of metateleport.learned (the coordinatewise LSTMs and LearnedOptimizer)."""

from .learned import *  # noqa: F403
from .learned import M1_STATE_ON_TELE, __all__  # noqa: F401
