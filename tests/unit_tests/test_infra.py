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


def test_compose_services_are_wired_and_health_checked() -> None:
    compose = yaml.safe_load((INFRA / "compose" / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"vllm-fast", "vllm-frontier", "postgres", "redis", "langgraph-api"}
    for name, service in services.items():
        assert "healthcheck" in service, name
    api = services["langgraph-api"]
    assert {
        dep for dep, cond in api["depends_on"].items() if cond["condition"] == "service_healthy"
    } == (set(services) - {"langgraph-api"})
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
    assert {"vllm-fast", "vllm-frontier", "vllm-router", "langgraph-api"} <= set(deployments)
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
    router_args = [
        c["args"] for c in deployments["vllm-router"]["spec"]["template"]["spec"]["containers"]
    ]
    assert all("prefixaware" in args for args in router_args)
    api_env = {
        e["name"]: e.get("value")
        for e in deployments["langgraph-api"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert api_env["EXPRESSWAY_FAST_BASE_URL"] == "http://vllm-router:8000/v1"
