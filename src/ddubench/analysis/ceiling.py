"""Receptive-field ceiling of the synthetic task: the best expected line IoU a model with this architecture can
reach when each output pixel knows only what its dependency region shows.

The input image shows only the two circles; the line between their centres is in the mask alone. An output
pixel p depends on a set R(p) of input pixels (taken from the model itself: the support of its Jacobian,
computed exactly with the linear probe of :func:`~.receptive_field.gradient_probe` on one-hot inputs; for a
DDU-Net on 32 px subimages this is not a centred window). Given what R(p) shows, the Bayes-optimal
predictor labels p as line when the posterior probability q(p) that p is a line pixel exceeds a threshold:

- both circles visible in R(p): the line is known, q(p) is 0 or 1;
- one circle visible at c: the other centre c' follows the generator's placement rule given c (the pair's
  subimages are drawn first/second, so both orders count), restricted to the centres whose circle R(p)
  does not show; q(p) is the prior-weighted share of those (c', order) whose drawn line covers p (the line
  is drawn from the first circle to the second, and Pillow widens an even-width line on one side of its
  direction, so the order decides which pixels a width-2 line covers);
- no circle visible: q(p) = P(p on the line | neither circle in R(p)), estimated over generator samples.

The ceiling is the dataset-level line IoU (journal Eq. 2) of thresholding q over the test images, at the
threshold that maximises it (a threshold on the posterior is the optimal decision rule for IoU). It is
optimistic on purpose: a circle counts as visible (its centre known) as soon as one of its pixels lies in
R(p), the threshold is chosen on the evaluated images, and the network's capacity (F communicated maps,
depth) is unlimited. Lines and circles are drawn with the generator's own Pillow calls, so q and the masks
rasterise alike. Written here because no library computes such a bound; the pieces (Jacobian support,
Pillow drawing, threshold sweep) are each a few array operations.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from ..data.synthetic import SyntheticSpec, draw_mask, draw_sample, generate, second_subimage_candidates
from .receptive_field import gradient_probe


def dependency_support(model: nn.Module, height: int, width: int, batch: int = 256) -> torch.Tensor:
    """(H*W, H*W) bool: entry [p, q] says output pixel p depends on input pixel q (row-major indices)."""
    # float32 is exact enough here: on one-hot inputs every value is a product of averaging weights, far
    # above float32's smallest normal number, and it is several times faster than the probe's float64
    probe = gradient_probe(model).float()
    channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    pixels = height * width
    support = torch.zeros(pixels, pixels, dtype=torch.bool)
    # oneDNN is several times slower than the plain im2col convolution on the one-channel layers of
    # support_model; NNPACK (fast transforms) would leave rounding noise where the exact answer is 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")  # said on every switch
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
            for start in range(0, pixels, batch):
                index = torch.arange(start, min(start + batch, pixels))
                basis = torch.zeros(len(index), channels, pixels)
                basis[torch.arange(len(index)), :, index] = 1.0
                response = probe(basis.view(len(index), channels, height, width)).sum(dim=1)
                support[:, index] = (response.view(len(index), pixels) > 0).T
    return support


def support_model(spec_text: str, subimage_size: int) -> nn.Module:
    """The model ``spec_text`` at base width 1, whose dependency regions are those of every width.

    In the gradient probe every weight of a layer is the same constant, so all channels of a layer carry the
    same values and a one-channel-per-width model has the same support, at a fraction of the cost."""
    from ..models import ModelSpec, build_model

    spec = ModelSpec.parse(spec_text)
    kwargs = spec.kwargs
    if "base_width" in kwargs:
        spec = ModelSpec(spec.name, tuple(sorted({**kwargs, "base_width": 1}.items())))
    in_channels, num_classes = spec.io
    return build_model(spec, in_channels=in_channels, num_classes=num_classes,
                       subimage_size=(subimage_size, subimage_size))


def candidate_centres(spec: SyntheticSpec) -> np.ndarray:
    """Every centre (x, y) the generator can draw, subimage by subimage: (C, 2)."""
    s, r = spec.subimage_size, spec.radius
    height, _ = spec.shape
    return np.array([(x, y) for sub in range(spec.k) for x in range(sub * s + r, (sub + 1) * s - r)
                     for y in range(r, height - r)], dtype=np.int64)


def _disk_offsets(radius: int) -> np.ndarray:
    """Pixel offsets (dy, dx) of a circle drawn as the generator draws it, around its centre."""
    size = 4 * radius + 1
    canvas = Image.new("L", (size, size), 0)
    centre = 2 * radius
    ImageDraw.Draw(canvas).ellipse((centre - radius, centre - radius, centre + radius, centre + radius), fill=1)
    dy, dx = np.nonzero(np.asarray(canvas))
    return np.stack([dy - centre, dx - centre], axis=1)


def visibility(support: torch.Tensor, spec: SyntheticSpec, centres: np.ndarray) -> torch.Tensor:
    """(P, C) bool: output pixel p's region shows at least one pixel of the circle centred at centres[c]."""
    height, width = spec.shape
    offsets = _disk_offsets(spec.radius)
    columns = []
    for x, y in centres:
        rows, cols = y + offsets[:, 0], x + offsets[:, 1]
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        columns.append(torch.from_numpy(rows[inside] * width + cols[inside]))
    visible = torch.zeros(support.shape[0], len(centres), dtype=torch.bool)
    for c, pixels in enumerate(columns):
        visible[:, c] = support[:, pixels].any(dim=1)
    return visible


