"""DriveVLA: losses and gradients, masked waypoints, overfitting, config errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from drive_vla.config import ConfigError, load_config
from drive_vla.data.datamodule import SampleDataset
from drive_vla.model.config import LMConfig, ModelConfig, VisionConfig
from drive_vla.model.vision import build_backbone
from drive_vla.model.vla import decel_weights
from drive_vla.policy import DrivingPolicy
from drive_vla.types import Batch, EgoState, Sample, Targets, Trajectory

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "model"


def _params_without_grad(model: torch.nn.Module) -> list[str]:
    return [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        ("lm.arch=llama",),
        ("lm.arch=qwen2", "planner_head.kind=gru", "planner_head.vae_latent=4"),
        ("lm.arch=llama", "planner_head.target_speed_classes=[-4,-2,0,2]", "planner_head.brake_threshold=0.6"),
    ],
    ids=["llama-mlp", "qwen2-gru-vae", "llama-speed-classes"],
)
def test_forward_backward_reaches_every_part(tiny_config, samples, overrides):
    cfg = tiny_config(*overrides)
    model = DrivingPolicy.build(cfg).model.train()
    losses = model.losses(Batch.from_samples(samples))
    expected = {"waypoint_ce", "control_ce", "text_ce", "head_l1"} | ({"head_kl"} if "vae" in str(overrides) else set())
    expected |= {"speed_ce"} if "target_speed" in str(overrides) else set()
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    assert _params_without_grad(model) == []
    for part in ("vision", "state_encoder", "lm", "planner_head"):
        grads = [p.grad.abs().sum() for p in getattr(model, part).parameters()]
        assert grads and all(g > 0 for g in grads), part
    arch = type(model.lm).__name__
    assert arch == ("Qwen2ForCausalLM" if "qwen2" in overrides[0] else "LlamaForCausalLM")


def test_masked_waypoints_get_no_loss(tiny_config, samples):
    model = DrivingPolicy.build(tiny_config()).model.eval()  # eval: deterministic text-target choice
    full = samples[0]
    mask = np.array([True, True, True, False, False, False])
    xy = samples[1].targets.trajectory.xy

    def incomplete(junk: float) -> Sample:
        xy_j = xy.copy()
        xy_j[~mask] = junk  # values where the mask is False must not matter
        targets = dataclasses.replace(samples[1].targets, trajectory=Trajectory(xy=xy_j, mask=mask))
        return dataclasses.replace(samples[1], targets=targets)

    with torch.no_grad():
        with_a = model.losses(Batch.from_samples([full, incomplete(0.0)]))
        with_b = model.losses(Batch.from_samples([full, incomplete(55.0)]))
    for key in ("waypoint_ce", "head_l1"):
        assert with_a[key].item() == pytest.approx(with_b[key].item(), rel=1e-6), key
    # Per token: only the tokens of valid waypoints are targets (all or nothing without a token map).
    poses = incomplete(55.0).targets.trajectory.poses
    ids, weight = model._action_target(poses, mask)
    steps = getattr(model.action_tokenizer, "token_steps", None)
    expected = [bool(mask[k]) for k in steps(ids)] if steps else [False] * len(ids)
    assert weight == expected and sum(weight) < len(ids)
    answer = model.layout.answer(ids, [0, 9, 14], action_weight=weight)
    assert answer.segs[len(ids)] == 0  # the end token of an incomplete plan is no target either


def test_an_unknown_ego_state_reads_the_learned_vector_and_ego_dropout_trains_it(tiny_config, samples):
    """Where EgoState.source is "unknown" the state token and the head read learned vectors instead of the
    ego state, past poses and command (whatever else the zero-filled batch says), the prior is a standstill,
    and ego_dropout gives those vectors gradients while training."""
    cfg = tiny_config(
        "output_mode=head",
        "ego_dropout=0.5",
        "planner_head.residual_to_constant_velocity=true",
        "planner_head.ego_status=longitudinal",
    )
    model = DrivingPolicy.build(cfg).model.eval()
    with torch.no_grad():
        model.state_encoder.unknown_ego.normal_()
        model.planner_head.unknown_ego.normal_()
    blind = [
        dataclasses.replace(s, observation=dataclasses.replace(s.observation, ego=EgoState.unknown())) for s in samples
    ]
    batch = Batch.from_samples(blind)
    assert not bool(batch.ego_known.any())
    other = dataclasses.replace(batch, ego=torch.randn_like(batch.ego), history=torch.randn_like(batch.history))
    other = dataclasses.replace(other, command=(batch.command + 1) % 3)
    hidden = torch.zeros(len(batch), model.hidden_size)
    with torch.no_grad():
        for a, b in ((batch, other),):
            assert torch.equal(model.encode_observations(a)[1], model.encode_observations(b)[1])
            assert torch.equal(
                model.planner_head(hidden, **model.head_inputs(a))[0],
                model.planner_head(hidden, **model.head_inputs(b))[0],
            )
        known = Batch.from_samples(samples)
        assert bool(known.ego_known.all())
        assert not torch.equal(model.encode_observations(known)[1], model.encode_observations(batch)[1])
    assert model.head_inputs(batch)["speed_mps"].abs().sum() == 0  # the prior stands still
    model.train()
    torch.manual_seed(0)
    model.losses(Batch.from_samples(samples))["head_l1"].backward()  # all known: dropout hides some
    assert model.state_encoder.unknown_ego.grad is not None and model.state_encoder.unknown_ego.grad.abs().sum() > 0
    assert model.planner_head.unknown_ego.grad is not None and model.planner_head.unknown_ego.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="ego_dropout"):
        tiny_config("ego_dropout=1.0")
    # Without ego_dropout the model has no such parameters (policies saved before them still load), and an
    # unknown ego reads a zero vector.
    plain = DrivingPolicy.build(tiny_config("output_mode=head", "planner_head.ego_status=longitudinal")).model.eval()
    assert not [k for k in plain.state_dict() if "unknown_ego" in k]
    with torch.no_grad():
        assert torch.equal(plain.encode_observations(batch)[1], plain.encode_observations(other)[1])


def test_decel_weight_weighs_braking_samples_in_head_l1(tiny_config, samples):
    """decel_weight: a sample whose expert slows by 7 m/s weighs 1 + 7w; constant speed and incomplete
    futures weigh 1; with w = 0 the loss is the plain mean."""
    gt = torch.zeros(3, 6, 3)
    gt[0, :, 0] = torch.arange(1, 7) * 5.0  # 10 m/s throughout
    gt[1, :, 0] = torch.tensor([4.5, 8.5, 12.0, 15.0, 17.0, 18.0])  # 3 m in its last second: 3 m/s
    gt[2] = gt[1]
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[2, 4:] = False
    w = decel_weights(gt, mask, torch.tensor([10.0, 10.0, 10.0]), 0.5)
    assert w.tolist() == pytest.approx([1.0, 4.5, 1.0])
    plain = DrivingPolicy.build(tiny_config("output_mode=head")).model.eval()
    weighted = DrivingPolicy.build(tiny_config("output_mode=head", "planner_head.decel_weight=2.0")).model.eval()
    weighted.load_state_dict(plain.state_dict())
    fast = dataclasses.replace(
        samples[0].observation, ego=dataclasses.replace(samples[0].observation.ego, speed_mps=30.0)
    )
    batch = Batch.from_samples([dataclasses.replace(samples[0], observation=fast), *samples[1:]])
    assert bool(batch.traj_mask.all()) and decel_weights(batch.traj, batch.traj_mask, batch.ego[:, 0], 2.0)[0] > 1.0
    with torch.no_grad():
        a, b = plain.losses(batch)["head_l1"], weighted.losses(batch)["head_l1"]
    assert torch.isfinite(b) and a != b
    with pytest.raises(ValueError, match="planner_head.decel_weight"):
        tiny_config("planner_head.decel_weight=-1")


def test_losses_without_text_or_controls(tiny_config, samples):
    model = DrivingPolicy.build(tiny_config()).model
    bare = [
        dataclasses.replace(s, targets=Targets(trajectory=s.targets.trajectory)) for s in samples[:2]
    ]  # no control, explanation or QA
    losses = model.losses(Batch.from_samples(bare))
    assert set(losses) == {"waypoint_ce", "head_l1"}
    with pytest.raises(ValueError, match="batch.traj"):
        model.losses(Batch.from_observations([s.observation for s in samples]))


@pytest.mark.slow
def test_training_loop_overfits(tiny_config, samples):
    """Plain torch: 50 AdamW steps on four samples cut the summed loss more than 5x, every part included."""
    torch.manual_seed(0)
    policy = DrivingPolicy.build(tiny_config(), fit_trajectories=[s.targets.trajectory for s in samples])
    model = policy.model.train()
    batch = Batch.from_samples(samples)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    history = []
    for _ in range(50):
        losses = model.losses(batch)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    total = [sum(h.values()) for h in history]
    first, last = total[0], float(np.mean(total[-3:]))
    assert last < first / 5, (first, last)
    for key in ("waypoint_ce", "control_ce", "text_ce", "head_l1"):
        assert history[-1][key] < history[0][key] / 2, key


def test_unknown_backbone_lists_available():
    with pytest.raises(ValueError, match=r"vision.backbone: got 'resnet_does_not_exist'.*resnet18"):
        build_backbone(VisionConfig(backbone="resnet_does_not_exist"))


def test_unknown_lm_arch_lists_available(tiny_config):
    with pytest.raises(ValueError, match=r"lm.arch: got 'gpt9'.*\['llama', 'qwen2'\]"):
        LMConfig(arch="gpt9")
    with pytest.raises(ConfigError, match=r"lm.arch: got 'gpt9'.*llama"):
        tiny_config("lm.arch=gpt9")


def test_shipped_configs_load():
    for name, arch, source in (
        ("tiny", "llama", "random"),
        ("smollm2-135m", "llama", "gguf"),
        ("qwen2.5-0.5b", "qwen2", "local"),
    ):
        cfg = load_config(ModelConfig, CONFIGS / f"{name}.yaml")
        assert (cfg.lm.arch, cfg.lm.source) == (arch, source)
    qwen = load_config(ModelConfig, CONFIGS / "qwen2.5-0.5b.yaml").lm
    assert (qwen.hidden_size, qwen.num_layers, qwen.num_heads, qwen.num_kv_heads, qwen.intermediate_size) == (
        896,
        24,
        14,
        2,
        4864,
    )
    assert qwen.vocab_size == 151_936


def test_tiny_config_has_a_few_million_parameters(samples):
    cfg = load_config(ModelConfig, CONFIGS / "tiny.yaml")
    assert cfg.lm.text_tokenizer == "corpus"
    with pytest.raises(ValueError, match=r"lm.text_tokenizer: 'corpus' needs fit_texts"):
        DrivingPolicy.build(cfg)
    counts = DrivingPolicy.build(cfg, fit_texts=SampleDataset(samples).texts()).model.num_parameters()
    assert 1e6 < counts["lm"] < 10e6
    assert counts["total"] == sum(counts[k] for k in ("vision", "state_encoder", "lm", "planner_head"))


def test_local_lm_directory_and_random_init(tiny_config, tmp_path, observation):
    from transformers import AutoModelForCausalLM

    from drive_vla.model.lm import byte_level_tokenizer, random_lm_config

    # A Hugging Face model directory as a user would have it (here: a tiny random Qwen2 saved to disk).
    lm_cfg = tiny_config("lm.arch=qwen2").lm
    tok = byte_level_tokenizer()
    AutoModelForCausalLM.from_config(random_lm_config(lm_cfg, len(tok))).save_pretrained(tmp_path / "qwen")
    tok.save_pretrained(tmp_path / "qwen")
    local = DrivingPolicy.build(tiny_config("lm.source=local", f"lm.path={tmp_path / 'qwen'}"))
    assert type(local.model.lm).__name__ == "Qwen2ForCausalLM"
    assert local.predict(observation).trajectory.xy.shape == (6, 2)

    with pytest.raises(ValueError, match="lm.path: got .*random_init"):
        DrivingPolicy.build(tiny_config("lm.source=local", f"lm.path={tmp_path / 'missing'}"))
    shaped = DrivingPolicy.build(
        tiny_config("lm.source=local", f"lm.path={tmp_path / 'missing'}", "lm.random_init=true", "lm.vocab_size=4000")
    )
    assert shaped.model.lm.get_input_embeddings().num_embeddings == 4000  # the real (padded) vocabulary size


def test_planner_head_constant_velocity_prior():
    """With the residual prior, a zeroed head predicts exactly the constant-velocity extrapolation."""
    import torch

    from drive_vla.model.config import PlannerHeadConfig
    from drive_vla.model.planner_head import PlannerHead

    head = PlannerHead(PlannerHeadConfig(hidden=16, residual_to_constant_velocity=True), lm_hidden=8)
    torch.nn.init.zeros_(head.decoder[-1].weight)
    torch.nn.init.zeros_(head.decoder[-1].bias)
    poses, *_ = head(torch.randn(2, 8), speed_mps=torch.tensor([10.0, 0.0]))
    assert torch.allclose(poses[0, :, 0], torch.tensor([5.0, 10.0, 15.0, 20.0, 25.0, 30.0]))
    assert torch.allclose(poses[0, :, 1:], torch.zeros(6, 2)) and torch.allclose(poses[1], torch.zeros(6, 3))
    with pytest.raises(ValueError, match="speed_mps"):
        head(torch.randn(2, 8))


def test_planner_head_prior_along_route():
    """A zeroed head with prior_along_route drives the current speed along ego -> route points, with the
    segments' headings; without a usable route (mask off, first point behind or too close) it goes straight."""
    import torch

    from drive_vla.model.config import PlannerHeadConfig
    from drive_vla.model.planner_head import PlannerHead

    cfg = PlannerHeadConfig(hidden=16, residual_to_constant_velocity=True, prior_along_route=True)
    head = PlannerHead(cfg, lm_hidden=8, route_target=True)
    torch.nn.init.zeros_(head.decoder[-1].weight)
    torch.nn.init.zeros_(head.decoder[-1].bias)
    points = torch.tensor(
        [[[10.0, 0.0], [20.0, 10.0]], [[3.0, 4.0], [3.0, 14.0]], [[-2.0, 0.0], [8.0, 0.0]], [[10.0, 0.0], [20.0, 10.0]]]
    )
    mask = torch.tensor([True, True, True, False])
    poses, *_ = head(torch.randn(4, 8), speed_mps=torch.full((4,), 10.0), route_target=points, route_mask=mask)
    d = 5.0 / 2**0.5  # 5 m along the diagonal second segment
    expected0 = torch.tensor([[5.0, 0.0], [10.0, 0.0], [10 + d, d], [10 + 2 * d, 2 * d], [10 + 3 * d, 3 * d]])
    assert torch.allclose(poses[0, :5, :2], expected0, atol=1e-5)
    assert torch.allclose(poses[0, 2:, 2], torch.full((4,), torch.pi / 4))
    assert torch.allclose(poses[1, 0, :2], torch.tensor([3.0, 4.0])) and torch.allclose(
        poses[1, 1, :2], torch.tensor([3.0, 9.0])
    )
    straight = torch.stack([5.0 * torch.arange(1.0, 7.0), torch.zeros(6), torch.zeros(6)], dim=-1)
    assert torch.allclose(poses[2], straight) and torch.allclose(poses[3], straight)
    with pytest.raises(ValueError, match="planner_head.prior_along_route"):
        from drive_vla.model.config import ModelConfig

        ModelConfig(planner_head=cfg)  # no route_target to follow


