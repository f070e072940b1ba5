"""Segmentation models and the name -> builder registry (plug-ins: entry point group ``ddubench.models``)."""

from .coarse import CoarseNetwork, FCCoarseNetwork
from .ddunet import DDUNet
from .registry import MODELS, PLUGIN_GROUP, ModelSpec, build_model, load_models, register_model, register_spec_key
from .unet import UNet, UNetDecoder, UNetEncoder

__all__ = [
    "MODELS",
    "PLUGIN_GROUP",
    "CoarseNetwork",
    "DDUNet",
    "FCCoarseNetwork",
    "ModelSpec",
    "UNet",
    "UNetDecoder",
    "UNetEncoder",
    "build_model",
    "load_models",
    "register_model",
    "register_spec_key",
]
