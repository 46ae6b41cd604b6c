"""Every node's parameters, read from the ParamSpec lists the nodes declare: one source of truth for docs and tests."""

from __future__ import annotations

import importlib

from ov_mapping.core.params import ParamSpec
from ov_mapping.ros import graph


def node_param_specs() -> dict[str, tuple[ParamSpec, ...]]:
    """{executable: its ParamSpec tuple} for every node of the graph and the player."""
    return {spec.name: importlib.import_module(spec.module).PARAMS for spec in (*graph.PIPELINE, graph.PLAYER)}


def describe_all() -> str:
    lines = []
    for node, specs in node_param_specs().items():
        lines.append(node)
        for s in specs:
            bounds = []
            if s.min_value is not None:
                bounds.append(f">= {s.min_value}")
            if s.max_value is not None:
                bounds.append(f"<= {s.max_value}")
            if s.choices is not None:
                bounds.append("in " + "|".join(map(str, s.choices)))
            extra = f" [{', '.join(bounds)}]" if bounds else ""
            lines.append(f"  {s.name} ({s.type.__name__}, default {s.default!r}){extra}: {s.description}")
    return "\n".join(lines)
