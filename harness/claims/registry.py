"""The claim registry. Plugins join through the `rnn_harness.claims` entry point group."""
from harness.registry import Registry

REGISTRY: Registry = Registry("claim", entry_point_group="rnn_harness.claims")


def register(cls):
    """Register a Claim subclass by its name; the registry stores one instance per class."""
    REGISTRY.register(cls)
    return cls
