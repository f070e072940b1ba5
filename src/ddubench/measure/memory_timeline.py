"""Memory over time during training (thesis Figs. 6.8 and 6.9) and the training peak against the resolution
(thesis Fig. 6.10).

On CUDA the timeline is PyTorch's own allocator recording (``torch.cuda.memory._record_memory_history`` and
``_snapshot``, the tool the thesis used): the bytes allocated after every allocation and free. On CPU there is
no allocator recording, so :class:`SampledMemTracker` follows the live tensor storages with PyTorch's
``MemTracker`` and samples them, by category (parameter, buffer, gradient, optimizer state, activation,
temporary, input), after every operator. It is written here because ``MemTracker`` keeps only the current and
the peak snapshot, not their history.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.distributed._tools.mem_tracker import MemTracker

from ..errors import DdubenchError

PHASES = ("forward", "backward", "optimizer")
CUDA_EVENTS = ("alloc", "free_completed")  # the allocator trace's actions that change the allocated bytes
CPU_TIMELINE_METHOD = ("torch.distributed._tools.mem_tracker.MemTracker sampled after every operator: bytes of live "
                       "tensor storages by category; allocator caching and oneDNN scratch excluded")
CUDA_TIMELINE_METHOD = ("torch.cuda.memory._record_memory_history: bytes allocated by the caching allocator after "
                        "every allocation and free (no categories)")


class SampledMemTracker(MemTracker):
    """``MemTracker`` that appends the device's current bytes per category after every operator, tagged with
    the training iteration and phase the caller sets."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.samples: list[dict[str, Any]] = []
        self.iteration, self.phase = 0, PHASES[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        result = super().__torch_dispatch__(func, types, args, kwargs)
        current = self.get_tracker_snapshot("current").get(self.device, {})
        self.samples.append({"iteration": self.iteration, "phase": self.phase,
                             **{str(getattr(category, "value", category)): int(value)
                                for category, value in current.items()}})
        return result


def timeline_from_cuda_snapshot(snapshot: dict[str, Any], device_index: int) -> list[dict[str, Any]]:
    """Bytes allocated after each allocation and free of one device's trace in a ``torch.cuda.memory._snapshot``,
    starting from what was allocated before the recording began (its segments' allocated blocks minus what the
    trace allocates and frees again)."""
    trace = [event for event in snapshot["device_traces"][device_index] if event["action"] in CUDA_EVENTS]
    live_now = sum(block["size"] for segment in snapshot["segments"] if segment["device"] == device_index
                   for block in segment["blocks"] if block["state"] == "active_allocated")
    deltas = [event["size"] if event["action"] == "alloc" else -event["size"] for event in trace]
    allocated = live_now - sum(deltas)
    samples = []
    for delta in deltas:
        allocated += delta
        samples.append({"Total": allocated})
    return samples


def training_timeline(
    loss: Callable[[], torch.Tensor], backward: Callable[[torch.Tensor], None], optimizer_step: Callable[[], None],
    device: torch.device, external: list[Any], iterations: int,
) -> dict[str, Any]:
    """Run ``iterations`` training steps (``loss`` forward, ``backward``, ``optimizer_step``) and record the memory
    timeline of ``device``: samples with the iteration, the phase and bytes per category (CPU) or allocated (CUDA),
    plus the iteration and phase of every sample's start as marks."""
    if iterations < 1:
        raise DdubenchError(f"--iterations {iterations}: record at least one training iteration")
    marks: list[dict[str, Any]] = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.memory._record_memory_history(max_entries=1_000_000)
        tracker: SampledMemTracker | None = None
        context: AbstractContextManager[Any] = nullcontext()
    elif device.type == "cpu":
        tracker = SampledMemTracker(device)
        tracker.track_external(*external)
        context = tracker
    else:
        raise DdubenchError(f"memory timelines on device {device} are not supported; use cpu or cuda[:N]")

    def mark(iteration: int, phase: str) -> None:
        """Tag the samples from here on with ``iteration`` and ``phase``; remember where the phase starts."""
        if tracker is not None:
            if phase == PHASES[0] and iteration:
                tracker.reset_mod_stats()  # MemTracker's per-module statistics hold one iteration; totals stay
            tracker.iteration, tracker.phase = iteration, phase
            start = len(tracker.samples)
        else:
            torch.cuda.synchronize(device)
            trace = torch.cuda.memory._snapshot()["device_traces"][device.index or 0]
            start = sum(event["action"] in CUDA_EVENTS for event in trace)
        marks.append({"iteration": iteration, "phase": phase, "sample": start})

    try:
        with context:
            for iteration in range(iterations):
                mark(iteration, "forward")
                value = loss()
                mark(iteration, "backward")
                backward(value)
                mark(iteration, "optimizer")
                optimizer_step()
        if tracker is not None:
            samples, method = tracker.samples, CPU_TIMELINE_METHOD
        else:
            torch.cuda.synchronize(device)
            samples = timeline_from_cuda_snapshot(torch.cuda.memory._snapshot(), device.index or 0)
            method = CUDA_TIMELINE_METHOD
    finally:
        if device.type == "cuda":
            torch.cuda.memory._record_memory_history(enabled=None)
    return {"samples": samples, "marks": marks, "method": method,
            "peak_bytes": max(sample.get("Total", 0) for sample in samples) if samples else 0}


def phase_peaks(samples: list[dict[str, Any]], marks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sample at the peak of every marked phase (iteration, phase, bytes per category)."""
    ends = [mark["sample"] for mark in marks[1:]] + [len(samples)]
    return [{"iteration": mark["iteration"], "phase": mark["phase"],
             **max(samples[mark["sample"]:end], key=lambda sample: sample.get("Total", 0))}
            for mark, end in zip(marks, ends) if end > mark["sample"]]


def compact(record: dict[str, Any], max_points: int = 2000) -> dict[str, Any]:
    """A record small enough to keep: the phase peaks from every sample, and the timeline cut into at most
    ``max_points`` runs of consecutive samples, each kept as its largest sample with its index (``op``)."""
    samples = record["samples"]
    size = max(1, -(-len(samples) // max_points))
    kept = []
    for start in range(0, len(samples), size):
        offset, sample = max(enumerate(samples[start:start + size]), key=lambda pair: pair[1].get("Total", 0))
        kept.append({"op": start + offset, **sample})
    return {**record, "samples": kept, "phase_peaks": phase_peaks(samples, record["marks"]),
            "samples_total": len(samples)}


class LocalTraining:
    """The single-process training step of a model on one random batch, split into its phases (forward and
    dice loss, backward, Adam), as ``ddubench train`` runs it."""

    def __init__(self, spec_text: str, grid: tuple[int, int], subimage: tuple[int, int], batch_size: int,
                 io: tuple[int, int] | None, device: torch.device) -> None:
        from ..analysis.params import count_parameters
        from ..models import ModelSpec, build_model
        from ..training.losses import DiceLoss

        self.spec = ModelSpec.parse(spec_text)
        in_channels, num_classes = io or self.spec.io
        (rows, cols), (height, width) = grid, subimage
        torch.manual_seed(0)
        model = build_model(self.spec, in_channels=in_channels, num_classes=num_classes,
                            subimage_size=(height, width), dropout=0.1)
        self.params = count_parameters(model)
        self.model = model.to(device).train()
        self.images = torch.rand(batch_size, in_channels, rows * height, cols * width).to(device)
        self.masks = torch.randint(0, num_classes, (batch_size, rows * height, cols * width)).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.008)
        self.loss_fn = DiceLoss()

    def loss(self) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        return self.loss_fn(self.model(self.images), self.masks)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> None:
        self.backward(self.loss())
        self.optimizer.step()

    def external(self) -> list[Any]:
        state = [t for group in self.optimizer.state.values() for t in group.values() if torch.is_tensor(t)]
        return [self.model, self.images, self.masks, *state]


def record_timeline(training: Any, device: torch.device, iterations: int) -> dict[str, Any]:
    """The memory timeline of ``iterations`` steps of a :class:`LocalTraining` or a rank's
    :class:`~ddubench.measure.train_ranks.RankTraining`, from its first step (Adam's state appears in it),
    :func:`compact`-ed."""
    return compact(training_timeline(training.loss, training.backward, training.optimizer.step, device,
                                     training.external(), iterations))
