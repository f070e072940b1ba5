"""CNN-DNN image classification experiment (seed 004, Tables 1-2) -> ``cnn_dnn_classification.csv``.

For each seed, on one data set and one type-A decomposition (``grid``, overlap 0):

1. N local CNNs, each trained alone (own model, optimiser, schedule and model selection) on its subimage
   to predict the global label; rows ``local CNN i``.
2. Their class probabilities combined by ``average probability`` and ``majority vote`` (Table 1).
3. ``CNN-DNN``: the DNN (four hidden layers) trained on the stacked local probabilities of the training
   images, the local CNNs fixed (Tables 1-2).
4. ``global CNN``: the same CNN family with the full widths on whole images (Table 2).
5. ``CNN-DNN-coherent``: local CNNs + DNN as one model trained end to end from scratch (Table 2).
6. ``CNN-DNN-transfer``: the coherent model with its local CNNs initialised from step 1, then trained end
   to end (Table 2; the paper: 150 local epochs, then 50).

Training everywhere: Adam, cross-entropy, learning rate reduced by ``lr_factor`` after ``lr_patience``
epochs without validation-loss improvement (the papers: 1e-3, 0.5, 20), a fixed number of epochs, and the
weights of the epoch with the best validation accuracy kept.

Data: ``generated`` (no download; deterministic from the seed) or ``cifar10`` from a local folder of the
python-pickle batches. The generated task is spatially structured: every image is a grid of ``cells``
x ``cells`` cells holding one shape each, and the class is the number of cells holding a ring (the other
cells hold a disc, a square outline or a cross). A local CNN on one quarter sees only part of the
evidence, so no local CNN can classify on its own and the combiners must count.
"""

from __future__ import annotations

import codecs
import copy
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ddubench.errors import ConfigError, DataError
from ddubench.io import atomic_path
from ddubench.provenance import provenance, utc_now, write_sidecar

from .cnn_dnn import (
    CNNDNN,
    CoarseDNN,
    VGGClassifier,
    average_probability,
    majority_vote,
    scaled_down,
    subimages,
)

SPLITS = ("train", "val", "test")
RING, DISC, SQUARE, CROSS = range(4)

# Seed 004, CIFAR-10, VGG9, type A 2x2, delta 0: (validation, training) accuracy. The paper's validation set
# is CIFAR-10's 10,000 test-batch images, which is our test split; Table 1 and Table 2 ran CNN-DNN separately.
PAPER_CIFAR10_VGG9 = {
    "average probability": ("Table 1", 0.6745, 0.7081),
    "majority vote": ("Table 1", 0.6237, 0.6546),
    "CNN-DNN": ("Table 2", 0.7999, 0.8663),
    "global CNN": ("Table 2", 0.7585, 0.8487),
    "CNN-DNN-coherent": ("Table 2", 0.7515, 0.7902),
    "CNN-DNN-transfer": ("Table 2", 0.8462, 0.8889),
}
PAPER_CIFAR10_NOTE = ("paper: VGG9 on all 50,000 training images, 'validation' = CIFAR-10's test batch = our "
                      "test split (so accuracy_test_paper is its validation accuracy); CNN-DNN in Table 1: "
                      "0.7669 (train 0.8071)")


@dataclass(frozen=True)
class ClassificationData:
    """uint8 images (n, C, H, W) and int64 labels per split, with the data set's name and class count."""

    name: str
    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    num_classes: int


# ---------------------------------------------------------------------------------------------------------
# Data


