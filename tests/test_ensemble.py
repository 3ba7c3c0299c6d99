"""The vectorised ensemble (causalrl.agents.ensemble, docs/batched.md) and RLIF's batched critic
(docs/rlif.md (b) "Ensemble").

Mutants each test kills: a member sharing another's weights or gradients
(test_init_matches_separate_linears, test_members_are_independent); a wrong init bound or
distribution, or a different draw order (test_init_matches_separate_linears,
test_per_member_generators); a missing transpose, LayerNorm or head in the conversion
(test_round_trip_through_sequentials, test_batched_critic_matches_ten_separate_networks); wrong
output/gradient of any member (test_batched_critic_matches_ten_separate_networks); a target subset
evaluating the wrong critics (test_member_subset_runs_those_members); a legacy critic checkpoint
loaded into the wrong slots (test_rlif_reads_models_saved_with_separate_critics); a one-column
head computed other than as its member's affine map, or its gradients
(test_batched_critic_matches_ten_separate_networks, with actions requiring gradients); a compiled
critic that computes something else, or differs between two runs of one seed
(test_compiled_critics_train_as_the_eager_ones); a failed compilation that crashes, stays silent
or warns at every call (test_a_failed_compilation_warns_once_and_runs_eagerly); a fused Adam
with other settings, or one that replaces an optimiser the user chose
(test_fused_adam_keeps_the_settings_and_leaves_chosen_optimizers_alone); a squashed sample whose
density or gradients are not SB3's (test_the_squashed_sample_has_sb3s_density_and_gradients), or
RLIF's log-probs averaged instead of summed over the action dimensions
(test_rlifs_sampler_draws_sb3s_actions_and_log_probs).
"""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.logger import configure
from torch import nn

from causalrl.agents.ensemble import EnsembleCritic, EnsembleMLP, EnsembleSACPolicy, frozen_parameters, fused_adam
from causalrl.agents.nets import mlp, squashed_gaussian_log_prob, squashed_gaussian_sample
from causalrl.agents.rlif import RLIF
from causalrl.envs.experts import LQRExpert
from causalrl.envs.factored import FactoredLQR
from causalrl.envs.intervention import InterventionWrapper

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def separate_networks(count, in_features, net_arch, layer_norm, seed):
    """``count`` nn.Sequential MLPs built one after another from torch's global generator, as
    SB3's ContinuousCritic (and RLIF's former critic) builds qf0 .. qf{count-1}."""
    th.manual_seed(seed)
    networks = []
    for _ in range(count):
        body, width = mlp(in_features, net_arch, nn.ReLU, layer_norm=layer_norm)
        networks.append(nn.Sequential(*body, nn.Linear(width, 1)))
    return networks


@pytest.mark.parametrize("layer_norm", [False, True])
def test_init_matches_separate_linears(layer_norm):
    """From the same generator state, member e holds exactly the weights the e-th of E separately
    built nn.Linear stacks gets: nn.Linear's distribution and the documented draw order."""
    networks = separate_networks(10, 7, [16, 12], layer_norm, seed=3)
    th.manual_seed(3)
    ensemble = EnsembleMLP(10, 7, [16, 12], 1, layer_norm=layer_norm)
    for member, network in enumerate(ensemble.to_sequentials()):
        for ours, theirs in zip(network.state_dict().values(), networks[member].state_dict().values()):
            assert th.equal(ours, theirs), member
    bound = 1 / np.sqrt(7)
    first = ensemble.hidden[0].weight
    assert first.abs().max() <= bound and first.abs().max() > 0.9 * bound  # U(-1/sqrt(fan_in), 1/sqrt(fan_in))


def test_per_member_generators():
    """Member e drawn from generator g_e equals a network built alone from g_e's seed, whatever
    the other members draw (independent learners in one ensemble stay independent)."""
    seeds = [11, 12, 11]
    ensemble = EnsembleMLP(3, 5, [8], (2, 2), generators=[th.Generator().manual_seed(s) for s in seeds])
    for member, seed in enumerate(seeds):
        th.manual_seed(seed)
        body, heads = nn.Sequential(nn.Linear(5, 8), nn.ReLU()), [nn.Linear(8, 2), nn.Linear(8, 2)]
        ours_body, ours_heads = ensemble.member_modules(member)
        assert th.equal(ours_body[0].weight, body[0].weight)
        assert all(th.equal(a.weight, b.weight) and th.equal(a.bias, b.bias) for a, b in zip(ours_heads, heads))
    assert th.equal(ensemble.output.weight[0], ensemble.output.weight[2])
    assert not th.equal(ensemble.output.weight[0], ensemble.output.weight[1])


