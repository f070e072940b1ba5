"""Inference memory and time of any registered model on one device (journal Table 7's single-device rows).

The same protocol as the multi-rank DDU-Net measurement in :mod:`ddubench.measure.scaling`, so single- and
multi-device rows of one table are comparable: random weights (memory and time need no training), batch 1,
``torch.inference_mode``, one pass under the peak-memory probe of :mod:`ddubench.measure.memory`, then
warm-up passes and timed repeats with the device synchronised around each.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from ..analysis.params import count_parameters
from ..models import ModelSpec, build_model
from .memory import peak_memory


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_passes(forward: Callable[[], object], synchronize: Callable[[], None], warmup: int, repeats: int
                 ) -> dict[str, float]:
    """Run ``forward`` ``warmup`` times untimed, then time ``repeats`` passes between ``synchronize`` calls."""
    for _ in range(warmup):
        forward()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        forward()
        synchronize()
        times.append(time.perf_counter() - start)
    return time_summary(times)


def time_summary(times: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (the paper's "average ± std") plus median and quartiles."""
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
    return {
        "time_mean_s": statistics.fmean(times),
        "time_std_s": statistics.stdev(times) if len(times) > 1 else 0.0,
        "time_median_s": statistics.median(times),
        "time_q1_s": quartiles[0],
        "time_q3_s": quartiles[2],
    }


def measure_model(
    spec: str, height: int, width: int, device: str | torch.device = "cpu", subimage_size: int | None = None,
    warmup: int = 1, repeats: int = 3, seed: int = 0,
) -> dict[str, Any]:
    """Peak inference memory and forward times of ``spec`` on one (height x width) image on ``device``.

    ``subimage_size`` (default: the whole image) is what DDU-Nets split the image into; other models
    ignore it. The record has the fields of :func:`ddubench.measure.scaling.measure_rank` (rank 0 of one).
    """
    device = torch.device(device)
    parsed = ModelSpec.parse(spec)
    in_channels, num_classes = parsed.io
    size = subimage_size or height
    torch.manual_seed(seed)
    model = build_model(parsed, in_channels=in_channels, num_classes=num_classes,
                        subimage_size=(size, size if subimage_size else width)).to(device).eval()
    image = torch.rand(1, in_channels, height, width, device=device)

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            return model(image)

    memory = peak_memory(forward, device, external=[model, image])
    timing = timed_passes(forward, lambda: _synchronize(device), warmup, repeats)
    return {
        "rank": 0,
        "world_size": 1,
        "spec": str(parsed),
        "label": parsed.label,
        "params": count_parameters(model),
        "height_px": height,
        "width_px": width,
        "subimage_size": subimage_size,
        "peak_mem_bytes": memory["peak_bytes"],
        "memory_method": memory["method"],
        **timing,
        "repeats": repeats,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
