"""Memory model: hand-computed numbers on a tiny U-Net, journal Table 5, autograd's saved tensors, and CPU
measurements (single process and the distributed runtime's ranks).

Tolerance against measurement: exact to the byte. The model predicts the peak of live tensor storages, which
is what MemTracker measures; allocator caching and oneDNN scratch are outside both.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from _ranks import run_ranks
from torch import nn

from ddubench.analysis.memory_model import memory_model, model_bytes
from ddubench.cli import main
from ddubench.errors import DdubenchError
from ddubench.measure.memory import ddunet_rank_forward, peak_memory
from ddubench.models import DDUNet, UNet, build_model
from ddubench.report.rf_memory import TABLE5_PAPER, table5_model

MB = 2**20


def test_tiny_unet_by_hand() -> None:
    """U-Net(D=1, c=2), 1 input channel, 2 classes, one 8x8 image (values: feature-map values, bytes at 4 each)."""
    model = UNet(in_channels=1, num_classes=2, depth=1, base_width=2)
    memory = memory_model(model, (8, 8))
    got = {b.name: (b.weights, b.transposed_bias, b.saved_values, b.saved_bytes, b.kept_bytes, b.carried_bytes,
                    b.working_bytes) for b in memory.blocks}
    assert got == {
        # input: 1 x 8 x 8, kept for the whole forward
        "input": (0, 0, 64, 256, 256, 0, 0),
        # 2 x (conv 1->2 or 2->2, 3x3, no bias, + BN): 18 + 4 + 36 + 4; four 2x8x8 maps; working: conv + BN output
        "input block": (62, 0, 4 * 128, 4 * 512, 512, 0, 2 * 512),
        # pooled 2x4x4 + its int64 indices + four 4x4x4 maps; working: pooled + conv + BN output of 4x4x4
        "encoder block 1": (72 + 8 + 144 + 8, 0, 32 + 32 + 4 * 64, 32 * 4 + 32 * 8 + 4 * 64 * 4, 256, 0, 128 + 512),
        # transposed conv 4->2 (32 + 2 bias) + DoubleConv(4, 2) (72 + 4 + 36 + 4); concat 4x8x8 + four 2x8x8 maps;
        # working: concat (1024 B) + conv + BN output (2 x 512 B)
        "decoder block 1": (34 + 116, 2, 256 + 4 * 128, (256 + 4 * 128) * 4, 0, 512, 1024 + 1024),
        # 1x1 conv 2->2 with bias; logits 2x8x8
        "output block": (6, 0, 128, 512, 0, 512, 512),
        # int64 class ids
        "labels": (0, 0, 64, 512, 0, 0, 0),
    }
    # parameters (450 values) + BN buffers (2 x 2 + 2 x 4 + 2 x 2 channels x 2 statistics, 6 int64 counters)
    assert model_bytes(model) == 450 * 4 + 32 * 4 + 6 * 8 == 1976
    # peak: model + input + skip 512 + decoder working 2048 + bottleneck 256
    assert memory.inference_peak_bytes == 1976 + 256 + 512 + 256 + 2048


def test_table5_weights_every_block() -> None:
    """The paper's weights are ours without the transposed-conv biases (paper_facts 2.9)."""
    for block in table5_model().blocks:
        paper = TABLE5_PAPER[block.name][2]
        if paper is not None:
            assert block.weights - block.transposed_bias == paper, block.name


def _significant(value: float, digits: int = 2) -> float:
    return float(f"{value:.{digits - 1}e}")


def test_table5_feature_maps() -> None:
    """Every block's MB exactly and its values to the paper's two printed digits, except the communication
    network, where the paper counts (1 + 2 x 3) x 4 + 1 maps of 64x64x64 and we count (1 + 2 x 3) x 4 + 4."""
    unit = 64 * 64 * 64
    for block in table5_model().blocks:
        values_m, mb, _, _ = TABLE5_PAPER[block.name]
        if block.name == "communication network":
            assert block.saved_values == (7 * 4 + 4) * unit
            assert mb == (7 * 4 + 1) * unit * 4 / MB
        else:
            assert block.saved_bytes / MB == mb, block.name
            assert _significant(block.saved_values / 1e6) == _significant(values_m), block.name


