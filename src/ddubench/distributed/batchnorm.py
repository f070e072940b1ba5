"""BatchNorm with statistics over every rank's subimages, on CPU (gloo) and GPU alike.

torch's ``nn.SyncBatchNorm`` runs only on accelerators, but our tests and CPU users need the same
semantics on gloo. Each rank computes the count, mean and centred sum of squares of its own subimages;
these are all-gathered with autograd and combined exactly (Chan et al.'s parallel variance), so the
forward and backward equal BatchNorm over the whole global batch. Parameter and buffer names are those
of ``nn.BatchNorm2d``, so checkpoints load into the single-process model unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .collectives import gather_batch


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics cover the whole global batch of subimages."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        channels = x.shape[1]
        count = x.numel() // channels
        # float16 cannot hold a count above 65504 nor large sums: reduce in float32 (float64 stays float64)
        stats = x.to(torch.promote_types(x.dtype, torch.float32))
        local_mean = stats.mean(dim=(0, 2, 3))
        local_m2 = ((stats - local_mean.view(1, -1, 1, 1)) ** 2).sum(dim=(0, 2, 3))
        counts = torch.full((1, 1), float(count), dtype=stats.dtype, device=x.device)
        gathered = gather_batch(torch.cat([counts, local_mean.unsqueeze(0), local_m2.unsqueeze(0)], dim=1))
        n, means, m2s = gathered[:, :1], gathered[:, 1 : channels + 1], gathered[:, channels + 1 :]
        total = n.sum()
        mean = (n * means).sum(0) / total
        var = (m2s + n * (means - mean) ** 2).sum(0) / total
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * total / (total - 1), self.momentum)
        shape = (1, channels, 1, 1)
        normalised = (stats - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return (normalised * self.weight.view(shape) + self.bias.view(shape)).to(x.dtype)


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
