"""Routes through highway-env road networks: lane sequences, progress along them, and the path ahead.

Everything here is in highway-env's own plane (x right, y DOWN, metres); the world converts to the
right-handed global frame with ``geometry.sim_to_global`` at its boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from highway_env.road.road import LaneIndex, RoadNetwork

from drive_vla.types import Command

SAMPLE_M = 0.5  # spacing of the dense lane polylines


@dataclass(frozen=True)
class LanePolyline:
    """A lane centre line sampled every SAMPLE_M metres: s (N,), xy (N, 2), heading (N,) in the sim plane."""

    s: np.ndarray
    xy: np.ndarray
    heading: np.ndarray

    @classmethod
    def of(cls, network: RoadNetwork, index: LaneIndex) -> LanePolyline:
        lane = network.get_lane(index)
        n = max(2, int(np.ceil(lane.length / SAMPLE_M)) + 1)
        s = np.linspace(0.0, lane.length, n)
        xy = np.array([lane.position(float(si), 0.0) for si in s])
        heading = np.unwrap(np.array([lane.heading_at(float(si)) for si in s]))
        return cls(s, xy, heading)


class LaneCache:
    """Dense polylines of a network's lanes, built on first use (the network never changes)."""

    def __init__(self, network: RoadNetwork):
        self.network = network
        self._lines: dict[LaneIndex, LanePolyline] = {}

    def __getitem__(self, index: LaneIndex) -> LanePolyline:
        line = self._lines.get(index)
        if line is None:
            line = self._lines[index] = LanePolyline.of(self.network, index)
        return line


@dataclass
class Route:
    """A planned sequence of lanes with the navigation maneuver on it.

    Attributes:
        lanes: lane indices (from, to, id) in driving order.
        start_s: where the route starts on the first lane, metres.
        end_s: where it ends on the last lane, metres.
        maneuver: the turn the route asks for (STRAIGHT when it only follows the road).
        maneuver_piece: index in ``lanes`` of the first lane of the maneuver (junction or merge), or None.
        maneuver_end_piece: index of the last lane of the maneuver.
        stop_piece: index of the lane whose start is a yield line (junction or roundabout entry), or None.
        merge_to: on lane ``maneuver_piece``, the lane id of the same road to change into (a merge), or None.
        instruction: the sentence that asks for this route.
    """

    lanes: list[LaneIndex]
    start_s: float
    end_s: float
    maneuver: Command = Command.STRAIGHT
    maneuver_piece: int | None = None
    maneuver_end_piece: int | None = None
    stop_piece: int | None = None
    merge_to: int | None = None
    instruction: str = "keep following the road"
    # Filled by build():
    xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    arc: np.ndarray = field(default_factory=lambda: np.zeros(0))
    piece_start_arc: np.ndarray = field(default_factory=lambda: np.zeros(0))
    piece_offset_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def build(self, cache: LaneCache) -> Route:
        """Sample the route's centre line (sim plane) and the arc length where each lane starts."""
        pts, starts, offsets = [], [], []
        arc0 = 0.0
        prev = None
        for i, index in enumerate(self.lanes):
            line = cache[index]
            lo = self.start_s if i == 0 else 0.0
            hi = self.end_s if i == len(self.lanes) - 1 else float(line.s[-1])
            keep = (line.s >= lo) & (line.s <= hi)
            s = np.concatenate([[lo], line.s[keep], [hi]])
            xy = np.stack([np.interp(s, line.s, line.xy[:, 0]), np.interp(s, line.s, line.xy[:, 1])], axis=1)
            if prev is not None:
                arc0 += float(np.linalg.norm(xy[0] - prev))
            starts.append(arc0 - lo)  # route arc of s = 0 on this lane
            offsets.append(lo)
            seg = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
            pts.append((xy, arc0 + seg))
            arc0 += float(seg[-1])
            prev = xy[-1]
        self.xy = np.concatenate([p[0] for p in pts])
        self.arc = np.concatenate([p[1] for p in pts])
        self.piece_start_arc = np.array(starts)
        self.piece_offset_s = np.array(offsets)
        return self

    @property
    def length_m(self) -> float:
        return float(self.arc[-1])

    def piece_arc(self, piece: int) -> float:
        """Route arc length at the start of lane ``piece`` (its s = 0, or start_s for the first lane)."""
        return float(self.piece_start_arc[piece] + (self.piece_offset_s[piece] if piece == 0 else 0.0))

    def project(self, xy: np.ndarray, hint_arc: float | None = None, window_m: float = 40.0) -> tuple[float, float]:
        """(arc length, distance) of the route point nearest to ``xy``; with a hint, search near it first."""
        d2 = np.sum((self.xy - np.asarray(xy)[None]) ** 2, axis=1)
        if hint_arc is not None:
            near = (self.arc >= hint_arc - 5.0) & (self.arc <= hint_arc + window_m)
            if near.any():
                idx = np.flatnonzero(near)
                j = idx[int(np.argmin(d2[idx]))]
                if d2[j] < 15.0**2:
                    return float(self.arc[j]), float(np.sqrt(d2[j]))
        j = int(np.argmin(d2))
        return float(self.arc[j]), float(np.sqrt(d2[j]))

    def guidance_xy(self, cache: LaneCache, start_m: float = 5.0, length_m: float = 40.0) -> np.ndarray:
        """(N, 2) the centre line as a navigation system guides it, for the route planner's target points.

        Like ``xy``, except on a merge: there ``xy`` runs to the end of the merge lane (where highway-env
        puts a barrier) and jumps sideways onto the next lane, whereas a global plan (CARLA's included)
        changes lanes. Here the line moves into lane ``merge_to`` between ``start_m`` and
        ``start_m + length_m`` along the merge lane (a smoothstep blend of the two lanes' centre lines)."""
        xy = self.xy.copy()
        p = self.maneuver_piece
        if self.merge_to is None or p is None:
            return xy
        here = self.lanes[p]
        target = cache[(here[0], here[1], self.merge_to)]
        lo = self.piece_arc(p)
        hi = self.piece_arc(p + 1) if p + 1 < len(self.lanes) else float(self.arc[-1]) + 1.0
        on = (self.arc >= lo) & (self.arc < hi)
        s = self.arc[on] - self.piece_start_arc[p]  # s along the merge lane
        u = np.clip((s - start_m) / length_m, 0.0, 1.0)
        w = (u * u * (3.0 - 2.0 * u))[:, None]
        other = np.stack([np.interp(s, target.s, target.xy[:, 0]), np.interp(s, target.s, target.xy[:, 1])], axis=1)
        xy[on] = (1.0 - w) * xy[on] + w * other
        return xy

    def piece_at(self, arc: float) -> int:
        """Index of the lane the route is on at arc length ``arc``."""
        starts = np.array([self.piece_arc(i) for i in range(len(self.lanes))])
        return int(np.clip(np.searchsorted(starts, arc, side="right") - 1, 0, len(self.lanes) - 1))


