"""Task models: each maps a batch to outputs and owns no training arguments."""

from rnnkit.models.blocks import BlockStack, GriffinBlock, MambaBlock
from rnnkit.models.lm import LanguageModel, LMConfig, detach_state

__all__ = ["LanguageModel", "LMConfig", "detach_state", "GriffinBlock", "MambaBlock",
           "BlockStack"]
