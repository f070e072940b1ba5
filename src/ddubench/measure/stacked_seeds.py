"""Several seeds of one model trained in one process: the weights of S models stacked with
``torch.func.stack_module_state`` and one ``vmap``-ed functional call per step (convolutions with a batch of
weights run as grouped convolutions underneath).

Issue 13 asks whether this trains more models per hour than separate jobs; the throughput benchmark times its
step (``measure step-time --stacked-seeds S``) beside the single model's in the same run. Each seed keeps its
own weights, BatchNorm statistics and Adam moments (Adam is elementwise, so one Adam over the stacked tensors is
S separate Adams); the tests check that one stacked step equals S separate steps.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class StackedSeeds(nn.Module):
    """S models of one architecture as one module: input (S, B, C, H, W) -> output (S, B, ...)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        params, buffers = stack_module_state(list(models))
        self.param_names, self.buffer_names = list(params), list(buffers)
        self.stacked = nn.ParameterList(nn.Parameter(params[name].detach().clone()) for name in self.param_names)
        for index, name in enumerate(self.buffer_names):
            self.register_buffer(f"buffer{index}", buffers[name].clone())
        # the architecture without storage; kept out of the module tree so it never moves or saves
        self._architecture = (copy.deepcopy(models[0]).to("meta"),)

    def _buffers_by_name(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"buffer{index}") for index, name in enumerate(self.buffer_names)}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        architecture = self._architecture[0].train(self.training)

        def one(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(architecture, (params, buffers), (x,))

        return vmap(one, randomness="different")(dict(zip(self.param_names, self.stacked)), self._buffers_by_name(),
                                                  images)

    def state_dict_of(self, seed: int) -> dict[str, torch.Tensor]:
        """The ordinary state dict of seed ``seed``'s model."""
        state = {name: param[seed].detach().clone() for name, param in zip(self.param_names, self.stacked)}
        state.update({name: buffer[seed].clone() for name, buffer in self._buffers_by_name().items()})
        return state
