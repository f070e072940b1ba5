"""Registration of the models that live in this package (U-Net, DDU-Net and the ResNet DDU-Net)."""

from __future__ import annotations

from .ddunet import DDUNet
from .registry import register_model, register_spec_key
from .resnet_ddunet import ResNetDDUNet
from .unet import UNet


def _choice(options: dict[str, str]):
    """Parser of a one-letter spec value into one of ``options``' names (e.g. ``P`` -> ``position``)."""

    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return options[value]

    return parse


# Protocol options of the synthetic experiments (issue: why our numbers differ from the journal's).
register_spec_key("N", "norm_stats", _choice({"S": "shared", "P": "position"}), lambda v: v[0].upper())
register_spec_key("I", "init", _choice({"H": "he", "T": "torch"}), lambda v: v[0].upper())
# The coarse network's kernel and depth (journal: 5 and 3; the thesis varies them).
register_spec_key("K", "coarse_kernel", int)
register_spec_key("H", "coarse_layers", int)
# The ResNet encoder's two extra bottleneck convolutions (journal: always; thesis Tables 7.11-7.13: with and without).
register_spec_key("X", "inter_conv", lambda value: _choice({"Y": "yes", "N": "no"})(value) == "yes",
                  lambda value: "Y" if value else "N")


@register_model(
    "unet",
    keys=("D",),
    optional_keys=("W", "I"),
    defaults={"depth": 3, "base_width": 4, "init": "he"},
    label=lambda p: f"U-Net({p['depth']})",
)
def build_unet(*, in_channels: int, num_classes: int, subimage_size: tuple[int, int], dropout: float, **params) -> UNet:
    """U-Net(D) on the whole image; the subimage size is irrelevant to it."""
    return UNet(in_channels=in_channels, num_classes=num_classes, dropout=dropout, **params)


@register_model(
    "ddunet",
    keys=("D", "F", "C"),
    optional_keys=("W", "N", "I", "K", "H"),
    defaults={"depth": 3, "features": 0, "communicate": True, "base_width": 4, "norm_stats": "shared", "init": "he",
              "coarse_kernel": 5, "coarse_layers": 3},
    label=lambda p: f"DDU-Net({p['depth']},{p['features']},{'Y' if p['communicate'] else 'N'})",
)
def build_ddunet(
    *, in_channels: int, num_classes: int, subimage_size: tuple[int, int], dropout: float, **params
) -> DDUNet:
    """DDU-Net(D, F, C) on subimages of ``subimage_size``."""
    return DDUNet(
        in_channels=in_channels, num_classes=num_classes, subimage_size=subimage_size, dropout=dropout, **params
    )


@register_model(
    "resnetddunet",
    keys=("R", "F", "C"),
    optional_keys=("B", "K", "H", "X"),
    defaults={"resnet": 18, "features": 0, "communicate": True, "frozen_bn": "eval", "coarse_kernel": 5,
              "coarse_layers": 3, "inter_conv": True},
    label=lambda p: f"DDU-Net(4,{p['features']},{'Y' if p['communicate'] else 'N'}) ResNet{p['resnet']}"
                    + ("" if p["inter_conv"] else " w/o extra bottleneck convs"),
    io=(3, 7),
)
def build_resnet_ddunet(
    *, in_channels: int, num_classes: int, subimage_size: tuple[int, int], dropout: float, **params
) -> ResNetDDUNet:
    """DDU-Net(4, F, C) with a frozen, randomly initialised ResNet encoder (journal Table 9)."""
    return ResNetDDUNet(
        in_channels=in_channels, num_classes=num_classes, subimage_size=subimage_size, dropout=dropout, **params
    )
