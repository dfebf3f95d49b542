"""Schemathesis hooks of tests/contract/schemathesis.sh.

Two values are valid only by the server's own word, which no schema can
state, so that a value Schemathesis makes up to fit the schema is still
refused, rightly:

- `page_token` is opaque: only a token the listing gave out is valid (any
  other is a documented 400). A positive case's made-up token is replaced
  by a real one, asked of the gateway once.
- `Idempotency-Key` binds a key to the first request sent with it: the same
  key with another request is a documented 422. A positive case's key is
  replaced by a fresh one, so that each case is a first use.

Only positive cases, and only those two values, are changed: negative
cases reach the server as generated, and every check runs on every case.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from functools import cache
from typing import Any

import schemathesis
from schemathesis.generation.modes import GenerationMode
from schemathesis.core.parameters import ParameterLocation

LISTINGS = {"/jobs", "/snapshots"}


@cache
def real_page_token(path: str) -> str:
    """A `next_page_token` the gateway gave out for `path` (tenant-a's)."""
    request = urllib.request.Request(
        f"{os.environ['GATEWAY']}{path}?limit=1",
        headers={"Authorization": f"Bearer {os.environ['TOKEN_A']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.load(response)["next_page_token"]
    if not token:
        raise RuntimeError(f"GET {path}?limit=1 gave no next_page_token: the demo needs two or more")
    return token


def generated_validly(case: schemathesis.Case, location: ParameterLocation) -> bool:
    """True when the case's `location` was generated to fit the schema."""
    meta = case.meta
    if meta is None:
        return True
    component = meta.components.get(location)
    return component is None or component.mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """Gives a positive case the two values; runs before every call, the
    stateful phase's included."""
    operation = case.operation
    if (
        operation.method.upper() == "GET"
        and operation.path in LISTINGS
        and isinstance(case.query, dict)
        and "page_token" in case.query
        and generated_validly(case, ParameterLocation.QUERY)
    ):
        case.query["page_token"] = real_page_token(operation.path)
    if (
        isinstance(case.headers, dict)
        and "Idempotency-Key" in case.headers
        and generated_validly(case, ParameterLocation.HEADER)
    ):
        case.headers["Idempotency-Key"] = f"st-{uuid.uuid4()}"
