"""BatchNorm with statistics over every rank's subimages, on CPU (gloo) and GPU alike.

torch's ``nn.SyncBatchNorm`` runs only on accelerators, but our tests and CPU users need the same
semantics on gloo. Each rank computes the count, mean and centred sum of squares of its own subimages;
these are all-gathered and combined exactly (Chan et al.'s parallel variance) in the forward of a
hand-written autograd function, whose backward all-reduces two per-channel sums, so the forward and
backward equal BatchNorm over the whole global batch. Parameter and buffer names are those
of ``nn.BatchNorm2d``, so checkpoints load into the single-process model unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .collectives import gather_batch


def _stats_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16 cannot hold a count above 65504 nor large sums: statistics in float32 (float64 stays float64)."""
    return torch.promote_types(dtype, torch.float32)


class _SyncBatchNorm(torch.autograd.Function):
    """Training-mode BatchNorm over every rank's batch that keeps only what ``nn.BatchNorm2d`` keeps for
    backward: the input and two per-channel vectors; backward all-reduces two per-channel sums. Written here
    because torch's ``SyncBatchNorm`` kernels are CUDA-only; composed from autograd operations it kept three
    more full-size tensors per layer (+49% of a rank's training peak, thesis Fig. 6.9)."""

    @staticmethod
    def forward(ctx, x, weight, bias, bn):  # type: ignore[no-untyped-def]  # noqa: D102
        channels = x.shape[1]
        stats = x.to(_stats_dtype(x.dtype))
        local_mean = stats.mean(dim=(0, 2, 3))
        local_m2 = ((stats - local_mean.view(1, -1, 1, 1)) ** 2).sum(dim=(0, 2, 3))
        counts = torch.full((1, 1), float(x.numel() // channels), dtype=stats.dtype, device=x.device)
        gathered = gather_batch(torch.cat([counts, local_mean.unsqueeze(0), local_m2.unsqueeze(0)], dim=1))
        n, means, m2s = gathered[:, :1], gathered[:, 1 : channels + 1], gathered[:, channels + 1 :]
        total = n.sum()
        mean = (n * means).sum(0) / total  # Chan et al.'s exact combination of the ranks' statistics
        var = (m2s + n * (means - mean) ** 2).sum(0) / total
        bn.num_batches_tracked += 1
        bn.running_mean.lerp_(mean, bn.momentum)
        bn.running_var.lerp_(var * total / (total - 1), bn.momentum)
        invstd = torch.rsqrt(var + bn.eps)
        shape = (1, channels, 1, 1)
        normalised = (stats - mean.view(shape)) * invstd.view(shape)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.total = total
        return (normalised * weight.view(shape) + bias.view(shape)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]  # noqa: D102
        x, weight, mean, invstd = ctx.saved_tensors
        shape = (1, -1, 1, 1)
        dy = grad.to(mean.dtype)
        normalised = (x.to(mean.dtype) - mean.view(shape)) * invstd.view(shape)
        local = torch.stack([dy.sum(dim=(0, 2, 3)), (dy * normalised).sum(dim=(0, 2, 3))])
        sums = local.clone()
        dist.all_reduce(sums)
        mean_dy, mean_dy_normalised = (sums / ctx.total).unbind(0)
        dx = (dy - mean_dy.view(shape) - normalised * mean_dy_normalised.view(shape)) * \
            (invstd * weight.to(mean.dtype)).view(shape)
        # parameter gradients are this rank's share: the trainer sums them over ranks after backward
        return dx.to(x.dtype), local[1].to(weight.dtype), local[0].to(weight.dtype), None


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics cover the whole global batch of subimages."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        if not self.affine or not self.track_running_stats:
            raise NotImplementedError("SyncBatchNorm2d needs affine BatchNorm with running statistics")
        return _SyncBatchNorm.apply(x, self.weight, self.bias, self)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` inside ``module`` by :class:`SyncBatchNorm2d`, keeping its state.

    The state includes which parameters are frozen (``requires_grad``) and the training mode.
    """
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats, device=child.weight.device,
                                     dtype=child.weight.dtype)
            synced.load_state_dict(child.state_dict())
            for param_name, parameter in child.named_parameters(recurse=False):
                getattr(synced, param_name).requires_grad_(parameter.requires_grad)
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            convert_batchnorm(child)
    return module
