"""Auth for the fast route: the `langgraph_sdk.Auth` object that langgraph.json names for the
standard routes (`"auth": {"path": "./file.py:auth"}`), applied the way LangGraph's server applies
it: its `@auth.authenticate` hook on every request, and its `threads` `create_run` hook on every
run (which may refuse it, or scope threads by metadata, e.g. to their owner).

Under LangGraph's server, `"enable_custom_route_auth": true` in langgraph.json makes the server
authenticate requests to this app itself; under plain uvicorn this module does it. The hooks are
looked up in the Auth object's handler table (langgraph-sdk's private `_handlers`, as the server
does); tests/integration_tests/test_http_app.py checks both deployments."""

import importlib
import importlib.util
import inspect
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langgraph_sdk import Auth
from starlette.exceptions import HTTPException
from starlette.requests import Request

CONFIG = Path("langgraph.json")


class AuthenticatedUser:
    """The caller as the Auth's hooks see it: attributes and keys, like the server's user."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = dict(fields)

    @property
    def identity(self) -> str:
        return str(self._fields["identity"])

    @property
    def display_name(self) -> str:
        return str(self._fields.get("display_name", self.identity))

    @property
    def is_authenticated(self) -> bool:
        return bool(self._fields.get("is_authenticated", True))

    @property
    def permissions(self) -> Sequence[str]:
        return list(self._fields.get("permissions", []))

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def get(self, key: str, default: Any = None) -> Any:
        return self._fields.get(key, default)


def configured_auth_path() -> str | None:
    """`auth.path` of the configuration in use: LANGGRAPH_AUTH, which LangGraph's server sets from
    the config it was started with, else langgraph.json in the working directory (where the
    server reads it too)."""
    raw = os.environ.get("LANGGRAPH_AUTH")
    if raw:
        return (json.loads(raw) or {}).get("path")
    if not CONFIG.is_file():
        raise FileNotFoundError(
            f"no {CONFIG} in {Path.cwd()}: start the app from the directory that holds "
            "langgraph.json (its `auth` protects the fast route), or set LANGGRAPH_AUTH"
        )
    return (json.loads(CONFIG.read_text()).get("auth") or {}).get("path")


def load_auth(path: str | None) -> Auth | None:
    """The Auth object at "./file.py:name" (relative to the working directory, as the server
    reads it) or "module:name"; None when no auth is configured."""
    if not path:
        return None
    location, _, name = path.rpartition(":")
    if "/" in location or location.endswith(".py"):
        file = Path(location).resolve()
        spec = importlib.util.spec_from_file_location(f"expressway_auth_{file.stem}", file)
        if spec is None or spec.loader is None:
            raise ValueError(f"auth path {path!r}: cannot load {file}; fix `auth.path`")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
    auth = getattr(module, name, None)
    if not isinstance(auth, Auth):
        raise TypeError(f"auth path {path!r} is not a langgraph_sdk.Auth object")
    if auth._authenticate_handler is None:
        raise ValueError(f"the Auth object at {path!r} has no @auth.authenticate handler")
    return auth


async def authenticate(auth: Auth, request: Request) -> tuple[AuthenticatedUser, list[str]]:
    """Run the Auth's authenticate hook on `request`: the caller and their permissions, or an
    HTTPException (401 unless the hook chose a status)."""
    handler = auth._authenticate_handler
    assert handler is not None
    available = {
        "request": request,
        "headers": dict(request.scope["headers"]),
        "authorization": request.headers.get("authorization"),
        "path": request.url.path,
        "method": request.method,
        "query_params": request.query_params,
        "path_params": request.path_params,
        "scope": request.scope,
    }
    wanted = inspect.signature(handler).parameters
    arguments = {name: available[name] for name in wanted if name in available}
    try:
        result = await _awaited(handler(**arguments))
    except Auth.exceptions.HTTPException as error:
        raise HTTPException(error.status_code, error.detail, dict(error.headers or {})) from error
    permissions: Any = []
    if isinstance(result, tuple):
        permissions, result = result
    elif isinstance(result, Mapping):
        permissions = result.get("permissions", [])
    elif hasattr(result, "permissions"):
        permissions = result.permissions
    if isinstance(result, str):
        fields: Mapping[str, Any] = {"identity": result}
    elif isinstance(result, Mapping) and "identity" in result:
        fields = result
    elif hasattr(result, "identity"):
        fields = {"identity": result.identity, "permissions": list(permissions)}
    else:
        raise TypeError(f"the authenticate hook returned {type(result).__name__}, no identity")
    return AuthenticatedUser(fields), list(permissions)


async def authorize_run(
    auth: Auth, user: Any, permissions: Sequence[str], value: dict[str, Any]
) -> dict[str, Any]:
    """Run the Auth's `threads` `create_run` hook (or the most specific one that covers it, as the
    server picks it): the metadata filter the run's thread must match ({} for none). The hook may
    add to `value["metadata"]`, which the thread keeps. Refusal raises HTTPException (403)."""
    handler = _handler(auth, "threads", "create_run")
    if handler is None:
        return {}
    context = Auth.types.AuthContext(
        permissions=list(permissions), user=user, resource="threads", action="create_run"
    )
    try:
        result = await _awaited(handler(ctx=context, value=value))
    except Auth.exceptions.HTTPException as error:
        raise HTTPException(error.status_code, error.detail, dict(error.headers or {})) from error
    except AssertionError as error:
        raise HTTPException(403, str(error) or "Forbidden") from error
    if result is False:
        raise HTTPException(403, "Forbidden")
    return result if isinstance(result, dict) else {}


def thread_matches(filters: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """True when a thread's metadata satisfies an auth filter (`{"key": value}`, `$eq`,
    `$contains`)."""
    for key, condition in filters.items():
        if not isinstance(condition, Mapping):
            condition = {"$eq": condition}
        unknown = set(condition) - {"$eq", "$contains"}
        if unknown:
            raise HTTPException(500, f"auth filter operators {sorted(unknown)} are not supported")
        if "$eq" in condition and metadata.get(key) != condition["$eq"]:
            return False
        if "$contains" in condition and condition["$contains"] not in (metadata.get(key) or ()):
            return False
    return True


def _handler(auth: Auth, resource: str, action: str) -> Any:
    for key in ((resource, action), (resource, "*"), ("*", action), ("*", "*")):
        if key in auth._handlers:
            return auth._handlers[key][-1]
    return auth._global_handlers[-1] if auth._global_handlers else None


async def _awaited(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
