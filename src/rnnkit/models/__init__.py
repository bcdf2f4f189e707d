"""Task models: each maps a batch to outputs and owns no training arguments."""

from rnnkit.models.blocks import BlockStack, GriffinBlock, MambaBlock
from rnnkit.models.lm import LanguageModel, LMConfig, detach_state
from rnnkit.models.lru_block import LRUBlock
from rnnkit.models.sequence import BidirectionalBlockStack, build_sequence_layer
from rnnkit.models.xlstm_blocks import MLSTMBlock, SLSTMBlock

__all__ = ["LanguageModel", "LMConfig", "detach_state", "GriffinBlock", "MambaBlock",
           "MLSTMBlock", "SLSTMBlock", "LRUBlock", "BlockStack", "BidirectionalBlockStack",
           "build_sequence_layer"]
