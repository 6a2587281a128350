from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["public: web"])


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The public transparency page (static; it reads /public/v1)."""
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")