def line_pixels(spec: SyntheticSpec, seen: tuple[int, int], others: np.ndarray, seen_first: bool) -> np.ndarray:
    """(len(others), H*W) bool: the line class of the generator's mask for each pair of ``seen`` and a centre of
    ``others``, drawn with ``seen`` as the first circle or as the second."""
    out = np.zeros((len(others), spec.shape[0] * spec.shape[1]), dtype=bool)
    for i, other in enumerate(others):
        pair = (seen, tuple(int(v) for v in other))
        out[i] = draw_mask(spec, *(pair if seen_first else pair[::-1])).reshape(-1) == 1
    return out


def pair_weights(spec: SyntheticSpec, centres: np.ndarray, seen: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Prior weights of every candidate centre being the other circle, given one circle centred at ``seen``,
    split by drawing order: (``seen`` drawn first, ``seen`` drawn second).

    The generator draws a first subimage uniformly and the second among the rule's candidates, so subimage s'
    of the other circle has weight 1/n(s) [s' allowed after s] with ``seen``'s subimage s first and
    1/n(s') [s allowed after s'] with s' first, spread uniformly over the centres of s'."""
    k, s = spec.k, spec.subimage_size
    here = seen[0] // s
    options = {sub: second_subimage_candidates(sub, k, spec.rule) for sub in range(k)}
    seen_first = np.array([(there in options[here]) / len(options[here]) for there in range(k)])
    seen_second = np.array([(here in options[there]) / len(options[there]) for there in range(k)])
    subimage = centres[:, 0] // s
    return seen_first[subimage], seen_second[subimage]


def one_circle_posterior(spec: SyntheticSpec, centres: np.ndarray, seen: tuple[int, int],
                         hidden: torch.Tensor, pixels: np.ndarray) -> np.ndarray:
    """q(p) at output pixels ``pixels`` (flat indices) that see only the circle centred at ``seen``: the
    prior-weighted share of the (other centre, drawing order) pairs whose line covers p, over the candidate
    centres each pixel does not see (``hidden``: (len(pixels), C) bool)."""
    weights = pair_weights(spec, centres, seen)
    possible = np.nonzero(weights[0] + weights[1])[0]
    hidden_f = hidden[:, possible].to(torch.float32)
    numerator = torch.zeros(len(pixels))
    denominator = torch.zeros(len(pixels))
    lines = None
    for order_weights, seen_first in zip(weights, (True, False)):
        allowed = hidden_f * torch.from_numpy(order_weights[possible].astype(np.float32))
        if lines is None or spec.line_width % 2 == 0:  # an odd width covers the same pixels either way round
            lines = torch.from_numpy(line_pixels(spec, seen, centres[possible], seen_first)[:, pixels].T
                                     .astype(np.float32))
        numerator += (allowed * lines).sum(1)
        denominator += allowed.sum(1)
    return (numerator / denominator.clamp(min=1e-12)).numpy()


def _best_iou(posterior: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """The highest dataset-level IoU of thresholding ``posterior`` (q > t), and the threshold t."""
    order = np.argsort(-posterior, kind="stable")
    q, y = posterior[order], truth[order]
    tp = np.cumsum(y)
    predicted = np.arange(1, len(q) + 1)
    # only cut between distinct posterior values
    last = np.r_[q[1:] != q[:-1], True]
    iou = tp / (y.sum() + predicted - tp)
    iou = np.where(last, iou, -1.0)
    best = int(np.argmax(iou))
    following = q[best + 1] if best + 1 < len(q) else 0.0
    return float(iou[best]), float((q[best] + following) / 2)


def line_iou_ceiling(model: nn.Module, spec: SyntheticSpec, images: int = 200, background_samples: int = 3000,
                     seed: int = 0, split: str = "test") -> dict[str, Any]:
    """The receptive-field ceiling of ``model`` on ``images`` of ``split`` of the synthetic task ``spec``."""
    height, width = spec.shape
    support = dependency_support(model, height, width)
    centres = candidate_centres(spec)
    lookup = {tuple(c): i for i, c in enumerate(centres)}
    hidden = ~visibility(support, spec, centres)  # (P, C)
    hidden_f = hidden.to(torch.float32)

    # no circle visible: P(line at p | both circles hidden from p), over generator samples
    rng = np.random.default_rng(seed)
    numerator = torch.zeros(support.shape[0])
    denominator = torch.zeros(support.shape[0])
    for _ in range(background_samples):
        _, mask, pair = draw_sample(rng, spec)
        both_hidden = hidden_f[:, lookup[tuple(pair[0])]] * hidden_f[:, lookup[tuple(pair[1])]]
        numerator += both_hidden * torch.from_numpy((mask.reshape(-1) == 1).astype(np.float32))
        denominator += both_hidden
    background = torch.where(denominator > 0, numerator / denominator.clamp(min=1), torch.zeros(()))

    data = generate(spec, split, images)
    posteriors, truths, cases = [], [], np.zeros(3, dtype=np.int64)
    for mask, pair in zip(data["masks"], data["centres"]):
        truth = mask.reshape(-1) == 1
        seen = hidden[:, [lookup[tuple(pair[0])], lookup[tuple(pair[1])]]].logical_not().numpy()  # (P, 2)
        q = background.numpy().astype(np.float64).copy()
        both = seen.all(axis=1)
        q[both] = truth[both]
        for i in (0, 1):
            only = np.nonzero(seen[:, i] & ~seen[:, 1 - i])[0]
            if len(only):
                q[only] = one_circle_posterior(spec, centres, tuple(int(v) for v in pair[i]), hidden[only], only)
        cases += [int(both.sum()), int((seen.any(axis=1) & ~both).sum()), int((~seen.any(axis=1)).sum())]
        posteriors.append(q)
        truths.append(truth)
    ceiling, threshold = _best_iou(np.concatenate(posteriors), np.concatenate(truths))
    total = cases.sum()
    return {
        "iou_line_ceiling": ceiling,
        "threshold": threshold,
        "images": images,
        "split": split,
        "background_samples": background_samples,
        "pixels_seeing_both_circles": float(cases[0] / total),
        "pixels_seeing_one_circle": float(cases[1] / total),
        "pixels_seeing_no_circle": float(cases[2] / total),
        "data": asdict(spec),
    }


def support_class(spec_text: str) -> str | None:
    """The model whose dependency regions stand for ``spec``'s in the ceiling (None: no ceiling for it).

    Regions depend only on the architecture's wiring: every communicating DDU-Net(D, F > 0, Y) has those of
    DDU-Net(D, 1, Y) with the same coarse kernel and depth; DDU-Net(D, 0, ·) and DDU-Net(D, F, N) never look
    beyond their subimage, like DDU-Net(D, 0, Y); width, initialisation and BatchNorm statistics do not matter.
    """
    from ..models import ModelSpec

    spec = ModelSpec.parse(spec_text)
    depth = spec.kwargs.get("depth")
    if spec.name == "unet":
        return f"unet_D{depth}"
    if spec.name == "ddunet":
        if not (spec.kwargs["features"] > 0 and spec.kwargs["communicate"]):
            return f"ddunet_D{depth}_F0_CY"
        wiring = {key: spec.kwargs[key] for key in ("coarse_kernel", "coarse_layers")}  # the coarse reach
        return str(ModelSpec.parse(f"ddunet_D{depth}_F1_CY_K{wiring['coarse_kernel']}_H{wiring['coarse_layers']}"))
    return None
