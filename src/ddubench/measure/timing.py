"""Wall-clock timing of training steps with warm-up and repeats (median and spread, not a single run).

On CUDA the device is synchronised before and after every step, so a step's time covers its kernels and
not only their launch.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn

from ..errors import DdubenchError
from ..training.losses import DiceLoss
from .authors_scheme import ClonedDDUNet


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step_time(
    model: nn.Module, images: torch.Tensor, masks: torch.Tensor, warmup: int = 3, repeats: int = 10,
    lr: float = 0.008, scheme: ClonedDDUNet | None = None,
) -> dict[str, Any]:
    """Time forward + dice loss + backward + Adam step on one batch; returns median, quartiles, throughput.

    With ``scheme`` (``model`` is then that clone-scheme module) each step also sums the clones' gradients
    into clone 0 before Adam and copies clone 0 into the others after it, as the authors' code does.
    """
    device = images.device
    model.train()
    loss_fn = DiceLoss()
    optimizer = torch.optim.Adam(model.parameters() if scheme is None else scheme.optimised_parameters(), lr=lr)
    times = []
    for step in range(warmup + repeats):
        _synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), masks).backward()
        if scheme is not None:
            scheme.sum_gradients_into_clone_zero()
        optimizer.step()
        if scheme is not None:
            scheme.broadcast_clone_zero()
        _synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    median = statistics.median(times)
    return {
        "step_time_median_s": median,
        "step_time_q1_s": quartiles[0],
        "step_time_q3_s": quartiles[2],
        "images_per_s": images.shape[0] / median,
        "warmup": warmup,
        "repeats": repeats,
        "batch_size": images.shape[0],
    }


def measure_train_step(
    spec_text: str, k: int, subimage_size: int = 32, batch_size: int = 16, warmup: int = 3, repeats: int = 10,
    compile_model: bool = False, device: str | torch.device = "cpu", authors_scheme: bool = False,
) -> dict[str, Any]:
    """Training-step time of a model on random (32k)x32 synthetic-shaped batches on ``device``, with what was
    measured.

    ``compile_model`` times the step the way ``ddubench train --compile`` runs it (the warm-up steps
    absorb the compilation). ``authors_scheme`` times the authors' clone scheme for the same DDU-Net (eager,
    as their code ran): :class:`~ddubench.measure.authors_scheme.ClonedDDUNet`.
    """
    from ..analysis.params import count_parameters
    from ..models import ModelSpec, build_model

    if compile_model and authors_scheme:
        raise DdubenchError("the authors' clone scheme is timed eagerly, as their code ran; drop --compile")
    spec = ModelSpec.parse(spec_text)
    in_channels, num_classes = spec.io
    torch.manual_seed(0)
    model = build_model(spec, in_channels=in_channels, num_classes=num_classes,
                        subimage_size=(subimage_size, subimage_size), dropout=0.1)
    device = torch.device(device)
    model = model.to(device)
    images = torch.rand(batch_size, in_channels, subimage_size, subimage_size * k).to(device)
    masks = torch.randint(0, num_classes, (batch_size, subimage_size, subimage_size * k)).to(device)
    params = count_parameters(model)
    scheme = ClonedDDUNet(model, k) if authors_scheme else None
    if compile_model:
        from ..training.speed import compiled

        model = compiled(model)
    timing = train_step_time(scheme or model, images, masks, warmup=warmup, repeats=repeats, scheme=scheme)
    mode = "authors_scheme" if authors_scheme else "compiled" if compile_model else "eager"
    return {"spec": str(spec), "label": spec.label, "k": k, "params": params, "mode": mode,
            "threads": torch.get_num_threads(), "device": str(device), **timing}
