"""Shared fixtures: CPU-only, few threads, a tiny synthetic dataset."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_COUNTS = {"train": 32, "val": 16, "test": 16}


def write_tiny_dataset(out_dir: Path, k: int = 3, seed: int = 0) -> Path:
    from ddubench.data.synthetic import SyntheticSpec, write_dataset

    return write_dataset(SyntheticSpec(k=k, seed=seed), dict(TINY_COUNTS), out_dir)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A k=3 synthetic dataset (32 train / 16 val / 16 test images of 32x96), shared read-only."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_k3"))


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
