"""The collectives of spatially parallel DDU-Net, with the gradients each one needs.

- :func:`gather_batch`: all-gather along dim 0, differentiable (the backward sums every rank's gradient
  for a chunk and hands it to the chunk's owner). Used for the bottleneck exchange. Only the public,
  long-standing ``all_gather`` and ``all_reduce`` are used (gloo and NCCL, every supported torch).
- :func:`sum_across_ranks`: all-reduce SUM whose backward is the identity. Used for loss terms that
  every rank then feeds into the same function: rank r backpropagates only the part of the loss that
  flows through its own local terms, so summing parameter gradients over ranks gives exactly the
  single-process gradient.
- :func:`all_reduce_gradients`, :func:`average_buffers`, :func:`broadcast_state`: keep replicas identical.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _GatherBatch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        chunks = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(chunks, x)
        return torch.cat(chunks)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total.chunk(dist.get_world_size())[dist.get_rank()]


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0 (rank order), with autograd."""
    return _GatherBatch.apply(x.contiguous())


class _SumAcrossRanks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        total = x.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return grad


def sum_across_ranks(x: torch.Tensor) -> torch.Tensor:
    """All-reduce SUM with an identity backward (see the module docstring for why that is exact)."""
    return _SumAcrossRanks.apply(x)


def all_reduce_gradients(module: nn.Module) -> None:
    """Sum the parameter gradients over ranks, in one flat buffer (one collective per step)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def average_buffers(module: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks."""
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1) for b in buffers])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for buffer in buffers:
        buffer.copy_(flat[offset : offset + buffer.numel()].view_as(buffer))
        offset += buffer.numel()


def broadcast_state(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src)
