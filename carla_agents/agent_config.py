"""AgentConfig: what the CARLA leaderboard agent runs (planner, controller, rates, rig, outputs), and its loading."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class AgentConfig:
    """Leaderboard / Bench2Drive agent settings (YAML under configs/carla/).

    Relative paths are resolved against the YAML file's folder, then the repository root, then the
    working directory. ``output_dir`` may name environment variables (``$SAVE_PATH``), expanded once.
    """

    # planner: exactly one of policy_dir (a DrivingPolicy.save_pretrained folder) or baseline
    policy_dir: str = ""
    baseline: str = ""  # a drive_vla.baselines name, e.g. constant_velocity
    baseline_path: str | None = None  # saved folder for learned baselines (ego_mlp)
    device: str = "auto"  # "auto" = cuda when available, else cpu
    policy_hz: float = 4.0  # policy calls per simulated second; the controller runs every tick in between

    # controller (drive_vla.control)
    controller: str = "pid"  # "pid" (waypoints) or "tokens" (decoded control tokens, PID fallback)
    controller_config: str = "configs/control/pid_carla.yaml"
    controller_overrides: list[str] = field(default_factory=list)  # "key=value" on the controller config

    # sensors
    camera_width: int = 800
    camera_height: int = 450
    ego_origin_in_vehicle_m: tuple[float, float, float] = (0.0, 0.0, 0.0)

    # route
    route_min_distance_m: float = 4.0  # TCP (TF++: 7.5)
    route_max_distance_m: float = 50.0  # TCP and TF++
    instruction_style: str = "command"  # "command" (training sentences) or "road_option"
    gnss_north_is_minus_y: bool = True  # leaderboard GPS convention (see carla_agents/route.py)

    # outputs
    output_dir: str = "runs/carla_agent"
    write_rationale: bool = True  # per-frame JSONL: command, plan, control, (throttled) explanation
    explain_every_s: float = 0.0  # ask the policy for an explanation at most this often; 0 disables
    explain_question: str | None = None
    write_metric_info: bool = True  # Bench2Drive's per-frame metric_info.json (needs the hero actor)
    metric_info_flush_every: int = 100  # frames between rewrites of metric_info.json (and at destroy)

    def check_planner(self) -> None:
        """Raise ValueError unless exactly one of policy_dir and baseline is set (checked at agent setup)."""
        if bool(self.policy_dir) == bool(self.baseline):
            raise ValueError(
                f"policy_dir/baseline: got policy_dir={self.policy_dir!r}, baseline={self.baseline!r}, "
                "expected exactly one of them"
            )

    def __post_init__(self) -> None:
        if not 0.0 < self.policy_hz <= 20.0:
            raise ValueError(f"policy_hz: got {self.policy_hz!r}, expected a rate in (0, 20] Hz")
        if self.camera_width <= 0 or self.camera_height <= 0:
            raise ValueError(f"camera size: got {self.camera_width}x{self.camera_height}, expected positive")
        if self.instruction_style not in ("command", "road_option"):
            raise ValueError(f"instruction_style: got {self.instruction_style!r}, expected 'command' or 'road_option'")
        if self.explain_every_s < 0 or self.metric_info_flush_every < 1:
            raise ValueError(
                f"explain_every_s / metric_info_flush_every: got {self.explain_every_s!r} / "
                f"{self.metric_info_flush_every!r}, expected >= 0 / >= 1"
            )


def split_agent_argument(argument: str) -> tuple[str, str | None]:
    """Split the evaluator's agent-config string into (config path, save name).

    Bench2Drive appends ``+<save_name>`` for every route it runs, so the string grows
    ("cfg.yaml+route1+route2"): the path is the first part and the save name the last.
    """
    parts = str(argument).split("+")
    return parts[0].strip(), (parts[-1].strip() or None) if len(parts) > 1 else None


def resolve_path(path: str, base_dir: Path | None) -> Path:
    """A config-relative path: absolute as is; else the first existing of base_dir/path, repo/path, cwd/path."""
    p = Path(os.path.expanduser(path))
    if p.is_absolute():
        return p
    for root in (base_dir, REPO_ROOT, Path.cwd()):
        if root is not None and (root / p).exists():
            return (root / p).resolve()
    return (base_dir / p).resolve() if base_dir is not None else p.resolve()


def load_agent_config(
    argument: str, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[AgentConfig, Path | None, str | None]:
    """Load the agent YAML named by the evaluator's argument (``path`` or ``path+save_name``).

    Returns (config, the YAML's folder or None, save name or None).
    """
    from drive_vla.config import load_config

    path, save_name = split_agent_argument(argument)
    if not path:
        raise ValueError(f"agent config: got {argument!r}, expected a YAML path such as configs/carla/agent.yaml")
    yaml_path = resolve_path(path, None)
    cfg = load_config(AgentConfig, yaml_path, overrides)
    cfg.check_planner()
    return cfg, yaml_path.parent, save_name
