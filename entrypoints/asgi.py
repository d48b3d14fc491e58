"""ASGI factory for server workers: `uvicorn --factory entrypoints.asgi:create`."""

from __future__ import annotations

from litestar import Litestar

from entrypoints.container import build_container
from entrypoints.http.app import create_app


def create() -> Litestar:
    return create_app(build_container())
