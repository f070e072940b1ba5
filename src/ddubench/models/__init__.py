"""Segmentation models and the name -> builder registry."""

from .coarse import CoarseNetwork
from .ddunet import DDUNet
from .registry import MODELS, ModelSpec, build_model, register_model, register_spec_key
from .unet import UNet, UNetDecoder, UNetEncoder

__all__ = [
    "MODELS",
    "CoarseNetwork",
    "DDUNet",
    "ModelSpec",
    "UNet",
    "UNetDecoder",
    "UNetEncoder",
    "build_model",
    "register_model",
    "register_spec_key",
]
