"""Skip LSTM: the Campos et al. 2018 binary state-update gate around the LSTM (see skip.py).

Parameters: the LSTM's 4·h·(h + x) + 4·h plus h + 1 (W_p, b_p).
"""
from __future__ import annotations

from variants.lstm import GATED_SEARCH_SPACE, LSTM
from variants.registry import register
from variants.skip import SKIP_SEARCH_SPACE, SkipMixin


@register
class SkipLSTM(SkipMixin, LSTM):
    name = "skip_lstm"
    state_names = ("h", "c", "u_tilde", "updates")
    paths = ("fast", "explicit")
    search_space = {**GATED_SEARCH_SPACE, **SKIP_SEARCH_SPACE}

    def __init__(self, input_size: int, hidden_size: int, options=None):
        super().__init__(input_size, hidden_size, options)
        self._init_skip()