def test_speed_only_ego_inputs_ignore_acceleration_and_past_motion(tiny_config, samples):
    """ego_inputs: speed -> the state token and the plan depend on the speed, not on acceleration, yaw rate,
    steer or past poses (no copycat loop through them)."""
    cfg = tiny_config(
        "ego_inputs=speed",
        "output_mode=head",
        "planner_head.ego_status=longitudinal",
        "planner_head.residual_to_constant_velocity=true",
    )
    model = DrivingPolicy.build(cfg).model.eval()
    batch = Batch.from_samples(samples)
    pushed = batch.ego.clone()
    pushed[:, 1:5] += torch.tensor([1.5, 0.5, 0.2, 0.3])  # ax, ay, yaw rate, steer
    moved = dataclasses.replace(batch, ego=pushed, history=batch.history + 1.0)
    faster = batch.ego.clone()
    faster[:, 0] += 5.0
    with torch.no_grad():
        base = (
            model.encode_observations(batch)[1],
            model.planner_head(torch.zeros(len(batch), model.hidden_size), **model.head_inputs(batch))[0],
        )
        same = (
            model.encode_observations(moved)[1],
            model.planner_head(torch.zeros(len(batch), model.hidden_size), **model.head_inputs(moved))[0],
        )
        quick = dataclasses.replace(batch, ego=faster)
        other = model.planner_head(torch.zeros(len(batch), model.hidden_size), **model.head_inputs(quick))[0]
    assert torch.equal(base[0], same[0]) and torch.equal(base[1], same[1])
    assert not torch.allclose(base[1], other)
    full = DrivingPolicy.build(tiny_config("output_mode=head")).model.eval()
    with torch.no_grad():
        assert not torch.equal(full.encode_observations(batch)[1], full.encode_observations(moved)[1])
    with pytest.raises(ValueError, match="ego_inputs: got 'lateral'"):
        dataclasses.replace(model.cfg, ego_inputs="lateral")


