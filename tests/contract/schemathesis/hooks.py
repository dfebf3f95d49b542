"""Schemathesis hooks of tests/contract/schemathesis.sh.

Three values are valid only by the server's own word, which no schema can
state, so that a value Schemathesis makes up to fit the schema is still
refused, rightly:

- `page_token` is opaque: only a token the listing gave out is valid (any
  other is a documented 400), and every string fits the schema. A made-up
  token is replaced by a real one, asked of the gateway once (those of the
  webhook listings were given out while the script primed the demo, and
  kept in $PAGE_TOKENS: a run may delete those webhooks; a position in one
  webhook's deliveries is a position in any webhook's).
- A webhook's `url` and a create's `callback_url` must be within the
  operator's allow-list (any other is a documented 400
  `webhook-target-not-allowed`): a made-up URL is replaced by one on this
  machine, which the demo allows (at a port nobody listens on).
- `Idempotency-Key` binds a key to the first request sent with it: the same
  key with another request is a documented 422. A valid case's key is
  replaced by a fresh one, so that each case is a first use. The header is
  looked for in any mapping: Schemathesis keeps headers in a
  case-insensitive one, and a `dict` check let the stateful phase send keys
  such as `c` unreplaced, which collided with earlier uses.

Only valid cases are changed, and only those two values: a case made to
break the schema (a missing header, a bad value) reaches the server as
generated, and every check runs on every case.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
import uuid
from collections.abc import MutableMapping
from functools import cache
from typing import Any

import schemathesis

LISTINGS = {"/jobs", "/snapshots", "/webhooks", "/webhooks/{webhook_id}/deliveries"}
ALLOWED_URL = "http://127.0.0.1:9/schemathesis"

# The document's pattern for Idempotency-Key (1 to 255 visible ASCII
# characters other than `"` and a backslash, optionally quoted).
VALID_KEY = re.compile(r'^([!#-\[\]-~]{1,255}|"[!#-\[\]-~]{1,255}")$')


@cache
def real_page_token(path: str) -> str:
    """A `next_page_token` the gateway gave out for `path` (tenant-a's)."""
    primed = os.environ.get("PAGE_TOKENS")
    if primed:
        with open(primed, encoding="utf-8") as tokens:
            token = json.load(tokens).get(path)
        if token:
            return str(token)
    request = urllib.request.Request(
        f"{os.environ['GATEWAY']}{path}?limit=1",
        headers={"Authorization": f"Bearer {os.environ['TOKEN_A']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.load(response)["next_page_token"]
    if not token:
        raise RuntimeError(f"GET {path}?limit=1 gave no next_page_token: the demo needs two or more")
    return token


def generated_validly(case: schemathesis.Case) -> bool:
    """True unless the case was generated to break the schema somewhere."""
    meta = case.meta
    return meta is None or not meta.generation.mode.is_negative


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """Gives a valid case the two values, where they fit the schema; runs
    before every call, the stateful phase's included."""
    operation = case.operation
    # A case made to be refused is sent as generated: changing it would make
    # Schemathesis take it for valid (and stop leaving out the header it
    # meant to leave out).
    if not generated_validly(case):
        return
    # Mappings, not only dicts: Schemathesis keeps a case's headers in a
    # case-insensitive mapping (a `dict` check let the stateful phase's
    # keys through unreplaced).
    if (
        operation.method.upper() == "GET"
        and operation.path in LISTINGS
        and isinstance(case.query, MutableMapping)
        and isinstance(case.query.get("page_token"), str)
    ):
        case.query["page_token"] = real_page_token(operation.path)
    if operation.method.upper() == "POST" and isinstance(case.body, MutableMapping):
        for field in ("url", "callback_url"):
            if isinstance(case.body.get(field), str):
                case.body[field] = ALLOWED_URL
    if isinstance(case.headers, MutableMapping):
        for name in list(case.headers):
            key = case.headers[name]
            if name.lower() == "idempotency-key" and isinstance(key, str) and VALID_KEY.fullmatch(key):
                case.headers[name] = f"st-{uuid.uuid4()}"