def path_ahead(
    cache: LaneCache,
    route: Route,
    piece: int,
    lane: LaneIndex,
    s_on_lane: float,
    distance_m: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centre line ahead: from ``s_on_lane`` on ``lane`` (the route's lane ``piece`` or a neighbour
    of it), then the route's following lanes, up to ``distance_m`` or the route's end.

    Returns:
        xy: (N, 2) points every SAMPLE_M metres (sim plane), the first at ``s_on_lane``.
        arc: (N,) distance along the path from the first point.
        heading: (N,) lane heading (sim plane, unwrapped).
    """
    xs, hs = [], []
    remaining = distance_m
    s0 = max(0.0, s_on_lane)
    for i in range(piece, len(route.lanes)):
        index = lane if i == piece else route.lanes[i]
        line = cache[index]
        end = route.end_s if i == len(route.lanes) - 1 else float(line.s[-1])
        if end > s0:
            s = np.arange(s0, min(end, s0 + remaining) + 1e-9, SAMPLE_M)
            pts = np.stack([np.interp(s, line.s, line.xy[:, 0]), np.interp(s, line.s, line.xy[:, 1])], axis=1)
            heads = np.interp(s, line.s, line.heading)
            if xs:
                # highway-env's lanes do not always join exactly (its roundabout entries end ~5 m from the
                # ring lane they feed): bridge the gap so the path has no hole.
                gap = float(np.linalg.norm(pts[0] - xs[-1][-1]))
                if gap > SAMPLE_M:
                    t = np.linspace(0.0, 1.0, int(gap / SAMPLE_M) + 1)[1:-1, None]
                    xs.append(xs[-1][-1] + t * (pts[0] - xs[-1][-1]))
                    hs.append(np.full(len(t), hs[-1][-1]))
                    remaining -= gap
            xs.append(pts)
            hs.append(heads)
            remaining -= float(s[-1] - s[0]) + SAMPLE_M
        if remaining <= 0:
            break
        s0 = 0.0
    if not xs:
        line = cache[lane]
        p = np.array([[np.interp(s0, line.s, line.xy[:, 0]), np.interp(s0, line.s, line.xy[:, 1])]])
        return p, np.zeros(1), np.array([np.interp(s0, line.s, line.heading)])
    xy = np.concatenate(xs)
    heading = np.unwrap(np.concatenate(hs))
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    return xy, arc, heading