def test_planner_head_ego_status_input(tiny_config, samples):
    """With ego_status the head reads ego history directly: changing it changes the plan, and it gets gradients."""
    from drive_vla.model.state import EGO_STATUS_DIM, ego_status_features

    model = DrivingPolicy.build(tiny_config("planner_head.ego_status=full", "output_mode=head")).model.eval()
    batch = Batch.from_samples(samples)
    feats = ego_status_features(batch.ego, batch.history, batch.command)
    assert feats.shape == (len(batch), EGO_STATUS_DIM) and torch.isfinite(feats).all()
    hidden = torch.zeros(len(batch), model.hidden_size)
    base = model.planner_head(hidden, ego_status=feats).poses
    moved = model.planner_head(hidden, ego_status=feats + 1.0).poses
    assert not torch.allclose(base, moved)
    with pytest.raises(ValueError, match="ego_status"):
        model.planner_head(hidden)
    with pytest.raises(ValueError, match="planner_head.ego_status: got 'lateral'"):
        dataclasses.replace(model.cfg.planner_head, ego_status="lateral")
    longitudinal = ego_status_features(batch.ego, batch.history, batch.command, lateral=False)
    steered = batch.ego.clone()
    steered[:, 2:5] += 0.3  # ay, yaw rate, steer: lateral feedback the longitudinal status ignores
    assert torch.equal(longitudinal, ego_status_features(steered, batch.history, batch.command, lateral=False))
    assert not torch.equal(feats, ego_status_features(steered, batch.history, batch.command))
    model.train()
    model.losses(batch)["head_l1"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.planner_head.ego_in.parameters())
    plans = model.plan(batch)
    assert len(plans) == len(batch) and all(np.isfinite(p.trajectory.xy).all() for p in plans)


