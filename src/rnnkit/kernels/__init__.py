"""Backends that run a whole layer; ``dispatch`` holds their one ordered table."""
from .dispatch import BACKENDS, choose_backend, native_unsupported, torch_unsupported

__all__ = ["BACKENDS", "choose_backend", "torch_unsupported", "native_unsupported"]
