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
from .stacked_seeds import StackedSeeds


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stacked_dice(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The sum over seeds of each seed's dice loss, for :class:`StackedSeeds` outputs (S, B, C, H, W)."""
    dice = DiceLoss()
    return sum(dice(logits[seed], masks[seed]) for seed in range(logits.shape[0]))


def train_step_time(
    model: nn.Module, images: torch.Tensor, masks: torch.Tensor, warmup: int = 3, repeats: int = 10,
    lr: float = 0.008, scheme: ClonedDDUNet | None = None,
) -> dict[str, Any]:
    """Time forward + dice loss + backward + Adam step on one batch; returns median, quartiles, throughput.

    With ``scheme`` (``model`` is then that clone-scheme module) each step also sums the clones' gradients
    into clone 0 before Adam and copies clone 0 into the others after it, as the authors' code does. A
    :class:`StackedSeeds` model takes (S, B, ...) batches and sums the seeds' dice losses.
    """
    device = images.device
    model.train()
    loss_fn = stacked_dice if isinstance(model, StackedSeeds) else DiceLoss()
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
        "images_per_s": images.shape[:-3].numel() / median,
        "warmup": warmup,
        "repeats": repeats,
        "batch_size": images.shape[-4],
    }


def measure_train_step(
    spec_text: str, k: int, subimage_size: int = 32, batch_size: int = 16, warmup: int = 3, repeats: int = 10,
    compile_model: bool = False, device: str | torch.device = "cpu", authors_scheme: bool = False,
    stacked_seeds: int = 1,
) -> dict[str, Any]:
    """Training-step time of a model on random (32k)x32 synthetic-shaped batches on ``device``, with what was
    measured.

    ``compile_model`` times the step the way ``ddubench train --compile`` runs it (the warm-up steps
    absorb the compilation). ``authors_scheme`` times the authors' clone scheme for the same DDU-Net (eager,
    as their code ran): :class:`~ddubench.measure.authors_scheme.ClonedDDUNet`. ``stacked_seeds`` > 1 times one
    step of that many seeds in one process (:class:`~ddubench.measure.stacked_seeds.StackedSeeds`, eager); its
    record's step time is the stacked step's divided by the seeds, the time one model's step costs that way.
    """
    from ..analysis.params import count_parameters
    from ..models import ModelSpec, build_model

    if compile_model and authors_scheme:
        raise DdubenchError("the authors' clone scheme is timed eagerly, as their code ran; drop --compile")
    if stacked_seeds > 1 and (compile_model or authors_scheme):
        raise DdubenchError("stacked seeds are timed eagerly on our model; drop --compile and --authors-scheme")
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
    if stacked_seeds > 1:
        return _stacked_record(spec, k, subimage_size, params, stacked_seeds, model, images, masks, warmup, repeats)
    timing = train_step_time(scheme or model, images, masks, warmup=warmup, repeats=repeats, scheme=scheme)
    mode = "authors_scheme" if authors_scheme else "compiled" if compile_model else "eager"
    return {"spec": str(spec), "label": spec.label, "k": k, "params": params, "mode": mode,
            "threads": torch.get_num_threads(), "device": str(device), **timing}


def _stacked_record(spec: Any, k: int, subimage_size: int, params: int, seeds: int, first: nn.Module,
                    images: torch.Tensor, masks: torch.Tensor, warmup: int, repeats: int) -> dict[str, Any]:
    """Time one step of ``seeds`` models in one process; per-model times (stacked step / seeds) in the record."""
    from ..models import build_model

    in_channels, num_classes = spec.io
    models = [first]
    for seed in range(1, seeds):
        torch.manual_seed(seed)
        models.append(build_model(spec, in_channels=in_channels, num_classes=num_classes,
                                  subimage_size=(subimage_size, subimage_size), dropout=0.1).to(images.device))
    stacked = StackedSeeds(models)
    batches = images.expand(seeds, *images.shape).contiguous()
    timing = train_step_time(stacked, batches, masks.expand(seeds, *masks.shape).contiguous(), warmup=warmup,
                             repeats=repeats)
    per_model = {key: value / seeds for key, value in timing.items() if key.startswith("step_time")}
    return {"spec": str(spec), "label": spec.label, "k": k, "params": params, "mode": f"stacked{seeds}",
            "seeds": seeds, "threads": torch.get_num_threads(), "device": str(images.device), **timing,
            **per_model, "stacked_step_time_median_s": timing["step_time_median_s"]}