def _saved_by_autograd(model: nn.Module, forward, inputs: list[torch.Tensor]) -> int:
    """Bytes of distinct storages autograd saves for backward, without parameters, buffers, inputs and 1-D
    per-channel BatchNorm statistics."""
    skip = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers(), *inputs]}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if t.dim() == 4 and storage.data_ptr() not in skip:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(saved.values())


def _others(model: DDUNet, size: int, grid: tuple[int, int]) -> list[torch.Tensor]:
    shape = (1, model.features, size >> model.depth, size >> model.depth)
    return [torch.rand(shape) for _ in range(grid[0] * grid[1] - 1)]


@pytest.mark.parametrize("spec, grid, dropout", [
    ("unet_D2_W2", (1, 1), 0.0), ("unet_D2_W2", (1, 1), 0.2), ("ddunet_D2_F4_CY_W2", (2, 2), 0.0),
    ("ddunet_D2_F4_CY_W2", (1, 1), 0.0), ("ddunet_D2_F4_CN_W2", (1, 1), 0.0), ("ddunet_D2_F0_CY_W2", (1, 1), 0.0),
])
def test_training_feature_maps_are_what_autograd_saves(spec: str, grid: tuple[int, int], dropout: float) -> None:
    """The paper's convention is exactly autograd's saved tensors (plus input, logits and labels)."""
    torch.manual_seed(0)
    model = build_model(spec, in_channels=3, num_classes=3, subimage_size=(32, 32), dropout=dropout).train()
    x = torch.rand(1, 3, 32, 32)
    if isinstance(model, DDUNet):
        others = _others(model, 32, grid)
        saved = _saved_by_autograd(model, lambda: ddunet_rank_forward(model, x, others, grid), [x, *others])
    else:
        saved = _saved_by_autograd(model, lambda: model(x), [x])
    blocks = memory_model(model, (32, 32), grid).blocks
    assert saved == sum(b.saved_bytes for b in blocks if b.name not in ("input", "output block", "labels"))


def _measured_inference(model: nn.Module, size: int, grid: tuple[int, int]) -> int:
    x = torch.rand(1, 3, size, size)
    others = _others(model, size, grid) if isinstance(model, DDUNet) else []

    def forward() -> None:
        with torch.inference_mode():
            ddunet_rank_forward(model, x, others, grid) if isinstance(model, DDUNet) else model(x)

    return peak_memory(forward, "cpu", external=(model, x))["peak_bytes"]


@pytest.mark.parametrize("spec, size, grid", [
    ("unet_D4_W16", 64, (1, 1)), ("unet_D3_W4", 48, (1, 1)), ("ddunet_D4_F64_CY_W16", 32, (1, 2)),
    ("ddunet_D4_F64_CY_W16", 64, (2, 2)), ("ddunet_D3_F8_CY_W4", 32, (1, 1)), ("ddunet_D3_F8_CN_W4", 32, (1, 1)),
    ("ddunet_D3_F0_CY_W4", 32, (1, 1)),
])
def test_inference_peak_matches_cpu_measurement(spec: str, size: int, grid: tuple[int, int]) -> None:
    model = build_model(spec, in_channels=3, num_classes=3, subimage_size=(size, size)).eval()
    assert memory_model(model, (size, size), grid).inference_peak_bytes == _measured_inference(model, size, grid)


