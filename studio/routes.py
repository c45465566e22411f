"""The studio's routes. A placeholder until the studio lands."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(prefix="/studio", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def studio_home() -> str:
    return "<!doctype html><title>Branchwork studio</title><h1>Branchwork studio</h1>"
