"""Model registry and model-spec strings.

A model spec names a registered model and its hyperparameters in a file-name-safe string:
``unet_D3`` is U-Net(D=3); ``ddunet_D3_F16_CY`` is DDU-Net(D=3, F=16, C=Y); ``resnetddunet_R18_F256_CY``
is DDU-Net(4, 256, Y) with a ResNet18 encoder (``_BT``: frozen BatchNorm statistics update in training,
as in the authors' code; ``_BE``, the default, keeps them fixed). Each token after the name
is one upper-case key letter followed by its value. Snakemake paths, CLI arguments and result tables
all use this one spelling.

Models come from plug-ins: every entry point of the group ``ddubench.models`` (any installed package may
declare one; ours declare the baselines in ``pyproject.toml``) names a module that registers its models
on import, or a function that registers them when called. They are loaded the first time a spec is parsed.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from torch import nn

from ..errors import ModelSpecError

_TOKEN = re.compile(r"^([A-Z])(.+)$")


def _yes_no(value: str) -> bool:
    if value not in ("Y", "N"):
        raise ValueError("expected Y or N")
    return value == "Y"


def _frozen_bn(value: str) -> str:
    modes = {"E": "eval", "T": "train"}
    if value not in modes:
        raise ValueError("expected E or T")
    return modes[value]


# key letter -> (keyword argument, parser, formatter)
SPEC_KEYS: dict[str, tuple[str, Callable[[str], Any], Callable[[Any], str]]] = {
    "D": ("depth", int, str),
    "F": ("features", int, str),
    "C": ("communicate", _yes_no, lambda v: "Y" if v else "N"),
    "W": ("base_width", int, str),
    "R": ("resnet", int, str),
    "B": ("frozen_bn", _frozen_bn, lambda v: v[0].upper()),
}


def register_spec_key(letter: str, kwarg: str, parse: Callable[[str], Any], fmt: Callable[[Any], str] = str) -> None:
    """Add a spec key letter for a model module's own hyperparameter (e.g. a baseline's patch size).

    Registering the same letter again is allowed only for the same keyword argument.
    """
    if not re.fullmatch(r"[A-Z]", letter):
        raise ValueError(f"spec key must be one upper-case letter, not {letter!r}")
    if letter in SPEC_KEYS and SPEC_KEYS[letter][0] != kwarg:
        raise ValueError(f"spec key {letter!r} already means {SPEC_KEYS[letter][0]!r}, not {kwarg!r}")
    SPEC_KEYS[letter] = (kwarg, parse, fmt)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it, which spec keys it takes, how to label it."""

    builder: Callable[..., nn.Module]
    keys: tuple[str, ...]
    optional_keys: tuple[str, ...]
    defaults: dict[str, Any]
    label: Callable[[dict[str, Any]], str]
    io: tuple[int, int] = (1, 3)

    @property
    def all_keys(self) -> tuple[str, ...]:
        return self.keys + self.optional_keys


MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    keys: tuple[str, ...],
    optional_keys: tuple[str, ...] = (),
    defaults: dict[str, Any],
    label: Callable[[dict[str, Any]], str],
    io: tuple[int, int] = (1, 3),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder(in_channels, num_classes, subimage_size, dropout, **params)`` under ``name``.

    ``keys`` always appear in the canonical spec string; ``optional_keys`` only when not at their default.
    ``io`` is the (input channels, classes) of the data the model is built for (synthetic: 1, 3), used
    where a model is measured without data.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = ModelEntry(builder, keys, optional_keys, dict(defaults), label, io)
        return builder

    return decorator


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: the registry name and its hyperparameters (defaults filled in)."""

    name: str
    params: tuple[tuple[str, Any], ...]

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """Parse ``ddunet_D3_F16_CY``-style specs; a one-line error names the problem."""
        load_models()
        name, *tokens = text.split("_")
        if name not in MODELS:
            raise ModelSpecError(f"unknown model {name!r} in spec {text!r}; known models: {', '.join(sorted(MODELS))}")
        entry = MODELS[name]
        params = dict(entry.defaults)
        for token in tokens:
            match = _TOKEN.match(token)
            if not match or match.group(1) not in entry.all_keys:
                raise ModelSpecError(
                    f"bad token {token!r} in model spec {text!r}; {name} takes "
                    + ", ".join(f"{k}<{SPEC_KEYS[k][0]}>" for k in entry.all_keys)
                )
            kwarg, parse, _ = SPEC_KEYS[match.group(1)]
            try:
                params[kwarg] = parse(match.group(2))
            except ValueError:
                raise ModelSpecError(f"bad value in token {token!r} of model spec {text!r}") from None
        return cls(name, tuple(sorted(params.items())))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def __str__(self) -> str:
        entry = MODELS[self.name]
        kwargs = self.kwargs
        tokens = [self.name]
        for key in entry.all_keys:
            kwarg, _, fmt = SPEC_KEYS[key]
            if key in entry.keys or kwargs[kwarg] != entry.defaults[kwarg]:
                tokens.append(key + fmt(kwargs[kwarg]))
        return "_".join(tokens)

    @property
    def io(self) -> tuple[int, int]:
        """(input channels, classes) of the data this model is built for."""
        return MODELS[self.name].io

    @property
    def label(self) -> str:
        """The paper's notation, e.g. ``DDU-Net(3,16,Y)`` or ``U-Net(3)``."""
        return MODELS[self.name].label(self.kwargs)


def build_model(
    spec: str | ModelSpec,
    *,
    in_channels: int,
    num_classes: int,
    subimage_size: tuple[int, int],
    dropout: float = 0.0,
    **options: Any,
) -> nn.Module:
    """Build a registered model from its spec and the dataset's properties.

    ``options`` are build-time settings that are neither hyperparameters nor stored in checkpoints (the
    ResNet DDU-Net's local ImageNet ``weights_path``); they go to builders that accept them.
    """
    if isinstance(spec, str):
        spec = ModelSpec.parse(spec)
    entry = MODELS[spec.name]
    return entry.builder(
        in_channels=in_channels, num_classes=num_classes, subimage_size=subimage_size, dropout=dropout,
        **spec.kwargs, **options,
    )


PLUGIN_GROUP = "ddubench.models"
_loaded = False


def load_models() -> None:
    """Register the built-in models and every installed plug-in's (once; a broken plug-in is one clear error)."""
    global _loaded
    if _loaded:
        return
    from . import builtin  # noqa: F401  (registers U-Net, DDU-Net and the ResNet DDU-Net)

    for entry_point in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            loaded = entry_point.load()
            if not inspect.ismodule(loaded):
                loaded()
        except Exception as err:  # noqa: BLE001  (a plug-in's own failure, reported as one line)
            raise ModelSpecError(
                f"model plug-in {entry_point.name!r} ({entry_point.value}, entry point group {PLUGIN_GROUP}) "
                f"failed to load: {type(err).__name__}: {err}; fix or uninstall the package that declares it"
            ) from None
    _loaded = True