def ring_images(
    count: int, size: int, cells: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` RGB images (uint8, (n, 3, size, size)), their cell shapes (n, cells, cells) and labels.

    The label (0 .. cells^2, uniform) is the number of ring cells; which cells hold a ring is random, the
    others hold a random distractor. Shapes have random radius, position inside their cell and colour, on
    a noisy background of random brightness.
    """
    side = size // cells
    n_cells = cells * cells
    labels = rng.integers(0, n_cells + 1, count)
    rank = rng.random((count, n_cells)).argsort(axis=1).argsort(axis=1)
    shapes = np.where(rank < labels[:, None], RING, rng.integers(DISC, CROSS + 1, (count, n_cells)))
    radius = rng.uniform(0.22 * side, 0.36 * side, (count, n_cells))
    centre = radius[..., None] + 0.5 + rng.random((count, n_cells, 2)) * (side - 2 * radius[..., None] - 1.5)
    colour = rng.uniform(0.35, 1.0, (count, n_cells, 3))
    pixel = np.arange(side) + 0.5
    dy = pixel[None, None, :, None] - centre[..., 0, None, None]
    dx = pixel[None, None, None, :] - centre[..., 1, None, None]
    r, half = radius[..., None, None], 0.75
    dist = np.hypot(dy, dx)
    masks = np.select(
        [shapes[..., None, None] == s for s in (RING, DISC, SQUARE)],
        [np.abs(dist - r) <= half, dist <= r, np.abs(np.maximum(np.abs(dx), np.abs(dy)) - r) <= half],
        ((np.abs(dx) <= half) & (np.abs(dy) <= r)) | ((np.abs(dy) <= half) & (np.abs(dx) <= r)),
    )  # (n, cells^2, side, side)
    background = rng.uniform(0.0, 0.35, (count, 3, 1, 1, 1))
    tiles = np.where(masks[:, None], colour.transpose(0, 2, 1)[..., None, None], background)
    tiles = tiles.reshape(count, 3, cells, cells, side, side).transpose(0, 1, 2, 4, 3, 5)
    images = tiles.reshape(count, 3, cells * side, cells * side)
    images = images + rng.normal(0.0, 0.12, images.shape)
    pixels = np.clip(np.round(images * 255), 0, 255).astype(np.uint8)
    return pixels, shapes.reshape(count, cells, cells), labels


def generated_dataset(counts: dict[str, int], size: int, cells: int, seed: int) -> ClassificationData:
    """The ring-counting data set: each split from its own child of ``seed`` (deterministic)."""
    if size % cells:
        raise ConfigError(f"cnn_dnn.data.size {size} is not divisible by cnn_dnn.data.cells {cells}; "
                          "choose a size that is a multiple of cells")
    images, labels = {}, {}
    for split, child in zip(SPLITS, np.random.SeedSequence(seed).spawn(len(SPLITS))):
        pixels, _, y = ring_images(counts[split], size, cells, np.random.default_rng(child))
        images[split], labels[split] = torch.from_numpy(pixels), torch.from_numpy(y).long()
    return ClassificationData(f"generated ring counting ({cells}x{cells} cells, {size} px)", images, labels,
                              cells * cells + 1)


class _BatchUnpickler(pickle.Unpickler):
    """Reads a CIFAR-10 python batch while refusing every global except those a numpy array needs."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray((0,)).__reduce__()[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray((0,)).__reduce__()[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR-10 batch")
        return self._ALLOWED[(module, name)]


def _cifar_folder(root: str | Path) -> Path:
    root = Path(root)
    for folder in (root, root / "cifar-10-batches-py"):
        if (folder / "data_batch_1").is_file():
            return folder
    raise DataError(
        f"CIFAR-10 not found at {root}: expected the python batches (data_batch_1 ... data_batch_5, test_batch) "
        f"in it or in {root / 'cifar-10-batches-py'}; unpack 'CIFAR-10 python version' there or fix cnn_dnn.data.root"
    )


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"CIFAR-10 batch {path} is missing; unpack the complete 'CIFAR-10 python version' archive")
    try:
        with path.open("rb") as handle:
            batch = _BatchUnpickler(handle, encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"], dtype=np.int64)
        return data.reshape(-1, 3, 32, 32), labels
    except Exception as err:  # pickle raises many types for foreign or truncated files
        raise DataError(f"{path} is not a CIFAR-10 python batch ({type(err).__name__}: {err}); "
                        "replace it with the file from the original archive") from None


def load_cifar10(root: str | Path, counts: dict[str, int], seed: int) -> ClassificationData:
    """CIFAR-10 from its python batches: train and val drawn without overlap from the 50,000 training
    images, test from the 10,000 test-batch images (seeded permutations)."""
    folder = _cifar_folder(root)
    batches = [_read_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    pool = {"train": (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))}
    pool["test"] = _read_batch(folder / "test_batch")
    if counts["train"] + counts["val"] > len(pool["train"][0]) or counts["test"] > len(pool["test"][0]):
        raise ConfigError(
            f"cnn_dnn.data.counts asks for {counts['train']}+{counts['val']} train+val and {counts['test']} test "
            f"images; {folder} has {len(pool['train'][0])} training and {len(pool['test'][0])} test images"
        )
    rng = np.random.default_rng(seed)
    order = {name: rng.permutation(len(images)) for name, (images, _) in pool.items()}
    picks = {"train": ("train", order["train"][: counts["train"]]),
             "val": ("train", order["train"][counts["train"] : counts["train"] + counts["val"]]),
             "test": ("test", order["test"][: counts["test"]])}
    images = {split: torch.from_numpy(pool[source][0][index]) for split, (source, index) in picks.items()}
    labels = {split: torch.from_numpy(pool[source][1][index]) for split, (source, index) in picks.items()}
    return ClassificationData("CIFAR-10", images, labels, 10)


def load_data(spec: dict[str, Any]) -> ClassificationData:
    """The data set a ``cnn_dnn.data`` section names."""
    if spec["kind"] == "cifar10":
        if spec["root"] is None:
            raise ConfigError("cnn_dnn.data.kind is cifar10 but cnn_dnn.data.root is null; set it to the folder "
                              "holding the CIFAR-10 python batches")
        return load_cifar10(spec["root"], spec["counts"], spec["seed"])
    return generated_dataset(spec["counts"], spec["size"], spec["cells"], spec["seed"])


def normalised(data: ClassificationData) -> dict[str, torch.Tensor]:
    """Float images per split, standardised per channel with the training split's mean and std."""
    train = data.images["train"].double() / 255
    mean, std = train.mean(dim=(0, 2, 3), keepdim=True), train.std(dim=(0, 2, 3), keepdim=True)
    return {split: ((images.double() / 255 - mean) / std).float() for split, images in data.images.items()}


# ---------------------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class FitSettings:
    """Adam with plateau decay for a fixed number of epochs (best validation accuracy kept)."""

    epochs: int
    lr: float
    lr_factor: float
    lr_patience: int
    batch_size: int


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 500, device: str = "cpu") -> torch.Tensor:
    """Logits of ``model`` (eval mode) for every row of ``x``."""
    model.eval()
    return torch.cat([model(chunk.to(device)).cpu() for chunk in x.split(batch_size)])


def accuracy(logits_or_labels: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of correct predictions (argmax of logits, or predicted labels)."""
    predicted = logits_or_labels.argmax(dim=1) if logits_or_labels.dim() == 2 else logits_or_labels
    return float((predicted == labels).double().mean())


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    settings: FitSettings,
    seed: int,
    device: str = "cpu",
) -> float:
    """Train ``model`` alone on ``train`` with cross-entropy; load its best-validation-accuracy weights.

    Returns the time of the training steps in seconds (validation passes excluded): on the CPU the process
    CPU time, which other jobs on a shared machine do not inflate; elsewhere the wall time.
    """
    clock = time.process_time if torch.device(device).type == "cpu" else time.perf_counter
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=settings.lr_factor,
                                                           patience=settings.lr_patience)
    order = torch.Generator().manual_seed(seed)
    x, y = train
    best_acc, best_state, seconds = -1.0, None, 0.0
    for _ in range(settings.epochs):
        start = clock()
        model.train()
        for index in torch.randperm(len(x), generator=order).split(settings.batch_size):
            if len(index) < 2:  # BatchNorm needs two samples
                continue
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[index].to(device)), y[index].to(device)).backward()
            optimizer.step()
        seconds += clock() - start
        logits = predict_logits(model, val[0], device=device)
        scheduler.step(float(F.cross_entropy(logits, val[1])))
        if (acc := accuracy(logits, val[1])) > best_acc:
            best_acc, best_state = acc, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return seconds


def count_parameters(*models: nn.Module) -> int:
    return sum(p.numel() for model in models for p in model.parameters())


# ---------------------------------------------------------------------------------------------------------
# Experiment


def run_seed(
    data: ClassificationData, section: dict[str, Any], seed: int, device: str = "cpu",
    log: Callable[[str], None] = lambda message: None,
) -> list[dict[str, Any]]:
    """Every method of seed 004 Tables 1-2 for one seed; one row per method (and per local CNN)."""
    grid = tuple(section["grid"])
    n_local, classes = grid[0] * grid[1], data.num_classes
    x, y = normalised(data), data.labels
    tiles = {split: subimages(images, grid) for split, images in x.items()}
    channels, height, width = x["train"].shape[1:]
    cnn, divisor, epochs = section["cnn"], section["local_divisor"], section["epochs"]

    def settings(stage: str) -> FitSettings:
        return FitSettings(epochs[stage], section["lr"], section["lr_factor"], section["lr_patience"],
                           section["batch_size"])

    def build(factory: Callable[[], nn.Module], stream: int) -> nn.Module:
        torch.manual_seed(seed * 1000 + stream)
        return factory()

    def local_cnn() -> nn.Module:
        return VGGClassifier(channels, classes, (height // grid[0], width // grid[1]),
                             scaled_down(cnn["widths"], divisor), cnn["convs_per_stage"],
                             scaled_down(cnn["hidden"], divisor))

    def dnn() -> nn.Module:
        return CoarseDNN(n_local, classes, section["dnn_hidden"])

    def row(method: str, scores: dict[str, float], params: int, seconds: float) -> dict[str, Any]:
        log(f"seed {seed} {method}: " + ", ".join(f"{s} {v:.4f}" for s, v in scores.items()) + f" ({seconds:.1f} s)")
        return {"method": method, "seed": seed, **{f"accuracy_{s}_ours": v for s, v in scores.items()},
                "params_ours": params, "train_time_s_ours": round(seconds, 2)}

    def model_row(method: str, model: nn.Module, inputs: dict[str, torch.Tensor], seconds: float) -> dict[str, Any]:
        scores = {s: accuracy(predict_logits(model, inputs[s], device=device), y[s]) for s in SPLITS}
        return row(method, scores, count_parameters(model), seconds)

    rows, local_nets, local_time = [], [], 0.0
    for i in range(n_local):
        net = build(local_cnn, 1 + i)
        seconds = fit(net, (tiles["train"][:, i], y["train"]), (tiles["val"][:, i], y["val"]), settings("local"),
                      seed * 1000 + 1 + i, device)
        rows.append(model_row(f"local CNN {i + 1}", net, {s: tiles[s][:, i] for s in SPLITS}, seconds))
        local_nets.append(net)
        local_time += seconds
    probs = {s: torch.stack([predict_logits(net, tiles[s][:, i], device=device).softmax(dim=1)
                             for i, net in enumerate(local_nets)], dim=1) for s in SPLITS}
    local_params = count_parameters(*local_nets)
    for method, combine in (("average probability", average_probability), ("majority vote", majority_vote)):
        rows.append(row(method, {s: accuracy(combine(probs[s]), y[s]) for s in SPLITS}, local_params, local_time))

    stacked = {s: p.flatten(1) for s, p in probs.items()}
    coarse = build(dnn, 100)
    seconds = fit(coarse, (stacked["train"], y["train"]), (stacked["val"], y["val"]), settings("dnn"),
                  seed * 1000 + 100, device)
    scores = {s: accuracy(predict_logits(coarse, stacked[s], device=device), y[s]) for s in SPLITS}
    rows.append(row("CNN-DNN", scores, local_params + count_parameters(coarse), local_time + seconds))

    whole = build(lambda: VGGClassifier(channels, classes, (height, width), cnn["widths"], cnn["convs_per_stage"],
                                        cnn["hidden"]), 200)
    seconds = fit(whole, (x["train"], y["train"]), (x["val"], y["val"]), settings("global"), seed * 1000 + 200, device)
    rows.append(model_row("global CNN", whole, x, seconds))

    coherent = build(lambda: CNNDNN([local_cnn() for _ in range(n_local)], dnn(), grid), 300)
    seconds = fit(coherent, (x["train"], y["train"]), (x["val"], y["val"]), settings("coherent"), seed * 1000 + 300,
                  device)
    rows.append(model_row("CNN-DNN-coherent", coherent, x, seconds))

    transfer = build(lambda: CNNDNN(copy.deepcopy(local_nets), dnn(), grid), 400)
    seconds = fit(transfer, (x["train"], y["train"]), (x["val"], y["val"]), settings("transfer"), seed * 1000 + 400,
                  device)
    rows.append(model_row("CNN-DNN-transfer", transfer, x, local_time + seconds))
    return rows


def _notes(section: dict[str, Any], data: ClassificationData, device: str) -> tuple[str, dict[str, str]]:
    """The note every row carries, and the extra note of single methods."""
    epochs, cnn = section["epochs"], section["cnn"]
    setup = (f"CNN: VGG-type, {cnn['convs_per_stage']} conv(s) per stage, widths {cnn['widths']}, dense {cnn['hidden']}"
             f"; local CNNs: widths and neurons / {section['local_divisor']}; DNN hidden {section['dnn_hidden']}; "
             f"epochs local {epochs['local']}, DNN {epochs['dnn']}, global {epochs['global']}, coherent "
             f"{epochs['coherent']}, transfer {epochs['transfer']} (paper: 150 local + 50 transfer); counts "
             + "/".join(str(len(data.labels[s])) for s in SPLITS) + " train/val/test; train time: "
             + ("CPU time" if torch.device(device).type == "cpu" else "wall time")
             + " of the training steps, local CNNs one after the other")
    if data.name != "CIFAR-10":
        setup = f"{data.name}: not a data set of the papers, so no paper values; " + setup
    methods = {
        "average probability": "combines the local CNNs (no training of its own; time = local CNNs)",
        "majority vote": "combines the local CNNs; ties go to the highest summed probability",
        "CNN-DNN": "local CNNs trained independently, then the DNN on their training-image probabilities",
        "CNN-DNN-coherent": "local CNNs + DNN trained end to end from scratch",
        "CNN-DNN-transfer": "local CNNs from the independent training above, then trained end to end",
    }
    return setup, methods


def classification_table(section: dict[str, Any], device: str = "cpu",
                         log: Callable[[str], None] = lambda message: None) -> pd.DataFrame:
    """The CNN-DNN comparison of seed 004 Tables 1-2 for a ``cnn_dnn`` config section."""
    data = load_data(section["data"])
    grid = tuple(section["grid"])
    rows = [r for seed in section["seeds"] for r in run_seed(data, section, seed, device, log)]
    setup, method_notes = _notes(section, data, device)
    paper = PAPER_CIFAR10_VGG9 if data.name == "CIFAR-10" and grid == (2, 2) else {}
    for r in rows:
        table, val_paper, train_paper = paper.get(r["method"], ("", None, None))
        if paper:
            r["accuracy_train_paper"], r["accuracy_test_paper"] = train_paper, val_paper
        extra = [method_notes.get(r["method"], ""), PAPER_CIFAR10_NOTE if table else ""]
        r.update({"dataset": data.name, "decomposition": f"type A {grid[0]}x{grid[1]}, delta 0", "paper_table": table,
                  "note": "; ".join(part for part in [*extra, setup] if part)})
    columns = ["dataset", "decomposition", "method", "seed", "paper_table"]
    for split in SPLITS:
        if paper and split != "val":  # the paper has training and (our test split's) validation accuracy
            columns.append(f"accuracy_{split}_paper")
        columns.append(f"accuracy_{split}_ours")
    return pd.DataFrame(rows)[columns + ["params_ours", "train_time_s_ours", "note"]]


def write_classification_table(
    section: dict[str, Any], out: str | Path, *, config: dict[str, Any] | None = None,
    config_file: str | None = None, device: str = "cpu", progress: bool = True,
) -> pd.DataFrame:
    """Run the experiment of ``section`` and write ``out`` (CSV) with its provenance sidecar."""
    started, clock = utc_now(), time.perf_counter()
    log = (lambda message: print(message, file=sys.stderr, flush=True)) if progress else (lambda message: None)
    frame = classification_table(section, device, log)
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    write_sidecar(out, provenance(
        config=config if config is not None else {"cnn_dnn": section}, config_file=config_file,
        seeds=list(section["seeds"]), started=started, wall_time_s=time.perf_counter() - clock,
        method="accuracy = fraction of correct argmax predictions per split; each model keeps the weights of "
               "its best validation-accuracy epoch; train_time_s = time.process_time (CPU) or time.perf_counter "
               "(other devices) around the training steps",
        extra={"torch_device": str(device)},
    ))
    return frame