def test_round_trip_through_sequentials():
    ensemble = EnsembleMLP(4, 6, [9, 9], 1, activation_fn=nn.Tanh, layer_norm=True)
    with th.no_grad():
        for norm in ensemble.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.1, 0.1)
    copy = EnsembleMLP(4, 6, [9, 9], 1, activation_fn=nn.Tanh, layer_norm=True)
    copy.load_sequentials(ensemble.to_sequentials())
    for ours, theirs in zip(copy.state_dict().values(), ensemble.state_dict().values()):
        assert th.equal(ours, theirs)
    with pytest.raises(ValueError, match="body: expected 2 Linear layers each with a LayerNorm"):
        copy.load_sequentials(separate_networks(4, 6, [9, 9], False, seed=0))


@pytest.mark.parametrize("layer_norm", [False, True])
def test_batched_critic_matches_ten_separate_networks(layer_norm):
    """Acceptance: the batched critics give the Q values and the gradients of ten separate
    networks holding the same weights (float tolerance)."""
    obs_space = gym.spaces.Box(-1, 1, (6,), np.float32)
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    critic = EnsembleCritic(obs_space, act_space, [32, 32], nn.Flatten(), 6, n_critics=10, layer_norm=layer_norm)
    with th.no_grad():
        for norm in critic.q_ensemble.norms or []:
            norm.weight.uniform_(0.5, 1.5)
    networks = critic.q_ensemble.to_sequentials()
    obs, actions, target = th.randn(64, 6), th.rand(64, 2) * 2 - 1, th.randn(64, 1)
    actions.requires_grad_(True)
    q = critic.q_values(obs, actions)
    separate = th.cat([network(th.cat([obs, actions], dim=1)) for network in networks], dim=1)
    th.testing.assert_close(q, separate, rtol=1e-5, atol=1e-6)
    assert all(th.equal(a, b) for a, b in zip(critic(obs, actions), q.unsqueeze(-1).unbind(1)))  # SB3's tuple surface
    weights = th.randn(10)  # the actor's path: gradients into the actions through every member's head
    ours_da, = th.autograd.grad((q * weights).sum(), actions, retain_graph=True)
    theirs_da, = th.autograd.grad((separate * weights).sum(), actions, retain_graph=True)
    th.testing.assert_close(ours_da, theirs_da, rtol=1e-4, atol=1e-6)
    ((q - target) ** 2).mean(0).sum().backward()
    ((separate - target) ** 2).mean(0).sum().backward()
    grads = {name: p.grad for name, p in critic.q_ensemble.named_parameters()}
    for member, network in enumerate(networks):
        th.testing.assert_close(grads["hidden.0.weight"][member], network[0].weight.grad.T, rtol=1e-4, atol=1e-6)
        th.testing.assert_close(grads["output.weight"][member], network[-1].weight.grad.T, rtol=1e-4, atol=1e-6)
        th.testing.assert_close(grads["output.bias"][member, 0], network[-1].bias.grad, rtol=1e-4, atol=1e-6)
        if layer_norm:
            th.testing.assert_close(grads["norms.1.weight"][member, 0], network[4].weight.grad, rtol=1e-4, atol=1e-6)


def test_members_are_independent():
    """A loss on one member moves only that member's slices."""
    ensemble = EnsembleMLP(5, 4, [8], 1, layer_norm=True)
    ensemble(th.randn(16, 4))[3].sum().backward()
    for name, parameter in ensemble.named_parameters():
        others = parameter.grad[[0, 1, 2, 4]]
        assert not others.any(), name
        assert parameter.grad[3].any(), name


def test_member_subset_runs_those_members():
    ensemble = EnsembleMLP(6, 3, [8], 1, layer_norm=True)
    x = th.randn(10, 3)
    subset = th.tensor([4, 1])
    th.testing.assert_close(ensemble(x, subset), ensemble(x)[subset])
    grouped = th.randn(3, 10, 3)  # one input per pair of members (a learner's twin critics)
    full = ensemble(grouped)
    th.testing.assert_close(full[5], ensemble(grouped[2])[5])


def test_frozen_parameters_pass_gradients_to_inputs_only():
    ensemble = EnsembleMLP(3, 4, [8], 1)
    x = th.randn(5, 4, requires_grad=True)
    with frozen_parameters(ensemble):
        ensemble(x).sum().backward()
    assert x.grad is not None and x.grad.any()
    assert all(p.grad is None and p.requires_grad for p in ensemble.parameters())


