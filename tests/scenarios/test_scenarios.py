"""The scheduler scenarios: each input's summary and score table match the expected files."""

from __future__ import annotations

import tomllib

import pytest

from pyha.scheduler import schedule
from pyha.testing.harness import apply
from tests.scenarios import run

NAMES = list(run.index())


def test_the_index_lists_every_input_once_with_its_description() -> None:
    inputs = sorted(p.stem for p in (run.ROOT / "input").glob("*.toml"))
    assert sorted(NAMES) == inputs
    assert len(NAMES) >= 40
    for name, description in run.index().items():
        data = tomllib.loads((run.ROOT / "input" / f"{name}.toml").read_text())
        assert data["description"] == description, name


@pytest.mark.parametrize("name", NAMES)
def test_scenario(name: str, request: pytest.FixtureRequest) -> None:
    if request.config.getoption("update_scenarios", default=False):
        run.update(name)
        return
    diffs = run.differences(name)
    assert not diffs, "\n".join(diffs) + (
        "\nIf the change is intended: pytest tests/scenarios --update-scenarios "
        "(or python -m tests.scenarios.run --update), then review the diff.")


@pytest.mark.parametrize("name", NAMES)
def test_scenario_settles_once_applied(name: str) -> None:
    """Applying the transition and scheduling again leaves nothing to do (a transition
    that only probes is followed by the starts it held back, and then nothing)."""
    data = run.load(name)
    view = data.view
    for _ in range(2):
        transition = schedule(data.config, view, data.now)
        if transition.is_empty():
            return
        only_probes = all(a.kind.value == "monitor" for a in transition.actions)
        view = apply(view, transition)
        if not only_probes:
            break
    again = schedule(data.config, view, data.now)
    assert again.is_empty(), again.summary
