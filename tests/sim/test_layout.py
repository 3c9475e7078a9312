"""The embedded world's imports run one way: world.py is the core; scenarios, expert and renderer act on it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import drive_vla.sim as sim

SIM_DIR = Path(sim.__file__).parent
MODULES = sorted(p.stem for p in SIM_DIR.glob("*.py") if p.stem != "__init__")
ACTS_ON_THE_WORLD = {"scenarios", "expert", "decision", "render"}
COMPOSING = {"embedded", "dataset", "qa", "env", "onpolicy", "bench_api"}


def _direct_imports(module: str) -> set[str]:
    """The drive_vla.sim modules that ``module`` imports anywhere in its source (TYPE_CHECKING blocks too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse((SIM_DIR / f"{module}.py").read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "drive_vla.sim" + (f".{node.module}" if node.module else "") if node.level else node.module or ""
            names = [base] + [f"{base}.{a.name}" for a in node.names]
            if base == "drive_vla.sim":  # the package's lazy exports name their modules
                names += [sim._EXPORTS[a.name] for a in node.names if a.name in sim._EXPORTS]
        else:
            continue
        out |= {n.split(".")[2] for n in names if n.startswith("drive_vla.sim.") and n.split(".")[2] in MODULES}
    return out - {module}


GRAPH = {m: _direct_imports(m) for m in MODULES}


def _reachable(module: str) -> set[str]:
    seen, todo = set(), list(GRAPH[module])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += GRAPH[m]
    return seen


def test_world_imports_none_of_what_acts_on_it():
    assert _reachable("world") & (ACTS_ON_THE_WORLD | COMPOSING) == set()


@pytest.mark.parametrize("module", sorted(ACTS_ON_THE_WORLD))
def test_scenarios_expert_and_renderer_use_the_core_world_not_the_composition(module):
    assert "world" in GRAPH[module]
    assert _reachable(module) & COMPOSING == set()


@pytest.mark.parametrize("module", MODULES)
def test_sim_imports_have_no_cycle(module):
    assert module not in _reachable(module)