def test_route_target_reaches_state_and_head_and_absent_targets_use_the_learned_vector(tiny_config, samples):
    """With route_target the plan depends on the route points; where they are absent the learned
    "no target" vector stands in (whatever the zero-filled points say), and both get gradients."""
    cfg = tiny_config("route_target=true", "output_mode=head", "planner_head.residual_to_constant_velocity=true")
    model = DrivingPolicy.build(cfg).model.eval()
    with_target = [
        dataclasses.replace(
            s,
            observation=dataclasses.replace(
                s.observation, route_target=np.array([[12.0, 2.0 * i], [22.0, 4.0 * i]], np.float32)
            ),
        )
        for i, s in enumerate(samples)
    ]
    batch = Batch.from_samples(with_target)
    moved = dataclasses.replace(batch, route_target=batch.route_target + torch.tensor([0.0, 3.0]))
    with torch.no_grad():
        a = model.planner_head(torch.zeros(len(batch), model.hidden_size), **model.head_inputs(batch))[0]
        b = model.planner_head(torch.zeros(len(batch), model.hidden_size), **model.head_inputs(moved))[0]
        state = model.encode_observations(batch)[1]
        state_moved = model.encode_observations(moved)[1]
    assert not torch.allclose(a, b) and not torch.allclose(state, state_moved)
    absent = Batch.from_samples(samples)
    garbage = dataclasses.replace(absent, route_target=torch.full_like(absent.route_target, 50.0))
    with torch.no_grad():
        assert torch.equal(model.encode_observations(absent)[1], model.encode_observations(garbage)[1])
    model.train()
    mixed = Batch.from_samples(with_target[:2] + samples[2:])
    model.losses(mixed)["head_l1"].backward()
    for enc in (model.planner_head.route_in, model.state_encoder.route):
        assert enc.no_target.grad is not None and enc.no_target.grad.abs().sum() > 0
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.mlp.parameters())
    plain = DrivingPolicy.build(tiny_config()).model
    assert plain.state_encoder.route is None and plain.planner_head.route_in is None


