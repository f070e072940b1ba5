"""The trainer: a full tiny run, exact resume after a kill, early stopping, checkpoint errors."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import write_tiny_dataset
from ddubench.data.registry import load_split
from ddubench.errors import CheckpointError, ConfigError, DataError
from ddubench.models import DDUNet, build_model
from ddubench.training.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from ddubench.training.run import train_model
from ddubench.training.trainer import SingleProcess, Trainer, TrainConfig

SPEC = "ddunet_D3_F4_CY"
TINY = TrainConfig(lr=0.008, max_epochs=2, min_epochs=0, batch_size=8, eval_batch_size=16, dropout=0.1, seed=0)


class Killed(Exception):
    """Stands in for a job killed mid-training."""


def _history(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def _losses(run_dir: Path) -> list[tuple[str, str, str]]:
    return [(row["train_loss"], row["val_loss"], row["lr"]) for row in _history(run_dir)]


def test_train_model_end_to_end(tiny_dataset: Path, tmp_path: Path) -> None:
    run_dir, summary_path = tmp_path / "run", tmp_path / "summary.json"
    summary = train_model(SPEC, tiny_dataset, run_dir, TINY, summary_path, progress=False)

    on_disk = json.loads(summary_path.read_text())
    assert on_disk["spec"] == SPEC and on_disk["label"] == "DDU-Net(3,4,Y)"
    assert on_disk["result"]["epochs_run"] == 2
    assert on_disk["result"]["steps"] == 2 * 4  # 32 training images, batch 8
    assert on_disk["resumed"] is False
    assert on_disk["train_data"]["spec"]["k"] == 3
    assert on_disk["provenance"]["seeds"] == [0]
    assert summary["result"] == on_disk["result"]
    assert 1 <= on_disk["result"]["best_epoch"] <= 2

    assert not (run_dir / "last.pt").exists()
    history = _history(run_dir)
    assert [int(row["epoch"]) for row in history] == [1, 2]
    best_epoch = on_disk["result"]["best_epoch"]
    assert float(history[best_epoch - 1]["val_loss"]) == pytest.approx(on_disk["result"]["best_val_loss"])

    model, payload = model_from_checkpoint(run_dir / "best.pt")
    assert isinstance(model, DDUNet) and model.features == 4 and model.communicate
    assert not model.training
    assert payload["spec"] == SPEC and payload["epoch"] == best_epoch
    assert payload["model_args"]["subimage_size"] == (32, 32)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, payload["model"][name])
    # the stored model reproduces the stored validation loss
    trainer = Trainer(model, SPEC, payload["model_args"], TINY, tmp_path / "scratch", progress=False)
    val = load_split("synthetic", tiny_dataset / "val.npz")
    assert trainer.validation_loss(val) == pytest.approx(on_disk["result"]["best_val_loss"], abs=1e-6)


def _trainer(run_dir: Path, config: TrainConfig, cls: type[Trainer] = Trainer) -> Trainer:
    torch.manual_seed(config.seed)  # as train_model does before building the model
    model = build_model(SPEC, in_channels=1, num_classes=3, subimage_size=(32, 32), dropout=config.dropout)
    model_args = {"in_channels": 1, "num_classes": 3, "subimage_size": (32, 32), "dropout": config.dropout}
    return cls(model, SPEC, model_args, config, run_dir, progress=False)


class KilledInEpochTwo(Trainer):
    def train_epoch(self, train):  # noqa: ANN001, ANN201
        if self.epoch == 1:
            raise Killed
        return super().train_epoch(train)


def test_resume_after_kill_gives_identical_weights(tiny_dataset: Path, tmp_path: Path) -> None:
    config = replace(TINY, max_epochs=3)
    train = load_split("synthetic", tiny_dataset / "train.npz")
    val = load_split("synthetic", tiny_dataset / "val.npz")

    straight = _trainer(tmp_path / "a", config)
    result_a = straight.fit(train, val)
    assert result_a.epochs_run == 3

    torch.manual_seed(12345)  # the global RNG is in some other state when the killed job ran
    with pytest.raises(Killed):
        _trainer(tmp_path / "b", config, KilledInEpochTwo).fit(train, val)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1

    torch.manual_seed(999)  # ... and again when the new job starts
    resumed = _trainer(tmp_path / "b", config)
    assert resumed.resume() is True
    assert resumed.epoch == 1
    result_b = resumed.fit(train, val)

    assert result_b.epochs_run == 3 and result_b.steps == result_a.steps == 12
    assert result_b.best_epoch == result_a.best_epoch
    assert result_b.best_val_loss == result_a.best_val_loss
    state_a, state_b = straight.model.state_dict(), resumed.model.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    # the optimizer state resumed too
    opt_a, opt_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)


def test_train_model_resumes_only_its_own_run(tiny_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    config = replace(TINY, max_epochs=2)
    train_model(SPEC, tiny_dataset, tmp_path / "a", config, tmp_path / "a.json", progress=False)

    original = Trainer.train_epoch

    def killed(self, train):  # noqa: ANN001, ANN202
        if self.epoch == 1:
            raise Killed
        return original(self, train)

    monkeypatch.setattr(Trainer, "train_epoch", killed)
    with pytest.raises(Killed):
        train_model(SPEC, tiny_dataset, tmp_path / "b", config, tmp_path / "b.json", progress=False)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert (tmp_path / "b" / "last.pt").exists() and not (tmp_path / "b.json").exists()
    killed_last = (tmp_path / "b" / "last.pt").read_bytes()

    summary = train_model(SPEC, tiny_dataset, tmp_path / "b", config, tmp_path / "b.json", progress=False)
    assert summary["resumed"] is True and summary["result"]["epochs_run"] == 2
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    best_a, best_b = load_checkpoint(tmp_path / "a" / "best.pt"), load_checkpoint(tmp_path / "b" / "best.pt")
    for name, tensor in best_a["model"].items():
        assert torch.equal(tensor, best_b["model"][name]), name

    # a leftover last.pt of a run with other settings is not resumed
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "last.pt").write_bytes(killed_last)
    other = replace(config, lr=0.004, max_epochs=1)
    summary = train_model(SPEC, tiny_dataset, tmp_path / "c", other, tmp_path / "c.json", progress=False)
    assert summary["resumed"] is False
    assert summary["result"]["epochs_run"] == 1 and summary["result"]["steps"] == 4  # resumed: 8 steps
    assert not (tmp_path / "c" / "last.pt").exists()

    # ... nor one trained on other data (the dataset was rebuilt with another seed)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "last.pt").write_bytes(killed_last)
    other_data = write_tiny_dataset(tmp_path / "other_data", seed=1)
    summary = train_model(SPEC, other_data, tmp_path / "d", config, tmp_path / "d.json", progress=False)
    assert summary["resumed"] is False and summary["result"]["steps"] == 8


def test_ranks_that_disagree_on_resuming_stop_before_training(tiny_dataset: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SingleProcess, "gather", lambda self, obj: [obj, not obj])  # one rank sees no last.pt
    with pytest.raises(CheckpointError, match="the ranks disagree whether .*last.pt can be resumed"):
        train_model(SPEC, tiny_dataset, tmp_path / "run", TINY, tmp_path / "s.json", progress=False)
    assert not (tmp_path / "run" / "history.csv").exists()


def test_a_crash_between_the_last_epochs_checkpoint_and_its_history_row_loses_no_row(
        tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Trainer._write_history

    def killed_at_the_end(self):  # noqa: ANN001, ANN202
        if self.epoch == TINY.max_epochs:
            raise Killed
        original(self)

    monkeypatch.setattr(Trainer, "_write_history", killed_at_the_end)
    with pytest.raises(Killed):
        train_model(SPEC, tiny_dataset, tmp_path / "run", TINY, tmp_path / "s.json", progress=False)
    monkeypatch.setattr(Trainer, "_write_history", original)
    assert len(_history(tmp_path / "run")) == TINY.max_epochs - 1
    summary = train_model(SPEC, tiny_dataset, tmp_path / "run", TINY, tmp_path / "s.json", progress=False)
    assert summary["resumed"] and [row["epoch"] for row in _history(tmp_path / "run")] == ["1", "2"]


class Linear(nn.Module):
    """No BatchNorm: with lr = 0 its validation loss is exactly the same every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize("min_epochs, expected", [(0, 2), (2, 2), (4, 4)])
