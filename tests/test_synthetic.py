"""The synthetic circles-and-line generator (journal Sec. III-D1, thesis Sec. 5.3.1)."""

from __future__ import annotations

import hashlib
import json
from collections import deque

import numpy as np
import pytest

from ddubench.data.synthetic import SyntheticSpec, generate, load_split, write_dataset
from ddubench.errors import DataError

S = 32  # subimage size


def _components(pixels: set[tuple[int, int]]) -> list[set[tuple[int, int]]]:
    """4-connected components of a set of (y, x) pixels."""
    left, groups = set(pixels), []
    while left:
        start = left.pop()
        group, queue = {start}, deque([start])
        while queue:
            y, x = queue.popleft()
            for nb in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if nb in left:
                    left.remove(nb)
                    group.add(nb)
                    queue.append(nb)
        groups.append(group)
    return groups


def _subimage_distance(centres: np.ndarray) -> np.ndarray:
    """|subimage of circle 1 - subimage of circle 2| per sample; centres (N, 2, 2) as (x, y)."""
    return np.abs(centres[:, 0, 0] // S - centres[:, 1, 0] // S)


@pytest.fixture(scope="module")
def journal_k3() -> dict[str, np.ndarray]:
    return generate(SyntheticSpec(k=3), "train", 40)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_shapes_dtypes_and_values(k: int) -> None:
    data = generate(SyntheticSpec(k=k), "train", 6)
    assert data["images"].shape == (6, 32, 32 * k)
    assert data["masks"].shape == (6, 32, 32 * k)
    assert data["centres"].shape == (6, 2, 2)
    assert data["images"].dtype == np.uint8 and data["masks"].dtype == np.uint8
    assert set(np.unique(data["images"]).tolist()) == {0, 255}
    assert set(np.unique(data["masks"]).tolist()) <= {0, 1, 2}
    assert SyntheticSpec(k=k).shape == (32, 32 * k)


def test_circles(journal_k3: dict[str, np.ndarray]) -> None:
    """Two radius-4 circles, each inside one subimage, in different subimages; image white == circle."""
    yy, xx = np.mgrid[0:32, 0 : 32 * 3]
    for image, mask, centres in zip(journal_k3["images"], journal_k3["masks"], journal_k3["centres"]):
        circle = mask == 2
        np.testing.assert_array_equal(image == 255, circle)
        ys, xs = np.nonzero(circle)
        # each circle pixel belongs to the nearer centre; each group must be one connected circle
        d = np.stack([np.hypot(xs - cx, ys - cy) for cx, cy in centres])
        owner = d.argmin(0)
        subimages = []
        for j, (cx, cy) in enumerate(centres):
            mine = owner == j
            group = set(zip(ys[mine].tolist(), xs[mine].tolist()))
            assert len(_components(group)) == 1
            # Pillow's ellipse in the box [c - 4, c + 4] covers exactly the pixels within sqrt(18) of c:
            # every pixel at distance <= 4 (radius 4) plus the (3, 3) diagonal corners (4.243).
            dist = np.hypot(xx - cx, yy - cy)
            np.testing.assert_array_equal(circle & (dist <= 4.5), dist <= np.sqrt(18) + 1e-9)
            assert d[j, mine].max() <= np.sqrt(18) + 1e-9
            assert len(group) == 61
            cols = {x // S for _, x in group}
            assert len(cols) == 1, "a circle crosses a subimage border"
            assert cols == {int(cx) // S}
            subimages.append(cols.pop())
        assert subimages[0] != subimages[1]
        assert len(_components(set(zip(ys.tolist(), xs.tolist())))) in (1, 2)  # may touch across a border


def test_circle_pixels_all_within_radius_plus_diagonal(journal_k3: dict[str, np.ndarray]) -> None:
    """No circle pixel lies farther than 4.5 px (radius 4 plus half a pixel) from its centre."""
    for mask, centres in zip(journal_k3["masks"], journal_k3["centres"]):
        ys, xs = np.nonzero(mask == 2)
        d = np.min([np.hypot(xs - cx, ys - cy) for cx, cy in centres], axis=0)
        assert d.max() < 4.5


def test_line_present_in_every_sample() -> None:
    for rule in ("journal", "thesis"):
        masks = generate(SyntheticSpec(k=4, rule=rule), "val", 50)["masks"]
        assert ((masks == 1).sum(axis=(1, 2)) > 0).all()


def test_line_joins_the_circles(journal_k3: dict[str, np.ndarray]) -> None:
    """Line pixels lie between the two centres in x (plus the line half-width)."""
    for mask, centres in zip(journal_k3["masks"], journal_k3["centres"]):
        ys, xs = np.nonzero(mask == 1)
        lo, hi = sorted(centres[:, 0].tolist())
        assert xs.min() >= lo - 2 and xs.max() <= hi + 2


def test_thesis_rule_distance_is_one_or_two() -> None:
    for k in (3, 5):
        distances = _subimage_distance(generate(SyntheticSpec(k=k, rule="thesis"), "train", 300)["centres"])
        assert set(distances.tolist()) == {1, 2}
    distances = _subimage_distance(generate(SyntheticSpec(k=2, rule="thesis"), "train", 50)["centres"])
    assert set(distances.tolist()) == {1}


def test_journal_rule_any_other_subimage() -> None:
    distances = _subimage_distance(generate(SyntheticSpec(k=6, rule="journal"), "train", 400)["centres"])
    assert set(distances.tolist()) == {1, 2, 3, 4, 5}
    # uniform over the other subimages: distance 5 (only from subimages 0 and 5) is rarest, distance 1 commonest
    counts = np.bincount(distances, minlength=6)
    assert counts[1] > counts[5]


def test_first_circle_covers_all_subimages() -> None:
    centres = generate(SyntheticSpec(k=6), "train", 400)["centres"]
    assert set((centres[:, :, 0] // S).ravel().tolist()) == set(range(6))


@pytest.mark.parametrize("rule, width", [("journal", 3), ("thesis", 2)])
def test_line_width_on_a_horizontal_line(rule: str, width: int) -> None:
    spec = SyntheticSpec(k=3, rule=rule)
    assert spec.line_width == width
    data = generate(spec, "train", 600)
    cx, cy = data["centres"][..., 0], data["centres"][..., 1]
    found = np.nonzero((cy[:, 0] == cy[:, 1]) & (np.abs(cx[:, 0] - cx[:, 1]) >= 16))[0]
    assert len(found) > 0, "no horizontal sample found"
    for i in found[:5]:
        x_mid = int(cx[i].sum() // 2)
        rows = np.nonzero(data["masks"][i][:, x_mid] == 1)[0]
        assert len(rows) == width
        assert rows.max() - rows.min() == width - 1  # contiguous
        assert rows.min() <= cy[i, 0] <= rows.max()
        assert (data["masks"][i][:, x_mid] == 2).sum() == 0


def test_line_width_property() -> None:
    assert SyntheticSpec(k=2).line_width == 3  # journal is the default rule
    assert SyntheticSpec(k=2, rule="thesis").line_width == 2
    assert SyntheticSpec(k=2, rule="thesis", line_width=3).line_width == 3


def test_line_width_override_keeps_the_circles() -> None:
    thin, wide = (generate(SyntheticSpec(k=6, rule="thesis", line_width=w), "train", 50) for w in (2, 3))
    np.testing.assert_array_equal(thin["centres"], wide["centres"])
    np.testing.assert_array_equal(thin["images"], wide["images"])
    assert ((wide["masks"] == 1).sum() > 1.3 * (thin["masks"] == 1).sum())
    np.testing.assert_array_equal(thin["masks"] == 2, wide["masks"] == 2)  # circles drawn over the line alike


def test_manifest_names_the_width_only_where_it_overrides_the_rule() -> None:
    rule_width = SyntheticSpec(k=2, rule="thesis", line_width=2).manifest()
    assert rule_width == {"k": 2, "rule": "thesis", "subimage_size": 32, "radius": 4, "seed": 0}
    assert SyntheticSpec(k=2, rule="thesis", line_width=3).manifest() == {**rule_width, "line_width": 3}


def test_determinism() -> None:
    spec = SyntheticSpec(k=3, seed=5)
    a, b = generate(spec, "train", 10), generate(spec, "train", 10)
    for key in ("images", "masks", "centres"):
        np.testing.assert_array_equal(a[key], b[key])
    other_seed = generate(SyntheticSpec(k=3, seed=6), "train", 10)
    assert not np.array_equal(a["masks"], other_seed["masks"])
    other_split = generate(spec, "val", 10)
    assert not np.array_equal(a["masks"], other_split["masks"])
    other_rule = generate(SyntheticSpec(k=3, seed=5, rule="thesis"), "train", 10)
    assert not np.array_equal(a["masks"], other_rule["masks"])
    # a longer run starts with the same samples
    np.testing.assert_array_equal(generate(spec, "train", 12)["masks"][:10], a["masks"])


def test_write_dataset_manifest_and_reuse(tmp_path) -> None:
    spec = SyntheticSpec(k=2, seed=1)
    counts = {"train": 6, "val": 3, "test": 4}
    out = write_dataset(spec, counts, tmp_path / "ds")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["manifest.json", "test.npz", "train.npz", "val.npz"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == counts
    assert manifest["spec"]["k"] == 2 and manifest["line_width"] == 3
    assert manifest["classes"] == ["background", "line", "circle"]
    for split, count in counts.items():
        entry = manifest["files"][split]
        assert entry["file"] == f"{split}.npz"
        assert entry["sha256"] == hashlib.sha256((out / f"{split}.npz").read_bytes()).hexdigest()
        arrays = load_split(out / f"{split}.npz")
        assert arrays["images"].shape == (count, 32, 64)
        np.testing.assert_array_equal(arrays["masks"], generate(spec, split, count)["masks"])

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    write_dataset(spec, counts, out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes

    # other parameters regenerate
    write_dataset(spec, {"train": 7, "val": 3, "test": 4}, out)
    assert load_split(out / "train.npz")["images"].shape[0] == 7
    assert json.loads((out / "manifest.json").read_text())["counts"]["train"] == 7


def test_a_split_that_no_longer_matches_its_manifest_is_regenerated(tmp_path) -> None:
    """An interrupted rewrite with other parameters left a new train.npz beside the old manifest: asking for the
    old dataset again must not reuse it."""
    spec, counts = SyntheticSpec(k=2, seed=1), {"train": 6, "val": 3, "test": 4}
    out = write_dataset(spec, counts, tmp_path / "ds")
    other = write_dataset(SyntheticSpec(k=2, seed=2), counts, tmp_path / "other")
    (out / "train.npz").write_bytes((other / "train.npz").read_bytes())
    write_dataset(spec, counts, out)
    np.testing.assert_array_equal(load_split(out / "train.npz")["images"], generate(spec, "train", 6)["images"])


def test_load_split_missing_file(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "train.npz"
    with pytest.raises(DataError) as info:
        load_split(missing)
    assert str(missing) in str(info.value)


def test_load_split_corrupt_file(tmp_path) -> None:
    bad = tmp_path / "train.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="unreadable"):
        load_split(bad)


@pytest.mark.parametrize("kwargs", [{"k": 3, "rule": "paper"}, {"k": 1}, {"k": 0}, {"k": 2, "subimage_size": 8},
                                    {"k": 2, "line_width": 0}])
def test_bad_spec(kwargs: dict) -> None:
    with pytest.raises(DataError):
        SyntheticSpec(**kwargs)
