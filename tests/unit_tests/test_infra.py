"""Every serving profile parses with the pinned vLLM's own argument parser, and the compose file
and Kubernetes manifests are consistent (offline structural checks; no Docker or cluster here)."""

import re
from pathlib import Path

import pytest
import yaml

from app.embedded import PROFILE, server_command

INFRA = Path(__file__).resolve().parents[2] / "infra"
PROFILES = sorted((INFRA / "vllm").glob("*.yaml"))
UNCOMMENTED_OK = {"model", "host", "port", "dtype"}


@pytest.fixture(scope="module")
def vllm_parser():
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser())


@pytest.mark.parametrize("profile", PROFILES, ids=lambda path: path.name)
def test_profile_parses_with_vllm_and_every_key_is_a_real_flag(profile: Path, vllm_parser) -> None:
    options = set(vllm_parser._option_string_actions)
    keys = yaml.safe_load(profile.read_text())
    unknown = [key for key in keys if f"--{key}" not in options]
    assert not unknown, f"{profile.name}: not vLLM flags: {unknown}"
    args = vllm_parser.parse_args(["--config", str(profile), "--model", "placeholder"])
    assert args.enable_prefix_caching is True


@pytest.mark.parametrize("profile", PROFILES, ids=lambda path: path.name)
def test_every_non_default_flag_says_what_it_buys(profile: Path) -> None:
    for line in profile.read_text().splitlines():
        key = re.match(r"^([a-z-]+):", line)
        if key and key.group(1) not in UNCOMMENTED_OK:
            assert "#" in line, f"{profile.name}: `{key.group(1)}` has no comment"


def test_gpu_profiles_enable_the_latency_features() -> None:
    for name in ("fast-a100.yaml", "fast-h100.yaml", "frontier-a100-tp4.yaml"):
        profile = yaml.safe_load((INFRA / "vllm" / name).read_text())
        assert profile["enable-chunked-prefill"] and profile["enable-auto-tool-choice"]
        assert profile["tool-call-parser"] == "llama3_json"
        assert '"num_speculative_tokens"' in profile["speculative-config"]
    frontier = yaml.safe_load((INFRA / "vllm" / "frontier-a100-tp4.yaml").read_text())
    assert frontier["tensor-parallel-size"] == 4


def test_serve_local_runs_the_embedded_profile() -> None:
    command = server_command(Path("/models/smollm2"), 8000)
    assert command[command.index("--config") + 1] == str(PROFILE)
    assert PROFILE == INFRA / "vllm" / "cpu-embedded.yaml"


def test_embedded_profile_caches_prefixes_in_small_blocks(vllm_parser) -> None:
    """The prefix cache keeps only whole blocks. On the CPU, vLLM's default block is 128 tokens,
    which left up to 127 tokens of each warmed prompt to prefill again; its attention kernel takes
    multiples of 32."""
    args = vllm_parser.parse_args(["--config", str(PROFILE), "--model", "placeholder"])
    assert args.block_size == 32


def _healthy_dependencies(service: dict) -> set[str]:
    return {
        dep for dep, cond in service["depends_on"].items() if cond["condition"] == "service_healthy"
    }


