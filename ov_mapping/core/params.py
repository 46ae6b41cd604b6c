"""Declarative parameter specifications: declared once, validated the same way everywhere.

A node lists its parameters as ``ParamSpec`` objects; ``ov_mapping.ros.params`` turns them into ROS parameter
declarations (type, description, range) and refuses bad values with the message ``validate`` gives. The specs are
plain data so that tests, the launcher and the docs can read them without ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its name, default, description and the values it accepts."""

    name: str
    default: Any
    description: str
    min_value: Optional[float] = None
    max_value: Optional[float] = None
    choices: Optional[Sequence[Any]] = None

    def __post_init__(self) -> None:
        if self.default is None:
            raise ValueError(f"parameter {self.name!r} needs a typed default (use '' or 0, not None)")
        error = self.validate(self.default)
        if error:
            raise ValueError(f"default of parameter {self.name!r} is invalid: {error}")

    @property
    def type(self) -> type:
        return type(self.default)

    def validate(self, value: Any) -> Optional[str]:
        """Return an error message for ``value``, or None when it is acceptable."""
        expected = self.type
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is list:
            if not isinstance(value, (list, tuple)):
                return f"{self.name} must be a list, got {type(value).__name__}"
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return f"{self.name} must be {expected.__name__}, got {type(value).__name__} {value!r}"
        if isinstance(value, float) and value != value:
            return f"{self.name} must not be NaN"
        if self.min_value is not None and value < self.min_value:
            return f"{self.name} must be >= {self.min_value}, got {value}"
        if self.max_value is not None and value > self.max_value:
            return f"{self.name} must be <= {self.max_value}, got {value}"
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {list(self.choices)}, got {value!r}"
        return None


def validate_all(specs: Sequence[ParamSpec], values: dict) -> list[str]:
    """Errors for every value in ``values`` that its spec refuses, and for unknown names."""
    by_name = {spec.name: spec for spec in specs}
    errors = []
    for name, value in values.items():
        spec = by_name.get(name)
        if spec is None:
            errors.append(f"unknown parameter {name!r}; known: {sorted(by_name)}")
            continue
        error = spec.validate(value)
        if error:
            errors.append(error)
    return errors
