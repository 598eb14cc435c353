"""Who may call the service (an optional bearer token) and which files a client may name (only those under the
configured root)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="The token the service was started with (--token).")


def token_check(token: str) -> Callable[..., Awaitable[None]]:
    """A dependency that answers 401 unless the request carries ``Authorization: Bearer <token>``."""
    expected = token.encode("utf-8")

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        given = credentials.credentials.encode("utf-8") if credentials is not None else b""
        if not secrets.compare_digest(given, expected):
            problem = "missing bearer token" if credentials is None else "wrong bearer token"
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"{problem} (send 'Authorization: Bearer <token>')",
                                headers={"WWW-Authenticate": "Bearer"})

    return check


def resolve_under_root(root: Path | None, requested: str) -> Path:
    """The file a client named, relative to ``root`` (or absolute), after following every link.

    403 without a root or when the file lies outside it (``..``, an absolute path elsewhere, a link leading out);
    404 when nothing readable is there; 400 for a path the file system cannot use.
    """
    if root is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "file paths are not accepted by this service (it was started without --root)")
    base = root.resolve()
    try:
        target = (base / requested).resolve()
        inside = target.is_relative_to(base)
        is_file = inside and target.is_file()
    except (OSError, ValueError, RuntimeError) as error:  # NUL bytes, names too long, link loops
        reason = "a loop of links" if isinstance(error, RuntimeError) else getattr(error, "strerror", None)
        reason = reason or str(error)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unusable path {requested!r}: {reason}") from None
    if not inside:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"path {requested!r} is outside the served root")
    if not is_file:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"path {requested!r}: no such file under the served root")
    return target
