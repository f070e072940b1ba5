"""One training run end to end: data -> model -> Trainer -> summary JSON with provenance."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.registry import SegmentationSplit, load_split, split_path
from ..distributed.runtime import DistContext, is_collective_failure, owned_subimages
from ..errors import CheckpointError, DdubenchError, ModelSpecError
from ..io import read_json, write_json
from ..models import ModelSpec, build_model
from ..provenance import provenance, relative_paths, repository_root, utc_now
from .checkpoint import load_checkpoint
from .trainer import SingleProcess, Trainer, TrainConfig, resolve_amp


def seed_everything(seed: int) -> None:
    """Seed torch's global RNG (weight init, dropout); data order uses the trainer's own generator."""
    torch.manual_seed(seed)


def _build(spec: str, model_args: dict[str, Any], weights: str | Path | None) -> nn.Module:
    """The model of ``spec``; with ``weights``, its ResNet encoder loads that local ImageNet state-dict file."""
    if weights is None:
        return build_model(spec, **model_args)
    try:
        return build_model(spec, **model_args, weights_path=weights)
    except TypeError as err:
        if "weights_path" not in str(err):
            raise
        raise ModelSpecError(f"{spec} has no ImageNet encoder to load --weights {weights} into; drop --weights "
                             "(it is for resnetddunet models)") from None


def _initialise_from(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load the weights of checkpoint ``path`` non-strictly (e.g. a staged method's previous stage).

    Returns the keys that did not match, for the summary; a tensor of the wrong shape is an error.
    """
    try:
        result = model.load_state_dict(load_checkpoint(path)["model"], strict=False)
    except RuntimeError as err:
        raise CheckpointError(f"--init-from {path} does not fit this model ({str(err).splitlines()[-1].strip()}); "
                              "start from a checkpoint of the same model family") from None
    return {"checkpoint": str(path), "missing_keys": list(result.missing_keys),
            "unexpected_keys": list(result.unexpected_keys)}


def _resumable(last: Path, spec: str, model_args: dict[str, Any], config: TrainConfig, metadata: dict[str, Any],
               amp: bool) -> bool:
    """Whether ``last.pt`` belongs to this exact run: same spec, model arguments, hyperparameters, training data
    (its manifest), BatchNorm mode and precision. Its world size is checked when it is loaded: another rank count
    is an error, not a fresh start."""
    if not last.exists():
        return False
    state = load_checkpoint(last)
    # a run started before a TrainConfig field existed resumes if the field has its default value
    recorded = {**asdict(TrainConfig()), **state["train_config"]}
    recorded_data = {key: state.get("metadata", {}).get(key) for key in ("train_data", "bn")}
    return ((state["spec"], state["model_args"], recorded) == (spec, model_args, asdict(config))
            and recorded_data == {key: metadata.get(key) for key in ("train_data", "bn")}
            and bool(state.get("scaler")) == amp)  # a disabled GradScaler's state is empty


