"""The one trainer every method uses: Adam, plateau LR decay, early stopping, best checkpoint, resume.

Defaults follow journal Table 10 / thesis Table 7.3 (lr 0.008, 40 epochs, early-stopping patience 8 after
a minimum of 20 epochs, LR patience 3, batch 16). The patiences count as their libraries do: PyTorch's
``ReduceLROnPlateau`` halves the LR when *more than* ``lr_patience`` epochs in a row brought no relative
improvement of 1e-4 (with patience 3: on the 4th such epoch), as the authors' PyTorch code did; early stopping
ends training once ``early_stopping_patience`` epochs in a row brought no improvement at all. The
validation loss is the dice loss of the whole validation split (per-class sums accumulated over all
batches), so it does not depend on the batch size.

Files in the run directory: ``last.pt`` (written after every epoch; training resumes from it, with its
RNG states, to the same weights an uninterrupted run gives), ``best.pt`` (lowest validation loss) and
``history.csv`` (one row per epoch; its ``lr`` is the rate after that epoch's scheduler step, i.e. the next
epoch's). All writes are atomic.

With ``augment`` each training image is flipped and turned with its mask (:mod:`.augment`; the thesis's Inria
and DeepGlobe training), drawn from the same checkpointed generator as the batch order.

Mixed precision (``amp=True``, journal DeepGlobe training; see :func:`resolve_amp`): forward passes under
float16 ``torch.autocast`` and a ``GradScaler`` on the loss, CUDA only. With ``amp=False`` (the default)
the scaler is disabled and every step is exactly the plain float32 step.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..data.registry import SegmentationSplit
from ..errors import CheckpointError, ConfigError, DdubenchError
from ..io import atomic_path
from .augment import check_square, flip_rotate
from .checkpoint import load_checkpoint, save_checkpoint
from .losses import REDUCTIONS, DiceTerms, dice_loss_from_terms, dice_terms
from .rng import RngState, capture, restore
from .speed import compiled, compiled_for


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run."""

    lr: float = 0.008
    max_epochs: int = 40
    min_epochs: int = 20
    early_stopping_patience: int = 8
    lr_patience: int = 3
    lr_factor: float = 0.5
    batch_size: int = 16
    eval_batch_size: int = 64
    dropout: float = 0.1
    loss: str = "macro"
    seed: int = 0
    grad_clip_norm: float | None = None
    augment: bool = False

    def __post_init__(self) -> None:
        """The config schema's bounds, for runs that do not come from a config (``ddubench train`` options, the
        Python API): a bad value is one line here, not a silent upward step or a traceback inside an epoch."""
        bounds = [("lr", self.lr >= 0, ">= 0"), ("max_epochs", self.max_epochs >= 1, ">= 1"),
                  ("min_epochs", self.min_epochs >= 0, ">= 0"),
                  ("early_stopping_patience", self.early_stopping_patience >= 1, ">= 1"),
                  ("lr_patience", self.lr_patience >= 0, ">= 0"), ("lr_factor", 0 < self.lr_factor < 1, "in (0, 1)"),
                  ("batch_size", self.batch_size >= 1, ">= 1"), ("eval_batch_size", self.eval_batch_size >= 1, ">= 1"),
                  ("dropout", 0 <= self.dropout <= 1, "in [0, 1]"),
                  ("grad_clip_norm", self.grad_clip_norm is None or self.grad_clip_norm > 0, "> 0 (or unset)"),
                  ("loss", self.loss in REDUCTIONS, f"one of {', '.join(REDUCTIONS)}")]
        for name, ok, rule in bounds:
            if not ok:
                raise ConfigError(f"training {name}={getattr(self, name)!r} must be {rule}; fix the config's "
                                  f"training.{name} or the --{name.replace('_', '-')} option")


AMP_MODES = ("off", "on", "auto")


def resolve_amp(mode: str, device: str | torch.device) -> bool:
    """Whether to train in mixed precision: ``auto`` = on CUDA only; ``on`` off CUDA is an error."""
    if mode not in AMP_MODES:
        raise DdubenchError(f"amp={mode!r} is not one of {', '.join(AMP_MODES)}")
    is_cuda = torch.device(device).type == "cuda"
    if mode == "on" and not is_cuda:
        raise DdubenchError(f"--amp on needs a CUDA device, not {device}; use --amp auto (float32 off CUDA) or off")
    return mode == "on" or (mode == "auto" and is_cuda)


