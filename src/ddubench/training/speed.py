"""Making the training step fast on the CPU: ``torch.compile`` of a model in channels-last layout.

Profiling the DDU-Net(3,16,Y) step at k = 16 on 2 CPU threads (results/train_throughput.csv) showed eager
mode spending its time in convolution backward (NCHW) or, in channels-last layout, in BatchNorm forward and
backward of the narrow (4-32 channel) layers. Inductor fuses BatchNorm, ReLU and dropout into the
surrounding kernels, which removes most of that: the step drops from about 186 ms (eager) to about 105 ms.

Shapes are static (``dynamic=False``). With PyTorch's default, the first batch of another size (the last,
smaller batch of an epoch) recompiles the graph with a symbolic batch size, and that slower graph then runs
every full batch too: measured on one thread at k = 16 (1000 training images, batch 16), the steady-state
step took 181 ms instead of 161-168 ms, and the recompile 36 s of the first epoch. A smaller remainder batch
runs eagerly instead (:meth:`~ddubench.training.trainer.Trainer` asks :func:`compiled_for`), which costs
a fraction of a second per epoch where compiling it costs about 30 s once.
"""

from __future__ import annotations

import torch
from torch import nn


def compiled(model: nn.Module) -> nn.Module:
    """``model`` moved to channels-last layout and wrapped by ``torch.compile`` with static shapes.

    The parameters stay shared with ``model``, so checkpoints keep saving ``model.state_dict()`` with its
    plain names (not the wrapper's ``_orig_mod.`` ones).
    """
    return torch.compile(model.to(memory_format=torch.channels_last), dynamic=False)


def compiled_for(batch: int, full_batch: int, model: nn.Module, compiled_model: nn.Module) -> nn.Module:
    """The compiled model for a full batch, the eager one for a smaller remainder batch (no recompile)."""
    return compiled_model if batch == full_batch else model
