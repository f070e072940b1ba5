"""Thesis Tables 6.4, 6.5, 7.5 and 7.6 from our modules: the thesis's numbers exactly, its errata documented.

Everything is counted on instantiated modules or a meta-device forward, so these tests train nothing.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from ddubench.analysis.memory_model import summary_pass_bytes
from ddubench.analysis.params import count_parameters
from ddubench.errors import ModelSpecError
from ddubench.models import FCCoarseNetwork, UNet, build_model
from ddubench.report import paper
from ddubench.report.thesis_tables import (
    THESIS_TABLES,
    fc_params_eq6_4,
    thesis_table6_4,
    thesis_table6_5,
    thesis_table6_5_model,
    thesis_table7_5,
    thesis_table7_6,
)

MB = 2**20


@pytest.fixture(scope="module")
def table6_5() -> pd.DataFrame:
    return thesis_table6_5().set_index("block")


@pytest.fixture(scope="module")
def table7_5() -> pd.DataFrame:
    return thesis_table7_5()


# ------------------------------------------------------------------------------------------------ Table 6.4


def test_table6_4_cnn_counts_are_the_thesis_values() -> None:
    frame = thesis_table6_4()
    assert list(frame["params_cnn_ours"]) == list(frame["params_cnn_paper"])
    assert dict(zip(frame["features"], frame["params_cnn_ours"])) == {1: 78, 2: 306, 4: 1212, 8: 4824}
    # with BatchNorm they are the coarse networks of journal Table 8 / thesis Table 7.1
    with_bn = dict(zip(frame["features"], frame["params_cnn_with_bn_ours"]))
    assert with_bn == {f: paper.TABLE8_COARSE_PARAMS[f] for f in (1, 2, 4, 8)}


def test_table6_4_fc_counts_match_the_thesis_but_its_one_erratum() -> None:
    frame = thesis_table6_4().set_index(["features", "size_px"])
    assert (frame["params_fc_ours"] == frame["params_fc_eq6_4"]).all()
    errata = frame["note"] != ""
    assert list(frame.index[errata]) == [(8, 4)]
    good = frame[~errata]
    assert (good["params_fc_ours"] == good["params_fc_paper"]).all()
    row = frame.loc[(8, 4)]
    assert (row["params_fc_paper"], row["params_fc_ours"]) == (49436, 49536)
    assert "erratum" in row["note"] and "49,536" in row["note"]


@pytest.mark.parametrize(("channels", "size", "layers"), [(1, 2, 3), (8, 8, 3), (3, 5, 2), (2, 1, 1)])
def test_fc_network_has_eq6_4_parameters(channels: int, size: int, layers: int) -> None:
    """Per layer C_in S^4 C_out + C_out S^2 with C_in = C_out = C (thesis Eq. 6.4)."""
    network = FCCoarseNetwork(channels, size, layers)
    expected = layers * (channels**2 * size**4 + channels * size**2)
    assert count_parameters(network) == expected == fc_params_eq6_4(channels, size, layers)


def test_fc_network_keeps_the_maps_shape_and_refuses_another_size() -> None:
    network = FCCoarseNetwork(2, 4)
    assert network(torch.rand(3, 2, 4, 4)).shape == (3, 2, 4, 4)
    with pytest.raises(ModelSpecError, match="takes 2 x 4 x 4 maps"):
        network(torch.rand(1, 2, 8, 8))


# ------------------------------------------------------------------------------------------------ Table 6.5

BLOCKS = list(paper.THESIS_TABLE6_5)
COMM = "communication network"


def test_table6_5_feature_map_megabytes_are_the_thesis_values(table6_5: pd.DataFrame) -> None:
    blocks = table6_5.loc[[b for b in BLOCKS if b != COMM]]
    assert (blocks["fmap_mb_ours"] == blocks["fmap_mb_paper"]).all()
    assert (blocks["size_px_ours"] == blocks["size_px_paper"]).all()
    assert (blocks["in_channels_ours"] == blocks["in_channels_paper"]).all()
    assert (blocks["out_channels_ours"] == blocks["out_channels_paper"]).all()


def test_table6_5_value_counts_agree_to_the_printed_digit(table6_5: pd.DataFrame) -> None:
    blocks = table6_5.loc[[b for b in BLOCKS if b != COMM]]
    unit = blocks["fmap_values_millions_paper"].map(lambda v: 1.0 if v >= 10 else 0.1)
    assert ((blocks["fmap_values_millions_ours"] - blocks["fmap_values_millions_paper"]).abs() < unit).all()


def test_table6_5_weights_are_the_thesis_values_without_transposed_biases() -> None:
    for block in thesis_table6_5_model().blocks:
        weights_paper, weights_mb_paper = paper.THESIS_TABLE6_5[block.name][5:]
        if weights_paper is None:
            continue
        assert block.weights - block.transposed_bias == weights_paper, block.name
        if block.name != COMM:
            assert round(weights_paper * 4 / MB, 3) == weights_mb_paper, block.name
    biases = {b.name: b.transposed_bias for b in thesis_table6_5_model().blocks if b.transposed_bias}
    assert biases == {"decoder block 1": 512, "decoder block 2": 256, "decoder block 3": 128, "decoder block 4": 64}


def test_table6_5_communication_network_and_its_errata(table6_5: pd.DataFrame) -> None:
    row = table6_5.loc[COMM]
    # thesis 29 maps of 256 x 64 x 64 float32 (4 MB each); ours (1 + 2 x 3) x 4 + 1024 / 256 = 32
    assert (row["fmap_mb_paper"], row["fmap_mb_ours"]) == (116.0, 128.0)
    assert row["fmap_values_millions_ours"] == 32 * 256 * 64 * 64 / 1e6
    assert (row["weights_paper"], row["weights_ours"]) == (4917504, 4917504)
    assert (row["weights_mb_paper"], round(row["weights_mb_ours"], 3)) == (18.750, 18.759)
    assert (row["out_channels_paper"], row["out_channels_ours"]) == (1024, 256)
    assert "29 maps" in row["note"] and "ours 32 = 28 + 4" in row["note"] and "erratum" in row["note"]


def test_table6_5_adam_state(table6_5: pd.DataFrame) -> None:
    encoder, decoder, comm = (table6_5.loc[f"optimizer state ({part})"] for part in ("encoder", "decoder", "comm."))
    assert encoder["weights_ours"] == encoder["weights_paper"] == 37694336
    assert round(encoder["weights_mb_ours"], 3) == encoder["weights_mb_paper"] == 143.792
    assert decoder["weights_ours"] - 2 * (512 + 256 + 128 + 64) == decoder["weights_paper"] == 24379270
    assert comm["weights_ours"] == comm["weights_paper"] == 9835008
    assert (comm["weights_mb_paper"], round(comm["weights_mb_ours"], 3)) == (18.759, 37.518)
    assert "erratum" in comm["note"]


# ------------------------------------------------------------------------------------------------ Table 7.5


def test_summary_rule_by_hand() -> None:
    """U-Net(0), width 1, 1 class, 4x4: 8 layer outputs + the DoubleConv + the head twice, 16 values each,
    x 2 for gradients, 4 bytes."""
    model = UNet(in_channels=1, num_classes=1, depth=0, base_width=1)
    assert summary_pass_bytes(model, (4, 4)) == (8 + 1 + 2) * 16 * 2 * 4


def test_table7_5_parameters_are_the_thesis_values(table7_5: pd.DataFrame) -> None:
    assert (table7_5["params_ours"] == table7_5["params_paper"]).all()
    assert set(table7_5["params_ours"]) == {1927042, 1954978}
    assert (round(table7_5["params_mb_ours"].iloc[0], 2), round(table7_5["params_mb_ours"].iloc[1], 1)) == (7.35, 7.5)


def test_table7_5_pass_size_reproduces_2404_over_n(table7_5: pd.DataFrame) -> None:
    unet, ddu = table7_5.iloc[0], table7_5.iloc[1:]
    assert unet["fwd_bwd_mb_ours"] == unet["fwd_bwd_mb_paper"] == 2404.0
    assert list(ddu["devices"]) == [1, 2, 4]
    assert list(ddu["fwd_bwd_mb_paper"]) == [2404 / n + 4.25 for n in (1, 2, 4)]
    # the encoder-decoder part is the thesis's 2404 / N; the coarse network adds 13 MB, not the thesis's 4.25
    assert list(ddu["fwd_bwd_mb_ours"]) == [2404 / n + 13.0 for n in (1, 2, 4)]
    assert (table7_5["input_mb_ours"] == table7_5["input_mb_paper"]).all()
    assert all("not reproduced" in note for note in ddu["note"])


def test_table7_5_memory_model_and_empty_measured_column(table7_5: pd.DataFrame) -> None:
    # U-Net: input 3 + input block 128 + encoder 88 + 44 + 22 + decoder 48 + 96 + 192 + logits 2 + labels 2 MB;
    # DDU-Net on one device adds 15 coarse-network maps of 32 x 64 x 64 (0.5 MB each)
    assert list(table7_5["train_fmap_mb_model_ours"]) == [625.0, 632.5, 318.0, 160.75]
    assert table7_5["train_peak_mb_measured_per_rank_ours"].isna().all()
    assert "not measured: the column measures the DDU-Net split" in table7_5["note"].iloc[0]
    assert all("not measured in this run" in note for note in table7_5["note"].iloc[1:])


def _ranks_record(devices: int, peaks_mb: list[float], spec: str = "ddunet_D3_F32_CY_W32_K3") -> dict:
    subimage, grid = {1: ([512, 512], [1, 1]), 2: ([512, 256], [1, 2]), 4: ([256, 256], [2, 2])}[devices]
    return {"records": [{"spec": spec, "subimage": subimage, "grid": grid, "peak_mem_bytes": mb * 2**20}
                        for mb in peaks_mb]}


def test_table7_5_measured_column_is_the_largest_rank_of_each_split() -> None:
    from ddubench.errors import DdubenchError
    from ddubench.report.thesis_tables import table7_5_peaks

    peaks = table7_5_peaks([_ranks_record(1, [1380.0]), _ranks_record(2, [700.0, 706.0]),
                            _ranks_record(4, [370.0, 374.0, 371.0, 372.0])])
    assert peaks == {1: 1380.0, 2: 706.0, 4: 374.0}
    table = thesis_table7_5(peaks)
    assert pd.isna(table["train_peak_mb_measured_per_rank_ours"].iloc[0])  # the U-Net is never split
    assert list(table["train_peak_mb_measured_per_rank_ours"].iloc[1:]) == [1380.0, 706.0, 374.0]
    assert all("measured: the largest rank's peak" in note for note in table["note"].iloc[1:])
    with pytest.raises(DdubenchError, match="ddunet_D3_F32_CY_W32_K3"):
        table7_5_peaks([_ranks_record(2, [1.0, 1.0], spec="ddunet_D3_F16_CY")])
    wrong = _ranks_record(2, [1.0, 1.0])
    wrong["records"][0]["grid"] = [2, 1]
    with pytest.raises(DdubenchError, match="1x2 subimages of 512x256"):
        table7_5_peaks([wrong])


# ------------------------------------------------------------------------------------------------ Table 7.6


def test_table7_6_parameters_are_the_thesis_values() -> None:
    frame = thesis_table7_6().set_index("module")
    assert (frame["params_ours"] == frame["params_paper"]).all()
    assert list(frame["params_ours"]) == [1163008, 753760, 111168]
    assert list(frame["bottleneck_px_ours"].iloc[:2]) == ["16x16", "16x16"]


def test_table7_6_paths_plus_input_block_and_head_are_the_table7_5_unet() -> None:
    model = build_model("unet_D3_W32", in_channels=3, num_classes=2, subimage_size=(128, 128))
    parts = [model.encoder.inc, model.encoder.downs, model.decoder.ups, model.head]
    assert [count_parameters(p) for p in parts] == [10208, 1163008, 753760, 66]
    assert sum(count_parameters(p) for p in parts) == paper.THESIS_TABLE7_5_PARAMS["U-Net"]


def test_every_builder_is_registered_with_a_method() -> None:
    assert set(THESIS_TABLES) == {"thesis_table6_4", "thesis_table6_5", "thesis_table7_5", "thesis_table7_6"}
    assert all(callable(builder) and method for builder, method in THESIS_TABLES.values())
