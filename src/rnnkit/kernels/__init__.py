"""Backends that run a whole layer; ``dispatch.choose_backend`` picks one."""
from .dispatch import choose_backend, native_unsupported

__all__ = ["choose_backend", "native_unsupported"]
