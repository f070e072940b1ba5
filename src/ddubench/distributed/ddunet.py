"""DDU-Net across ranks: each rank owns a contiguous block of subimages and one encoder-decoder replica.

Forward on rank r: take the rank's subimages of every image in the batch -> encoder -> all-gather the
last F bottleneck channels of all subimages (differentiable) -> the coarse network runs redundantly on
every rank over the stitched global map (C = Y) or on the local subimages (C = N) -> keep the rank's own
block -> decoder -> local logits. Running the small coarse network on every rank costs one all-gather
and no scatter; gathering to one rank would need a gather and a scatter and leave that rank with extra
work and memory.

BatchNorm (``bn``):
- ``"sync"`` (default): statistics over all ranks' subimages (:class:`SyncBatchNorm2d`), so training is
  exactly the single-process DDU-Net. The coarse network over the gathered map (C = Y) already sees the
  global batch on every rank and keeps plain BatchNorm.
- ``"local"``: each rank normalises with its own subimages' statistics (what per-device clones do);
  running statistics are averaged over ranks after every step so all replicas stay identical. Outputs in
  training mode then differ from one device; in eval mode they are the same.

The module has the single-process model's parameter and buffer names, so ``state_dict()`` loads into
:class:`~ddubench.models.DDUNet` and back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..data.tiling import grid_shape, split_subimages, stitch_subimages
from ..errors import ModelSpecError
from ..models.ddunet import DDUNetBase, replace_shared_maps
from .batchnorm import convert_batchnorm
from .collectives import gather_batch
from .runtime import DistContext, owned_subimages

BN_MODES = ("sync", "local")


class DistributedDDUNet(nn.Module):
    """One rank's share of a DDU-Net (U-Net or ResNet variant); built from a single-process model
    (weights shared)."""

    def __init__(self, model: DDUNetBase, ctx: DistContext, bn: str = "sync") -> None:
        super().__init__()
        if bn not in BN_MODES:
            raise ModelSpecError(f"unknown BatchNorm mode {bn!r}; use one of {', '.join(BN_MODES)}")
        if getattr(model, "norm_stats", "shared") != "shared":  # the ranks would silently share the statistics
            raise ModelSpecError("BatchNorm statistics per subimage position (_NP) are a single-process protocol "
                                 "option; run that model without torchrun or drop _NP")
        self.ctx = ctx
        self.bn = bn
        self.features = model.features
        self.communicate = model.communicate
        self.subimage_size = model.subimage_size
        self.encoder, self.coarse, self.decoder, self.head = model.encoder, model.coarse, model.decoder, model.head
        if bn == "sync":
            for part in (self.encoder, self.decoder):
                convert_batchnorm(part)
            if self.coarse is not None and not self.communicate:
                convert_batchnorm(self.coarse)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns of subimages of an image of this size."""
        return grid_shape(height, width, self.subimage_size)

    def local_tiles(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's subimages of every image in ``x`` (B, C, H, W) -> (B * n_local, C, h, w)."""
        grid = self.grid(*x.shape[-2:])
        tiles = split_subimages(x if x.dim() == 4 else x.unsqueeze(1), grid)
        n = grid[0] * grid[1]
        own = owned_subimages(n, self.ctx)
        tiles = tiles.reshape(x.shape[0], n, *tiles.shape[1:])[:, own]
        tiles = tiles.reshape(-1, *tiles.shape[2:])
        return tiles if x.dim() == 4 else tiles.squeeze(1)

    def local_target(self, masks: torch.Tensor) -> torch.Tensor:
        """This rank's part of the (B, H, W) masks, in the order of the local logits."""
        return self.local_tiles(masks)

    def _exchange(self, bottleneck: torch.Tensor, batch: int, grid: tuple[int, int]) -> torch.Tensor:
        def communicate(shared: torch.Tensor) -> torch.Tensor:
            local = shared.reshape(batch, -1, *shared.shape[1:])
            gathered = gather_batch(local.transpose(0, 1).contiguous())  # (n, B, F, b, b) in rank order
            everything = gathered.transpose(0, 1).reshape(-1, *shared.shape[1:])
            with self._same_dropout_on_every_rank():
                mixed = split_subimages(self.coarse(stitch_subimages(everything, grid)), grid)
            own = owned_subimages(grid[0] * grid[1], self.ctx)
            return mixed.reshape(batch, -1, *shared.shape[1:])[:, own].reshape(-1, *shared.shape[1:])

        return replace_shared_maps(self, bottleneck, communicate)

    @contextlib.contextmanager
    def _same_dropout_on_every_rank(self) -> Iterator[None]:
        """Draw the replicated coarse network's dropout masks alike on every rank.

        The coarse network over the gathered map runs once per rank but stands for one network: with each
        rank's own dropout stream its outputs, and its BatchNorm running statistics, drifted apart between
        ranks. In training with dropout, rank 0 draws a seed from its own (checkpointed) generator and
        broadcasts it; every rank runs the coarse network under that seed and then resumes its own stream.
        """
        dropping = self.training and any(isinstance(m, nn.Dropout2d) and m.p > 0 for m in self.coarse.modules())
        if not dropping:
            yield
            return
        seed = torch.randint(2**62, (1,)) if self.ctx.rank == 0 else torch.zeros(1, dtype=torch.int64)
        seed = seed.to(self.ctx.device)
        dist.broadcast(seed, src=0)
        devices = [self.ctx.device] if self.ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=self.ctx.device.type):
            torch.manual_seed(int(seed.item()))
            yield

    def forward_local(self, tiles: torch.Tensor, batch: int, grid: tuple[int, int]) -> torch.Tensor:
        """Logits of this rank's subimages, given only them (what a memory-frugal loader would feed)."""
        features = self.encoder(tiles)
        features[-1] = self._exchange(features[-1], batch, grid)
        return self.head(self.decoder(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Full images in, this rank's logit tiles out: (B, C, H, W) -> (B * n_local, classes, h, w)."""
        return self.forward_local(self.local_tiles(x), x.shape[0], self.grid(*x.shape[-2:]))

    @torch.no_grad()
    def gather_output(self, local_logits: torch.Tensor, batch: int, grid: tuple[int, int]) -> torch.Tensor:
        """Stitch every rank's logit tiles into full-image logits (B, classes, H, W) on every rank, for inference
        (not differentiable: a loss on it, computed alike on every rank, would count each gradient once per rank)."""
        n_local = local_logits.shape[0] // batch
        local = local_logits.reshape(batch, n_local, *local_logits.shape[1:]).transpose(0, 1).contiguous()
        everything = gather_batch(local).transpose(0, 1).reshape(-1, *local_logits.shape[1:])
        return stitch_subimages(everything, grid)
