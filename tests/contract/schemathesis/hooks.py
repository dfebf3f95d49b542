"""Schemathesis hooks of tests/contract/schemathesis.sh.

Two values are valid only by the server's own word, which no schema can
state, so that a value Schemathesis makes up to fit the schema is still
refused, rightly:

- `page_token` is opaque: only a token the listing gave out is valid (any
  other is a documented 400), and every string fits the schema. A made-up
  token is replaced by a real one, asked of the gateway once.
- `Idempotency-Key` binds a key to the first request sent with it: the same
  key with another request is a documented 422. Every key that fits the
  schema is replaced by a fresh one, so that each case is a first use. This
  goes by the value itself, not by how the case was generated: the
  stateful phase sent, as a valid case, a key `c` left unreplaced because
  its header was recorded as generated otherwise, and it collided with an
  earlier use of `c`.

Only those two values are changed, and only where they fit the schema:
a key or token made to break it reaches the server as generated, and every
check runs on every case.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
import uuid
from functools import cache
from typing import Any

import schemathesis

LISTINGS = {"/jobs", "/snapshots"}

# The document's pattern for Idempotency-Key (1 to 255 visible ASCII
# characters other than `"` and a backslash, optionally quoted).
VALID_KEY = re.compile(r'^([!#-\[\]-~]{1,255}|"[!#-\[\]-~]{1,255}")$')


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


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """Gives a case the two values where they fit the schema; runs before
    every call, the stateful phase's included."""
    operation = case.operation
    if (
        operation.method.upper() == "GET"
        and operation.path in LISTINGS
        and isinstance(case.query, dict)
        and isinstance(case.query.get("page_token"), str)
    ):
        case.query["page_token"] = real_page_token(operation.path)
    if isinstance(case.headers, dict):
        key = case.headers.get("Idempotency-Key")
        if isinstance(key, str) and VALID_KEY.fullmatch(key):
            case.headers["Idempotency-Key"] = f"st-{uuid.uuid4()}"
