"""FlatAdam: the same steps as torch's Adam over the separate tensors, with flat storage."""
import copy

import pytest
import torch
from torch import nn

from scgrad.rl.nets.mlp import mlp
from scgrad.rl.optim import step
from scgrad.rl.optim import FlatAdam, flatten_parameters


def _loss(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net(x).square().mean()


def test_steps_equal_torch_adam_over_separate_tensors():
    torch.manual_seed(0)
    net = mlp([3, 8, 8, 2])
    reference = copy.deepcopy(net)
    ours = FlatAdam([(net, 1e-2)])
    theirs = torch.optim.Adam(reference.parameters(), lr=1e-2)
    for _ in range(5):
        x = torch.randn(16, 3)
        for model, optimizer in ((net, ours), (reference, theirs)):
            optimizer.zero_grad()
            _loss(model, x).backward()
            step([optimizer], max_grad_norm=0.5)
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the step moved the weights (the comparison above is not between two untouched copies)
    assert not torch.equal(next(net.parameters()), next(mlp([3, 8, 8, 2]).parameters()))


def test_gradients_land_in_the_flat_tensor_and_zero_in_place():
    net = nn.Linear(3, 2)
    optimizer = FlatAdam([(net, 1e-3)])
    flat = optimizer.param_groups[0]["params"][0]
    assert flat.shape == (3 * 2 + 2,)
    _loss(net, torch.ones(4, 3)).backward()
    grads = torch.cat([net.weight.grad.reshape(-1), net.bias.grad])
    torch.testing.assert_close(flat.grad, grads)
    assert flat.grad.abs().sum() > 0
    optimizer.zero_grad(set_to_none=True)  # must not detach the views
    assert net.weight.grad is not None and not net.weight.grad.any() and not flat.grad.any()
    _loss(net, torch.ones(4, 3)).backward()
    torch.testing.assert_close(flat.grad, grads)


def test_values_kept_shared_parameters_stay_shared_and_load_state_dict_keeps_views():
    torch.manual_seed(1)
    shared = nn.Linear(2, 2)
    outer = nn.Sequential(shared, nn.Tanh(), shared)
    before = copy.deepcopy(outer.state_dict())
    flat = flatten_parameters([outer])
    assert flat.numel() == 6  # the shared layer counted once
    assert outer[0].weight is outer[2].weight
    for name, value in outer.state_dict().items():
        torch.testing.assert_close(value, before[name])
    outer.load_state_dict({k: torch.zeros_like(v) for k, v in before.items()})
    assert not flat.any()  # loading wrote through the views


def test_groups_keep_their_own_learning_rates_and_state_round_trips():
    a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    optimizer = FlatAdam([(a, 1e-3), (b, 1e-2)])
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 1e-2]
    assert [g["initial_lr"] for g in optimizer.param_groups] == [1e-3, 1e-2]
    (a(torch.ones(1, 2)) + b(torch.ones(1, 2))).sum().backward()
    optimizer.step()
    again = FlatAdam([(copy.deepcopy(a), 1e-3), (copy.deepcopy(b), 1e-2)])
    again.load_state_dict(optimizer.state_dict())
    assert again.state_dict()["state"][1]["step"].item() == 1


def test_needs_a_group():
    with pytest.raises(ValueError, match="at least one"):
        FlatAdam([])


@pytest.mark.parametrize("max_norm", [0.1, 100.0])  # clipping, and a norm already below the cap
def test_clip_grad_norm_equals_torch(max_norm):
    from scgrad.rl.optim import clip_grad_norm_

    torch.manual_seed(2)
    ours = [nn.Parameter(torch.zeros(5)), nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))]
    theirs = [nn.Parameter(torch.zeros_like(p)) for p in ours]
    for a, b in zip(ours[:2], theirs[:2]):  # the last parameter has no gradient
        a.grad = torch.randn_like(a)
        b.grad = a.grad.clone()
    total = clip_grad_norm_(ours, max_norm)
    expected = nn.utils.clip_grad_norm_(theirs, max_norm)
    torch.testing.assert_close(total, expected)
    for a, b in zip(ours[:2], theirs[:2]):
        torch.testing.assert_close(a.grad, b.grad)
    assert (total > max_norm) == (max_norm == 0.1)  # the first case does clip
