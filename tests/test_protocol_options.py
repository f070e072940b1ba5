"""Protocol options of the synthetic study: BatchNorm statistics per subimage position, PyTorch default init."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from ddubench.errors import ModelSpecError
from ddubench.models import ModelSpec, build_model
from ddubench.models.ddunet import DDUNet
from ddubench.models.unet import UNet


def _looped_reference(model: DDUNet, x: torch.Tensor) -> torch.Tensor:
    """The authors' single-process scheme written out: one encoder and one decoder call per subimage."""
    s = model.subimage_size[1]
    k = x.shape[-1] // s
    features = [model.encoder(x[..., p * s:(p + 1) * s]) for p in range(k)]
    f = model.features
    shared = torch.cat([levels[-1][:, -f:] for levels in features], dim=-1)  # stitched along the width
    coarse = model.coarse(shared)
    w = features[0][-1].shape[-1]
    for p, levels in enumerate(features):
        levels[-1] = torch.cat([levels[-1][:, :-f], coarse[..., p * w:(p + 1) * w]], dim=1)
    return torch.cat([model.head(model.decoder(levels)) for levels in features], dim=-1)


@pytest.mark.parametrize("features", [4, 8])
def test_position_statistics_equal_one_call_per_subimage(features: int) -> None:
    torch.manual_seed(0)
    model = DDUNet(depth=2, base_width=4, features=features, subimage_size=(16, 16), norm_stats="position").double()
    reference = copy.deepcopy(model)
    x = torch.rand(3, 1, 16, 16 * 4, dtype=torch.float64)
    target = torch.rand(3, 3, 16, 64, dtype=torch.float64)
    model.train(), reference.train()
    out, ref = model(x), _looped_reference(reference, x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    (out * target).sum().backward()
    (ref * target).sum().backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-10, msg=name)
    for (name, b), c in zip(model.named_buffers(), reference.buffers()):  # running stats: 4 updates in order
        torch.testing.assert_close(b, c, rtol=0, atol=1e-12, msg=name)
    model.eval(), reference.eval()
    torch.testing.assert_close(model(x), _looped_reference(reference, x), rtol=0, atol=1e-12)


def test_position_statistics_differ_from_pooled_statistics_in_training() -> None:
    torch.manual_seed(0)
    pooled = DDUNet(depth=2, features=4, subimage_size=(16, 16)).double()
    position = copy.deepcopy(pooled)
    position.norm_stats = "position"
    x = torch.rand(2, 1, 16, 48, dtype=torch.float64)
    x[..., 16:32] *= 5  # subimage positions with different statistics
    assert (pooled.train()(x) - position.train()(x)).abs().max() > 1e-3
    # with fixed running statistics (eval) the two orders of calls are the same function
    pooled.load_state_dict(position.state_dict())
    torch.testing.assert_close(pooled.eval()(x), position.eval()(x), rtol=0, atol=1e-12)


def _conv_weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_torch_init_keeps_pytorchs_default_and_he_replaces_it() -> None:
    torch.manual_seed(0)
    default = UNet(init="torch")
    torch.manual_seed(0)
    plain = nn.Conv2d(1, 4, 3, padding=1, bias=False)  # the first layer PyTorch builds from the same seed
    torch.testing.assert_close(_conv_weights(default)[0], plain.weight, rtol=0, atol=0)
    for weight in _conv_weights(default):  # kaiming_uniform(a=sqrt(5)): |w| <= 1/sqrt(fan_in)
        fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
        assert weight.abs().max() <= 1 / math.sqrt(fan_in) + 1e-7
    he = UNet(init="he")
    first = _conv_weights(he)[0]  # kaiming_normal, fan_out = 4 * 9: std sqrt(2 / 36)
    assert first.abs().max() > 1 / math.sqrt(9)


@pytest.mark.parametrize(("text", "canonical", "kwargs"), [
    ("ddunet_D3_F8_CY_NP", "ddunet_D3_F8_CY_NP", {"norm_stats": "position", "init": "he"}),
    ("ddunet_D3_F8_CY_NS_IH", "ddunet_D3_F8_CY", {"norm_stats": "shared", "init": "he"}),
    ("ddunet_D3_F32_CY_IT_NP", "ddunet_D3_F32_CY_NP_IT", {"norm_stats": "position", "init": "torch"}),
    ("unet_D3_IT", "unet_D3_IT", {"init": "torch"}),
])
def test_protocol_spec_keys(text: str, canonical: str, kwargs: dict[str, str]) -> None:
    spec = ModelSpec.parse(text)
    assert str(spec) == canonical
    assert {key: spec.kwargs[key] for key in kwargs} == kwargs
    model = build_model(spec, in_channels=1, num_classes=3, subimage_size=(32, 32))
    assert getattr(model, "norm_stats", "shared") == kwargs.get("norm_stats", "shared")


def test_bad_protocol_tokens_are_one_line_errors() -> None:
    with pytest.raises(ModelSpecError, match="bad value in token 'NX'"):
        ModelSpec.parse("ddunet_D3_F8_CY_NX")
    with pytest.raises(ModelSpecError, match="bad token 'NP'"):
        ModelSpec.parse("unet_D3_NP")  # a whole-image U-Net has no subimage positions


def test_a_position_statistics_model_is_refused_across_ranks_for_training_and_measurement() -> None:
    from ddubench.distributed.ddunet import DistributedDDUNet
    from ddubench.distributed.runtime import DistContext

    ctx = DistContext(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"), backend="gloo")
    model = build_model("ddunet_D3_F8_CY_NP", in_channels=1, num_classes=3, subimage_size=(32, 32))
    with pytest.raises(ModelSpecError, match=r"per subimage position \(_NP\) are a single-process protocol option"):
        DistributedDDUNet(model, ctx)
