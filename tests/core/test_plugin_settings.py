"""A plugin's settings: read once per Settings, from the values given to it, copied anew."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from callable_agents.core.config import PluginSettings, Settings
from callable_agents.core.errors import ConfigError


class ExampleSettings(PluginSettings):
    example_batch_size: int = Field(default=10, ge=1)


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]


def test_read_once_and_kept(tmp_path: Path) -> None:
    given = settings(tmp_path, example_batch_size=3)
    first = given.for_plugin(ExampleSettings)
    assert first.example_batch_size == 3 and given.for_plugin(ExampleSettings) is first
    assert settings(tmp_path).for_plugin(ExampleSettings).example_batch_size == 10


def test_a_copy_reads_its_own_values(tmp_path: Path) -> None:
    given = settings(tmp_path, example_batch_size=3)
    given.for_plugin(ExampleSettings)
    copied = given.model_copy(update={"example_batch_size": 7})
    assert copied.for_plugin(ExampleSettings).example_batch_size == 7
    assert given.for_plugin(ExampleSettings).example_batch_size == 3


def test_a_bad_value_names_its_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CALLABLE_EXAMPLE_BATCH_SIZE"):
        settings(tmp_path, example_batch_size=0).for_plugin(ExampleSettings)
