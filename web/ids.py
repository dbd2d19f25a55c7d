"""Ids in URLs. A malformed id answers exactly like a missing one (or another owner's): 404, one message."""
from __future__ import annotations

import uuid

from web.errors import ApiError


def not_found(kind: str, value) -> ApiError:
    return ApiError(404, f"there is no {kind} {value}")


def parse_id(value: str, kind: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found(kind, value) from None