class SingleProcess:
    """How one training step is executed: here, one process on one device (the default)."""

    is_main = True
    rank = 0
    world_size = 1

    def local_target(self, model: nn.Module, masks: torch.Tensor) -> torch.Tensor:
        """The part of the masks that ``model``'s output covers."""
        return masks

    def reduce_terms(self, terms: DiceTerms) -> DiceTerms:
        """Dice sums over every process's share of the batch."""
        return terms

    def after_backward(self, model: nn.Module) -> None:
        """Make gradients global (nothing to do in one process)."""

    def after_step(self, model: nn.Module) -> None:
        """Keep replicas identical after the optimizer step (nothing to do in one process)."""

    def barrier(self) -> None:
        """Wait for every process (nothing to do in one process)."""

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj`` in rank order, on every process (here: the one)."""
        return [obj]


@dataclass
class TrainResult:
    """Summary of a finished training run."""

    epochs_run: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    train_time_s: float
    mean_step_time_s: float
    steps: int


class Trainer:
    """Trains ``model`` on ``train`` with validation on ``val``; checkpoints into ``run_dir``."""

    def __init__(
        self,
        model: nn.Module,
        spec: str,
        model_args: dict[str, Any],
        config: TrainConfig,
        run_dir: str | Path,
        device: str | torch.device = "cpu",
        progress: bool = True,
        metadata: dict[str, Any] | None = None,
        parallel: SingleProcess | None = None,
        compile_model: bool = False,
        amp: bool = False,
    ) -> None:
        self.parallel = parallel or SingleProcess()
        self.model = model.to(device)
        self.forward = compiled(self.model) if compile_model else self.model
        self.spec = spec
        self.model_args = model_args
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.progress = progress and self.parallel.is_main
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
        )
        self.amp = amp
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.dtype = next(model.parameters()).dtype
        self.epoch = 0
        self.best_val_loss = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.history: list[dict[str, float]] = []
        self.train_time_s = 0.0
        self.steps = 0
        self.metadata = metadata or {}
        self.best_state: dict[str, torch.Tensor] | None = None

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def _payload(self, rng: list[RngState]) -> dict[str, Any]:
        """Everything ``last.pt`` needs to resume; ``rng`` holds every rank's generator states (rank order)."""
        return {
            "spec": self.spec,
            "model_args": self.model_args,
            "metadata": self.metadata,
            "train_config": asdict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "train_time_s": self.train_time_s,
            "steps": self.steps,
            "rng": {"ranks": rng, "shuffle": self.shuffle.get_state()},
        }

    def resume(self) -> bool:
        """Continue from ``last.pt`` if it exists; returns whether it did.

        ``last.pt`` also carries the best model so far, so ``best.pt`` is restored from it (a workflow manager
        removes the outputs of an interrupted job before rerunning it; a crash between writing ``best.pt`` and
        ``last.pt`` leaves a ``best.pt`` of an epoch that is trained again).
        """
        if not self.last_path.exists():
            return False
        state = load_checkpoint(self.last_path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        for key in ("epoch", "best_val_loss", "best_epoch", "bad_epochs", "history", "train_time_s", "steps"):
            setattr(self, key, state[key])
        ranks = state["rng"].get("ranks", [state["rng"]])  # a last.pt of earlier versions: one CPU state
        if len(ranks) != self.parallel.world_size:
            raise CheckpointError(f"{self.last_path} was written by {len(ranks)} rank(s), this run has "
                                  f"{self.parallel.world_size}; rerun with {len(ranks)} or delete it to start afresh")
        restore(ranks[self.parallel.rank], self.device)
        self.shuffle.set_state(state["rng"]["shuffle"])
        self.best_state = state["best_model"]
        # rewritten even if present: a best.pt newer than last.pt is from an epoch this run trains again
        if self.parallel.is_main and self.best_state is not None:
            best = {key: value for key, value in state.items() if key != "best_model"}
            save_checkpoint(self.best_path, {**best, "model": self.best_state, "epoch": self.best_epoch})
        return True

    def train_epoch(self, train: SegmentationSplit) -> float:
        """One pass over the training split; returns the mean batch loss."""
        self.model.train()
        total, batches = 0.0, 0
        n_batches = -(-len(train) // self.config.batch_size)
        bar = tqdm(train.batches(self.config.batch_size, shuffle=True, generator=self.shuffle,
                                 dtype=self.dtype), total=n_batches,
                   desc=f"epoch {self.epoch + 1}", unit="step", disable=not self.progress, leave=False)
        for images, masks in bar:
            if self.config.augment:
                images, masks = flip_rotate(images, masks, self.shuffle)
            images, masks = images.to(self.device), masks.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                loss = self.training_loss(images, masks, train.ignore_index)
            self.scaler.scale(loss).backward()
            self.parallel.after_backward(self.model)
            if self.config.grad_clip_norm is not None:
                self.scaler.unscale_(self.optimizer)  # clip the true gradients (a no-op without mixed precision)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.parallel.after_step(self.model)
            total += loss.item()
            batches += 1
            bar.set_postfix(loss=f"{loss.item():.4f}")
        self.steps += batches
        return total / max(batches, 1)

    def autocast(self) -> torch.autocast:
        """Float16 autocast when training in mixed precision; a no-op context otherwise."""
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp)

    def training_loss(self, images: torch.Tensor, masks: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
        """Loss of one training batch: the model's own ``training_loss`` if it defines one, else the dice loss.

        Baselines whose training differs from plain dice on the model output (random patching trains on
        crops, downsampling at a lower resolution, GLNet with focal and auxiliary losses) define
        ``training_loss(images, masks, ignore_index, dice)`` where ``dice(logits, masks)`` is this
        trainer's dice loss; everything else (optimiser, schedule, checkpoints, metrics) stays shared.
        """
        custom = getattr(self.model, "training_loss", None)
        if custom is None:
            forward = compiled_for(images.shape[0], self.config.batch_size, self.model, self.forward)
            return self.loss(forward(images), masks, ignore_index)
        return custom(images, masks, ignore_index, lambda logits, target: self.loss(logits, target, ignore_index))

    def loss(self, logits: torch.Tensor, masks: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
        """Dice loss of the global batch (per-class sums reduced over processes before the ratio)."""
        terms = dice_terms(logits, self.parallel.local_target(self.model, masks), ignore_index)
        return dice_loss_from_terms(self.parallel.reduce_terms(terms), self.config.loss)

    @torch.no_grad()
    def validation_loss(self, val: SegmentationSplit) -> float:
        """Dice loss of the whole validation split from accumulated per-class sums."""
        self.model.eval()
        sums: DiceTerms | None = None
        for images, masks in val.batches(self.config.eval_batch_size, dtype=self.dtype):
            forward = compiled_for(images.shape[0], self.config.eval_batch_size, self.model, self.forward)
            with self.autocast():
                logits = forward(images.to(self.device))
            terms = dice_terms(logits, self.parallel.local_target(self.model, masks.to(self.device)),
                               val.ignore_index)
            sums = terms if sums is None else DiceTerms(
                sums.intersection + terms.intersection,
                sums.cardinality + terms.cardinality,
                sums.target_count + terms.target_count,
            )
        return float(dice_loss_from_terms(self.parallel.reduce_terms(sums), self.config.loss))

    def _write_history(self) -> None:
        with atomic_path(self.run_dir / "history.csv") as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(self.history[0]))
            writer.writeheader()
            writer.writerows(self.history)

    def should_stop(self) -> bool:
        """Early stopping: no improvement for ``patience`` epochs, and at least ``min_epochs`` done."""
        return self.bad_epochs >= self.config.early_stopping_patience and self.epoch >= self.config.min_epochs

    def fit(self, train: SegmentationSplit, val: SegmentationSplit) -> TrainResult:
        """Train until early stopping or ``max_epochs``; ``best.pt`` holds the best validation model."""
        if self.config.augment:
            check_square(*train.images.shape[-2:])
        self.run_dir.mkdir(parents=True, exist_ok=True)
        stopped_early = self.should_stop()
        while self.epoch < self.config.max_epochs and not stopped_early:
            start = time.perf_counter()
            train_loss = self.train_epoch(train)
            epoch_time = time.perf_counter() - start
            val_loss = self.validation_loss(val)
            self.scheduler.step(val_loss)
            self.epoch += 1
            self.train_time_s += epoch_time
            improved = val_loss < self.best_val_loss
            if improved:
                self.best_val_loss, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
            else:
                self.bad_epochs += 1
            self.history.append({
                "epoch": self.epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "lr": self.optimizer.param_groups[0]["lr"],
                "epoch_time_s": epoch_time,
            })
            rng = self.parallel.gather(capture(self.device))  # every rank takes part
            if self.parallel.is_main:
                payload = self._payload(rng)
                if improved:
                    save_checkpoint(self.best_path, payload)
                    self.best_state = {key: value.detach().cpu().clone() for key, value in payload["model"].items()}
                save_checkpoint(self.last_path, {**payload, "best_model": self.best_state})
                self._write_history()
            self.parallel.barrier()
            if self.progress:
                tqdm.write(f"epoch {self.epoch}: train {train_loss:.4f} val {val_loss:.4f}"
                           f"{' (best)' if improved else ''}")
            stopped_early = self.should_stop()
        if self.parallel.is_main and self.history:
            self._write_history()  # a crash after the last epoch's last.pt but before its history row
        return TrainResult(
            epochs_run=self.epoch,
            best_epoch=self.best_epoch,
            best_val_loss=self.best_val_loss,
            stopped_early=stopped_early,
            train_time_s=self.train_time_s,
            mean_step_time_s=self.train_time_s / max(self.steps, 1),
            steps=self.steps,
        )
