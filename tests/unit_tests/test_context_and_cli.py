"""Configuration errors name the variable; the CLI gives usage and backend errors clearly."""

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.cli import ProgressPrinter, ensure_backends, main
from expressway.context import ConfigurationError, Context, unknown_settings
from expressway.models import BackendMisconfiguredError, BackendUnavailableError, check_backend


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
        ("EXPRESSWAY_MODEL_TIMEOUT_S", "nan", "EXPRESSWAY_MODEL_TIMEOUT_S=nan: use a finite"),
        ("EXPRESSWAY_EMBEDDED_PORT", "99999", "use a port from 1 to 65535"),
        ("EXPRESSWAY_MAX_REPLANS", "-1", "EXPRESSWAY_MAX_REPLANS must be 0"),
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


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"max_plan_tasks": "5"}, "max_plan_tasks='5' .* must be a whole number, not str"),
        ({"max_plan_tasks": 2.7}, "must be a whole number, not float"),
        ({"max_plan_tasks": True}, "must be a whole number, not bool"),
        ({"max_question_chars": None}, "must be a whole number, not NoneType"),
        ({"model_timeout_s": "abc"}, "must be a number, not str"),
        ({"prefill_answer_early": "maybe"}, "must be true or false, not str"),
    ],
)
@pytest.mark.reliability("configuration")
def test_a_context_from_json_is_type_checked(setting: dict, message: str) -> None:
    """The LangGraph server passes a run's `context` JSON through as it came."""
    with pytest.raises(ConfigurationError, match=message):
        Context(**setting)
    assert Context(model_timeout_s=5).model_timeout_s == 5.0  # a whole number is a number


@pytest.mark.reliability("input")
def test_cli_route_file_problems_name_the_line(tmp_path, capsys) -> None:
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "hello"}\n\n{"txt": "typo"}\n')
    assert main(["route", "--file", str(texts)]) == 2
    assert "line 3: KeyError" in capsys.readouterr().err
    assert main(["route", "--file", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


class _ModelList(BaseHTTPRequestHandler):
    """An OpenAI-style /v1/models that wants `Authorization: Bearer sk-test`."""

    def do_GET(self) -> None:
        if self.path != "/v1/models":
            self.send_response(404)
            self.end_headers()
            return
        if self.headers.get("Authorization") != "Bearer sk-test":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"data": [{"id": "served-model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def keyed_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ModelList)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.reliability("backends")
def test_the_backend_check_sends_the_key_and_says_what_is_wrong(monkeypatch, keyed_server) -> None:
    monkeypatch.setenv("EXPRESSWAY_FAST_BASE_URL", f"{keyed_server}/v1/")  # a trailing slash
    monkeypatch.delenv("EXPRESSWAY_FAST_API_KEY", raising=False)
    with pytest.raises(BackendMisconfiguredError, match=r"HTTP 401.*set EXPRESSWAY_FAST_API_KEY"):
        check_backend(Context(), "fast")
    monkeypatch.setenv("EXPRESSWAY_FAST_API_KEY", "sk-wrong")
    with pytest.raises(BackendMisconfiguredError, match="check the key in EXPRESSWAY_FAST_API"):
        check_backend(Context(), "fast")
    monkeypatch.setenv("EXPRESSWAY_FAST_API_KEY", "sk-test")
    check_backend(Context(), "fast")
    monkeypatch.setenv("EXPRESSWAY_FAST_BASE_URL", keyed_server)  # no /v1
    with pytest.raises(BackendMisconfiguredError, match=r"HTTP 404.*usually ends in /v1"):
        check_backend(Context(), "fast")


@pytest.mark.reliability("backends")
def test_ask_goes_on_when_one_tier_is_down_and_the_other_up(monkeypatch, keyed_server) -> None:
    monkeypatch.setenv("EXPRESSWAY_FAST_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("EXPRESSWAY_FRONTIER_BASE_URL", f"{keyed_server}/v1")
    monkeypatch.setenv("EXPRESSWAY_FRONTIER_API_KEY", "sk-test")
    said: list[str] = []
    ensure_backends(Context(), said.append)
    assert len(said) == 1 and "warning: the fast tier's backend at http://127.0.0.1:9/v1" in said[0]
    monkeypatch.setenv("EXPRESSWAY_FRONTIER_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(BackendUnavailableError, match="unreachable"):
        ensure_backends(Context(), said.append)


def test_cli_bench_help_lists_the_benchmarks_own_options(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "e2e", "--help"])
    assert exit_info.value.code == 0
    assert "--workload" in capsys.readouterr().out
    assert main(["bench", "--help"]) == 0
    assert "e2e" in capsys.readouterr().out
    assert main(["bench"]) == 2


@pytest.mark.reliability("configuration")
def test_a_misspelled_setting_is_named_with_the_closest_one() -> None:
    environ = {
        "EXPRESSWAY_FAST_BASEURL": "http://gpu:8000/v1",
        "EXPRESSWAY_FAST_API_KEY": "sk-...",
        "EXPRESSWAY_TOOL_TIMEOUT_S": "5",
        "OTHER_VARIABLE": "1",
    }
    assert unknown_settings(environ) == [
        "EXPRESSWAY_FAST_BASEURL is not an Expressway setting and is ignored; "
        "did you mean EXPRESSWAY_FAST_BASE_URL?"
    ]


def test_the_cli_shows_a_replan_and_which_stage_fell_back() -> None:
    out, err = io.StringIO(), io.StringIO()
    show = ProgressPrinter(out, err)
    show({"type": "plan.started", "t": 0.0, "replan": 0})
    show({"type": "plan.started", "t": 1.5, "replan": 1})
    fallback = {"from_tier": "fast", "to_tier": "frontier", "reason": "unreachable"}
    show({"type": "fallback", "t": 1.6, "stage": "plan", **fallback})
    assert err.getvalue().splitlines() == [
        "  1.500s  replan 1: planning again with the results so far",
        "  1.600s  fallback (plan) fast -> frontier: unreachable",
    ]