def test_early_stopping(tiny_dataset: Path, tmp_path: Path, min_epochs: int, expected: int) -> None:
    config = replace(TINY, lr=0.0, max_epochs=10, min_epochs=min_epochs, early_stopping_patience=1)
    train = load_split("synthetic", tiny_dataset / "train.npz")
    val = load_split("synthetic", tiny_dataset / "val.npz")
    torch.manual_seed(0)
    trainer = Trainer(Linear(), "linear", {}, config, tmp_path, progress=False)
    result = trainer.fit(train, val)
    assert result.epochs_run == expected
    assert result.stopped_early is True
    assert result.best_epoch == 1  # never improved after epoch 1
    losses = [row["val_loss"] for row in trainer.history]
    assert len(set(losses)) == 1
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == expected


def test_no_early_stop_when_max_epochs_reached(tiny_dataset: Path, tmp_path: Path) -> None:
    config = replace(TINY, lr=0.0, max_epochs=3, min_epochs=0, early_stopping_patience=5)
    train = load_split("synthetic", tiny_dataset / "train.npz")
    val = load_split("synthetic", tiny_dataset / "val.npz")
    result = Trainer(Linear(), "linear", {}, config, tmp_path, progress=False).fit(train, val)
    assert result.epochs_run == 3 and result.stopped_early is False


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"\x00garbage, not a torch file")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(CheckpointError):
        model_from_checkpoint(bad)


