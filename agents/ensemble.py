"""Vectorised ensembles of same-shaped MLPs: E members in one module, one ``torch.baddbmm`` per
layer for all of them (docs/batched.md).

A member is an MLP ``Linear (-> LayerNorm) -> activation`` per hidden width, then one or more
linear output heads; the weights of layer l are one tensor of shape (E, in, out), its bias
(E, 1, out), so that ``y = baddbmm(bias, x, weight)`` runs every member at once (a one-column
layer, such as a Q head, is computed as a multiply-and-sum: the same map, faster on the CPU).
Members never share parameters: member e reads only slice e of every tensor, and its gradients
land only in slice e.

**Initialisation** (``EnsembleMLP.reset_parameters``). Every member gets ``nn.Linear``'s
distribution: weights kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)); LayerNorm weight 1, bias 0. The draws follow a
documented order: member after member; within a member layer after layer, then head after head;
within a layer the weight (drawn in ``nn.Linear``'s (out, in) layout, then transposed), then the
bias. This is the order in which E separate ``nn.Sequential`` MLPs built one after another (as
Stable-Baselines3's ``ContinuousCritic`` builds its ``qf0 .. qf{E-1}``) draw from torch's
generator, so from the same generator state both hold the same initial weights. The draws
are made on the CPU and then moved to the module's device, so a CUDA ensemble starts from the
same numbers as a CPU one. ``reset_parameters(generators=[g_0, ..., g_{E-1}])`` draws member e
from its own generator instead (members may share one), which keeps independent learners that
live in one ensemble independent of each other.

``EnsembleCritic`` is an SB3 ``ContinuousCritic`` built on it: ``n_critics`` Q networks
(optionally with LayerNorm, as RLPD's critics, arXiv:2302.02948) evaluated in one pass.
``EnsembleSACPolicy`` is SB3's ``SACPolicy`` with that critic and torch's fused Adam: the SAC
backbone of CIP, its baselines and RLIF (docs/batched.md "Speed").

**Compiled ensembles.** On one CPU thread a small ensemble (e.g. ten (64, 64) LayerNorm critics
at batch 256) spends most of its time streaming its (E, B, width) activations through memory,
once per LayerNorm, affine, activation and their gradients, not in its matrix products.
``EnsembleCritic(compile=True)`` runs the ensemble through ``torch.compile``, which fuses those
passes: the same function, equal up to float rounding, compiled at the first call of each kind
(with and without gradients), which takes seconds to tens of seconds. Where compilation fails (a
machine without a C++ compiler, say), the first call warns in one line and the ensemble stays
eager. docs/batched.md "Speed" gives the measured effect.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.sac.policies import SACPolicy
from torch import nn
from torch.nn import functional as F

__all__ = ["EnsembleCritic", "EnsembleLayerNorm", "EnsembleLinear", "EnsembleMLP", "EnsembleSACPolicy", "frozen_parameters",
           "fused_adam"]

Generators = th.Generator | Sequence[th.Generator | None] | None


def _member_generators(generators: Generators, n_members: int) -> list[th.Generator | None]:
    if generators is None or isinstance(generators, th.Generator):
        return [generators] * n_members
    generators = list(generators)
    if len(generators) != n_members:
        raise ValueError(f"generators: one per member ({n_members}), got {len(generators)}")
    return generators


class EnsembleLinear(nn.Module):
    """E independent affine maps ``y_e = x_e W_e + b_e`` computed by one ``torch.baddbmm``.

    :param n_members: ensemble size E.
    :param in_features: input width.
    :param out_features: output width.
    """

    def __init__(self, n_members: int, in_features: int, out_features: int):
        super().__init__()
        self.n_members, self.in_features, self.out_features = int(n_members), int(in_features), int(out_features)
        self.weight = nn.Parameter(th.empty(self.n_members, self.in_features, self.out_features))
        self.bias = nn.Parameter(th.empty(self.n_members, 1, self.out_features))

    @th.no_grad()
    def reset_member(self, member: int, generator: th.Generator | None = None,
                     columns: slice = slice(None)) -> None:
        """Draw member ``member`` as ``nn.Linear(in_features, width)`` would (module docstring),
        into the output ``columns`` (default all of them; a slice for one head of several).

        :param member: index of the member.
        :param generator: torch CPU generator to draw from. Default None (torch's global one).
        :param columns: output columns to fill. Default all.
        """
        width = len(range(self.out_features)[columns])
        weight = th.empty(width, self.in_features)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        bias = nn.init.uniform_(th.empty(width), -bound, bound, generator=generator)
        self.weight[member, :, columns] = weight.T.to(self.weight.device)
        self.bias[member, 0, columns] = bias.to(self.bias.device)

    def forward(self, x: th.Tensor, members: th.Tensor | None = None) -> th.Tensor:
        """:param x: inputs of shape (E, B, in_features) (or (len(members), B, in_features)).
        :param members: optional indices of the members to run. Default None (all).
        :return: outputs of shape (E, B, out_features)."""
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        if self.out_features == 1:
            # one output column (a Q head): multiply-and-sum takes about a third of the time of a
            # one-column batched product, forward and backward, on the CPU (docs/batched.md "Speed")
            return (x * weight.transpose(1, 2)).sum(-1, keepdim=True) + bias
        return th.baddbmm(bias, x, weight)

    def extra_repr(self) -> str:
        return f"n_members={self.n_members}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dimension with a separate affine weight and bias per member.

    :param n_members: ensemble size E.
    :param width: normalised width.
    :param eps: ``nn.LayerNorm``'s epsilon. Default 1e-5.
    """

    def __init__(self, n_members: int, width: int, eps: float = 1e-5):
        super().__init__()
        self.width, self.eps = int(width), float(eps)
        self.weight = nn.Parameter(th.ones(n_members, 1, self.width))
        self.bias = nn.Parameter(th.zeros(n_members, 1, self.width))

    @th.no_grad()
    def reset_member(self, member: int) -> None:
        """``nn.LayerNorm``'s initialisation (weight 1, bias 0) for one member; draws nothing.

        :param member: index of the member."""
        self.weight[member].fill_(1.0)
        self.bias[member].zero_()

    def forward(self, x: th.Tensor, members: th.Tensor | None = None) -> th.Tensor:
        """:param x: (E, B, width). :param members: optional member indices. Default None (all)."""
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return th.addcmul(bias, F.layer_norm(x, (self.width,), eps=self.eps), weight)


class EnsembleMLP(nn.Module):
    """E same-shaped MLPs, ``Linear (-> LayerNorm) -> activation`` per width of ``net_arch``,
    then linear output heads, run together (module docstring).

    :param n_members: ensemble size E.
    :param in_features: input width.
    :param net_arch: hidden widths.
    :param out_features: width of the output, or a sequence of head widths (e.g. an actor's
        mean and log-std heads, drawn one after the other at initialisation and returned side by
        side in the last dimension).
    :param activation_fn: hidden activation class. Default ReLU.
    :param layer_norm: a LayerNorm after every hidden Linear (RLPD's critic). Default False.
    :param generators: initialisation streams (``reset_parameters``). Default None (torch's
        global generator).
    """

    def __init__(self, n_members: int, in_features: int, net_arch: Sequence[int], out_features: int | Sequence[int],
                 activation_fn: type[nn.Module] = nn.ReLU, layer_norm: bool = False, generators: Generators = None):
        super().__init__()
        self.n_members, self.in_features = int(n_members), int(in_features)
        self.net_arch = [int(width) for width in net_arch]
        self.head_widths = [int(out_features)] if isinstance(out_features, int) else [int(w) for w in out_features]
        self.out_features = sum(self.head_widths)
        self.layer_norm = bool(layer_norm)
        self.activation_fn = activation_fn
        self.activation = activation_fn()
        widths = [self.in_features, *self.net_arch]
        self.hidden = nn.ModuleList(EnsembleLinear(n_members, a, b) for a, b in pairwise(widths))
        self.norms = nn.ModuleList(EnsembleLayerNorm(n_members, w) for w in self.net_arch) if layer_norm else None
        self.output = EnsembleLinear(n_members, widths[-1], self.out_features)
        self.reset_parameters(generators)

    def reset_parameters(self, generators: Generators = None) -> None:
        """Redraw every member in the documented order (module docstring).

        :param generators: one torch CPU generator for all members, one per member, or None
            (torch's global generator). Default None.
        """
        for member, generator in enumerate(_member_generators(generators, self.n_members)):
            for index, layer in enumerate(self.hidden):
                layer.reset_member(member, generator)
                if self.norms is not None:
                    self.norms[index].reset_member(member)
            start = 0
            for width in self.head_widths:
                self.output.reset_member(member, generator, slice(start, start + width))
                start += width

    def forward(self, x: th.Tensor, members: th.Tensor | None = None) -> th.Tensor:
        """Run the members.

        :param x: (B, in) shared by all members; or (G, B, in) with G dividing the number of
            members run, member e reading ``x[e // (E / G)]`` (e.g. one input per learner for
            its twin critics).
        :param members: optional indices of the members to run. Default None (all).
        :return: (E, B, out_features), heads side by side in the last dimension.
        """
        count = self.n_members if members is None else len(members)
        x = _group_inputs(x, count)
        for index, layer in enumerate(self.hidden):
            x = layer(x, members)
            if self.norms is not None:
                x = self.norms[index](x, members)
            x = self.activation(x)
        return self.output(x, members)

    # --- conversion to and from separate nn.Sequential members ------------------------------------
    def member_modules(self, member: int) -> tuple[nn.Sequential, list[nn.Linear]]:
        """Member ``member`` as separate modules holding copies of its weights: the hidden body
        ``nn.Sequential(Linear, (LayerNorm,) activation, ...)`` and one ``nn.Linear`` per head.

        :param member: index of the member."""
        body = []
        with th.no_grad():
            for index, layer in enumerate(self.hidden):
                body.append(_linear_from(layer, member, slice(None)))
                if self.norms is not None:
                    norm = self.norms[index]
                    module = nn.LayerNorm(norm.width, eps=norm.eps, device=norm.weight.device)
                    module.weight.copy_(norm.weight[member, 0])
                    module.bias.copy_(norm.bias[member, 0])
                    body.append(module)
                body.append(self.activation_fn())
            heads, start = [], 0
            for width in self.head_widths:
                heads.append(_linear_from(self.output, member, slice(start, start + width)))
                start += width
        return nn.Sequential(*body), heads

    @th.no_grad()
    def load_member(self, member: int, body: Sequence[nn.Module], heads: Sequence[nn.Linear]) -> None:
        """Copy the weights of separate modules (the layout of ``member_modules``; activations are
        skipped) into member ``member``.

        :param member: index of the member.
        :param body: the hidden layers (Linear, optional LayerNorm, activation, ...).
        :param heads: one ``nn.Linear`` per output head.
        """
        linears = [m for m in body if isinstance(m, nn.Linear)]
        norms = [m for m in body if isinstance(m, nn.LayerNorm)]
        if len(linears) != len(self.hidden) or len(norms) != (len(self.hidden) if self.norms is not None else 0):
            raise ValueError(f"body: expected {len(self.hidden)} Linear layers"
                             f"{' each with a LayerNorm' if self.norms is not None else ''}, got {body}")
        if [h.out_features for h in heads] != self.head_widths:
            raise ValueError(f"heads: expected widths {self.head_widths}, got {[h.out_features for h in heads]}")
        for layer, linear in zip(self.hidden, linears):
            _copy_linear(layer, member, slice(None), linear)
        for norm, module in zip(self.norms or [], norms):
            norm.weight[member, 0].copy_(module.weight)
            norm.bias[member, 0].copy_(module.bias)
        start = 0
        for head in heads:
            _copy_linear(self.output, member, slice(start, start + head.out_features), head)
            start += head.out_features

    def load_sequentials(self, networks: Sequence[nn.Sequential]) -> None:
        """Copy E separate single-head MLPs ``nn.Sequential(Linear, (LayerNorm,) activation, ...,
        Linear)`` (e.g. SB3's critic ``qf0 .. qf{E-1}``) into the members, in order.

        :param networks: one ``nn.Sequential`` per member."""
        if len(networks) != self.n_members:
            raise ValueError(f"networks: one per member ({self.n_members}), got {len(networks)}")
        for member, network in enumerate(networks):
            self.load_member(member, list(network)[:-1], [network[-1]])

    def to_sequentials(self) -> list[nn.Sequential]:
        """The members as separate single-head ``nn.Sequential`` MLPs (copies), the inverse of
        ``load_sequentials``."""
        if len(self.head_widths) != 1:
            raise ValueError("to_sequentials: this ensemble has several heads; use member_modules")
        networks = []
        for member in range(self.n_members):
            body, heads = self.member_modules(member)
            networks.append(nn.Sequential(*body, *heads))
        return networks


def _group_inputs(x: th.Tensor, count: int) -> th.Tensor:
    """(B, in) or (G, B, in) inputs as (count, B, in), member e reading group e // (count / G)."""
    if x.dim() == 2:
        return x.expand(count, *x.shape)
    groups = x.shape[0]
    if groups == count:
        return x
    if count % groups:
        raise ValueError(f"x: {groups} input groups do not divide {count} members")
    return x.unsqueeze(1).expand(groups, count // groups, *x.shape[1:]).reshape(count, *x.shape[1:])


def _linear_from(layer: EnsembleLinear, member: int, columns: slice) -> nn.Linear:
    weight = layer.weight[member, :, columns]
    linear = nn.Linear(weight.shape[0], weight.shape[1], device=weight.device)
    linear.weight.copy_(weight.T)
    linear.bias.copy_(layer.bias[member, 0, columns])
    return linear


def _copy_linear(layer: EnsembleLinear, member: int, columns: slice, linear: nn.Linear) -> None:
    if tuple(linear.weight.T.shape) != tuple(layer.weight[member, :, columns].shape):
        raise ValueError(f"linear: shape {tuple(linear.weight.shape)} does not fit member layer "
                         f"{tuple(layer.weight[member, :, columns].T.shape)}")
    layer.weight[member, :, columns] = linear.weight.T.to(layer.weight.device)
    layer.bias[member, 0, columns] = linear.bias.to(layer.bias.device)


@contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """Within the block, no gradient is computed for ``module``'s parameters (gradients still
    flow through it to its inputs). Used where a loss only updates another module, e.g. SAC's
    actor loss through the critic: the critic gradients such a pass would leave are cleared
    before the critic's next update anyway, so skipping them changes no number and saves the
    weight-gradient products."""
    parameters = [p for p in module.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)


class EnsembleCritic(BaseModel):
    """Stable-Baselines3's ``ContinuousCritic`` surface (``forward`` returns a tuple of
    ``n_critics`` Q tensors of shape (B, 1), ``q1_forward``) with the Q networks held as one
    ``EnsembleMLP`` (module docstring): same initial distribution and the same outputs as
    ``n_critics`` separate networks with the same weights, in one pass.

    :param observation_space: observation space.
    :param action_space: action space.
    :param net_arch: hidden widths of every Q network.
    :param features_extractor: features extractor (a Flatten for vector observations).
    :param features_dim: features width.
    :param activation_fn: hidden activation. Default ReLU.
    :param normalize_images: as SB3. Default True.
    :param n_critics: Q networks in the ensemble. Default 2.
    :param share_features_extractor: as SB3 (the features get no critic gradient when shared).
        Default True.
    :param layer_norm: a LayerNorm after every hidden Linear (RLPD). Default False.
    :param compile: run the ensemble through ``torch.compile`` (module docstring, "Compiled
        ensembles"). Default False.
    """

    features_extractor: BaseFeaturesExtractor

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, net_arch: list[int],
                 features_extractor: BaseFeaturesExtractor, features_dim: int,
                 activation_fn: type[nn.Module] = nn.ReLU, normalize_images: bool = True, n_critics: int = 2,
                 share_features_extractor: bool = True, layer_norm: bool = False, compile: bool = False):
        super().__init__(observation_space, action_space, features_extractor=features_extractor,
                         normalize_images=normalize_images)
        self.share_features_extractor = share_features_extractor
        self.n_critics = int(n_critics)
        self.layer_norm = bool(layer_norm)
        self.q_ensemble = EnsembleMLP(self.n_critics, features_dim + get_action_dim(self.action_space), net_arch, 1,
                                      activation_fn, layer_norm=self.layer_norm)
        # None: eager; False: compiled, its first call not yet made; True: compiled and running
        self._compiled: bool | None = None
        if compile:
            self.q_ensemble.compile()
            self._compiled = False

    def _ensemble(self, inputs: th.Tensor, members: th.Tensor | None) -> th.Tensor:
        """The ensemble's output; a compilation that fails at the first call (e.g. no C++
        compiler on the machine) warns in one line and leaves the ensemble eager."""
        if self._compiled is not False:
            return self.q_ensemble(inputs, members)
        try:
            output = self.q_ensemble(inputs, members)
        except Exception as error:  # noqa: BLE001 (any compiler failure; a real error recurs eagerly)
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            warnings.warn(f"compile: torch.compile of the critic ensemble failed ({reason}); it runs eagerly, "
                          "with the same numbers up to rounding", RuntimeWarning, stacklevel=3)
            self.q_ensemble._compiled_call_impl = None  # what nn.Module.compile set: back to the eager forward
            self._compiled = None
            return self.q_ensemble(inputs, members)
        self._compiled = True
        return output

    def q_values(self, obs: th.Tensor, actions: th.Tensor, members: th.Tensor | None = None) -> th.Tensor:
        """Q of every critic (or of ``members`` only), shape (B, n_critics).

        :param obs: observations (B, ...).
        :param actions: actions (B, action_dim), in the policy's scaled units.
        :param members: optional indices of the critics to run. Default None (all).
        """
        with th.set_grad_enabled(not self.share_features_extractor and th.is_grad_enabled()):
            features = self.extract_features(obs, self.features_extractor)
        return self._ensemble(th.cat([features, actions], dim=1), members).squeeze(-1).T

    def forward(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        return tuple(self.q_values(obs, actions).unsqueeze(-1).unbind(1))

    def q1_forward(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """Q of the first network only, with no gradient into the features (SB3's ``q1_forward``)."""
        with th.no_grad():
            features = self.extract_features(obs, self.features_extractor)
        return self._ensemble(th.cat([features, actions], dim=1), th.zeros(1, dtype=th.long,
                                                                           device=features.device))[0]


def fused_adam(optimizer: th.optim.Optimizer) -> th.optim.Optimizer:
    """``optimizer`` rebuilt as torch's fused Adam when it is a fresh plain ``th.optim.Adam`` with
    one parameter group that chose neither ``fused`` nor ``foreach``; otherwise ``optimizer``
    itself. The same update rule (equal up to float rounding), one kernel over all its tensors
    instead of about ten operations per tensor: on one CPU thread a (64, 64) actor's Adam step
    takes about a quarter of the time."""
    settings = optimizer.defaults
    if (type(optimizer) is not th.optim.Adam or len(optimizer.param_groups) != 1 or optimizer.state
            or settings.get("fused") or settings.get("foreach") is not None or settings.get("differentiable")):
        return optimizer
    return th.optim.Adam(optimizer.param_groups[0]["params"], **{**settings, "foreach": None, "fused": True})


class EnsembleSACPolicy(SACPolicy):
    """Stable-Baselines3's ``SACPolicy`` with its ``n_critics`` Q networks (and their targets)
    held as one ``EnsembleCritic`` and the actor's and critics' Adam as torch's fused kernel
    (:func:`fused_adam`): the same networks, initial distribution and update rule as ``SACPolicy``,
    in fewer operations per update (docs/batched.md "Speed"). Every ``SACPolicy`` argument
    (``net_arch``, ``n_critics``, ``optimizer_kwargs`` ...) keeps its meaning; an optimiser other
    than plain Adam, or Adam with ``fused`` or ``foreach`` in ``optimizer_kwargs``, is used as given.

    :param critic_layer_norm: a LayerNorm after every hidden Linear of the critics (RLPD's
        ``critic_layer_norm``). Default False.
    :param compile_critics: run the critic ensembles (online and target) through
        ``torch.compile`` (``EnsembleCritic``'s ``compile``). Default False.
    """

    def __init__(self, *args, critic_layer_norm: bool = False, compile_critics: bool = False, **kwargs):
        self.critic_layer_norm = bool(critic_layer_norm)
        self.compile_critics = bool(compile_critics)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.actor.optimizer = fused_adam(self.actor.optimizer)
        self.critic.optimizer = fused_adam(self.critic.optimizer)

    def make_critic(self, features_extractor=None) -> EnsembleCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return EnsembleCritic(layer_norm=self.critic_layer_norm, compile=self.compile_critics,
                              **critic_kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict:
        data = super()._get_constructor_parameters()
        data["critic_layer_norm"] = self.critic_layer_norm
        data["compile_critics"] = self.compile_critics
        return data