def _legacy_params(model):
    """The model's parameters in the layout of RLIF's former critic (separate qf{e} networks)."""
    params = model.get_parameters()
    policy, legacy_optimizer_state = {}, {}
    for key, value in params["policy"].items():
        if ".q_ensemble." not in key:
            policy[key] = value
    for module in ("critic", "critic_target"):
        for member, network in enumerate(getattr(model.policy, module).q_ensemble.to_sequentials()):
            policy.update({f"{module}.qf{member}.{k}": v for k, v in network.state_dict().items()})
    # the former critic optimiser's order: qf0's parameters, then qf1's ...
    names = [n for n, _ in model.critic.named_parameters()]
    state = params["critic.optimizer"]["state"]
    legacy_order = [k for k in policy if k.startswith("critic.qf")]
    for position, key in enumerate(legacy_order):
        _, member, index, field = key.split(".")
        layout = {0: "hidden.0", 1: "norms.0", 3: "hidden.1", 4: "norms.1", 6: "output"}[int(index)]
        moments = state[names.index(f"q_ensemble.{layout}.{field}")]
        linear_weight = field == "weight" and not layout.startswith("norms")
        legacy_optimizer_state[position] = {
            f: moments[f] if f == "step" else moments[f][int(member[2:])].T if linear_weight
            else moments[f][int(member[2:])].reshape(-1) for f in moments}
    groups = [{**params["critic.optimizer"]["param_groups"][0], "params": list(range(len(legacy_order)))}]
    params["policy"] = policy
    params["critic.optimizer"] = {"state": legacy_optimizer_state, "param_groups": groups}
    return params


def test_rlif_reads_models_saved_with_separate_critics():
    world = FactoredLQR(horizon=20)
    env = InterventionWrapper(world, LQRExpert(world, level="weak"), delta=3.0)
    kwargs = {"learning_starts": 20, "batch_size": 16, "n_critics": 3, "policy_kwargs": {"net_arch": [8, 8]}}
    model = RLIF("MlpPolicy", env, seed=0, **kwargs)
    model.set_logger(configure(None, []))
    model.learn(40)
    fresh = RLIF("MlpPolicy", env, seed=1, **kwargs)
    fresh.set_parameters(_legacy_params(model))
    for ours, theirs in zip(fresh.policy.state_dict().values(), model.policy.state_dict().values()):
        assert th.equal(ours, theirs)
    for ours, theirs in zip(fresh.critic.optimizer.state_dict()["state"].values(),
                            model.critic.optimizer.state_dict()["state"].values()):
        assert all(th.equal(ours[f], theirs[f]) for f in ours)


def test_rlif_critics_start_where_sb3s_separate_critics_start():
    """RLIF's batched critics (without LayerNorm) hold, from the same seed, exactly the initial
    weights of SB3's ten separate critics: same distribution, same draw order."""
    from stable_baselines3.sac.policies import SACPolicy

    from causalrl.agents.rlif import RLIFPolicy

    obs_space, act_space = gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32)
    th.manual_seed(4)
    theirs = SACPolicy(obs_space, act_space, lambda _: 3e-4, net_arch=[16, 16], n_critics=10)
    th.manual_seed(4)
    ours = RLIFPolicy(obs_space, act_space, lambda _: 3e-4, net_arch=[16, 16], n_critics=10, critic_layer_norm=False)
    for module in ("critic", "critic_target"):
        networks = getattr(ours, module).q_ensemble.to_sequentials()
        for network, reference in zip(networks, getattr(theirs, module).q_networks, strict=True):
            for a, b in zip(network.state_dict().values(), reference.state_dict().values(), strict=True):
                assert th.equal(a, b)
    assert all(th.equal(a, b) for a, b in zip(ours.actor.state_dict().values(), theirs.actor.state_dict().values()))


def _small_rlif(compile_critics):
    world = FactoredLQR(horizon=20)
    env = InterventionWrapper(world, LQRExpert(world, level="weak"), delta=3.0)
    model = RLIF("MlpPolicy", env, seed=0, learning_starts=20, batch_size=16, n_critics=3,
                 compile_critics=compile_critics, policy_kwargs={"net_arch": [8, 8]})
    model.set_logger(configure(None, []))
    model.learn(30)  # ten updates
    return model


def test_compiled_critics_train_as_the_eager_ones():
    """compile_critics=True is the same algorithm: from one seed, ten updates leave every parameter
    within float rounding of the eager run's, and a second compiled run repeats the first
    exactly. The compiled path really ran (a fallback to eager would make this test vacuous).
    Costs about 15 s: the compilation."""
    eager, compiled, again = _small_rlif(False), _small_rlif(True), _small_rlif(True)
    assert eager.critic._compiled is None and compiled.critic._compiled is True
    assert compiled.critic_target._compiled is True
    for ours, theirs, repeat in zip(compiled.policy.parameters(), eager.policy.parameters(), again.policy.parameters()):
        th.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
        assert th.equal(ours, repeat)
    assert compiled._n_updates == 10


