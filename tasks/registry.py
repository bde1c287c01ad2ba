"""The task registry. Plugins join through the `rnn_harness.tasks` entry point group."""
from harness.registry import Registry

REGISTRY: Registry = Registry("task", entry_point_group="rnn_harness.tasks")
register = REGISTRY.register