def _check_subimages_divide(train: SegmentationSplit, subimage: tuple[int, int], ctx: DistContext) -> None:
    """Refuse, before any training, a grid of subimages the ranks cannot share equally (one line)."""
    height, width = train.images.shape[-2:]
    owned_subimages((height // subimage[0]) * (width // subimage[1]), ctx)


def _distribute(model: nn.Module, ctx: DistContext, bn: str, seed: int) -> tuple[nn.Module, SingleProcess]:
    """Wrap a DDU-Net for spatially parallel training on the ranks of ``ctx``."""
    from ..distributed.collectives import broadcast_state
    from ..distributed.ddunet import DistributedDDUNet
    from ..distributed.training import SpatialParallel
    from ..models.ddunet import DDUNetBase

    if not isinstance(model, DDUNetBase):
        raise ModelSpecError(f"only DDU-Net models split into subimages across ranks, not {type(model).__name__}; "
                             "train other models without torchrun")
    model = DistributedDDUNet(model.to(ctx.device), ctx, bn)
    broadcast_state(model)
    torch.manual_seed(seed + 1000 * ctx.rank)  # independent dropout masks per rank
    return model, SpatialParallel(ctx, bn)


def train_model(
    spec_text: str,
    data_dir: str | Path,
    run_dir: str | Path,
    config: TrainConfig,
    summary_path: str | Path,
    dataset_kind: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    ctx: DistContext | None = None,
    bn: str = "sync",
    compile_model: bool = False,
    amp: str = "off",
    weights: str | Path | None = None,
    subimage: int | None = None,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``spec`` on the train and val splits of ``data_dir``; write ``best.pt`` and the summary JSON.

    ``data_dir`` holds ``{train,val}.npz`` (synthetic) or prepared DeepGlobe ``{train,val}/`` folders; the
    dataset kind is detected unless ``dataset_kind`` names it.

    With ``ctx`` (ranks launched by torchrun) the DDU-Net is split over the ranks (``bn`` selects synced
    or per-rank BatchNorm statistics); rank 0 writes the files. ``compile_model`` runs the single-process
    training and validation forward passes through ``torch.compile`` (see :mod:`.speed`); it is recorded in
    the summary. ``amp`` is ``off``, ``on`` or ``auto`` (mixed precision on CUDA only, see
    :func:`.trainer.resolve_amp`). ``weights`` is a local ImageNet state-dict file for a ResNet encoder (recorded
    in the summary, not needed to reload the checkpoint). ``subimage`` overrides the dataset's subimage side
    (journal Fig. 13 trains one crop size as P x P subimages); it is stored in the checkpoint's ``model_args``,
    so evaluation rebuilds the model with it. ``init_from`` is a checkpoint whose ``model`` weights are loaded
    non-strictly before training (a staged method starting from its previous stage; the keys that did not
    match are listed in the summary). An unfinished run with the same settings
    resumes from ``run_dir/last.pt``; a run with other settings starts afresh. ``last.pt`` is removed once
    training has finished, so a forced rerun starts anew.
    """
    started, clock = utc_now(), time.perf_counter()
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    spec = str(ModelSpec.parse(spec_text))
    train = load_split(dataset_kind, split_path(data_dir, "train"))
    val = load_split(dataset_kind, split_path(data_dir, "val"))
    model_args = {
        "in_channels": train.in_channels,
        "num_classes": train.num_classes,
        "subimage_size": (subimage, subimage) if subimage else train.subimage_size,
        "dropout": config.dropout,
    }
    seed_everything(config.seed)
    model = _build(spec, model_args, weights)
    initialised = _initialise_from(model, init_from) if init_from is not None else None
    parallel = None
    if ctx is not None:
        if compile_model:
            raise ModelSpecError("--compile applies to single-process training only; drop it under torchrun")
        _check_subimages_divide(train, model_args["subimage_size"], ctx)
        model, parallel = _distribute(model, ctx, bn, config.seed)
        device = ctx.device
    train_data = read_json(data_dir / "manifest.json")
    metadata = {"train_data": train_data, "world_size": ctx.world_size if ctx else 1, "bn": bn}
    trainer = Trainer(model, spec, model_args, config, run_dir, device=device, progress=progress, metadata=metadata,
                      parallel=parallel, compile_model=compile_model, amp=resolve_amp(amp, device))
    resumable = _resumable(trainer.last_path, spec, model_args, config, metadata, trainer.amp)
    if len(set(trainer.parallel.gather(resumable))) > 1:  # else ranks would train from different epochs and hang
        raise CheckpointError(f"the ranks disagree whether {trainer.last_path} can be resumed (some do not see it); "
                              "put the run directory on storage every rank sees, or delete it to start afresh")
    resumed = resumable and trainer.resume()
    try:
        result = trainer.fit(train, val)
    except RuntimeError as err:
        if ctx is None or not is_collective_failure(err):
            raise
        raise DdubenchError(
            f"rank {ctx.rank} of {ctx.world_size}: lost contact with another rank in epoch {trainer.epoch + 1} "
            f"({str(err).splitlines()[0][:160]}); the failing rank's own error says why; the "
            f"{trainer.epoch} finished epochs are safe in {trainer.last_path} and rerunning resumes from there"
        ) from None
    trainer.parallel.barrier()
    if not trainer.parallel.is_main:
        return {}
    summary = {
        "spec": spec,
        "label": ModelSpec.parse(spec).label,
        "data": str(data_dir),
        "train_data": train_data,
        "checkpoint": str(trainer.best_path),
        "resumed": resumed,
        "compiled": compile_model,
        "amp": trainer.amp,
        "weights": str(weights) if weights else None,
        "init_from": initialised,
        "result": asdict(result),
        "provenance": provenance(
            config=asdict(config), seeds=[config.seed], started=started,
            wall_time_s=time.perf_counter() - clock, inputs=[str(data_dir)],
            world_size=ctx.world_size if ctx else 1,
            extra={"backend": ctx.backend, "bn": bn} if ctx else None,
        ),
    }
    summary = relative_paths(summary, repository_root())  # an absolute --data, --weights or --run-dir in the repo
    write_json(summary_path, summary)
    trainer.last_path.unlink(missing_ok=True)  # after the summary: a crash in between loses no training
    return summary
