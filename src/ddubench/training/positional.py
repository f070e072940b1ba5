"""Training and scoring the positional-encoding probe (thesis §6.1.3, Tables 6.1-6.3).

A regression with the MSE loss, Adam at a fixed learning rate, a fixed number of epochs, no decay and no early
stopping (thesis Table 6.1). That shares nothing with the segmentation :class:`~ddubench.training.trainer.
Trainer` (dice loss, plateau decay, early stopping, checkpoints), so the loop is written here; a run takes
minutes, so it keeps no checkpoint and is simply rerun when interrupted.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tqdm import tqdm

from ..data.positional import PositionalData, make_positional_data
from ..models.positional_probe import PositionalProbe

EXAMPLES = 4  # validation images whose predictions the record keeps (thesis Fig. 6.4)


@dataclass(frozen=True)
class ProbeConfig:
    """Thesis Table 6.1 by default: lr 0.008, 80 epochs, batch 16; 8,000 training and 2,000 validation images."""

    lr: float = 0.008
    epochs: int = 80
    batch_size: int = 16
    train: int = 8000
    val: int = 2000
    seed: int = 0  # weights and batch order
    data_seed: int = 0  # training images; the validation images use data_seed + 1


def probe_scores(model: torch.nn.Module, data: PositionalData, batch_size: int = 500) -> dict[str, float]:
    """MSE per coordinate (px^2), the thesis's "average distance" sqrt(2 MSE) and the mean Euclidean distance
    between each true and predicted point (px)."""
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(data.images[i : i + batch_size]) for i in range(0, len(data), batch_size)])
    error = predicted - data.targets
    mse = float(error.pow(2).mean())
    distances = error.view(len(data), -1, 2).norm(dim=2)
    return {"mse": mse, "distance_sqrt_2mse": (2 * mse) ** 0.5, "mean_distance": float(distances.mean())}


def train_probe(padding: str, config: ProbeConfig, progress: bool = True) -> dict[str, Any]:
    """Train the probe with ``padding`` and score it on the validation images after the last epoch."""
    train = make_positional_data(config.train, config.data_seed)
    val = make_positional_data(config.val, config.data_seed + 1)
    torch.manual_seed(config.seed)
    model = PositionalProbe(padding)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    order = torch.Generator().manual_seed(config.seed)
    history, start = [], time.perf_counter()
    for epoch in tqdm(range(1, config.epochs + 1), desc=f"probe ({padding})", disable=not progress):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(train), generator=order).split(config.batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(train.images[batch]), train.targets[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history.append({"epoch": epoch, "train_mse": total / len(train), "val_mse": probe_scores(model, val)["mse"]})
        if not progress:  # a log line per epoch where no bar shows (workflow logs)
            print(f"epoch {epoch}/{config.epochs}: train MSE {history[-1]['train_mse']:.2f}, validation MSE "
                  f"{history[-1]['val_mse']:.2f}", flush=True)
    model.eval()
    with torch.no_grad():
        examples = model(val.images[:EXAMPLES])
    return {
        "padding": padding,
        "config": asdict(config),
        "block_sizes": model.block_sizes(val.images.shape[-1]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "scores": probe_scores(model, val),
        "history": history,
        "examples": {"targets": val.targets[:EXAMPLES].tolist(), "predicted": examples.tolist()},
        "train_time_s": round(time.perf_counter() - start, 3),
    }
