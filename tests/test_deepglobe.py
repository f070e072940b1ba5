"""DeepGlobe data: colour <-> id conversion, layouts and file errors, split, crops, cache, loader, Table 3."""

from __future__ import annotations

import hashlib
import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ddubench.cli import main
from ddubench.data import deepglobe
from ddubench.data.deepglobe import (
    CLASSES,
    COLOURS,
    IGNORE_INDEX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OFF_PALETTE_ERROR,
    OFF_PALETTE_WARN,
    PALETTE_TOLERANCE,
    PrepareSpec,
    colours_to_ids,
    crop_origins,
    find_tiles,
    ids_to_colours,
    prepare,
    split_counts,
    split_ids,
)
from ddubench.data.fake_deepglobe import write_fake_deepglobe
from ddubench.data.registry import load_split
from ddubench.errors import DataError
from ddubench.evaluation.metrics import scores_from_confusion

SPEC = PrepareSpec(train=4, val=1, test=1, crop_train=64, crop_test=128, subimage=32)


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six generated 160x160 DeepGlobe-format tiles in the Kaggle layout (read-only)."""
    return write_fake_deepglobe(tmp_path_factory.mktemp("fake_deepglobe"), images=6, size=160, seed=0)


@pytest.fixture(scope="session")
def prepared(fake_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare(fake_root, out, SPEC, progress=False)
    return out


def _copy(root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(root, tmp_path / "tiles"))


# ----------------------------------------------------------------------------------------- colours and ids


def test_colour_round_trip_with_off_corner_values() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, len(CLASSES), (40, 50)).astype(np.uint8)
    colours = ids_to_colours(ids).astype(np.int16)
    # noise a lossy encoder leaves near 0 and 255 (up to the tolerance) is on the palette
    jitter = rng.integers(0, PALETTE_TOLERANCE + 1, colours.shape)
    noisy = np.where(colours > 127, colours - jitter, colours + jitter).astype(np.uint8)
    assert int(np.abs(noisy.astype(np.int16) - colours).max()) == PALETTE_TOLERANCE
    converted, off_palette = colours_to_ids(noisy, "mask.png")
    assert np.array_equal(converted, ids) and off_palette == 0
    assert [tuple(ids_to_colours(np.array([i]))[0]) for i in range(len(CLASSES))] == list(COLOURS)
    assert CLASSES[IGNORE_INDEX] == "unknown" and IGNORE_INDEX == 6


@pytest.mark.parametrize("colour", [(255, 0, 0), (200, 30, 90)])
def test_colour_that_is_no_class_is_rejected_naming_the_file(colour: tuple[int, int, int]) -> None:
    mask = ids_to_colours(np.zeros((8, 8), np.uint8))
    mask[3, 5] = colour
    with pytest.raises(DataError, match=r"tile_mask\.png: 1 pixels \(first at row 3, column 5"):
        colours_to_ids(mask, "some/tile_mask.png")


@pytest.mark.parametrize("colour, class_id", [((10, 200, 30), 3), ((128, 128, 128), 5), ((215, 40, 215), 2)])
def test_off_palette_pixels_keep_their_thresholded_class_and_are_counted(
    colour: tuple[int, int, int], class_id: int, caplog: pytest.LogCaptureFixture,
) -> None:
    mask = ids_to_colours(np.full((10, 10), 1, np.uint8))  # agriculture
    mask[0, 0] = colour  # 1% off the palette: counted, no warning
    ids, off_palette = colours_to_ids(mask, "tile_mask.png")
    on_palette = max(abs(a - b) for a, b in zip(colour, COLOURS[class_id])) <= PALETTE_TOLERANCE
    assert ids[0, 0] == class_id and off_palette == (0 if on_palette else 1) and not caplog.records
    assert (ids[1:] == 1).all()


def test_off_palette_share_warns_then_stops(caplog: pytest.LogCaptureFixture) -> None:
    mask = ids_to_colours(np.full((10, 10), 3, np.uint8))  # forest
    assert OFF_PALETTE_WARN == 0.01 and OFF_PALETTE_ERROR == 0.5
    flat = mask.reshape(-1, 3)
    flat[:2] = (10, 200, 30)  # 2% off the palette: a warning naming the file
    assert colours_to_ids(mask, "some/tile_mask.png")[1] == 2
    assert len(caplog.records) == 1 and "some/tile_mask.png: 2 of 100 pixels (2.00%)" in caplog.records[0].message
    flat[:50] = (128, 128, 128)  # exactly half: still a warning
    assert colours_to_ids(mask, "some/tile_mask.png")[1] == 50
    flat[:51] = (128, 128, 128)  # mostly off the palette: an error
    with pytest.raises(DataError, match=r"tile_mask\.png: 51 of 100 pixels \(51\.0%\).*not a DeepGlobe colour mask"):
        colours_to_ids(mask, "some/tile_mask.png")


def test_manifest_counts_off_palette_pixels_per_mask(fake_root: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    root = _copy(fake_root, tmp_path)
    mask_path = min((root / "train").glob("*_mask.png"))
    mask = np.array(Image.open(mask_path).convert("RGB"))
    mask[:16, :32] = (128, 128, 128)  # 512 of 25,600 pixels (2%)
    Image.fromarray(mask).save(mask_path)
    manifest = prepare(root, tmp_path / "out", SPEC, progress=False)
    counts = {tile: record["mask_off_palette_px"] for split in manifest["splits"].values()
              for tile, record in split["sources"].items()}
    assert counts == {tile: 512 if tile == mask_path.name[: -len("_mask.png")] else 0 for tile in counts}
    assert [r.message for r in caplog.records if mask_path.name in r.message] != []


def test_unknown_colour_in_a_file_names_that_file(fake_root: Path, tmp_path: Path) -> None:
    root = _copy(fake_root, tmp_path)
    mask_path = min((root / "train").glob("*_mask.png"))
    mask = np.array(Image.open(mask_path).convert("RGB"))
    mask[10:12, 10:12] = (255, 0, 0)
    Image.fromarray(mask).save(mask_path)
    with pytest.raises(DataError, match=f"{mask_path.name}.*no DeepGlobe class colour"):
        prepare(root, tmp_path / "out", SPEC, progress=False)


# ---------------------------------------------------------------------------------------------- file errors


def test_missing_root_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"{tmp_path / 'nowhere'} does not exist"):
        find_tiles(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither train/"):
        find_tiles(tmp_path / "empty")


def test_missing_partner_names_the_orphan(fake_root: Path, tmp_path: Path) -> None:
    root = _copy(fake_root, tmp_path)
    mask = min((root / "train").glob("*_mask.png"))
    mask.unlink()
    image = mask.with_name(mask.name.replace("_mask.png", "_sat.jpg"))
    with pytest.raises(DataError, match=f"{image} has no partner .*{mask.name}"):
        find_tiles(root)


def test_wrong_mask_size_names_the_mask(fake_root: Path, tmp_path: Path) -> None:
    root = _copy(fake_root, tmp_path)
    mask = sorted((root / "train").glob("*_mask.png"))[1]
    Image.open(mask).resize((150, 160), Image.Resampling.NEAREST).save(mask)
    with pytest.raises(DataError, match=f"{mask} is 150x160 but its image"):
        prepare(root, tmp_path / "out", SPEC, progress=False)


def test_tile_smaller_than_crop_is_an_error(fake_root: Path, tmp_path: Path) -> None:
    spec = PrepareSpec(train=4, val=1, test=1, crop_train=64, crop_test=192, subimage=32)
    with pytest.raises(DataError, match="smaller than the 192x192 val crop"):
        prepare(fake_root, tmp_path / "out", spec, progress=False)


def test_truncated_image_names_the_file(fake_root: Path, tmp_path: Path) -> None:
    root = _copy(fake_root, tmp_path)
    image = min((root / "train").glob("*_sat.jpg"))
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    with pytest.raises(DataError, match=f"{image} is truncated or unreadable"):
        prepare(root, tmp_path / "out", SPEC, progress=False)


def test_torchgeo_layout_is_accepted(fake_root: Path, tmp_path: Path) -> None:
    tiles = sorted((fake_root / "train").glob("*"))
    for folder, part in (("training_data", slice(0, 8)), ("test_data", slice(8, None))):
        for kind, suffix in (("images", "_sat.jpg"), ("masks", "_mask.png")):
            target = tmp_path / "data" / folder / kind
            target.mkdir(parents=True, exist_ok=True)
            for path in tiles[part]:
                if path.name.endswith(suffix):
                    shutil.copy(path, target)
    layout, found = find_tiles(tmp_path)
    assert layout == "torchgeo" and len(found) == 6
    assert [t.id for t in found] == [t.id for t in find_tiles(fake_root)[1]]


# ------------------------------------------------------------------------------------------- split and crops


def test_split_is_deterministic_disjoint_and_complete() -> None:
    ids = [str(100000 + 7 * i) for i in range(803)]
    sizes = {"train": 0.7, "val": 0.15, "test": 0.15}
    first = split_ids(ids, sizes, seed=3)
    assert first == split_ids(list(reversed(ids)), sizes, seed=3)  # order of discovery does not matter
    assert first != split_ids(ids, sizes, seed=4)
    assert {k: len(v) for k, v in first.items()} == {"train": 562, "val": 120, "test": 121}
    assert sorted(i for split in first.values() for i in split) == sorted(ids)
    assert split_counts(803, {"train": 603, "val": 100, "test": 100}) == {"train": 603, "val": 100, "test": 100}


@pytest.mark.parametrize("sizes, message", [
    ({"train": 0.7, "val": 0.2, "test": 0.2}, "sum to"),
    ({"train": 700, "val": 100, "test": 10}, "only 803 exist"),
    ({"train": 0.8, "val": 100, "test": 0.1}, "mixes fractions and counts"),
    ({"train": 0.999, "val": 0.0005, "test": 0.0005}, "at least one image"),
])
def test_bad_split_sizes(sizes: dict[str, float], message: str) -> None:
    with pytest.raises(DataError, match=message):
        split_counts(803, sizes)


def test_crop_geometry_of_the_journal() -> None:
    assert crop_origins(2448, 2448, 1024, grid=True) == [(0, 0), (0, 1024), (1024, 0), (1024, 1024)]
    assert crop_origins(2448, 2448, 2048, grid=False) == [(0, 0)]
    assert len(crop_origins(2448, 2448, 512, grid=True)) == 16  # the thesis' 4x4 grid of 512 crops


def test_prepared_crops_are_the_source_pixels(fake_root: Path, prepared: Path) -> None:
    train, test = load_split("deepglobe", prepared / "train"), load_split("deepglobe", prepared / "test")
    assert train.images.shape == (16, 3, 64, 64) and test.images.shape == (1, 3, 128, 128)  # 2x2 crops per tile
    manifest = json.loads((prepared / "manifest.json").read_text())
    for index in (0, 5, 15):
        crop = manifest["splits"]["train"]["crops"][index]
        image = np.asarray(Image.open(fake_root / "train" / f"{crop['id']}_sat.jpg").convert("RGB"))
        colours = np.asarray(Image.open(fake_root / "train" / f"{crop['id']}_mask.png").convert("RGB"))
        rows, cols = slice(crop["row"], crop["row"] + 64), slice(crop["col"], crop["col"] + 64)
        assert np.array_equal(train.images[index].numpy(), image[rows, cols].transpose(2, 0, 1))
        assert np.array_equal(train.masks[index].numpy(), colours_to_ids(colours[rows, cols], "mask")[0])
    origins = {(c["row"], c["col"]) for c in manifest["splits"]["train"]["crops"]}
    assert origins == {(0, 0), (0, 64), (64, 0), (64, 64)}
    assert [(c["row"], c["col"]) for c in manifest["splits"]["test"]["crops"]] == [(0, 0)]
    split = json.loads((prepared / "split.json").read_text())
    assert split["ids"] == split_ids(split["ids"]["train"] + split["ids"]["val"] + split["ids"]["test"],
                                     {"train": 4, "val": 1, "test": 1}, seed=0)


def test_manifest_checksums_and_reuse(fake_root: Path, prepared: Path) -> None:
    manifest = json.loads((prepared / "manifest.json").read_text())
    for split in ("train", "val", "test"):
        for entry in manifest["splits"][split]["files"].values():
            assert hashlib.sha256((prepared / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["fake"]["seed"] == 0 and manifest["ignore_index"] == IGNORE_INDEX
    assert [t["mask_off_palette_px"] for split in manifest["splits"].values() for t in split["sources"].values()] \
        == [0] * 6
    before = (prepared / "train" / "images.npy").stat().st_mtime_ns
    assert prepare(fake_root, prepared, SPEC, progress=False) == manifest
    assert (prepared / "train" / "images.npy").stat().st_mtime_ns == before


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_preparation_leaves_the_kept_one_whole(fake_root: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "prepared"
    prepare(fake_root, out, SPEC, progress=False)
    kept = _snapshot(out)
    write_split = deepglobe._write_split

    def fail_in_the_second_split(out_dir: Path, split: str, *args, **kwargs):
        if split == "val":
            raise DataError("injected failure in the second split")
        return write_split(out_dir, split, *args, **kwargs)

    monkeypatch.setattr(deepglobe, "_write_split", fail_in_the_second_split)
    other_seed = ["deepglobe-prepare", "--root", str(fake_root), "--out", str(out), "--train", "4", "--val", "1",
                  "--test", "1", "--crop-train", "64", "--crop-test", "128", "--subimage", "32", "--no-progress"]
    assert main([*other_seed, "--split-seed", "1"]) == 2
    assert "injected failure in the second split" in capsys.readouterr().err
    assert _snapshot(out) == kept  # not one file replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]  # no temporary folder left
    monkeypatch.undo()
    # the original command reuses the kept preparation, which is the one a fresh run builds
    assert main([*other_seed, "--split-seed", "0"]) == 0
    assert _snapshot(out) == kept
    fresh = tmp_path / "fresh"
    prepare(fake_root, fresh, SPEC, progress=False)
    assert {k: v for k, v in _snapshot(fresh).items() if k != "manifest.json"} == \
        {k: v for k, v in kept.items() if k != "manifest.json"}


def test_reuse_checks_the_recorded_checksums(fake_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    manifest = prepare(fake_root, out, SPEC, progress=False)
    masks = out / "val" / "masks.npy"
    intact = masks.read_bytes()
    damaged = bytearray(intact)
    damaged[-1] ^= 1  # same size and shape, one pixel's class changed
    masks.write_bytes(bytes(damaged))
    assert prepare(fake_root, out, SPEC, progress=False)["splits"] == manifest["splits"]
    assert masks.read_bytes() == intact  # rebuilt, not reused
    masks.write_bytes(intact[: len(intact) // 2])  # truncated: rebuilt too
    prepare(fake_root, out, SPEC, progress=False)
    assert masks.read_bytes() == intact


def test_a_folder_holding_other_files_is_not_replaced(fake_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    (out / "train").mkdir(parents=True)
    (out / "train" / "123_sat.jpg").write_bytes(b"a user's tile")
    with pytest.raises(DataError, match=rf"{out} holds {out / 'train' / '123_sat.jpg'}, which no DeepGlobe"):
        prepare(fake_root, out, SPEC, progress=False)
    assert (out / "train" / "123_sat.jpg").read_bytes() == b"a user's tile"


def test_loader_normalises_batches_and_ignores_unknown(prepared: Path) -> None:
    split = load_split(None, prepared / "train")  # the kind is detected from the folder
    assert split.ignore_index == IGNORE_INDEX and split.class_names == CLASSES and split.subimage_size == (32, 32)
    assert split.images.dtype == torch.uint8
    images, masks = split.batch(torch.tensor([0, 3]))
    expected = (split.images[[0, 3]].double() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).double()) \
        / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1).double()
    torch.testing.assert_close(images.double(), expected, rtol=0, atol=1e-5)
    assert masks.dtype == torch.int64


def test_unknown_class_has_no_score_and_stays_out_of_the_mean() -> None:
    # rows: true class, columns: predicted; unknown ground truth was dropped by the ignore_index
    confusion = torch.zeros(7, 7, dtype=torch.int64)
    confusion[0, 0], confusion[1, 1], confusion[1, 6] = 3, 2, 2  # 2 agriculture pixels predicted unknown
    scores = scores_from_confusion(confusion, CLASSES, ignore_index=IGNORE_INDEX)
    assert scores["iou"]["unknown"] is None and scores["iou"]["agriculture"] == pytest.approx(0.5)
    assert scores["miou"] == pytest.approx((1.0 + 0.5) / 2)


# ---------------------------------------------------------------------------------------------- generator


def test_fake_generator_is_deterministic_and_coherent(fake_root: Path, tmp_path: Path) -> None:
    again = write_fake_deepglobe(tmp_path / "again", images=6, size=160, seed=0)
    for path in sorted((fake_root / "train").iterdir()):
        assert (again / "train" / path.name).read_bytes() == path.read_bytes()
    other = write_fake_deepglobe(tmp_path / "other", images=1, size=160, seed=1)
    first = next((fake_root / "train").glob("*_sat.jpg"))
    assert next((other / "train").glob("*_sat.jpg")).read_bytes() != first.read_bytes()
    layout, tiles = find_tiles(fake_root)
    assert layout == "kaggle" and len(tiles) == 6
    for tile in tiles:
        assert Image.open(tile.image).format == "JPEG" and Image.open(tile.mask).format == "PNG"
        ids, off_palette = colours_to_ids(np.asarray(Image.open(tile.mask).convert("RGB")), tile.mask)
        assert off_palette == 0  # the generator writes exact class colours
        same = ((ids[:, 1:] == ids[:, :-1]).mean() + (ids[1:] == ids[:-1]).mean()) / 2
        assert same > 0.95  # regions, not per-pixel noise
        assert len(np.unique(ids)) >= 2


# ------------------------------------------------------------------------------------------------- Table 3


def test_table3_from_generated_tiles_says_so(prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "table3.csv"
    assert main(["table", "table3", "--data", str(prepared), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    tiles = table[table["scope"] == "tiles"]
    assert list(tiles["class"]) == list(CLASSES)
    assert tiles["pixels_millions_ours"].sum() == pytest.approx(6 * 160 * 160 / 1e6)
    assert tiles["proportion_pct_ours"].sum() == pytest.approx(100, abs=1e-3)
    assert tiles.set_index("class").loc["agriculture", "proportion_pct_paper"] == 56.76
    assert table["note"].str.contains("NOT DEEPGLOBE").all()
    crops = table[table["scope"] == "train crops"]
    assert crops["pixels_millions_ours"].sum() == pytest.approx(16 * 64 * 64 / 1e6)
    assert crops["pixels_millions_paper"].isna().all()


def test_table3_without_prepared_data_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", "table3", "--data", str(tmp_path), "--out", str(tmp_path / "t.csv")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "manifest.json does not exist" in error


def test_manifest_names_a_root_inside_the_repository_relatively(fake_root: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Training records copy the manifest: a tile folder inside the repository must not be recorded as this
    machine's absolute path (a user's folder elsewhere stays as given)."""
    repo = tmp_path / "repo"
    tiles = Path(shutil.copytree(fake_root, repo / "data" / "tiles"))
    monkeypatch.chdir(repo)
    prepare(tiles, repo / "prepared", SPEC, progress=False)
    prepare(fake_root, repo / "elsewhere", SPEC, progress=False)

    def root(folder: str) -> str:
        return json.loads((repo / folder / "manifest.json").read_text())["source"]["root"]

    assert root("prepared") == "data/tiles"
    assert root("elsewhere") == str(Path(fake_root).resolve())


@pytest.mark.parametrize("kwargs, message", [
    ({"subimage": 0}, "subimage=0 must be at least 1"),
    ({"crop_train": -256}, "crop_train=-256 is smaller than the subimage side 256"),
    ({"crop_test": 0}, "crop_test=0 is smaller than the subimage side 256"),
])
def test_crop_and_subimage_sides_below_one_are_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        PrepareSpec(**kwargs)


def test_an_image_header_too_large_to_open_is_one_line(tmp_path: Path) -> None:
    from ddubench.data.prepared import image_size

    bomb = tmp_path / "1_sat.jpg"
    Image.new("RGB", (8, 8)).save(bomb, format="PNG")
    data = bytearray(bomb.read_bytes())
    data[16:24] = (40000).to_bytes(4, "big") * 2  # the IHDR width and height: 1.6e9 pixels, a decompression bomb
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the chunk's checksum, so only the size is wrong
    bomb.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"1_sat\.jpg is not a readable image"):
        image_size(bomb)
