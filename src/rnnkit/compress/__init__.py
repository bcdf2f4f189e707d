"""Compression for deployment: magnitude pruning with fine-tuning, dynamic int8 quantisation.

::

    rnnkit prune CKPT --amounts 0.5,0.7,0.9 --scope global,layer --finetune-steps 100
                 --out runs/prune
    rnnkit quantize CKPT --out runs/quant            # float vs int8: metric, size, speed

Python::

    from rnnkit.compress import prune_model, make_permanent, quantize_dynamic
    targets = prune_model(model, 0.8, scope="global")   # input + recurrent weights of rnnkit layers
    make_permanent(targets)
    qmodel, report = quantize_dynamic(model)            # int8 LSTM/GRU/Linear for CPU inference
"""

from rnnkit.compress.prune import make_permanent, prunable_weights, prune_model, sparsity
from rnnkit.compress.quantize import (
           TorchRecurrent,
           model_bytes,
           quantize_dynamic,
           to_torch_recurrent,
)
from rnnkit.compress.study import load_task, prune_table, quantize_report, table_markdown

__all__ = ["prune_model", "prunable_weights", "sparsity", "make_permanent", "quantize_dynamic",
           "to_torch_recurrent", "TorchRecurrent", "model_bytes", "load_task", "prune_table",
           "quantize_report", "table_markdown"]
