"""Sums up a Schemathesis NDJSON report: how often each check ran and
failed, and every failing check grouped by operation, check, status and
problem, with a count and one curl command that reproduces it.

Schemathesis itself prints one example per unique failure; this lists every
group, so that two causes behind the same check and status (say, two
different 400s of one operation) are both seen.

    python summarize.py REPORT.ndjson

GATEWAY, TOKEN_A and TOKEN_B, when set, are written back as `$GATEWAY`,
`$TOKEN_A` and `$TOKEN_B` in the commands, so they can be pasted into a shell
that has the demo's variables. Only the standard library is used.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import shlex
import sys


def problem_of(response: dict) -> tuple[str, str]:
    """The problem type and detail of an answer (ids and quoted values blanked)."""
    content = (response or {}).get("content") or {}
    raw = content.get("$base64")
    if raw is None:
        return "", ""
    try:
        body = json.loads(base64.b64decode(raw))
    except ValueError:
        return "", base64.b64decode(raw)[:60].decode("utf-8", "replace")
    if not isinstance(body, dict) or "type" not in body:
        return "", ""
    detail = re.sub(r"`[^`]*`", "`…`", str(body.get("detail", "")))
    detail = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", detail)
    return str(body["type"]), detail[:110]


def curl(request: dict) -> str:
    """A curl command sending `request` again."""
    gateway = os.environ.get("GATEWAY", "")
    tokens = {os.environ.get(name): name for name in ("TOKEN_A", "TOKEN_B") if os.environ.get(name)}
    parts = ["curl -si -X", request["method"]]
    for name, values in (request.get("headers") or {}).items():
        for value in values:
            token = value[len("Bearer ") :] if value.startswith("Bearer ") else None
            if token in tokens:
                parts.append(f'-H "{name}: Bearer ${tokens[token]}"')
            elif value == "":
                parts.append("-H " + shlex.quote(f"{name};"))
            else:
                parts.append("-H " + shlex.quote(f"{name}: {value}"))
    body = (request.get("body") or {}).get("$base64")
    if body is not None:
        parts.append("--data-binary " + shlex.quote(base64.b64decode(body).decode("utf-8", "surrogateescape")))
    uri = request["uri"]
    if gateway and uri.startswith(gateway):
        parts.append('"$GATEWAY"' + shlex.quote(uri[len(gateway) :]))
    else:
        parts.append(shlex.quote(uri))
    return " ".join(parts)


def main(path: str) -> int:
    runs: collections.Counter = collections.Counter()
    failures: collections.Counter = collections.Counter()
    groups: collections.Counter = collections.Counter()
    examples: dict = {}
    with open(path, encoding="utf-8") as report:
        for line in report:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished.get("recorder") or {}
            interactions = recorder.get("interactions") or {}
            cases = recorder.get("cases") or {}
            for case_id, checks in (recorder.get("checks") or {}).items():
                interaction = interactions.get(case_id) or {}
                case = (cases.get(case_id) or {}).get("value") or {}
                for check in checks:
                    runs[check["name"]] += 1
                    if check["status"] != "failure":
                        continue
                    failures[check["name"]] += 1
                    response = interaction.get("response") or {}
                    operation = f"{case.get('method', '?')} {case.get('path', '?')}"
                    problem, detail = problem_of(response)
                    key = (operation, check["name"], response.get("status_code"), problem, detail)
                    groups[key] += 1
                    if key not in examples and interaction.get("request"):
                        message = ((check.get("failure_info") or {}).get("failure") or {}).get("message") or ""
                        examples[key] = (curl(interaction["request"]), message.strip().splitlines())
    print("checks (times run / failed):")
    for name in sorted(runs):
        print(f"  {name:32} {runs[name]:6} / {failures[name]}")
    if not groups:
        print("no failure")
        return 0
    print(f"\nfailures, grouped ({sum(groups.values())} in {len(groups)} groups):")
    for key in sorted(groups, key=lambda k: (k[0], k[1], str(k[2]), k[3], k[4])):
        operation, check, status, problem, detail = key
        print(f"\n- {operation}  {check}  -> {status} {problem}  (x{groups[key]})")
        if detail:
            print(f"    detail: {detail}")
        command, message = examples.get(key, ("", []))
        for text in message[:4]:
            print(f"    {text}")
        if command:
            print(f"    {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
