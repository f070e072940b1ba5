"""The authors' clone scheme (reference row of the throughput benchmark) is one shared-weight module applied
once per subimage position: same outputs, same summed gradients, same weights after Adam."""

from __future__ import annotations

import copy

import pytest
import torch

from ddubench.errors import DdubenchError
from ddubench.measure.authors_scheme import ClonedDDUNet
from ddubench.measure.timing import measure_train_step
from ddubench.models.ddunet import DDUNet
from ddubench.training.losses import DiceLoss


@pytest.mark.parametrize("features, communicate", [(4, True), (4, False), (0, True)])
def test_clone_scheme_step_equals_one_module_per_position(features: int, communicate: bool) -> None:
    torch.manual_seed(0)
    model = DDUNet(depth=2, base_width=4, features=features, communicate=communicate, subimage_size=(16, 16)).double()
    reference = copy.deepcopy(model)
    reference.norm_stats = "position"
    scheme = ClonedDDUNet(model, positions=3)
    images, masks = torch.rand(4, 1, 16, 48, dtype=torch.float64), torch.randint(0, 3, (4, 16, 48))
    optimisers = (torch.optim.Adam(scheme.optimised_parameters(), lr=0.01),
                  torch.optim.Adam(reference.parameters(), lr=0.01))
    for _ in range(2):
        outputs = scheme(images), reference(images)
        torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-9, atol=1e-10)
        for optimiser, output in zip(optimisers, outputs):
            optimiser.zero_grad(set_to_none=True)
            DiceLoss()(output, masks).backward()
        scheme.sum_gradients_into_clone_zero()
        ours, theirs = dict(model.named_parameters()), dict(reference.named_parameters())
        assert ours.keys() == theirs.keys()
        for name in ours:
            torch.testing.assert_close(ours[name].grad, theirs[name].grad, rtol=1e-8, atol=1e-10, msg=name)
        assert all(p.grad is None for clone in scheme.encoders[1:] for p in clone.parameters())
        for optimiser in optimisers:
            optimiser.step()
        scheme.broadcast_clone_zero()
        for name in ours:
            torch.testing.assert_close(ours[name], theirs[name], rtol=1e-9, atol=1e-10, msg=name)
    for clone in (*scheme.encoders[1:], *scheme.decoders[1:]):
        source = scheme.encoders[0] if clone in scheme.encoders else scheme.decoders[0]
        for mine, zero in zip(clone.state_dict().values(), source.state_dict().values()):
            assert torch.equal(mine, zero)


def test_clone_scheme_refuses_another_grid() -> None:
    scheme = ClonedDDUNet(DDUNet(depth=2, base_width=4, features=4, subimage_size=(16, 16)), positions=3)
    with pytest.raises(DdubenchError, match="2 clones|3 clones"):
        scheme(torch.rand(1, 1, 16, 32))


def test_step_time_of_the_authors_scheme_is_its_own_mode() -> None:
    record = measure_train_step("ddunet_D2_F4_CY", k=2, subimage_size=16, batch_size=2, warmup=1, repeats=2,
                                authors_scheme=True)
    assert record["mode"] == "authors_scheme" and record["step_time_median_s"] > 0
    with pytest.raises(DdubenchError, match="eagerly"):
        measure_train_step("ddunet_D2_F4_CY", k=2, authors_scheme=True, compile_model=True)
