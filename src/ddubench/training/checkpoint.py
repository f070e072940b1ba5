"""Checkpoints: everything to rebuild a model (spec + dataset facts) and to resume training exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..io import atomic_path
from ..models import build_model

CHECKPOINT_KEYS = ("spec", "model_args", "model")  # what every checkpoint of `ddubench train` holds


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically, so a crash mid-write never corrupts an existing one."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; train the model first (`ddubench train`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}); delete it and retrain") from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise CheckpointError(f"{path} is not a ddubench checkpoint (no {', '.join(missing)}); pass a best.pt or "
                              "last.pt written by `ddubench train`")
    return payload


def model_from_checkpoint(path: str | Path, subimage: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint, weights loaded, in eval mode.

    ``subimage`` applies the trained weights to square subimages of another side (e.g. a model trained on
    P x P subimages of a crop, applied to the whole test image).
    """
    payload = load_checkpoint(path)
    model_args = dict(payload["model_args"])
    if subimage:
        model_args["subimage_size"] = (subimage, subimage)
    model = build_model(payload["spec"], **model_args)
    model.load_state_dict(payload["model"])
    return model.eval(), payload
