"""Inria (thesis §7.3): the loader on generated tiles and its errors, the split and patch grid, flip/rotation
augmentation (exact resume, identical ranks), Tables 7.7/7.8 and the feature-map figures' measures."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import _dist_workers as workers
from _ranks import run_ranks
from ddubench.cli import main
from ddubench.data import inria
from ddubench.data.fake_inria import write_fake_inria
from ddubench.data.registry import detect_kind, load_split
from ddubench.errors import ConfigError, DataError, DdubenchError
from ddubench.models import build_model
from ddubench.report import paper, thesis_inria
from ddubench.report.inria_figures import border_ratio, capture_maps
from ddubench.training.augment import check_square, flip_rotate
from ddubench.training.checkpoint import load_checkpoint
from ddubench.training.trainer import Trainer, TrainConfig

SPEC = inria.PrepareSpec(val=1, test=1, split_seed=0, crop_train=64, overlap=32, crop_eval=64, subimage=32)


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_inria(tmp_path_factory.mktemp("inria_tiles"), tiles_per_city=3, size=96, seed=0)


@pytest.fixture(scope="module")
def prepared(tiles: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inria_prep") / "inria"
    inria.prepare(tiles, out, SPEC, progress=False)
    return out


# ------------------------------------------------------------------------------------------------ data


def test_patch_grid_is_the_thesis_ten_by_ten_with_32_px_overlap() -> None:
    starts = inria.grid_origins(5000, 512, 32)
    assert len(starts) == 10 and starts[1] == 480 and starts[-1] == 4320
    assert inria.grid_origins(5000, 2048, 0) == [0, 2048]
    assert inria.grid_origins(96, 64, 32) == [0, 32]


def _tile(city: str, number: int) -> inria.Tile:
    return inria.Tile(city, number, Path(f"{city}{number}.tif"), Path(f"gt/{city}{number}.tif"))


def test_split_is_per_city_five_five_twenty_six_and_seeded() -> None:
    tiles = [_tile(city, n) for city in inria.CITIES for n in range(1, 37)]
    splits = inria.split_tiles(tiles, inria.PrepareSpec())
    for city in inria.CITIES:
        counts = {name: sum(t.city == city for t in chosen) for name, chosen in splits.items()}
        assert counts == {"train": 26, "val": 5, "test": 5}
    ids = [{t.id for t in chosen} for chosen in splits.values()]
    assert set.union(*ids) == {t.id for t in tiles} and sum(map(len, ids)) == 180
    assert inria.split_tiles(tiles, inria.PrepareSpec()) == splits
    assert inria.split_tiles(tiles, inria.PrepareSpec(split_seed=1))["test"] != splits["test"]
    with pytest.raises(DataError, match="city austin has 10 tiles, too few"):
        inria.split_tiles([_tile("austin", n) for n in range(1, 11)], inria.PrepareSpec())


def test_a_citys_split_does_not_depend_on_the_other_cities() -> None:
    every = inria.split_tiles([_tile(city, n) for city in inria.CITIES for n in range(1, 37)], inria.PrepareSpec())
    vienna_only = inria.split_tiles([_tile("vienna", n) for n in range(1, 37)], inria.PrepareSpec())
    assert vienna_only["test"] == [t for t in every["test"] if t.city == "vienna"]


@pytest.mark.parametrize("field, value", [("val", -1), ("test", 0), ("subimage", 0), ("crop_eval", 0)])
def test_a_split_or_size_below_one_is_a_one_line_error(field: str, value: int) -> None:
    with pytest.raises(DataError, match=f"{field}={value} must be at least 1"):
        inria.PrepareSpec(**{field: value})


def test_prepared_patches_hold_buildings_and_match_the_tiles(tiles: Path, prepared: Path) -> None:
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["dataset"] == "inria" and manifest["fake"]["tiles_per_city"] == 3
    split = json.loads((prepared / "split.json").read_text())["ids"]
    assert [len(split[name]) for name in ("train", "val", "test")] == [5, 5, 5]
    masks = np.load(prepared / "train" / "masks.npy")
    images = np.load(prepared / "train" / "images.npy")
    assert set(np.unique(masks)) <= {0, 1} and masks.reshape(len(masks), -1).any(axis=1).all()
    # every training patch is the tile's pixels at its recorded origin, and every building patch was kept
    expected = 0
    for tile_id in split["train"]:
        gt = np.asarray(Image.open(tiles / "train" / "gt" / f"{tile_id}.tif")) == 255
        expected += sum(gt[r : r + 64, c : c + 64].any() for r in (0, 32) for c in (0, 32))
    crops = manifest["splits"]["train"]["crops"]
    assert len(crops) == len(masks) == expected
    first = crops[0]
    tile = np.asarray(Image.open(tiles / "train" / "images" / f"{first['id']}.tif"))
    assert np.array_equal(images[0].transpose(1, 2, 0), tile[first["row"] : first["row"] + 64,
                                                           first["col"] : first["col"] + 64])
    # val/test: the one whole 64 px crop of each 96 px tile
    assert np.load(prepared / "test" / "images.npy").shape == (5, 3, 64, 64)


def test_registry_detects_inria_and_scales_without_normalising(prepared: Path) -> None:
    assert detect_kind(prepared / "train") == "inria"
    split = load_split(None, prepared / "val")
    assert split.class_names == ("background", "building") and split.subimage_size == (32, 32)
    images, masks = split.batch(torch.arange(2))
    raw = np.load(prepared / "val" / "images.npy")[:2]
    torch.testing.assert_close(images, torch.from_numpy(raw).float() / 255)
    assert masks.dtype == torch.int64


def test_a_second_preparation_reuses_the_first(tiles: Path, prepared: Path) -> None:
    stamp = (prepared / "train" / "images.npy").stat().st_mtime_ns
    inria.prepare(tiles, prepared, SPEC, progress=False)
    assert (prepared / "train" / "images.npy").stat().st_mtime_ns == stamp


def _copy_tiles(source: Path, target: Path) -> Path:
    for folder in ("images", "gt"):
        (target / "train" / folder).mkdir(parents=True)
        for path in (source / "train" / folder).glob("*.tif"):
            (target / "train" / folder / path.name).write_bytes(path.read_bytes())
    return target


@pytest.mark.parametrize("fault, message", [
    ("no_root", "does not exist; unpack AerialImageDataset"),
    ("no_gt", "train/gt is missing"),
    ("orphan", "has no partner"),
    ("bad_name", "is not <city><number>.tif"),
    ("grey_gt", r"are neither 0 \(background\) nor 255 \(building\)"),
    ("truncated", "chicago2.tif is .*; replace the file"),
])
def test_malformed_datasets_give_one_line_errors(tiles: Path, tmp_path: Path, fault: str, message: str) -> None:
    root = tmp_path / "missing" if fault == "no_root" else _copy_tiles(tiles, tmp_path / "root")
    if fault == "no_gt":
        for path in (root / "train" / "gt").iterdir():
            path.unlink()
        (root / "train" / "gt").rmdir()
    elif fault == "orphan":
        (root / "train" / "gt" / "austin1.tif").unlink()
    elif fault == "bad_name":
        for folder in ("images", "gt"):
            (root / "train" / folder / "austin1.tif").rename(root / "train" / folder / "Austin_1.tif")
    elif fault == "grey_gt":
        Image.fromarray(np.full((96, 96), 128, np.uint8)).save(root / "train" / "gt" / "austin1.tif")
    elif fault == "truncated":
        path = root / "train" / "images" / "chicago2.tif"
        path.write_bytes(path.read_bytes()[:500])
    out = tmp_path / "out"
    assert main(["inria-prepare", "--root", str(root), "--out", str(out), "--val", "1", "--test", "1",
                 "--crop-train", "64", "--overlap", "32", "--crop-eval", "64", "--subimage", "32",
                 "--no-progress"]) == 2
    with pytest.raises(DataError, match=message):
        inria.prepare(root, out, SPEC, progress=False)


def test_generated_tiles_are_deterministic_and_marked(tmp_path: Path) -> None:
    a = write_fake_inria(tmp_path / "a", 3, 64, seed=5)
    b = write_fake_inria(tmp_path / "b", 3, 64, seed=5)
    for folder in ("images", "gt"):
        for path in (a / "train" / folder).glob("*.tif"):
            assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(b / "train" / folder / path.name)))
    assert json.loads((a / inria.FAKE_MARKER).read_text())["note"].startswith("generated Inria-format")
    assert len(list((a / "train" / "images").glob("*.tif"))) == 15
    with pytest.raises(DataError, match="at least 3 tiles per city"):
        write_fake_inria(tmp_path / "c", 2, 64)


def test_generating_fewer_tiles_removes_the_extra_ones_and_real_tiles_are_never_overwritten(tmp_path: Path) -> None:
    root = write_fake_inria(tmp_path / "gen", 4, 64)
    write_fake_inria(root, 3, 64)
    assert sorted(p.stem for p in (root / "train" / "gt").glob("*.tif")) == sorted(
        f"{city}{n}" for city in inria.CITIES for n in (1, 2, 3))
    real = tmp_path / "real" / "train" / "images"
    real.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(real / "austin1.tif")
    with pytest.raises(DataError, match="no generator wrote"):
        write_fake_inria(tmp_path / "real", 3, 64)
    assert np.asarray(Image.open(real / "austin1.tif")).shape == (8, 8, 3)


def test_tiles_behind_a_symlink_inside_the_repository_are_recorded_relative(tiles: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "data").symlink_to(tiles, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setattr(inria, "repository_root", lambda: tmp_path / "repo")
    manifest = inria.prepare("data", tmp_path / "repo" / "out", SPEC, progress=False)
    assert manifest["source"]["root"] == "data"
    sources = [entry for split in manifest["splits"].values() for entry in split["sources"].values()]
    assert sources and all(entry["image"].startswith("data/train/images/") and entry["gt"].startswith("data/train/gt/")
                           for entry in sources)


# ---------------------------------------------------------------------------------------- augmentation


def test_flip_rotate_moves_image_and_mask_together_and_uses_all_eight_symmetries() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 2, (200, 8, 8))
    images = torch.stack([masks.float(), torch.arange(64.0).view(8, 8).expand(200, 8, 8)], dim=1)
    out_images, out_masks = flip_rotate(images, masks, generator)
    assert torch.equal(out_images[:, 0].long(), out_masks)
    seen = {tuple(image[1].flatten().tolist()) for image in out_images}
    assert len(seen) == 8  # flips and quarter turns of a square: the dihedral group's 8 elements
    again = flip_rotate(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], out_images) and torch.equal(again[1], out_masks)
    with pytest.raises(DataError, match="needs square images, not 32x96"):
        check_square(32, 96)


def _inria_trainer(run_dir: Path, config: TrainConfig, cls: type[Trainer] = Trainer) -> Trainer:
    torch.manual_seed(config.seed)
    args = {"in_channels": 3, "num_classes": 2, "subimage_size": (32, 32), "dropout": config.dropout}
    return cls(build_model("ddunet_D2_F4_CY_W4", **args), "ddunet_D2_F4_CY_W4", args, config, run_dir, progress=False)


class _Killed(Exception):
    pass


class _KilledInEpochTwo(Trainer):
    def train_epoch(self, train):  # noqa: ANN001, ANN201
        if self.epoch == 1:
            raise _Killed
        return super().train_epoch(train)


def test_augmented_training_resumes_exactly_and_differs_from_plain(prepared: Path, tmp_path: Path) -> None:
    train, val = load_split(None, prepared / "train"), load_split(None, prepared / "val")
    train = replace(train, images=train.images[:8], masks=train.masks[:8])  # two steps an epoch
    val = replace(val, images=val.images[:2], masks=val.masks[:2])
    config = TrainConfig(lr=0.01, max_epochs=2, min_epochs=0, batch_size=4, eval_batch_size=4, dropout=0.0,
                         augment=True)
    straight = _inria_trainer(tmp_path / "a", config)
    straight.fit(train, val)
    with pytest.raises(_Killed):
        _inria_trainer(tmp_path / "b", config, _KilledInEpochTwo).fit(train, val)
    resumed = _inria_trainer(tmp_path / "b", config)
    assert resumed.resume()
    resumed.fit(train, val)
    plain = _inria_trainer(tmp_path / "c", replace(config, augment=False))
    plain.fit(train, val)
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    assert not torch.equal(plain.model.head.weight, straight.model.head.weight)


def test_ranks_augment_alike_so_distributed_training_equals_single_process(prepared: Path, tmp_path: Path) -> None:
    from ddubench.training.run import train_model

    config = dict(lr=0.01, max_epochs=1, min_epochs=0, batch_size=4, eval_batch_size=4, dropout=0.0, seed=2,
                  augment=True)
    spec = "ddunet_D2_F4_CY_W4"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        train_model(spec, prepared, tmp_path / "single", TrainConfig(**config), tmp_path / "single.json",
                    progress=False)
    finally:
        torch.set_default_dtype(previous)
    results = run_ranks(2, workers.train_distributed_float64, spec, str(prepared), str(tmp_path / "dist"),
                        str(tmp_path / "dist.json"), config, tmp=tmp_path)
    assert all(status == "ok" for status, _ in results), results
    single, spread = load_checkpoint(tmp_path / "single/best.pt"), load_checkpoint(tmp_path / "dist/best.pt")
    for name, tensor in single["model"].items():
        torch.testing.assert_close(spread["model"][name], tensor, atol=1e-9, rtol=0, msg=name)


# ---------------------------------------------------------------------------------------- tables, figures


def _record(spec: str, split: str, background: float, building: float, seed: int = 0) -> dict:
    return {"spec": spec, "seed": seed, "test_data": f"data/x/inria/{split}",
            "scores": {"iou": {"background": background, "building": building}}}


def test_table7_8_puts_each_model_split_and_class_beside_the_thesis() -> None:
    config = {"run": "t", "thesis": {"inria": {"root": "data/AerialImageDataset", "fake": {}, "training": {},
                                               "crop": {"train": 512, "overlap": 32, "eval": 2048}, "subimage": 128,
                                               "split": {"val": 5, "test": 5}, "seeds": [0, 1]}}}
    records = [_record("unet_D3_W32", split, 0.9, 0.7) for split in ("train", "val", "test")]
    records += [_record("ddunet_D3_F64_CY_W32_K3", "test", 0.8, 0.6, seed) for seed in (0, 1)]
    records[-1]["scores"]["iou"]["building"] = 0.5
    records.append(_record("ddunet_D3_F0_CN_W32", "val", 0.95, 0.75))
    table = thesis_inria.thesis_table7_8(records, config).set_index("model")
    assert table.loc["baseline U-Net", "iou_building_train_paper"] == 0.774
    assert table.loc["baseline U-Net", "iou_background_val_ours"] == 0.9
    assert table.loc["proposed w/ communication", "iou_building_test_ours"] == pytest.approx(0.55)
    assert table.loc["proposed w/ communication", "n_seeds"] == 2
    assert pd.isna(table.loc["proposed w/ communication", "iou_building_val_ours"])
    assert table.loc["proposed w/o communication", "iou_background_val_ours"] == 0.95
    assert table.loc["proposed w/o communication", "note"] == "config t: 2 seed(s)"
    with pytest.raises(DdubenchError, match="none of the thesis's Inria models"):
        thesis_inria.thesis_name("ddunet_D3_F8_CN")


def test_table7_7_states_the_thesis_settings_and_rejects_unknown_keys() -> None:
    section = {"training": {"max_epochs": 12, "min_epochs": 12, "early_stopping_patience": 12, "lr_patience": 12}}
    table = thesis_inria.thesis_table7_7({"thesis": {"inria": section}}).set_index("hyperparameter")
    assert table.loc["lr", "value_paper"] == 0.001 == table.loc["lr", "value_ours"]
    assert table.loc["max_epochs", "note"] == "changed in this configuration"
    assert table.loc["lr_patience", "note"] == "thesis '-': the learning rate never decays within the epochs"
    assert table.loc["augment", "value_ours"] is True
    assert table.loc["lr_patience", "value_paper"] == "-" and table.loc["batch_size", "value_paper"] == 16
    with pytest.raises(ConfigError, match="unknown key.*max_epoch"):
        thesis_inria.inria_training({"training": {"max_epoch": 3}})


def test_border_ratio_measures_steps_across_subimage_borders() -> None:
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    ramp = rows + cols
    assert border_ratio(ramp, 4) == pytest.approx(1.0)
    stepped = ramp + 3 * (torch.div(rows, 4, rounding_mode="floor") + torch.div(cols, 4, rounding_mode="floor"))
    assert border_ratio(stepped, 4) == pytest.approx(4.0)


def test_captured_maps_are_whole_image_maps_of_the_model() -> None:
    torch.manual_seed(0)
    model = build_model("ddunet_D2_F4_CY_W4", in_channels=3, num_classes=2, subimage_size=(16, 16)).eval()
    image = torch.rand(1, 3, 32, 48)
    maps = capture_maps(model, image)
    assert maps["down"].shape == (16, 8, 12) and maps["up2"].shape == (4, 32, 48)
    assert maps["coarse_in"].shape == maps["coarse_out"].shape == (4, 8, 12)
    # the last 4 bottleneck maps of every subimage, stitched, are what the coarse network receives
    torch.testing.assert_close(maps["coarse_in"], maps["down"][-4:])
    unet = build_model("unet_D2_W4", in_channels=3, num_classes=2, subimage_size=(16, 16)).eval()
    assert set(capture_maps(unet, image)) == {"down", "up2"}