def test_rank_forward_is_the_models_output_for_its_subimage() -> None:
    torch.manual_seed(0)
    model = build_model("ddunet_D2_F4_CY", in_channels=1, num_classes=3, subimage_size=(16, 16)).double().eval()
    x = torch.rand(1, 1, 16, 48, dtype=torch.float64)
    tiles = [x[..., 16 * i: 16 * (i + 1)] for i in range(3)]
    with torch.no_grad():
        full = model(x)
        maps = [model.encoder(tile)[-1][:, -4:] for tile in tiles]
        for rank in range(3):
            out = ddunet_rank_forward(model, tiles[rank], maps[:rank] + maps[rank + 1:], (1, 3), rank)
            torch.testing.assert_close(out, full[..., 16 * rank: 16 * (rank + 1)], atol=1e-12, rtol=0)


def _rank_peak(spec: str, size: int) -> int:
    from ddubench.distributed.runtime import distributed
    from ddubench.measure.scaling import measure_rank

    with distributed(device="cpu") as ctx:
        return measure_rank(spec, size, 2 * size, ctx, in_channels=3, subimage_size=size, warmup=0,
                            repeats=1)["peak_mem_bytes"]


def test_prediction_equals_per_rank_peak_of_the_distributed_runtime(tmp_path: Path) -> None:
    """Two gloo ranks of DDU-Net(4, 64, Y), one 32x32 subimage each: both ranks' measured peak is the model's
    prediction (and what the single-process rank forward measures)."""
    spec, size = "ddunet_D4_F64_CY_W16", 32
    results = run_ranks(2, _rank_peak, spec, size, tmp=tmp_path)
    model = build_model(spec, in_channels=3, num_classes=3, subimage_size=(size, size)).eval()
    predicted = memory_model(model, (size, size), (1, 2)).inference_peak_bytes
    assert results == [("ok", predicted), ("ok", predicted)]


def test_errors_name_the_problem() -> None:
    with pytest.raises(DdubenchError, match="no block layout for model type Sequential"):
        memory_model(nn.Sequential(nn.Conv2d(1, 1, 3)), (8, 8))
    with pytest.raises(DdubenchError, match="needs a DDU-Net with communication"):
        memory_model(UNet(depth=1), (8, 8), (1, 2))
    with pytest.raises(DdubenchError, match="cpu or cuda"):
        peak_memory(lambda: None, "meta")


def test_table5_and_fig7_through_the_cli(tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "table5.csv"
    assert main(["table", "table5", "--out", str(out)]) == 0
    rows = {row["block"]: row for row in csv.DictReader(out.open())}
    assert rows["encoder block 1"]["fmap_mb_paper"] == rows["encoder block 1"]["fmap_mb_ours"] == "176.0"
    assert rows["decoder block 1"]["weights_ours"] == "574080" and "128 transposed-conv biases" in rows[
        "decoder block 1"]["note"]
    assert "misprint" in rows["communication network"]["note"] and "total" in rows

    config = yaml.safe_load((repo_root / "config/smoke.yaml").read_text())
    config["fig7"] = {"resolutions": [64, 32], "max_memory_mb": 9.5}  # DDU-Net at 64 px is predicted at 9.78 MB
    config_file = tmp_path / "fig7.yaml"
    config_file.write_text(yaml.safe_dump(config))
    csv_path, pdf = tmp_path / "fig7_memory.csv", tmp_path / "fig7_memory.pdf"
    assert main(["table", "fig7", "--config", str(config_file), "--threads", "1", "--out", str(csv_path)]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["resolution_px"], r["subimages"]) for r in rows] == [("32", "1"), ("32", "2"), ("64", "1"), ("64", "2")]
    assert rows[1]["overhead_pct_paper"] == "25.9" and float(rows[1]["overhead_pct_ours"]) > 0
    assert rows[1]["peak_mem_mb_ours"] == rows[1]["peak_mem_predicted_mb_ours"]
    assert rows[3]["peak_mem_mb_ours"] == "" and "not measured" in rows[3]["note"]
    assert "MemTracker" in json.loads((tmp_path / "fig7_memory.meta.json").read_text())["method"]
    assert main(["figure", "fig7", "--csv", str(csv_path), "--out", str(pdf)]) == 0
    assert pdf.read_bytes().startswith(b"%PDF")
