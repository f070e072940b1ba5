"""CNN-DNN baseline: independent local networks, the DNN, the combiners, the data, the segmentation adaptation."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from baselines.cnn_dnn import (
    CNNDNN,
    CNNDNNSegmentation,
    CoarseDNN,
    VGGClassifier,
    average_probability,
    majority_vote,
)
from baselines.cnn_dnn_classification import (
    RING,
    classification_table,
    generated_dataset,
    load_cifar10,
    ring_images,
)
from ddubench.cli import main
from ddubench.errors import ConfigError, DataError, ModelSpecError
from ddubench.models import ModelSpec, build_model
from ddubench.training.checkpoint import model_from_checkpoint
from ddubench.training.losses import dice_loss_from_terms, dice_terms
from ddubench.training.run import train_model
from ddubench.training.trainer import TrainConfig

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = {"in_channels": 1, "num_classes": 3, "subimage_size": (32, 32)}


def tiny_section(**data) -> dict:
    return {
        "data": {"kind": "generated", "root": None, "size": 16, "cells": 2, "seed": 0,
                 "counts": {"train": 16, "val": 8, "test": 8}, **data},
        "grid": [2, 2], "cnn": {"widths": [2], "convs_per_stage": 1, "hidden": [4]}, "local_divisor": 2,
        "dnn_hidden": [4, 4, 4, 4], "epochs": {"local": 1, "dnn": 1, "global": 1, "coherent": 1, "transfer": 1},
        "lr": 0.001, "lr_factor": 0.5, "lr_patience": 20, "batch_size": 8, "seeds": [0],
    }


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return dice_loss_from_terms(dice_terms(logits, target))


# --- classification models ---------------------------------------------------------------------------


def test_local_cnns_are_independent(one_thread) -> None:
    torch.manual_seed(0)
    locals_ = [VGGClassifier(3, 5, (8, 8), [2], 1, [4]) for _ in range(4)]
    model = CNNDNN(locals_, CoarseDNN(4, 5), (2, 2))
    logits = model.local_logits(torch.randn(6, 3, 16, 16))
    assert logits.shape == (6, 4, 5)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    losses = [torch.nn.functional.cross_entropy(logits[:, i], labels) for i in range(4)]
    for i, loss in enumerate(losses):
        for j, net in enumerate([*model.local_nets, model.dnn]):
            grads = torch.autograd.grad(loss, list(net.parameters()), retain_graph=True, allow_unused=True)
            touched = [g is not None and bool(g.abs().sum() > 0) for g in grads]
            if j == i:
                assert any(touched), f"local CNN {i} gets no gradient from its own loss"
            else:
                assert not any(touched), f"local CNN {i}'s loss reaches network {j}"


def test_local_cnn_sees_only_its_subimage() -> None:
    torch.manual_seed(0)
    model = CNNDNN([VGGClassifier(1, 3, (4, 4), [2], 1, []) for _ in range(2)], CoarseDNN(2, 3), (1, 2)).eval()
    x = torch.randn(2, 1, 4, 8)
    changed = x.clone()
    changed[..., 4:] += 5.0  # only the right subimage
    before, after = model.local_logits(x), model.local_logits(changed)
    assert torch.equal(before[:, 0], after[:, 0])
    assert not torch.allclose(before[:, 1], after[:, 1])


def test_dnn_has_four_hidden_layers_and_hand_counted_parameters() -> None:
    dnn = CoarseDNN(num_local=4, num_classes=5, hidden=(32, 32, 32, 32))
    assert dnn.hidden_layers == 4
    assert [m.in_features for m in dnn if isinstance(m, torch.nn.Linear)] == [20, 32, 32, 32, 32]
    # (20*32 + 32) + 3 * (32*32 + 32) + (32*5 + 5) = 672 + 3168 + 165
    assert sum(p.numel() for p in dnn.parameters()) == 4005
    # default widths, CIFAR-10 with N = 4: (40*64 + 64) + 3 * (64*64 + 64) + (64*10 + 10) = 2624 + 12480 + 650
    assert sum(p.numel() for p in CoarseDNN(4, 10).parameters()) == 15754


def test_combiners_on_hand_made_probabilities() -> None:
    probs = torch.tensor([
        # votes 0, 0, 1, 1: tie; summed probability 0.9 (class 0) < 1.5 (class 1); mean is highest for class 2
        [[0.40, 0.25, 0.35], [0.40, 0.25, 0.35], [0.05, 0.50, 0.45], [0.05, 0.50, 0.45]],
        # votes 2, 2, 2, 0; means 0.375, 0.1625, 0.4625
        [[0.10, 0.20, 0.70], [0.20, 0.10, 0.70], [0.30, 0.30, 0.40], [0.90, 0.05, 0.05]],
        # votes 0, 0, 0, 1; means 0.30, 0.5125, 0.1875
        [[0.40, 0.35, 0.25], [0.40, 0.35, 0.25], [0.40, 0.35, 0.25], [0.00, 1.00, 0.00]],
    ])
    assert average_probability(probs).tolist() == [2, 2, 1]
    assert majority_vote(probs).tolist() == [1, 2, 0]


# --- data ----------------------------------------------------------------------------------------------


def test_generated_data_is_deterministic_per_seed() -> None:
    counts = {"train": 20, "val": 6, "test": 6}
    first, again, other = (generated_dataset(counts, 32, 2, seed) for seed in (3, 3, 4))
    assert first.num_classes == 5
    for split in ("train", "val", "test"):
        assert first.images[split].shape == (counts[split], 3, 32, 32) and first.images[split].dtype == torch.uint8
        assert torch.equal(first.images[split], again.images[split])
        assert torch.equal(first.labels[split], again.labels[split])
        assert not torch.equal(first.images[split], other.images[split])
    assert not torch.equal(first.images["train"][:6], first.images["val"])  # splits come from different streams


def test_generated_label_counts_ring_cells() -> None:
    images, shapes, labels = ring_images(300, 24, 3, np.random.default_rng(0))
    assert images.shape == (300, 3, 24, 24) and shapes.shape == (300, 3, 3)
    assert np.array_equal((shapes == RING).sum(axis=(1, 2)), labels)
    assert set(labels.tolist()) == set(range(10))


def _write_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    with path.open("wb") as handle:
        pickle.dump({b"data": images.reshape(len(images), -1), b"labels": labels}, handle, protocol=2)


def _fake_cifar(folder: Path) -> np.ndarray:
    """Five training batches of 4 random images (batch i: label i) and a test batch of 4; returns all 24."""
    folder.mkdir()
    pool = np.random.default_rng(0).integers(0, 256, (24, 3, 32, 32), dtype=np.uint8)
    for i in range(5):
        _write_batch(folder / f"data_batch_{i + 1}", pool[4 * i : 4 * i + 4], [i] * 4)
    _write_batch(folder / "test_batch", pool[20:], [9, 8, 7, 6])
    return pool


def test_cifar10_loader_reads_python_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    pool = _fake_cifar(folder)
    data = load_cifar10(tmp_path, {"train": 12, "val": 5, "test": 3}, seed=0)
    assert data.num_classes == 10
    assert data.images["train"].shape == (12, 3, 32, 32) and data.images["test"].shape == (3, 3, 32, 32)
    index = {img.tobytes(): k for k, img in enumerate(pool)}

    def pool_ids(split: str) -> list[int]:
        return [index[img.numpy().tobytes()] for img in data.images[split]]

    train, val, test = pool_ids("train"), pool_ids("val"), pool_ids("test")
    assert len(set(train)) == 12 and len(set(val)) == 5 and not set(train) & set(val) and max(train + val) < 20
    assert len(set(test)) == 3 and min(test) >= 20
    assert data.labels["train"].tolist() == [k // 4 for k in train]  # batch i holds label i
    assert data.labels["test"].tolist() == [[9, 8, 7, 6][k - 20] for k in test]
    with pytest.raises(ConfigError, match="17\\+4 train\\+val"):
        load_cifar10(folder, {"train": 17, "val": 4, "test": 3}, seed=0)


def test_cifar10_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nowhere"))):
        load_cifar10(tmp_path / "nowhere", {"train": 1, "val": 1, "test": 1}, seed=0)
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(Path("x")))  # a global that is not an array's
    with pytest.raises(DataError, match="data_batch_1 is not a CIFAR-10 python batch"):
        load_cifar10(tmp_path, {"train": 1, "val": 1, "test": 1}, seed=0)


# --- classification experiment ------------------------------------------------------------------------


def test_classification_table_rows_and_parameter_counts(one_thread) -> None:
    frame = classification_table(tiny_section())
    assert frame["method"].tolist() == [
        "local CNN 1", "local CNN 2", "local CNN 3", "local CNN 4", "average probability", "majority vote",
        "CNN-DNN", "global CNN", "CNN-DNN-coherent", "CNN-DNN-transfer"]
    assert not [c for c in frame.columns if c.endswith("_paper")]
    params = dict(zip(frame["method"], frame["params_ours"]))
    # local CNN (halved: 1 channel, 2 neurons) on 8x8: conv 3*1*9 + BN 2 + dense 1*4*4*2+2 + out 2*5+5
    assert params["local CNN 1"] == 27 + 2 + 34 + 15 == 78
    dnn = (20 * 4 + 4) + 3 * (4 * 4 + 4) + (4 * 5 + 5)
    assert dnn == 169
    assert params["average probability"] == params["majority vote"] == 4 * 78
    assert params["CNN-DNN"] == params["CNN-DNN-coherent"] == params["CNN-DNN-transfer"] == 4 * 78 + 169
    # global CNN on 16x16: conv 3*2*9 + BN 4 + dense 2*8*8*4+4 + out 4*5+5
    assert params["global CNN"] == 54 + 4 + 516 + 25 == 599
    accuracies = frame[[f"accuracy_{s}_ours" for s in ("train", "val", "test")]].to_numpy()
    assert ((accuracies >= 0) & (accuracies <= 1)).all()
    assert "no paper values" in frame["note"][0]


def test_cifar10_table_has_the_papers_values_beside_ours(tmp_path: Path, one_thread) -> None:
    _fake_cifar(tmp_path / "cifar")
    frame = classification_table(tiny_section(kind="cifar10", root=str(tmp_path / "cifar"),
                                              counts={"train": 12, "val": 4, "test": 4}))
    assert [c for c in frame.columns if c.endswith("_paper")] == ["accuracy_train_paper", "accuracy_test_paper"]
    rows = frame.set_index("method")
    assert rows.loc["average probability", "accuracy_test_paper"] == 0.6745
    assert rows.loc["CNN-DNN-transfer", "accuracy_train_paper"] == 0.8889
    assert rows.loc["global CNN", "paper_table"] == "Table 2"
    assert np.isnan(rows.loc["local CNN 1", "accuracy_test_paper"])


def test_cli_missing_cifar_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    config["cnn_dnn"] = {"data": {"kind": "cifar10", "root": str(tmp_path / "no_cifar")}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["cnn-dnn-classification", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ddubench: error: CIFAR-10 not found at") and "no_cifar" in err[0]
    assert not (tmp_path / "o.csv").exists()


# --- segmentation adaptation ---------------------------------------------------------------------------


def test_segmentation_spec_and_forward_shape() -> None:
    spec = ModelSpec.parse("cnndnn_D3_L1x3")
    assert str(spec) == "cnndnn_D3_L1x3" and spec.label == "CNN-DNN(3)" and spec.io == (3, 7)
    assert str(ModelSpec.parse("cnndnn_D4_EY")) == "cnndnn_D4_EY"
    model = build_model(spec, **SYNTHETIC)
    assert len(model.local_nets) == 3
    assert model(torch.randn(2, 1, 32, 96)).shape == (2, 3, 32, 96)
    # aggregator: (3*16*9 + 16) + 3 * (16*16*9 + 16) + (16*3 + 3) = 448 + 6960 + 51
    assert sum(p.numel() for p in model.aggregator.parameters()) == 7459


def test_segmentation_wrong_size_is_model_spec_error() -> None:
    model = build_model("cnndnn_D3_L1x3", **SYNTHETIC)
    with pytest.raises(ModelSpecError, match="32x64 px is not a multiple of the CNN-DNN window 32x96"):
        model(torch.randn(1, 1, 32, 64))


def test_segmentation_larger_input_is_processed_window_by_window() -> None:
    torch.manual_seed(0)
    model = build_model("cnndnn_D2_L1x2", in_channels=1, num_classes=3, subimage_size=(16, 16)).eval()
    x = torch.randn(1, 1, 32, 64)
    with torch.no_grad():
        whole = model(x)
        parts = [[model(x[..., r * 16 : r * 16 + 16, c * 32 : c * 32 + 32]) for c in range(2)] for r in range(2)]
    assert torch.allclose(whole, torch.cat([torch.cat(row, dim=3) for row in parts], dim=2), atol=1e-6)


def test_segmentation_staged_training_keeps_local_nets_independent() -> None:
    torch.manual_seed(0)
    model = CNNDNNSegmentation(1, 3, (16, 16), grid=(1, 3), depth=2, base_width=2).train()
    images, masks = torch.randn(2, 1, 16, 48), torch.randint(0, 3, (2, 16, 48))
    model.training_loss(images, masks, None, dice).backward()
    combined = [p.grad.clone() for p in model.parameters()]
    for net_index in range(3):
        model.zero_grad()
        local = model.local_nets[net_index](images[..., 16 * net_index : 16 * net_index + 16])
        (dice(local, masks[..., 16 * net_index : 16 * net_index + 16]) / 3).backward()
        for p, p_all in zip(model.local_nets[net_index].parameters(), _params_of(model, combined, net_index)):
            assert torch.allclose(p.grad, p_all, atol=1e-6)
    coherent = CNNDNNSegmentation(1, 3, (16, 16), grid=(1, 3), depth=2, base_width=2, coherent=True)
    coherent.load_state_dict(model.state_dict())
    coherent.zero_grad()
    coherent.training_loss(images, masks, None, dice).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in coherent.local_nets[0].parameters()
               if p.requires_grad and p.dim() > 1)


def _params_of(model: torch.nn.Module, grads: list[torch.Tensor], net_index: int) -> list[torch.Tensor]:
    own = {id(p) for p in model.local_nets[net_index].parameters()}
    return [g for p, g in zip(model.parameters(), grads) if id(p) in own]


def test_segmentation_trains_with_the_shared_trainer(tiny_dataset: Path, tmp_path: Path, one_thread) -> None:
    config = TrainConfig(max_epochs=1, min_epochs=0, batch_size=16, dropout=0.0)
    summary = train_model("cnndnn_D3_L1x3", tiny_dataset, tmp_path / "run", config, tmp_path / "s.json",
                          progress=False)
    assert summary["label"] == "CNN-DNN(3)" and summary["result"]["epochs_run"] == 1
    model, payload = model_from_checkpoint(tmp_path / "run" / "best.pt")
    assert payload["spec"] == "cnndnn_D3_L1x3"
    assert model(torch.rand(1, 1, 32, 96)).shape == (1, 3, 32, 96)
