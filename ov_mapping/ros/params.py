"""Declare ``ParamSpec`` lists on an rclpy node: type, description and range in one place, validated on every set."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node

from ov_mapping.core.params import ParamSpec


def _descriptor(spec: ParamSpec, read_only: bool) -> ParameterDescriptor:
    text = spec.description
    if spec.choices is not None:
        text += f" One of: {', '.join(map(str, spec.choices))}."
    descriptor = ParameterDescriptor(description=text, read_only=read_only)
    if spec.min_value is not None or spec.max_value is not None:
        low = spec.min_value if spec.min_value is not None else -1e300
        high = spec.max_value if spec.max_value is not None else 1e300
        if spec.type is int:
            descriptor.integer_range = [IntegerRange(
                from_value=int(max(low, -2**63)), to_value=int(min(high, 2**63 - 1)), step=0)]
        elif spec.type is float:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    return descriptor


def declare_parameters(node: Node, specs: Sequence[ParamSpec], read_only: bool = True) -> SimpleNamespace:
    """Declare every spec on ``node`` and return their current values as attributes.

    Values given at start-up (parameter files, ``-p``) are validated; a bad one raises ``ValueError`` naming the
    parameter, so the node refuses to start instead of running with it. Parameters are read-only at run time by
    default: the nodes build their pipelines from them once.
    """
    values = {}
    errors = []
    for spec in specs:
        value = node.declare_parameter(spec.name, spec.default, _descriptor(spec, read_only)).value
        if spec.type is float and isinstance(value, int):
            value = float(value)
        if spec.type is list and value is not None:
            value = list(value)
        error = spec.validate(value)
        if error:
            errors.append(error)
        values[spec.name] = value
    if errors:
        message = "invalid parameters: " + "; ".join(errors)
        node.get_logger().fatal(message)
        raise ValueError(message)

    by_name = {spec.name: spec for spec in specs}

    def check(parameters) -> SetParametersResult:
        for parameter in parameters:
            spec = by_name.get(parameter.name)
            if spec is not None:
                error = spec.validate(parameter.value)
                if error:
                    return SetParametersResult(successful=False, reason=error)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(check)
    return SimpleNamespace(**values)
