"""The --update-scenarios option: rewrite the expected scenario files instead of comparing."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-scenarios", action="store_true", default=False,
        help="rewrite tests/scenarios/{summary,scores}/*.txt from what the scheduler says now; "
             "review the diff before committing",
    )