def test_a_failed_compilation_warns_once_and_runs_eagerly():
    obs_space = gym.spaces.Box(-1, 1, (6,), np.float32)
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    critic = EnsembleCritic(obs_space, act_space, [16], nn.Flatten(), 6, n_critics=4, layer_norm=True, compile=True)

    def no_compiler(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found\nthe rest of the report")

    critic.q_ensemble._compiled_call_impl = no_compiler  # what a failing torch.compile does at the first call
    obs, actions = th.randn(8, 6), th.rand(8, 2) * 2 - 1
    with pytest.warns(RuntimeWarning, match=r"^compile: torch.compile of the critic ensemble failed "
                                            r"\(InvalidCxxCompiler: no working C\+\+ compiler found\); it runs eagerly"):
        q = critic.q_values(obs, actions)
    networks = critic.q_ensemble.to_sequentials()
    th.testing.assert_close(q, th.cat([n(th.cat([obs, actions], dim=1)) for n in networks], dim=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning, not one per call
        assert th.equal(critic.q_values(obs, actions), q)


def test_fused_adam_keeps_the_settings_and_leaves_chosen_optimizers_alone():
    """fused_adam rebuilds a fresh plain Adam as the fused kernel with its settings; an optimiser
    that chose foreach, another class or one with state is returned as it is; and
    EnsembleSACPolicy leaves an optimiser named in optimizer_kwargs as given."""
    weights = [th.nn.Parameter(th.randn(3, 2))]
    plain = th.optim.Adam(weights, lr=1e-3, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)
    fused = fused_adam(plain)
    assert fused is not plain and fused.defaults["fused"] is True
    assert {k: fused.defaults[k] for k in ("lr", "betas", "eps", "weight_decay")} == \
        {"lr": 1e-3, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.1}
    chosen = th.optim.Adam(weights, foreach=True)
    other = th.optim.SGD(weights, lr=0.1)
    weights[0].grad = th.ones(3, 2)
    stepped = th.optim.Adam(weights)
    stepped.step()
    assert fused_adam(chosen) is chosen and fused_adam(other) is other and fused_adam(stepped) is stepped
    obs_space, act_space = gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32)
    given = EnsembleSACPolicy(obs_space, act_space, lambda _: 3e-4, net_arch=[8], optimizer_kwargs={"foreach": False})
    assert not given.actor.optimizer.defaults["fused"] and not given.critic.optimizer.defaults["fused"]
    default = EnsembleSACPolicy(obs_space, act_space, lambda _: 3e-4, net_arch=[8])
    assert default.actor.optimizer.defaults["fused"] and default.critic.optimizer.defaults["fused"]


def test_the_squashed_sample_has_sb3s_density_and_gradients():
    """squashed_gaussian_sample's log-probs, written with the noise, are the density of SB3's
    squashed Gaussian at the same sample (squashed_gaussian_log_prob of the pre-tanh value), with
    the same gradients into the mean and log std; log_probs=False draws the same action."""
    mean = th.randn(64, 3, dtype=th.float64, requires_grad=True)
    log_std = (th.rand(64, 3, dtype=th.float64) * 3 - 2).requires_grad_()
    th.manual_seed(0)
    actions, log_probs = squashed_gaussian_sample(mean, log_std)
    th.manual_seed(0)
    pre_tanh = mean + log_std.exp() * th.randn_like(mean)
    reference = squashed_gaussian_log_prob(pre_tanh, mean, log_std)
    th.testing.assert_close(actions, th.tanh(pre_tanh), rtol=0, atol=0)
    th.testing.assert_close(log_probs, reference, rtol=1e-10, atol=1e-10)
    weights = th.randn(64, 3, dtype=th.float64)
    ours = th.autograd.grad((log_probs * weights).sum() + actions.sum(), [mean, log_std])
    theirs = th.autograd.grad((reference * weights).sum() + th.tanh(pre_tanh).sum(), [mean, log_std])
    th.testing.assert_close(ours, theirs, rtol=1e-8, atol=1e-8)
    th.manual_seed(0)
    alone, none = squashed_gaussian_sample(mean, log_std, log_probs=False)
    assert none is None and th.equal(alone, actions)


def test_rlifs_sampler_draws_sb3s_actions_and_log_probs():
    """RLIF's ``_sample`` is SB3's ``actor.action_log_prob``: from the same generator state, the
    same actions and the log-prob summed over the action dimensions (several here)."""
    model = _small_rlif(False)
    observations = th.randn(32, model.observation_space.shape[0])
    th.manual_seed(5)
    actions, log_probs = model._sample(observations)
    th.manual_seed(5)
    reference_actions, reference_log_probs = model.actor.action_log_prob(observations)
    assert model.action_space.shape[0] > 1
    th.testing.assert_close(actions, reference_actions)
    th.testing.assert_close(log_probs, reference_log_probs, rtol=1e-5, atol=1e-5)