# (config flag, Observation field, Batch field, its mask, state-encoder module, head module, learned vector,
#  values for the four samples, a shift that changes the input)
SCALAR_INPUTS = {
    "speed_limit": (
        "speed_limit",
        "speed_limit_mps",
        "speed_limit",
        "speed_limit_mask",
        "limit",
        "limit_in",
        "no_limit",
        10.0,
        8.0,
    ),
    "junction": (
        "junction",
        "junction_m",
        "junction",
        "junction_mask",
        "junction",
        "junction_in",
        "unknown",
        5.0,
        30.0,
    ),
}


@pytest.mark.parametrize("name", sorted(SCALAR_INPUTS))
def test_scalar_inputs_reach_state_and_head_and_an_unknown_one_uses_the_learned_vector(tiny_config, samples, name):
    """With speed_limit (junction) the plan depends on the road's speed limit (the distance to the next
    junction); where it is unknown (nuScenes) the learned vector stands in (whatever the zero-filled value
    says), and both get gradients."""
    flag, obs_field, field, mask_field, state_mod, head_mod, vector, base, shift = SCALAR_INPUTS[name]
    cfg = tiny_config(f"{flag}=true", "output_mode=head", "planner_head.residual_to_constant_velocity=true")
    model = DrivingPolicy.build(cfg).model.eval()
    given = [
        dataclasses.replace(s, observation=dataclasses.replace(s.observation, **{obs_field: base + 3.0 * i}))
        for i, s in enumerate(samples)
    ]
    batch = Batch.from_samples(given)
    assert getattr(batch, field).tolist() == [base + 3.0 * i for i in range(4)]
    assert bool(getattr(batch, mask_field).all())
    shifted = dataclasses.replace(batch, **{field: getattr(batch, field) + shift})
    hidden = torch.zeros(len(batch), model.hidden_size)
    with torch.no_grad():
        a = model.planner_head(hidden, **model.head_inputs(batch))[0]
        b = model.planner_head(hidden, **model.head_inputs(shifted))[0]
        state, state_shifted = model.encode_observations(batch)[1], model.encode_observations(shifted)[1]
    assert not torch.allclose(a, b) and not torch.allclose(state, state_shifted)
    unknown = Batch.from_samples(samples)
    assert not bool(getattr(unknown, mask_field).any())
    garbage = dataclasses.replace(unknown, **{field: torch.full_like(getattr(unknown, field), 50.0)})
    with torch.no_grad():
        assert torch.equal(model.encode_observations(unknown)[1], model.encode_observations(garbage)[1])
        assert torch.equal(
            model.planner_head(hidden, **model.head_inputs(unknown))[0],
            model.planner_head(hidden, **model.head_inputs(garbage))[0],
        )
    model.train()
    model.losses(Batch.from_samples(given[:2] + samples[2:]))["head_l1"].backward()
    for enc in (getattr(model.planner_head, head_mod), getattr(model.state_encoder, state_mod)):
        assert getattr(enc, vector).grad is not None and getattr(enc, vector).grad.abs().sum() > 0
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.mlp.parameters())
    plain = DrivingPolicy.build(tiny_config()).model
    assert getattr(plain.state_encoder, state_mod) is None and getattr(plain.planner_head, head_mod) is None


