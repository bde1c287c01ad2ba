"""The variant registry. Plugins join through the `rnn_harness.variants` entry point group."""
from harness.registry import Registry

REGISTRY: Registry = Registry("variant", entry_point_group="rnn_harness.variants")
register = REGISTRY.register
