"""CNN-DNN (Klawonn, Lanser, Weber; SISC 46(5), 2024 and its transfer-learning follow-up): models.

**Classification (the method as published).** An image is cut into a fixed grid of N non-overlapping
subimages (the papers' "type A" decomposition, overlap 0). Local CNN ``i`` sees only subimage ``i`` and
predicts the *global* label; the N local CNNs have their own weights and are trained with no
communication. A dense network with four hidden layers (:class:`CoarseDNN`) maps the stacked K*N local
class probabilities to the final label. :func:`average_probability` and :func:`majority_vote` are the
papers' cheaper combiners; :class:`CNNDNN` is the assembled model, which is also what the "coherent"
variant trains end to end (and the "transfer" variant fine-tunes from independently trained local CNNs).
:class:`VGGClassifier` is the CNN family: the global CNN and, with proportionally fewer channels and
neurons, the local CNNs.

**Segmentation (our adaptation, for the DDU-Net comparison).** :class:`CNNDNNSegmentation` puts one
independent U-Net on each subimage position of a window of ``grid`` subimages; each predicts the mask of
its own subimage. The local softmax maps, stitched, feed a small aggregator (:class:`ProbabilityAggregator`:
four hidden dilated 3x3 convolutions, the analogue of the DNN's four hidden layers) that outputs the final
logits. Registered as ``cnndnn``: ``cnndnn_D4_L4x4`` is CNN-DNN with U-Net(4) local networks on a 4x4 grid
of subimages; ``_EY`` trains it coherently (end to end); ``_W8`` sets the U-Nets' base width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ddubench.data.tiling import split_subimages, stitch_subimages
from ddubench.errors import DataError, ModelSpecError
from ddubench.models import UNet, register_model, register_spec_key

# ---------------------------------------------------------------------------------------------------------
# Classification


class VGGClassifier(nn.Sequential):
    """VGG-type CNN: stages of ``convs_per_stage`` x (3x3 conv, BatchNorm, ReLU) and 2x2 max pooling, then
    dense ReLU layers of ``hidden`` neurons and a linear output of ``num_classes`` logits."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        input_size: tuple[int, int],
        widths: Sequence[int],
        convs_per_stage: int = 2,
        hidden: Sequence[int] = (64,),
    ) -> None:
        factor = 2 ** len(widths)
        if input_size[0] % factor or input_size[1] % factor:
            raise ModelSpecError(
                f"input {input_size[0]}x{input_size[1]} px is not divisible by 2^{len(widths)} = {factor} "
                f"({len(widths)} pooling stages); use fewer stages or another image/subimage size"
            )
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            for _ in range(convs_per_stage):
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2))
        layers.append(nn.Flatten())
        features = channels * (input_size[0] // factor) * (input_size[1] // factor)
        for neurons in hidden:
            layers += [nn.Linear(features, neurons), nn.ReLU(inplace=True)]
            features = neurons
        layers.append(nn.Linear(features, num_classes))
        super().__init__(*layers)


def scaled_down(sizes: Sequence[int], divisor: int) -> list[int]:
    """Proportionally smaller layers for a local CNN: every width divided by ``divisor`` (at least 1)."""
    return [max(1, size // divisor) for size in sizes]


class CoarseDNN(nn.Sequential):
    """The global decision: dense ReLU layers (four hidden, as in the papers) over K*N local probabilities."""

    def __init__(self, num_local: int, num_classes: int, hidden: Sequence[int] = (64, 64, 64, 64)) -> None:
        layers: list[nn.Module] = []
        features = num_local * num_classes
        for neurons in hidden:
            layers += [nn.Linear(features, neurons), nn.ReLU(inplace=True)]
            features = neurons
        layers.append(nn.Linear(features, num_classes))
        super().__init__(*layers)

    @property
    def hidden_layers(self) -> int:
        return sum(isinstance(m, nn.Linear) for m in self) - 1


def subimages(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C, H/rows, W/cols): the type-A decomposition, subimages row-major."""
    (height, width), (rows, cols) = x.shape[-2:], grid
    if height % rows or width % cols:
        raise DataError(f"image {height}x{width} px does not split into a {rows}x{cols} grid of equal subimages; "
                        "choose a decomposition whose rows and columns divide the image sides")
    tiles = split_subimages(x, (rows, cols))
    return tiles.view(x.shape[0], rows * cols, *tiles.shape[1:])


class CNNDNN(nn.Module):
    """N local CNNs (one per subimage, own weights) and the DNN over their stacked class probabilities."""

    def __init__(self, local_nets: Sequence[nn.Module], dnn: nn.Module, grid: tuple[int, int]) -> None:
        super().__init__()
        if len(local_nets) != grid[0] * grid[1]:
            raise ModelSpecError(f"{len(local_nets)} local CNNs for a {grid[0]}x{grid[1]} grid; need one per subimage")
        self.grid = tuple(grid)
        self.local_nets = nn.ModuleList(local_nets)
        self.dnn = dnn

    def local_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, K): each local CNN's logits from its own subimage only."""
        tiles = subimages(x, self.grid)
        return torch.stack([net(tiles[:, i]) for i, net in enumerate(self.local_nets)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dnn(self.local_logits(x).softmax(dim=-1).flatten(1))


def average_probability(probs: torch.Tensor) -> torch.Tensor:
    """Papers' "avg. prob.": the class with the highest mean probability over the N local CNNs; (B, N, K) -> (B,)."""
    return probs.mean(dim=1).argmax(dim=1)


def majority_vote(probs: torch.Tensor) -> torch.Tensor:
    """Papers' "maj. vot.": the class most local CNNs predict; (B, N, K) -> (B,).

    Ties between classes with the same number of votes go to the one with the highest probability summed
    over all local CNNs (the papers break ties by "the highest assigned probability value").
    """
    votes = F.one_hot(probs.argmax(dim=2), probs.shape[2]).sum(dim=1)
    tied = votes == votes.max(dim=1, keepdim=True).values
    return torch.where(tied, probs.sum(dim=1), torch.full_like(probs[:, 0], -torch.inf)).argmax(dim=1)


# ---------------------------------------------------------------------------------------------------------
# Segmentation adaptation


class ProbabilityAggregator(nn.Sequential):
    """Final map from the stitched local softmax maps: four hidden 3x3 conv + ReLU layers with dilations
    1, 2, 4, 8 (a 31 px receptive field, so it sees across subimage borders) and a 1x1 output conv."""

    def __init__(self, num_classes: int, hidden: int = 16, dilations: Sequence[int] = (1, 2, 4, 8)) -> None:
        layers: list[nn.Module] = []
        channels = num_classes
        for dilation in dilations:
            layers += [nn.Conv2d(channels, hidden, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
            channels = hidden
        layers.append(nn.Conv2d(channels, num_classes, 1))
        super().__init__(*layers)


class CNNDNNSegmentation(nn.Module):
    """CNN-DNN for segmentation: independent local U-Nets on a fixed grid of subimages plus an aggregator.

    A *window* is ``grid`` (rows, cols) subimages of ``subimage_size``; local U-Net ``i`` (own weights)
    always sees subimage ``i`` of the window, row-major. Inputs whose sides are multiples of the window
    are processed window by window (e.g. DeepGlobe's 2048 px test crops by a model trained on 1024 px
    crops); any other size is a :class:`ModelSpecError`.

    Training (:meth:`training_loss`, used by the shared Trainer): by default as the published method,
    each local U-Net minimises the dice loss of its own subimage and the aggregator the dice loss of the
    final map computed from *detached* local probabilities, so no gradient passes between local U-Nets
    or from the aggregator into them; Adam's update is per parameter, so one optimiser over all of them
    trains each exactly as alone (without gradient clipping, whose norm spans every network, and mixed
    precision, whose loss scaler skips every network's step when one overflows). Unlike the papers' two phases, local networks and aggregator train in the
    same epochs (the aggregator follows the local networks as they improve), and the learning-rate schedule
    and checkpoint selection follow the validation loss of the final map. ``coherent=True`` trains the
    whole model end to end on the final map's loss (the papers' "CNN-DNN-coherent").
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 7,
        subimage_size: tuple[int, int] = (256, 256),
        grid: tuple[int, int] = (4, 4),
        depth: int = 4,
        base_width: int = 4,
        coherent: bool = False,
        hidden: int = 16,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        multiple = 2**depth
        if subimage_size[0] % multiple or subimage_size[1] % multiple:
            raise ModelSpecError(
                f"subimage size {subimage_size[0]}x{subimage_size[1]} is not divisible by 2^D = {multiple}; "
                f"use a smaller depth or subimages whose sides are multiples of {multiple}"
            )
        self.subimage_size = tuple(subimage_size)
        self.grid = tuple(grid)
        self.coherent = coherent
        self.local_nets = nn.ModuleList(
            UNet(in_channels, num_classes, depth, base_width, dropout) for _ in range(grid[0] * grid[1])
        )
        self.aggregator = ProbabilityAggregator(num_classes, hidden)

    @property
    def window(self) -> tuple[int, int]:
        """Height and width of the grid of subimages the local networks cover."""
        return self.grid[0] * self.subimage_size[0], self.grid[1] * self.subimage_size[1]

    def windows(self, x: torch.Tensor) -> tuple[int, int]:
        """Rows and columns of windows in input ``x`` (a one-line error if it does not divide into them)."""
        (height, width), (win_h, win_w) = x.shape[-2:], self.window
        if height % win_h or width % win_w:
            raise ModelSpecError(
                f"input {height}x{width} px is not a multiple of the CNN-DNN window {win_h}x{win_w} px "
                f"({self.grid[0]}x{self.grid[1]} local networks on {self.subimage_size[0]}x{self.subimage_size[1]} "
                f"subimages); use such crops or a spec with another L<rows>x<cols>"
            )
        return height // win_h, width // win_w

    def local_tiles(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, C, window) -> (B, N, K, h, w): the logits of every local U-Net on its own subimage."""
        tiles = split_subimages(windows, self.grid)
        tiles = tiles.view(windows.shape[0], len(self.local_nets), *tiles.shape[1:])
        return torch.stack([net(tiles[:, i]) for i, net in enumerate(self.local_nets)], dim=1)

    def aggregate(self, local: torch.Tensor) -> torch.Tensor:
        """Final logits of windows from the local logits (B, N, K, h, w)."""
        return self.aggregator(stitch_subimages(local.flatten(0, 1), self.grid).softmax(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outer = self.windows(x)
        return stitch_subimages(self.aggregate(self.local_tiles(split_subimages(x, outer))), outer)

    def training_loss(self, images: torch.Tensor, masks: torch.Tensor, ignore_index: int | None, dice) -> torch.Tensor:
        """Mean local dice loss + aggregator dice loss (independent), or the final map's loss (coherent)."""
        outer = self.windows(images)
        target = split_subimages(masks.unsqueeze(1), outer).squeeze(1)
        local = self.local_tiles(split_subimages(images, outer))
        if self.coherent:
            return dice(self.aggregate(local), target)
        tiles = split_subimages(target.unsqueeze(1), self.grid).squeeze(1).view(local.shape[0], local.shape[1],
                                                                               *local.shape[-2:])
        local_loss = torch.stack([dice(local[:, i], tiles[:, i]) for i in range(local.shape[1])]).mean()
        return local_loss + dice(self.aggregate(local.detach()), target)


def _grid(text: str) -> tuple[int, int]:
    rows, sep, cols = text.partition("x")
    if not sep or not rows.isdigit() or not cols.isdigit() or int(rows) < 1 or int(cols) < 1:
        raise ValueError("expected <rows>x<cols>, e.g. 4x4")
    return int(rows), int(cols)


def _yes_no(text: str) -> bool:
    if text not in ("Y", "N"):
        raise ValueError("expected Y or N")
    return text == "Y"


register_spec_key("L", "grid", _grid, lambda grid: f"{grid[0]}x{grid[1]}")
register_spec_key("E", "coherent", _yes_no, lambda value: "Y" if value else "N")


@register_model(
    "cnndnn",
    keys=("D",),
    optional_keys=("L", "W", "E"),
    defaults={"depth": 4, "grid": (4, 4), "base_width": 4, "coherent": False},
    label=lambda p: f"CNN-DNN({p['depth']}){' coherent' if p['coherent'] else ''}",
    io=(3, 7),
)
def build_cnndnn(
    *, in_channels: int, num_classes: int, subimage_size: tuple[int, int], dropout: float, **params
) -> CNNDNNSegmentation:
    """CNN-DNN segmentation: a U-Net(D) per subimage of an L<rows>x<cols> window (default 4x4) + aggregator."""
    return CNNDNNSegmentation(in_channels=in_channels, num_classes=num_classes, subimage_size=subimage_size,
                              dropout=dropout, **params)
