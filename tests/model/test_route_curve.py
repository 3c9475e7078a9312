"""The smooth route prior (planner_head.route_prior_curve): a curve from the ego's heading through the route
points, against the straight spans that cut the inside of a bend."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drive_vla.model.config import ModelConfig, PlannerHeadConfig
from drive_vla.model.planner_head import CURVE_SAMPLES, PlannerHead, route_curve, route_prior


def _on_circle(radius: float, arcs: list[float]) -> torch.Tensor:
    """Points ``arcs`` metres along a left-hand circle of ``radius`` that leaves the origin along +x."""
    return torch.tensor([[radius * math.sin(s / radius), radius * (1 - math.cos(s / radius))] for s in arcs])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(2.0, 30.0), st.floats(-15.0, 15.0)), min_size=2, max_size=2))
def test_the_curve_passes_through_the_points_and_leaves_along_the_heading(raw):
    points = torch.tensor([[raw[0][0], raw[0][1]], [raw[0][0] + raw[1][0], raw[0][1] + raw[1][1]]], dtype=torch.float64)
    curve = route_curve(points[None])[0]
    assert curve.shape == (2 * CURVE_SAMPLES, 2)
    assert torch.allclose(curve[CURVE_SAMPLES - 1], points[0]) and torch.allclose(curve[-1], points[1])
    # the tangent at the origin is +x: the first sample's lateral offset is second order in t (Hermite basis:
    # h01 = 3t^2 - 2t^3 on the first point, h11 = t^3 - t^2 on its tangent, half the second point)
    t = 1.0 / CURVE_SAMPLES
    bound = 3 * t * t * abs(float(points[0, 1])) + t * t * abs(float(points[1, 1])) / 2
    assert abs(float(curve[0, 1])) <= bound + 1e-9


def test_on_a_roundabout_bend_the_curve_keeps_the_lane_where_straight_spans_cut_inside():
    radius = 20.0
    points = _on_circle(radius, [12.0, 22.0])[None]
    arc = torch.arange(1.0, 21.0)[None]  # 1..20 m along
    truth = _on_circle(radius, arc[0].tolist())
    mask = torch.tensor([True])
    chord = route_prior(arc, points, mask)[0, :, :2]
    curve = route_prior(arc, route_curve(points), mask, usable=mask)[0, :, :2]
    chord_err = (chord - truth).norm(dim=-1)
    curve_err = (curve - truth).norm(dim=-1)
    assert float(chord_err.max()) > 0.5  # a straight span toward a point 12 m round the bend cuts inside
    assert float(curve_err[:12].max()) < 0.2  # up to the first route point, where the controller aims
    assert float(curve_err.max()) < 0.4 and float(curve_err.mean()) < float(chord_err.mean()) / 2


def test_straight_points_give_the_straight_prior():
    points = torch.tensor([[[10.0, 0.0], [20.0, 0.0]]])
    curve = route_curve(points)[0]
    assert torch.allclose(curve[:, 1], torch.zeros(2 * CURVE_SAMPLES))
    assert bool((curve[1:, 0] > curve[:-1, 0]).all())


def test_a_zeroed_head_drives_the_curve_and_needs_prior_along_route():
    cfg = PlannerHeadConfig(
        hidden=16, residual_to_constant_velocity=True, prior_along_route=True, route_prior_curve=True
    )
    head = PlannerHead(cfg, lm_hidden=8, route_target=True)
    torch.nn.init.zeros_(head.decoder[-1].weight)
    torch.nn.init.zeros_(head.decoder[-1].bias)
    points = torch.cat([_on_circle(20.0, [12.0, 22.0])[None], torch.tensor([[[-2.0, 0.0], [8.0, 0.0]]])])
    mask = torch.tensor([True, True])
    poses, *_ = head(torch.randn(2, 8), speed_mps=torch.full((2,), 8.0), route_target=points, route_mask=mask)
    truth = _on_circle(20.0, [4.0, 8.0, 12.0, 16.0, 20.0, 24.0])
    assert float((poses[0, :3, :2] - truth[:3]).detach().norm(dim=-1).max()) < 0.2
    assert torch.allclose(poses[1, :, 1:], torch.zeros(6, 2))  # first point behind: straight ahead
    with pytest.raises(ValueError, match="route_prior_curve"):
        ModelConfig(
            route_target=True,
            planner_head=PlannerHeadConfig(residual_to_constant_velocity=True, route_prior_curve=True),
        )
