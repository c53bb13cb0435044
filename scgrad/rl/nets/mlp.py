"""MLP bodies and the fast paths the actors use: ``mlp``, the activations by name,
``forward_fast`` (a Sequential's layers called as functions), ``numpy_forward`` (the same
network in NumPy, for batch-1 rollouts) and ``torch_actor``.

Shapes: inputs [B, in_features] → outputs [B, out_features]."""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scgrad.rl.config import ACTIVATION_NAMES

ACTIVATIONS: Dict[str, Type[nn.Module]] = dict(zip(ACTIVATION_NAMES, (nn.Tanh, nn.ReLU, nn.ELU, nn.GELU, nn.SiLU)))
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# the function each activation module applies, for ``forward_fast`` and (where NumPy has it) ``numpy_forward``
_FUNCTIONS = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu, nn.ELU: F.elu, nn.GELU: F.gelu, nn.SiLU: F.silu}
_NUMPY_FUNCTIONS = {nn.Tanh: np.tanh, nn.ReLU: lambda x: np.maximum(x, 0.0)}
Actor = Callable[[np.ndarray], np.ndarray]


def activation_class(name: str) -> Type[nn.Module]:
    """The ``nn.Module`` class for an activation name; ``ValueError`` listing the known ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def mlp(sizes: Sequence[int], activation: Type[nn.Module] = nn.Tanh,
        output_activation: Type[nn.Module] = nn.Identity, output_gain: float = 1.0) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between them.

    Orthogonal initialisation (gain √2 inside, ``output_gain`` on the last layer) and zero biases,
    as in the PPO implementations studied by Engstrom et al. 2020 and Andrychowicz et al. 2021.
    """
    layers: list = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, gain=output_gain if last else math.sqrt(2.0))
        nn.init.zeros_(linear.bias)
        layers += [linear, output_activation() if last else activation()]
    return nn.Sequential(*layers)


def forward_fast(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` for an ``mlp``, calling ``F.linear`` and the activation functions directly.

    A rollout feeds the policy one observation per environment per step, where nn.Module's
    call machinery costs more than the arithmetic: at batch size 1, ``net(x)`` took 1.4× as
    long as this path for a 64-64 policy mean (``numpy_forward``, faster still, is what the
    rollout uses where it applies; all three in ``benchmarks/rl_parts.py``).
    Module hooks are not run; use it for inference (under ``torch.inference_mode``).
    """
    for layer in net:
        if type(layer) is nn.Linear:
            x = F.linear(x, layer.weight, layer.bias)
        elif type(layer) in _FUNCTIONS:
            x = _FUNCTIONS[type(layer)](x)
        elif type(layer) is not nn.Identity:
            x = layer(x)
    return x


def numpy_forward(net: nn.Sequential) -> Optional[Actor]:
    """``net`` as a NumPy function of a float32 batch [B, in] -> [B, out], for an ``mlp`` of
    float32 CPU weights with tanh or ReLU; ``None`` for anything else.

    At batch sizes of a few environments, a NumPy operation costs a fraction of a torch
    dispatch, and a rollout pays for the policy on every environment step. The weights are
    read through NumPy views of the parameters, so in-place optimiser steps show through;
    parameters replaced after the call (e.g. by ``optim.flatten_parameters``) do not: build the
    function again after that. The arithmetic is float32 like torch's, but NumPy may sum in
    another order, so outputs agree with ``net(x)`` to rounding, not bit for bit.
    """
    steps: List[Union[Tuple[np.ndarray, Optional[np.ndarray]], Callable[[np.ndarray], np.ndarray]]] = []
    for layer in net:
        if type(layer) is nn.Linear:
            if layer.weight.device.type != "cpu" or layer.weight.dtype != torch.float32:
                return None
            bias = None if layer.bias is None else layer.bias.detach().numpy()
            steps.append((layer.weight.detach().numpy().T, bias))
        elif type(layer) in _NUMPY_FUNCTIONS:
            steps.append(_NUMPY_FUNCTIONS[type(layer)])
        elif type(layer) is not nn.Identity:
            return None

    def forward(x: np.ndarray) -> np.ndarray:
        for step in steps:
            if isinstance(step, tuple):
                weight_t, bias = step
                x = x @ weight_t if bias is None else x @ weight_t + bias
            else:
                x = step(x)
        return x

    return forward


def torch_actor(policy: nn.Module, device: torch.device = torch.device("cpu")) -> Actor:
    """``policy.act`` as a function of NumPy observations to NumPy actions, without gradients
    (the rollout's path for policies without a NumPy form)."""
    def actor(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy.act(torch.from_numpy(obs).to(device)).cpu().numpy()

    return actor
