"""Access tokens (admin only): create one (its secret is answered once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from ... import protocol
from ..engine import tokens as engine
from ..jsonutil import JsonResponse, StrictJsonRoute
from .answers import TokenCreatedOut, TokenOut, TokensOut
from .deps import Server
from .schemas import Strict

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], route_class=StrictJsonRoute)

TokenName = Annotated[str, Field(min_length=1, max_length=protocol.TOKEN_NAME_MAX,
                                 pattern=protocol.TOKEN_NAME_PATTERN)]
TokenPath = Annotated[str, Path(min_length=1, max_length=protocol.TOKEN_NAME_MAX,
                                pattern=protocol.TOKEN_NAME_PATTERN)]
Patterns = Annotated[list[Annotated[str, Field(max_length=protocol.QUEUE_NAME_MAX)]],
                     Field(max_length=protocol.MAX_TOKEN_PATTERNS)]


class TokenIn(Strict):
    name: TokenName
    role: protocol.TokenRole
    queues: Patterns = []
    names: Patterns = []


@router.post("", response_model=TokenCreatedOut, status_code=201,
             summary="Create a token; its secret is shown only now")
async def create_token(body: TokenIn, server: Server) -> JsonResponse:
    """Create a token with a role and scopes; the answer is the only time its secret is shown."""
    row, secret = await engine.create_token(server, body.name, body.role, body.queues,
                                            body.names)
    return JsonResponse({**row, "token": secret}, status_code=201)


@router.get("", response_model=TokensOut,
            summary="Tokens (never their secrets), live ones unless all=true")
async def list_tokens(server: Server, include_revoked: Annotated[
        bool, Query(alias="all")] = False) -> dict[str, Any]:
    """Tokens with their role, scopes and last use; never their secrets."""
    return {"tokens": await engine.list_tokens(server, include_revoked=include_revoked)}


@router.post("/{name}/revoke", response_model=TokenOut,
             summary="Revoke a token, on every replica within a second")
async def revoke_token(name: TokenPath, server: Server) -> dict[str, Any]:
    """Revoke a token: every replica refuses it within a second."""
    return dict(await engine.revoke_token(server, name))
