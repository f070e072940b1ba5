"""The authors' journal-era DDU-Net training scheme, as a reference row of the throughput benchmark.

Written by us from its description (reference/official_code_and_tools.md 1.4), not copied: one process holds
k deep copies ("clones") of the encoder-decoder, one per subimage position; after the backward pass every
clone's gradients are added into clone 0's and dropped, Adam steps clone 0 (and the coarse network), and
``load_state_dict`` copies clone 0 back into every other clone. Mathematically this is one shared-weight
module applied once per subimage position (our ``_NP`` spec, ``norm_stats="position"``), which the tests
check; it exists here only so that "ours vs the paper's scheme" is timed in the same run on the same machine.
The BatchNorm running statistics differ (clone 0 keeps only position 0's), as in the authors' code.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..data.tiling import split_subimages, stitch_subimages
from ..errors import ModelSpecError
from ..models.ddunet import DDUNet


class ClonedDDUNet(nn.Module):
    """DDU-Net run as ``positions`` cloned encoder-decoders (clone 0 is ``model``'s own modules)."""

    def __init__(self, model: DDUNet, positions: int) -> None:
        super().__init__()
        if not isinstance(model, DDUNet):
            raise ModelSpecError(f"the authors' clone scheme applies to the U-Net DDU-Net, not {type(model).__name__}")
        self.model = model
        self.positions = positions
        self.encoders = nn.ModuleList([model.encoder, *(copy.deepcopy(model.encoder) for _ in range(positions - 1))])
        decoder = nn.Sequential(model.decoder, model.head)
        self.decoders = nn.ModuleList([decoder, *(copy.deepcopy(decoder) for _ in range(positions - 1))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.model.grid(x)
        if grid[0] * grid[1] != self.positions:
            raise ModelSpecError(f"input of {grid[0]}x{grid[1]} subimages for {self.positions} clones")
        tiles = split_subimages(x, grid).unflatten(0, (-1, self.positions))
        levels = [encoder(tiles[:, p]) for p, encoder in enumerate(self.encoders)]
        bottleneck = torch.stack([features[-1] for features in levels], dim=1).flatten(0, 1)
        exchanged = self.model.exchange(bottleneck, grid).unflatten(0, (-1, self.positions))
        outputs = [decoder([*features[:-1], exchanged[:, p]]) for p, (decoder, features)
                   in enumerate(zip(self.decoders, levels))]
        return stitch_subimages(torch.stack(outputs, dim=1).flatten(0, 1), grid)

    def optimised_parameters(self) -> list[nn.Parameter]:
        """What the authors' Adam holds: clone 0's encoder-decoder and the coarse network."""
        coarse = [] if self.model.coarse is None else list(self.model.coarse.parameters())
        return [*self.encoders[0].parameters(), *self.decoders[0].parameters(), *coarse]

    @torch.no_grad()
    def sum_gradients_into_clone_zero(self) -> None:
        """Add every other clone's gradients into clone 0's and drop them."""
        for clones in (self.encoders, self.decoders):
            for clone in clones[1:]:
                for target, source in zip(clones[0].parameters(), clone.parameters()):
                    if source.grad is None:
                        continue
                    if target.grad is None:
                        target.grad = source.grad.clone()
                    else:
                        target.grad += source.grad
                    source.grad = None

    def broadcast_clone_zero(self) -> None:
        """Copy clone 0's weights and buffers into every other clone (``load_state_dict``, as the authors)."""
        for clones in (self.encoders, self.decoders):
            state = clones[0].state_dict()
            for clone in clones[1:]:
                clone.load_state_dict(state)