def test_missing_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "best.pt"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(missing)
    assert str(missing) in str(info.value)


def test_save_and_load_checkpoint_round_trip(tmp_path: Path) -> None:
    payload = {"spec": SPEC, "model_args": {}, "model": {"w": torch.arange(5.0)}, "epoch": 3}
    save_checkpoint(tmp_path / "x" / "c.pt", payload)
    loaded = load_checkpoint(tmp_path / "x" / "c.pt")
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.arange(5.0))
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["c.pt"]  # no temporary file left


def test_a_plain_state_dict_is_not_a_checkpoint(tiny_dataset: Path, tmp_path: Path) -> None:
    plain = tmp_path / "resnet18.pth"  # e.g. torchvision weights given to --init-from
    torch.save(nn.Conv2d(1, 3, 1).state_dict(), plain)
    with pytest.raises(CheckpointError, match=r"resnet18\.pth is not a ddubench checkpoint \(no spec, model_args, "
                                              r"model\); pass a best\.pt or last\.pt written by `ddubench train`"):
        train_model(SPEC, tiny_dataset, tmp_path / "run", TINY, tmp_path / "s.json", progress=False, init_from=plain)


@pytest.mark.parametrize("field, value, rule", [
    ("lr", -0.1, ">= 0"), ("batch_size", 0, ">= 1"), ("eval_batch_size", -1, ">= 1"), ("max_epochs", 0, ">= 1"),
    ("lr_factor", 1.5, r"in \(0, 1\)"), ("dropout", 1.5, r"in \[0, 1\]"), ("grad_clip_norm", -1.0, "> 0"),
    ("loss", "dice", "one of macro"),
])
def test_training_settings_out_of_bounds_are_one_line(field: str, value: object, rule: str) -> None:
    with pytest.raises(ConfigError, match=rf"training {field}={value!r} must be {rule}"):
        replace(TINY, **{field: value})


def test_evaluating_a_model_on_data_of_other_classes_is_refused(tiny_dataset: Path, tmp_path: Path) -> None:
    from ddubench.evaluation.run import evaluate_checkpoint

    args = {"in_channels": 1, "num_classes": 7, "subimage_size": (32, 32), "dropout": 0.0}
    save_checkpoint(tmp_path / "best.pt", {"spec": SPEC, "model_args": args, "model": build_model(SPEC, **args)
                                           .state_dict()})
    with pytest.raises(DataError, match=r"best\.pt was trained with 7 classes, .*test\.npz has 3"):
        evaluate_checkpoint(tmp_path / "best.pt", tiny_dataset / "test.npz", tmp_path / "eval.json", progress=False)
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.parametrize("best_file", ["lost", "stale"])
def test_resume_restores_a_lost_or_stale_best_checkpoint(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, best_file: str
) -> None:
    """Snakemake deletes an interrupted job's outputs (best.pt) but keeps last.pt, and a kill can fall between
    writing best.pt and last.pt: resuming rewrites best.pt from last.pt."""
    from ddubench.training.checkpoint import load_checkpoint
    from ddubench.training.run import train_model
    from ddubench.training.trainer import TrainConfig, Trainer

    class Killed(Exception):
        pass

    config = TrainConfig(lr=0.01, max_epochs=3, min_epochs=0, batch_size=8, eval_batch_size=16, seed=1)
    run_dir = tmp_path / "run"
    original = Trainer.train_epoch

    def killed_in_epoch_3(self, train):
        if self.epoch == 2:
            raise Killed
        return original(self, train)

    Trainer.train_epoch = killed_in_epoch_3
    try:
        with pytest.raises(Killed):
            train_model("ddunet_D3_F4_CY", tiny_dataset, run_dir, config, tmp_path / "s.json", progress=False)
    finally:
        Trainer.train_epoch = original
    last = load_checkpoint(run_dir / "last.pt")
    assert last["epoch"] == 2 and last["best_model"] is not None
    if best_file == "lost":
        (run_dir / "best.pt").unlink()
    else:  # written in the killed epoch 3 before its last.pt: weights of an epoch the rerun trains again
        stale = load_checkpoint(run_dir / "best.pt")
        save_checkpoint(run_dir / "best.pt", {**stale, "epoch": 3,
                                              "model": {k: v + 1 for k, v in stale["model"].items()}})

    # epoch 3 must not improve, so best.pt can only come from the restoration
    monkeypatch.setattr(Trainer, "validation_loss", lambda self, val: float("inf"))
    summary = train_model("ddunet_D3_F4_CY", tiny_dataset, run_dir, config, tmp_path / "s.json", progress=False)
    assert summary["resumed"] and summary["result"]["epochs_run"] == 3
    best = load_checkpoint(run_dir / "best.pt")
    assert best["epoch"] == summary["result"]["best_epoch"] == last["best_epoch"] <= 2
    for name, tensor in last["best_model"].items():
        assert torch.equal(best["model"][name], tensor), name


