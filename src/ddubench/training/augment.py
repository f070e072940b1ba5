"""Flip and rotation augmentation of training batches (thesis §7.3.2, journal §V-B).

Each image of a batch, with its mask, is flipped horizontally with probability 1/2, vertically with probability
1/2, and turned by k quarter turns, k uniform in {0, 1, 2, 3}: the thesis's Inria and DeepGlobe augmentation and
the authors' ``data_augmentation``. Written here rather than taken from torchvision.transforms.v2 because the
draws must come from the trainer's own generator: it is checkpointed with ``last.pt`` (a resumed run draws
what an uninterrupted one would) and it is the same on every rank of spatially parallel training (every rank
must turn the same image the same way before taking its own subimages).
"""

from __future__ import annotations

import torch

from ..errors import DataError


def check_square(height: int, width: int) -> None:
    """Quarter turns keep an image's shape only when it is square; say so before any training."""
    if height != width:
        raise DataError(f"--augment turns images by quarter turns, which needs square images, not {height}x{width}; "
                        "drop --augment (the synthetic task has none) or train on square crops")


def flip_rotate(images: torch.Tensor, masks: torch.Tensor,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, C, H, W) and masks (B, H, W), each pair flipped and turned by its own draw from ``generator``."""
    draws = torch.randint(0, 2, (images.shape[0], 2), generator=generator)
    turns = torch.randint(0, 4, (images.shape[0],), generator=generator)
    out_images, out_masks = [], []
    for image, mask, (flip_w, flip_h), k in zip(images, masks, draws.tolist(), turns.tolist()):
        dims = [d for d, flip in ((-1, flip_w), (-2, flip_h)) if flip]
        if dims:
            image, mask = image.flip(dims), mask.flip(dims)
        out_images.append(torch.rot90(image, k, (-2, -1)))
        out_masks.append(torch.rot90(mask, k, (-2, -1)))
    return torch.stack(out_images), torch.stack(out_masks)