def test_vision_reads_only_its_cameras(tiny_config):
    from drive_vla.model.vision import VisionTokenizer

    torch.manual_seed(0)
    cfg = tiny_config("vision.num_cameras=1").vision
    vision = VisionTokenizer(cfg, lm_hidden=16).eval()
    h, w = cfg.image_hw
    images = torch.randint(0, 256, (2, 6, 3, h, w), dtype=torch.uint8)
    others = images.clone()
    others[:, 1:] = 255 - others[:, 1:]  # every camera but the front one changes
    with torch.no_grad():
        assert torch.allclose(vision(images), vision(others))
        front = images.clone()
        front[:, 0] = 255 - front[:, 0]
        assert not torch.allclose(vision(images), vision(front))
    with pytest.raises(ConfigError, match="vision.num_cameras: got 7, expected 1 to 6"):
        tiny_config("vision.num_cameras=7")


def test_channels_last_vision_gives_the_same_tokens_up_to_rounding(tiny_config):
    from drive_vla.model.vision import VisionTokenizer

    torch.manual_seed(0)
    plain = VisionTokenizer(tiny_config().vision, lm_hidden=16).eval()
    fast = VisionTokenizer(tiny_config("vision.channels_last=true").vision, lm_hidden=16).eval()
    fast.load_state_dict(plain.state_dict())
    first = next(p for p in fast.backbone.parameters() if p.dim() == 4)
    assert first.is_contiguous(memory_format=torch.channels_last)
    h, w = plain.cfg.image_hw
    images = torch.randint(0, 256, (2, 6, 3, h, w), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(fast(images), plain(images), atol=1e-4, rtol=1e-4)
