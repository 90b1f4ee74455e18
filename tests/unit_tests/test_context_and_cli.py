"""Configuration errors name the variable; the CLI gives usage and backend errors clearly."""

import pytest

from app.cli import main
from expressway.context import ConfigurationError, Context


def test_context_reads_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("EXPRESSWAY_EMBEDDED_PORT", raising=False)
    monkeypatch.setenv("EXPRESSWAY_TOOL_TIMEOUT_S", "2.5")
    monkeypatch.setenv("EXPRESSWAY_FAST_BASE_URL", "http://gpu:8000/v1")
    context = Context()
    assert context.tool_timeout_s == 2.5
    assert context.base_url("fast") == "http://gpu:8000/v1"
    assert context.base_url("frontier") == "http://127.0.0.1:8000/v1"
    assert Context(tool_timeout_s=9).tool_timeout_s == 9


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "EXPRESSWAY_TOOL_TIMEOUT_S",
            "soon",
            "EXPRESSWAY_TOOL_TIMEOUT_S='soon' is not a valid float",
        ),
        ("EXPRESSWAY_EXECUTION_MODE", "fastest", "EXPRESSWAY_EXECUTION_MODE"),
        ("EXPRESSWAY_FORCE_TIER", "medium", "EXPRESSWAY_FORCE_TIER"),
        ("EXPRESSWAY_IN_FLIGHT_SIDE_EFFECTS", "maybe", "use one of report, retry"),
        ("EXPRESSWAY_FAST_BASE_URL", "gpu:8000", "must start with http"),
        ("EXPRESSWAY_MAX_CONCURRENCY", "0", "greater than 0"),
        ("EXPRESSWAY_BUSY_STREAM_INTERVAL", "0", "EXPRESSWAY_BUSY_STREAM_INTERVAL must be greater"),
        ("EXPRESSWAY_TOOL_RANKING_LAYERS", "7", "use 1 to 6"),
    ],
)
@pytest.mark.reliability("configuration")
def test_wrong_settings_name_the_variable(
    monkeypatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message):
        Context()


@pytest.mark.reliability("input")
def test_cli_empty_question_is_a_usage_error(capsys) -> None:
    assert main(["ask", "  "]) == 2
    assert "question is empty" in capsys.readouterr().err


@pytest.mark.reliability("backends")
def test_cli_unreachable_backend_names_url_and_variable(monkeypatch, capsys) -> None:
    monkeypatch.setenv("EXPRESSWAY_FAST_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("EXPRESSWAY_FRONTIER_BASE_URL", "http://127.0.0.1:9/v1")
    assert main(["ask", "hello"]) == 3
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9/v1" in err and "EXPRESSWAY_FAST_BASE_URL" in err


@pytest.mark.reliability("configuration")
def test_cli_bad_config_is_reported_at_startup(monkeypatch, capsys) -> None:
    monkeypatch.setenv("EXPRESSWAY_EXECUTION_MODE", "warp")
    assert main(["ask", "hello"]) == 2
    assert "EXPRESSWAY_EXECUTION_MODE" in capsys.readouterr().err


def test_env_example_lists_every_setting() -> None:
    from dataclasses import fields
    from pathlib import Path

    listed = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    for spec in fields(Context):
        assert f"EXPRESSWAY_{spec.name.upper()}=" in listed, spec.name
