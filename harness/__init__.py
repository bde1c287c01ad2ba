"""rnn-harness: a benchmark harness for recurrent cells (see README.md)."""

__version__ = "0.1.0"
