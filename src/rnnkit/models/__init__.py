"""Task models: each maps a batch to outputs and owns no training arguments."""

from rnnkit.models.blocks import BlockStack, GriffinBlock, MambaBlock
from rnnkit.models.lm import LanguageModel, LMConfig, detach_state
from rnnkit.models.sequence import BidirectionalBlockStack, build_sequence_layer

__all__ = ["LanguageModel", "LMConfig", "detach_state", "GriffinBlock", "MambaBlock",
           "BlockStack", "BidirectionalBlockStack", "build_sequence_layer"]
