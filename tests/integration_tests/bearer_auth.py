"""A `langgraph_sdk.Auth` for the auth tests: bearer tokens name the caller, and each caller's runs
may continue only their own threads (the owner-scoping example of LangGraph's docs)."""

from typing import Any

from langgraph_sdk import Auth

TOKENS = {"token-ana": "ana", "token-ben": "ben"}

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or token not in TOKENS:
        raise Auth.exceptions.HTTPException(401, "send Authorization: Bearer <your token>")
    return TOKENS[token]


@auth.on.threads.create_run
async def own_threads_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, str]:
    value["metadata"]["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}