def test_compose_services_are_wired_and_health_checked() -> None:
    compose = yaml.safe_load((INFRA / "compose" / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {
        "vllm-fast",
        "vllm-frontier",
        "postgres",
        "redis",
        "langgraph-api",
        "expressway-app",
    }
    for name, service in services.items():
        assert "healthcheck" in service, name
    api = services["langgraph-api"]
    assert _healthy_dependencies(api) == set(services) - {"langgraph-api", "expressway-app"}
    env = api["environment"]
    assert env["EXPRESSWAY_FAST_BASE_URL"] == "http://vllm-fast:8000/v1"
    assert env["EXPRESSWAY_FRONTIER_BASE_URL"] == "http://vllm-frontier:8001/v1"
    assert env["DATABASE_URI"].startswith("postgres://") and env["REDIS_URI"].startswith("redis://")
    for tier in ("vllm-fast", "vllm-frontier"):
        profile = services[tier]["command"][1].removeprefix("/profiles/")
        assert (INFRA / "vllm" / profile).is_file()
        port = yaml.safe_load((INFRA / "vllm" / profile).read_text())["port"]
        assert f"localhost:{port}/health" in " ".join(services[tier]["healthcheck"]["test"])


def _manifests() -> list[dict]:
    kustomization = yaml.safe_load((INFRA / "kustomization.yaml").read_text())
    documents = []
    for resource in kustomization["resources"]:
        documents += [doc for doc in yaml.safe_load_all((INFRA / resource).read_text()) if doc]
    for generator in kustomization["configMapGenerator"]:
        for file in generator["files"]:
            assert (INFRA / file).is_file(), file
    return documents


def test_kubernetes_manifests_are_consistent() -> None:
    documents = _manifests()
    for doc in documents:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    services = [d for d in documents if d["kind"] == "Service"]
    assert {"vllm-fast", "vllm-frontier", "vllm-router", "langgraph-api", "expressway-app"} <= set(
        deployments
    )
    for deployment in deployments.values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for service in services:
        targets = [
            d
            for d in deployments.values()
            if service["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert targets, f"service {service['metadata']['name']} selects no deployment"
        container_ports = {
            port["name"]
            for target in targets
            for container in target["spec"]["template"]["spec"]["containers"]
            for port in container["ports"]
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports
    assert deployments["vllm-fast"]["spec"]["replicas"] > 1
    assert deployments["langgraph-api"]["spec"]["replicas"] > 1
    assert deployments["expressway-app"]["spec"]["replicas"] > 1
    app_container = deployments["expressway-app"]["spec"]["template"]["spec"]["containers"][0]
    assert app_container["readinessProbe"]["httpGet"]["path"] == "/fast/ok"
    app_env = {e["name"]: e for e in app_container["env"]}
    assert app_env["DATABASE_URI"]["valueFrom"]["secretKeyRef"]["key"] == "app-database-uri"
    assert int(app_env["WEB_CONCURRENCY"]["value"]) > 1
    router_args = [
        c["args"] for c in deployments["vllm-router"]["spec"]["template"]["spec"]["containers"]
    ]
    assert all("prefixaware" in args for args in router_args)
    api_env = {
        e["name"]: e.get("value")
        for e in deployments["langgraph-api"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert api_env["EXPRESSWAY_FAST_BASE_URL"] == "http://vllm-router:8000/v1"


def test_compose_can_serve_the_fast_route_on_uvicorn_without_the_langgraph_server() -> None:
    services = yaml.safe_load((INFRA / "compose" / "docker-compose.yaml").read_text())["services"]
    app = services["expressway-app"]
    assert app["profiles"] == ["uvicorn"]  # an alternative: started only when named
    assert _healthy_dependencies(app) == {"postgres", "vllm-fast", "vllm-frontier"}
    env = app["environment"]
    assert (
        env["DATABASE_URI"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URI"]
    )
    assert int(env["WEB_CONCURRENCY"].split(":-")[1].rstrip("}")) > 1
    assert (
        env["EXPRESSWAY_FAST_BASE_URL"]
        == services["langgraph-api"]["environment"]["EXPRESSWAY_FAST_BASE_URL"]
    )
    assert "/fast/ok" in " ".join(app["healthcheck"]["test"])


def test_the_app_image_runs_the_http_app_with_what_it_imports() -> None:
    import ast
    import importlib.metadata
    import re
    import sys
    import tomllib

    dockerfile = (INFRA / "app.Dockerfile").read_text()
    assert '"uvicorn", "app.http_app:app"' in dockerfile
    assert 'pip install --no-cache-dir ".[serve]"' in dockerfile
    project = tomllib.loads((INFRA.parent / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[\[<>=]", requirement)[0].lower()
        for requirement in project["dependencies"] + project["optional-dependencies"]["serve"]
    }
    distributions = importlib.metadata.packages_distributions()
    local = {"app", "expressway", "graphs", "nodes", "routers", "tools"}
    for module in (INFRA.parent / "app").glob("*.py"):
        if module.name in {"cli.py", "embedded.py"}:  # the CLI's extras are `embedded`, not `serve`
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and not node.level
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in local or top in sys.stdlib_module_names or top == "langgraph_api":
                    continue
                owners = {owner.lower() for owner in distributions.get(top, [])}
                assert owners & declared, f"{module.name} imports {top}, not declared for `serve`"


def test_langgraph_json_mounts_the_fast_route_with_the_servers_auth() -> None:
    import json

    from starlette.applications import Starlette

    config = json.loads((INFRA.parent / "langgraph.json").read_text())
    path, _, name = config["http"]["app"].rpartition(":")
    assert (INFRA.parent / path).resolve() == INFRA.parent / "app" / "http_app.py"
    assert config["http"]["enable_custom_route_auth"] is True

    from app import http_app

    assert isinstance(getattr(http_app, name), Starlette)
