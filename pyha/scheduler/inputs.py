"""A scheduler input (config, view and time) as one model, to save, load and replay."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pyha.model.config import ClusterConfig, config_error
from pyha.model.status import View


class SchedulerInput(BaseModel):
    """Everything `schedule` was given: replaying it gives the same transition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    now: float
    config: ClusterConfig
    view: View
    description: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "input") -> SchedulerInput:
        """Parse and check a mapping; ConfigError names every bad field and why."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise config_error(exc, source) from None

    def to_json(self) -> str:
        """The input as JSON text (what the server saves)."""
        return self.model_dump_json(indent=1)


INPUTS_DIR = "scheduler"
"""Where under the state directory the server keeps the inputs it scheduled."""
INPUTS_KEPT = 100


def input_name(number: int) -> str:
    """The file name of saved input `number`: 'input-<n>.json'."""
    return f"input-{number}.json"


def input_number(name: str) -> int | None:
    """The number in a saved input's file name, or None for any other name."""
    stem = name.removeprefix("input-").removesuffix(".json")
    if name.startswith("input-") and name.endswith(".json") and stem.isdigit():
        return int(stem)
    return None