def test_compiled_forward_matches_eager_and_shares_parameters() -> None:
    """`train --compile` runs the same model: outputs equal eager ones and the weights are the same tensors."""
    from ddubench.models import build_model
    from ddubench.training.speed import compiled

    torch.manual_seed(0)
    model = build_model("ddunet_D2_F2_CY", in_channels=1, num_classes=3, subimage_size=(16, 16)).eval()
    images = torch.rand(2, 1, 16, 32)
    fast = compiled(model)
    with torch.no_grad():
        torch.testing.assert_close(fast(images), model(images), rtol=1e-4, atol=1e-5)
    assert {id(p) for p in fast.parameters()} == {id(p) for p in model.parameters()}
    assert set(model.state_dict()) == {key.removeprefix("_orig_mod.") for key in fast.state_dict()}


def test_compile_uses_static_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A recompile for another batch size must not turn every full batch into a slower symbolic-shape graph."""
    from ddubench.training import speed

    options = {}
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: options.update(kwargs) or model)
    speed.compiled(nn.Linear(2, 2))
    assert options == {"dynamic": False}


def test_compiled_forward_sees_full_batches_only(tiny_dataset: Path, tmp_path: Path) -> None:
    """The remainder batch of an epoch (training and validation) runs eagerly, so the compiled graph is never
    recompiled for it; full batches run the compiled forward."""
    train = load_split("synthetic", tiny_dataset / "train.npz")  # 32 images: batches of 12, 12, 8
    val = load_split("synthetic", tiny_dataset / "val.npz")  # 16 images: batches of 10, 6
    model = build_model(SPEC, in_channels=1, num_classes=3, subimage_size=(32, 32))
    config = replace(TINY, batch_size=12, eval_batch_size=10, max_epochs=1, min_epochs=1)
    trainer = Trainer(model, SPEC, {}, config, tmp_path, progress=False)
    compiled_sizes: list[int] = []
    trainer.forward = lambda images: compiled_sizes.append(images.shape[0]) or model(images)  # stands in for it
    trainer.fit(train, val)
    assert sorted(compiled_sizes) == [10, 12, 12]


class RecordsGradNorm(Trainer):
    """Records the global gradient norm the optimizer steps with."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.norms: list[float] = []
        step = self.optimizer.step

        def recording_step(*a, **kw):  # noqa: ANN002, ANN003, ANN202
            grads = [p.grad.flatten() for p in self.model.parameters() if p.grad is not None]
            self.norms.append(float(torch.cat(grads).norm()))
            return step(*a, **kw)

        self.optimizer.step = recording_step


@pytest.mark.parametrize("clip", [None, 0.05])
def test_gradient_clipping_bounds_the_norm_of_every_step(tiny_dataset: Path, tmp_path: Path,
                                                        clip: float | None) -> None:
    train = load_split("synthetic", tiny_dataset / "train.npz")
    val = load_split("synthetic", tiny_dataset / "val.npz")
    trainer = _trainer(tmp_path / "run", replace(TINY, max_epochs=1, grad_clip_norm=clip), RecordsGradNorm)
    trainer.fit(train, val)
    assert len(trainer.norms) == 4
    if clip is None:  # the unclipped norms of this model are well above the bound used below
        assert min(trainer.norms) > 0.05
    else:
        assert max(trainer.norms) == pytest.approx(clip, rel=1e-5)


def test_last_checkpoint_from_before_a_new_setting_still_resumes(tiny_dataset: Path, tmp_path: Path,
                                                                 monkeypatch) -> None:
    """A run interrupted under an older TrainConfig (without grad_clip_norm) resumes when the new field is at
    its default, so adding an option never throws away a long run's finished epochs."""
    config = replace(TINY, max_epochs=2)
    original = Trainer.train_epoch

    def killed(self, train):  # noqa: ANN001, ANN202
        if self.epoch == 1:
            raise Killed
        return original(self, train)

    monkeypatch.setattr(Trainer, "train_epoch", killed)
    with pytest.raises(Killed):
        train_model(SPEC, tiny_dataset, tmp_path / "b", config, tmp_path / "b.json", progress=False)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    last = tmp_path / "b" / "last.pt"
    state = load_checkpoint(last)
    del state["train_config"]["grad_clip_norm"]  # as written by the version before the field existed
    save_checkpoint(last, state)
    summary = train_model(SPEC, tiny_dataset, tmp_path / "b", config, tmp_path / "b.json", progress=False)
    assert summary["resumed"] is True and summary["result"]["steps"] == 8
