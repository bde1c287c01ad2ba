"""Skip GRU: the Campos et al. 2018 binary state-update gate around the GRU (see skip.py).

Parameters: the GRU's 3·(h·(h + x) + 2·h) plus h + 1 (W_p, b_p).
"""
from __future__ import annotations

from variants.gru import GRU
from variants.lstm import GATED_SEARCH_SPACE
from variants.registry import register
from variants.skip import SKIP_SEARCH_SPACE, SkipMixin


@register
class SkipGRU(SkipMixin, GRU):
    name = "skip_gru"
    state_names = ("h", "u_tilde", "updates")
    paths = ("fast", "explicit")
    search_space = {**GATED_SEARCH_SPACE, **SKIP_SEARCH_SPACE}

    def __init__(self, input_size: int, hidden_size: int, options=None):
        super().__init__(input_size, hidden_size, options)
        self._init_skip()
