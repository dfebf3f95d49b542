"""Drives the demo gateway with the Python client GENERATED from openapi/openapi.json.

Run by tests/contract/clients.sh, which generates the package
`backup_gateway_client` (openapi-python-client, no hand edits), puts it on
PYTHONPATH and exports GATEWAY, TOKEN_A and TOKEN_B. Only the generated
functions and models are used to talk to the server; every answer must parse
into the generated type that the document names for its status.

Section (f) starts a webhook receiver of its own on 127.0.0.1 (http.server in
a thread), which the demo may deliver to; the receiver only records what the
gateway POSTs to it and checks nothing itself.

Exit status: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import httpx
from backup_gateway_client import AuthenticatedClient, Client
from backup_gateway_client.api.health import get_readiness
from backup_gateway_client.api.jobs import cancel_job, get_job, list_jobs
from backup_gateway_client.api.snapshots import (
    create_backup,
    get_snapshot,
    list_snapshot_backups,
    list_snapshots,
)
from backup_gateway_client.api.webhooks import (
    create_webhook,
    delete_webhook,
    get_webhook,
    list_webhook_deliveries,
    list_webhooks,
    rotate_webhook_secret,
)
from backup_gateway_client.models import (
    CreateBackupRequest,
    CreateBackupRequestMetadataType0,
    CreateWebhookRequest,
    DeliveryListResponse,
    DeliveryState,
    DeliveryView,
    HealthStatus,
    JobEventType,
    JobEventView,
    JobListResponse,
    JobState,
    JobView,
    Problem,
    SnapshotBackupsResponse,
    SnapshotListResponse,
    SnapshotView,
    WebhookListResponse,
    WebhookView,
)
from backup_gateway_client.types import UNSET, Response, Unset

GATEWAY = os.environ["GATEWAY"]
TOKEN_A = os.environ["TOKEN_A"]
TOKEN_B = os.environ["TOKEN_B"]

SNAP1 = "000005a9-0000-4000-8000-a00000000001"
SNAP2 = "000005a9-0000-4000-8000-a00000000002"
SNAP3 = "000005a9-0000-4000-8000-a00000000003"
MISSING_SNAPSHOT = "000005a9-0000-4000-8000-a000000000ff"

# Long poll: each GET /jobs/{id}?wait=WAIT_S; the whole wait for one job is
# bounded by JOB_DEADLINE_S.
WAIT_S = 10
JOB_DEADLINE_S = 60.0
# Deliveries to the driver's receiver must have succeeded within this, once
# their job has.
DELIVERY_DEADLINE_S = 30.0
# A receiver refuses a webhook-timestamp further than this from its clock.
TIMESTAMP_TOLERANCE_S = 300

T = TypeVar("T")


class CheckFailed(Exception):
    pass


passed: list[str] = []
failed: list[str] = []


def ok(what: str) -> None:
    passed.append(what)
    print(f"  ok    {what}", flush=True)


def require(cond: bool, what: str, detail: object = "") -> None:
    if not cond:
        raise CheckFailed(f"{what}{': ' if detail != '' else ''}{detail}")
    ok(what)


def soft(what: str, fn: Callable[[], None]) -> None:
    """A check whose failure is recorded but does not stop the run."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - reported, the run goes on
        msg = f"{what}: {type(exc).__name__}: {exc}"
        failed.append(msg)
        print(f"  FAIL  {msg}", flush=True)


def typed(resp: Response[Any], status: int, kind: type[T], what: str) -> T:
    """The answer has `status` and was parsed into the generated `kind`."""
    body = resp.content.decode(errors="replace")[:300]
    if int(resp.status_code) != status:
        raise CheckFailed(f"{what}: expected HTTP {status}, got {int(resp.status_code)}: {body}")
    if not isinstance(resp.parsed, kind):
        raise CheckFailed(
            f"{what}: HTTP {status} parsed as {type(resp.parsed).__name__}, not the generated {kind.__name__}: {body}"
        )
    return resp.parsed


def slug(problem: Problem) -> str:
    return problem.type_.rstrip("/").rsplit("/", 1)[-1]


def expect_problem(resp: Response[Any], status: int, want_slug: str, what: str) -> Problem:
    problem = typed(resp, status, Problem, what)
    require(
        problem.status == status and slug(problem) == want_slug,
        f"{what} -> {status} Problem(type=…/{want_slug})",
        f"got status={problem.status} type={problem.type_!r}",
    )
    require(bool(problem.title) and bool(problem.detail), f"{what}: Problem has title and detail")
    ctype = resp.headers.get("content-type", "")
    require(ctype.startswith("application/problem+json"), f"{what}: Content-Type application/problem+json", ctype)
    return problem


def client_for(token: str) -> AuthenticatedClient:
    # The timeout must outlast a long poll (?wait=WAIT_S).
    return AuthenticatedClient(
        base_url=GATEWAY,
        token=token,
        timeout=httpx.Timeout(WAIT_S + 20.0),
        raise_on_unexpected_status=True,
    )


def wait_until_done(client: AuthenticatedClient, job_id: uuid.UUID, label: str) -> JobView:
    start = time.monotonic()
    polls = 0
    while True:
        polls += 1
        job = typed(
            get_job.sync_detailed(job_id=job_id, client=client, wait=WAIT_S),
            200,
            JobView,
            f"GET /jobs/{{id}}?wait={WAIT_S} ({label})",
        )
        if job.done:
            break
        if time.monotonic() - start > JOB_DEADLINE_S:
            raise CheckFailed(f"{label}: job {job_id} still {job.state} after {JOB_DEADLINE_S:.0f} s")
    took = time.monotonic() - start
    require(
        job.state == JobState.SUCCEEDED,
        f"{label}: long poll saw job {job_id} reach `succeeded` ({polls} poll(s), {took:.1f} s)",
        f"state {job.state}, error {job.error}",
    )
    # With a working long poll a ~5 s backup is seen done in a handful of
    # polls; dozens would mean `wait` is ignored and this loop spins.
    require(polls <= 10, f"{label}: long poll waited instead of spinning ({polls} polls)")
    require(
        isinstance(job.backup_id, str) and job.backup_id != "" and isinstance(job.finished_at, datetime.datetime),
        f"{label}: finished job has backup_id and finished_at",
        job.to_dict(),
    )
    return job


@dataclass(frozen=True)
class Received:
    """One POST the receiver got: the Standard Webhooks headers and the raw body."""

    path: str
    webhook_id: str
    timestamp: str
    signature: str
    body: bytes


class Receiver:
    """A webhook receiver on 127.0.0.1: records each POST and answers 204."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                got = Received(
                    path=self.path,
                    webhook_id=self.headers.get("webhook-id", ""),
                    timestamp=self.headers.get("webhook-timestamp", ""),
                    signature=self.headers.get("webhook-signature", ""),
                    body=body,
                )
                # Recorded before the answer: a delivery the gateway lists
                # as `succeeded` is already here.
                with receiver._lock:
                    receiver._received.append(got)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def posts(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self._received if r.path == path]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def signature_ok(secret: str, got: Received) -> bool:
    """Standard Webhooks: some `v1,<sig>` of the space-separated header is
    base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")),
    the key being the bytes whose base64 follows `whsec_` in the secret."""
    if not secret.startswith("whsec_"):
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    signed = f"{got.webhook_id}.{got.timestamp}.".encode() + got.body
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        part.startswith("v1,") and hmac.compare_digest(part.removeprefix("v1,"), want)
        for part in got.signature.split(" ")
    )


def timestamp_fresh(got: Received) -> bool:
    return got.timestamp.isdigit() and abs(int(got.timestamp) - time.time()) <= TIMESTAMP_TOLERANCE_S


def event_of(got: Received) -> JobEventView:
    """The POSTed body, parsed into the generated JobEventView (the document's `job-event` webhook)."""
    try:
        return JobEventView.from_dict(json.loads(got.body))
    except Exception as exc:
        raise CheckFailed(
            f"the body POSTed to {got.path} is not a JobEventView ({type(exc).__name__}: {exc}): {got.body[:300]!r}"
        ) from exc


def wait_for_deliveries(
    client: AuthenticatedClient, webhook_id: uuid.UUID, callback_id: uuid.UUID, job_id: uuid.UUID
) -> tuple[DeliveryListResponse, DeliveryListResponse]:
    """Polls both webhooks' deliveries until the subscription has a
    `succeeded` one and the callback's job.succeeded has `succeeded` too."""

    def summary(page: DeliveryListResponse) -> list[str]:
        return [f"{d.event_type}:{d.status}:{d.attempts}:{d.last_status_code}:{d.last_error}" for d in page.deliveries]

    start = time.monotonic()
    while True:
        subscription = typed(
            list_webhook_deliveries.sync_detailed(webhook_id, client=client),
            200,
            DeliveryListResponse,
            "GET /webhooks/{id}/deliveries (the subscription)",
        )
        callback = typed(
            list_webhook_deliveries.sync_detailed(callback_id, client=client),
            200,
            DeliveryListResponse,
            "GET /webhooks/{job_id}/deliveries (the callback)",
        )
        if any(d.status == DeliveryState.SUCCEEDED and d.job_id == job_id for d in subscription.deliveries) and any(
            d.status == DeliveryState.SUCCEEDED and d.event_type == JobEventType.JOB_SUCCEEDED
            for d in callback.deliveries
        ):
            ok(f"deliveries to the subscription and the callback `succeeded` ({time.monotonic() - start:.1f} s)")
            return subscription, callback
        if time.monotonic() - start > DELIVERY_DEADLINE_S:
            raise CheckFailed(
                f"no succeeded job.succeeded delivery within {DELIVERY_DEADLINE_S:.0f} s: "
                f"subscription {summary(subscription)}, callback {summary(callback)}"
            )
        time.sleep(0.25)


def check_webhooks(a: AuthenticatedClient, rx: Receiver) -> None:
    name = f"contract-python-{uuid.uuid4().hex[:8]}"
    hooks_url = f"{rx.url}/hooks"
    description = "made by tests/contract/clients/python/drive.py"
    created = create_webhook.sync_detailed(
        client=a,
        body=CreateWebhookRequest(url=hooks_url, event_types=[JobEventType.JOB_SUCCEEDED], description=description),
    )
    sub = typed(created, 201, WebhookView, "POST /webhooks")
    secret = sub.secret if isinstance(sub.secret, str) else ""
    require(
        secret.startswith("whsec_")
        and sub.url == hooks_url
        and sub.description == description
        and sub.event_types == [JobEventType.JOB_SUCCEEDED]
        and sub.job_id is None,
        f"201 with a typed WebhookView (id {sub.id}, event_types [job.succeeded]) and its whsec_ secret",
        {k: v for k, v in sub.to_dict().items() if k != "secret"},
    )
    require(
        created.headers.get("location") == f"/webhooks/{sub.id}",
        "201 has Location: /webhooks/{webhook_id}",
        created.headers.get("location"),
    )

    listed: list[WebhookView] = []
    pages = 0
    token: str | Unset = UNSET
    while True:
        pages += 1
        if pages > 100:
            raise CheckFailed("GET /webhooks?limit=1: more than 100 pages")
        wp = typed(
            list_webhooks.sync_detailed(client=a, limit=1, page_token=token),
            200,
            WebhookListResponse,
            "GET /webhooks?limit=1",
        )
        if len(wp.webhooks) > 1:
            raise CheckFailed(f"GET /webhooks?limit=1 page {pages}: {len(wp.webhooks)} webhooks")
        listed += wp.webhooks
        if not isinstance(wp.next_page_token, str):
            break
        token = wp.next_page_token
    mine = [w for w in listed if w.id == sub.id]
    require(
        len(mine) == 1 and mine[0].url == hooks_url and not isinstance(mine[0].secret, str),
        f"GET /webhooks?limit=1 ({pages} page(s) along next_page_token) lists the new webhook once, without its secret",
        [w.to_dict() for w in mine],
    )
    got = typed(get_webhook.sync_detailed(sub.id, client=a), 200, WebhookView, "GET /webhooks/{id}")
    require(
        got.id == sub.id
        and got.url == hooks_url
        and got.event_types == [JobEventType.JOB_SUCCEEDED]
        and not isinstance(got.secret, str),
        "GET /webhooks/{id} answers the typed WebhookView, without its secret",
        got.to_dict(),
    )

    # SNAP1's earlier job has ended (section (c)): the snapshot is free.
    callback_url = f"{rx.url}/callback"
    resp = create_backup.sync_detailed(
        SNAP1, client=a, body=CreateBackupRequest(name=f"{name}-callback", callback_url=callback_url)
    )
    job = typed(resp, 202, JobView, "POST /snapshots/{id}/backups with callback_url")
    callback_secret = job.callback_secret if isinstance(job.callback_secret, str) else ""
    require(
        callback_secret.startswith("whsec_"),
        f"202 JobView (id {job.id}) carries a whsec_ callback_secret",
        {k: v for k, v in job.to_dict().items() if k != "callback_secret"},
    )
    require(
        job.links.additional_properties.get("callback") == f"/webhooks/{job.id}",
        "202 JobView has links.callback: /webhooks/{job_id}",
        job.links.to_dict(),
    )
    callback_hook = typed(
        get_webhook.sync_detailed(job.id, client=a), 200, WebhookView, "GET /webhooks/{job_id} (the callback)"
    )
    require(
        callback_hook.job_id == job.id
        and callback_hook.url == callback_url
        and not isinstance(callback_hook.secret, str),
        "GET links.callback answers a typed WebhookView with the job's job_id and the callback_url",
        callback_hook.to_dict(),
    )
    wait_until_done(a, job.id, "job 4 (callback_url)")

    deliveries, _ = wait_for_deliveries(a, sub.id, job.id, job.id)
    hooks = rx.posts("/hooks")
    hook_events = [(r, event_of(r)) for r in hooks]
    require(
        len(hooks) >= 1 and all(e.type_ == JobEventType.JOB_SUCCEEDED for _, e in hook_events),
        f"every POST to /hooks ({len(hooks)}) is a JobEventView of type job.succeeded (the subscription's event_types)",
        [str(e.type_) for _, e in hook_events],
    )
    for_job = [r for r, e in hook_events if e.data.job_id == job.id and e.data.state == JobState.SUCCEEDED]
    require(
        len(for_job) >= 1,
        f"the receiver got a POST at /hooks: job.succeeded with data.job_id {job.id}",
        [e.to_dict() for _, e in hook_events],
    )
    hook = for_job[0]
    require(
        signature_ok(secret, hook),
        "its webhook-signature verifies: v1, base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{body} "
        "keyed with the subscription's secret",
        hook.signature,
    )
    require(
        not signature_ok(callback_secret, hook),
        "the /hooks signature does not verify with another secret (the callback's): the check tells secrets apart",
    )
    require(
        timestamp_fresh(hook),
        f"its webhook-timestamp is within {TIMESTAMP_TOLERANCE_S} s of this machine's clock",
        hook.timestamp,
    )

    callbacks = [(r, e) for r, e in ((r, event_of(r)) for r in rx.posts("/callback")) if e.data.job_id == job.id]
    types = [str(e.type_) for _, e in callbacks]
    require(
        len(types) >= 2 and types[0] == JobEventType.JOB_CREATED and types[-1] == JobEventType.JOB_SUCCEEDED,
        f"the callback_url got the job's events in order: {' '.join(types)}",
        types,
    )
    require(
        all(signature_ok(callback_secret, r) for r, _ in callbacks),
        f"each of the {len(callbacks)} callback POSTs verifies with the 202's callback_secret",
        [r.signature for r, _ in callbacks if not signature_ok(callback_secret, r)],
    )
    require(
        all(timestamp_fresh(r) for r, _ in callbacks),
        f"each callback POST's webhook-timestamp is within {TIMESTAMP_TOLERANCE_S} s of this machine's clock",
        [r.timestamp for r, _ in callbacks],
    )

    delivered: list[DeliveryView] = [d for d in deliveries.deliveries if d.job_id == job.id]
    require(
        len(delivered) == 1,
        "GET /webhooks/{id}/deliveries: a typed DeliveryListResponse with one delivery for the job",
        [d.to_dict() for d in deliveries.deliveries],
    )
    d = delivered[0]
    require(
        d.status == DeliveryState.SUCCEEDED
        and d.attempts >= 1
        and d.last_status_code == 204
        and d.event_type == JobEventType.JOB_SUCCEEDED
        and d.webhook_id == sub.id,
        f"the delivery is `succeeded` after {d.attempts} attempt(s), last_status_code 204, event_type job.succeeded",
        d.to_dict(),
    )
    require(
        str(d.id) in [r.webhook_id for r in for_job],
        "the delivery's id is the webhook-id header the receiver got",
        {"delivery": str(d.id), "headers": [r.webhook_id for r in for_job]},
    )

    # The body is optional (requestBody.required: false): the generated
    # function's default sends none, and the gateway makes the secret.
    rotated = typed(
        rotate_webhook_secret.sync_detailed(sub.id, client=a),
        200,
        WebhookView,
        "POST /webhooks/{id}/rotate-secret",
    )
    new_secret = rotated.secret if isinstance(rotated.secret, str) else ""
    require(
        rotated.id == sub.id and new_secret.startswith("whsec_") and new_secret != secret,
        "POST /webhooks/{id}/rotate-secret answers a typed WebhookView with a new whsec_ secret",
        {k: v for k, v in rotated.to_dict().items() if k != "secret"},
    )
    require(
        isinstance(rotated.previous_secret_expires_at, datetime.datetime)
        and rotated.previous_secret_expires_at > datetime.datetime.now(datetime.UTC),
        "the rotated WebhookView has previous_secret_expires_at, in the future (the old secret still signs)",
        rotated.previous_secret_expires_at,
    )

    gone = delete_webhook.sync_detailed(sub.id, client=a)
    require(
        int(gone.status_code) == 204,
        "DELETE /webhooks/{id} answers 204",
        f"{int(gone.status_code)} {gone.content.decode(errors='replace')[:300]}",
    )
    expect_problem(get_webhook.sync_detailed(sub.id, client=a), 404, "webhook-not-found", "GET /webhooks/{deleted}")
    expect_problem(
        create_webhook.sync_detailed(client=a, body=CreateWebhookRequest(url="http://10.0.0.1/x")),
        400,
        "webhook-target-not-allowed",
        "POST /webhooks with url http://10.0.0.1/x (outside the demo's allow-list)",
    )


def run() -> None:
    a = client_for(TOKEN_A)

    print("(a) probes, and list tenant-a's snapshots")
    ready = typed(get_readiness.sync_detailed(client=Client(base_url=GATEWAY)), 200, HealthStatus, "GET /readyz")
    require(ready.status == "ready", "GET /readyz answers a HealthStatus `ready` (no token)", ready.to_dict())
    page = typed(list_snapshots.sync_detailed(client=a), 200, SnapshotListResponse, "GET /snapshots")
    ids = [s.id for s in page.snapshots]
    require(
        {SNAP1, SNAP2, SNAP3} <= set(ids),
        f"GET /snapshots lists tenant-a's 3 snapshots ({len(ids)} in all)",
        ids,
    )
    paged: list[str] = []
    token: str | Unset = UNSET
    for _ in range(50):
        p = typed(
            list_snapshots.sync_detailed(client=a, limit=1, page_token=token),
            200,
            SnapshotListResponse,
            "GET /snapshots?limit=1",
        )
        paged += [s.id for s in p.snapshots]
        if not isinstance(p.next_page_token, str):
            break
        token = p.next_page_token
    require(paged == ids, f"GET /snapshots?limit=1 pages through the same {len(ids)} snapshots", paged)
    snap = typed(get_snapshot.sync_detailed(SNAP1, client=a), 200, SnapshotView, "GET /snapshots/{id}")
    require(snap.id == SNAP1 and snap.volume_id != "", "GET /snapshots/{id} answers a typed SnapshotView")

    print("(b) create a backup")
    name = f"contract-python-{uuid.uuid4().hex[:8]}"
    resp = create_backup.sync_detailed(
        SNAP1,
        client=a,
        body=CreateBackupRequest(
            name=name,
            description="made by tests/contract/clients/python/drive.py",
            metadata=CreateBackupRequestMetadataType0.from_dict({"suite": "contract"}),
        ),
    )
    job1 = typed(resp, 202, JobView, "POST /snapshots/{id}/backups")
    require(
        isinstance(job1.id, uuid.UUID)
        and job1.snapshot_id == SNAP1
        and not job1.done
        and job1.state in (JobState.QUEUED, JobState.RUNNING),
        f"202 with a typed JobView (id {job1.id}, state {job1.state})",
        job1.to_dict(),
    )
    require(
        resp.headers.get("location") == f"/jobs/{job1.id}",
        "202 has Location: /jobs/{job_id}",
        resp.headers.get("location"),
    )
    require(
        job1.request.name == name
        and not isinstance(job1.request.metadata, Unset)
        and job1.request.metadata.additional_properties.get("suite") == "contract",
        "the job echoes the request (name, metadata)",
        job1.request.to_dict(),
    )

    print("(e) 409: the same snapshot again, at once")
    busy = expect_problem(
        create_backup.sync_detailed(SNAP1, client=a, body=CreateBackupRequest()),
        409,
        "snapshot-busy",
        "POST /snapshots/{id}/backups while its backup runs",
    )
    require(busy.job_id == str(job1.id), "the 409 Problem names the busy job (job_id)", busy.job_id)

    print("(b) a second backup, of another snapshot (for paging)")
    key = f"contract-python-{uuid.uuid4()}"
    job2 = typed(
        create_backup.sync_detailed(SNAP2, client=a, body=CreateBackupRequest(name=f"{name}-2"), idempotency_key=key),
        202,
        JobView,
        "POST /snapshots/{id}/backups (second snapshot, Idempotency-Key)",
    )
    ok(f"second job {job2.id} on {SNAP2}")
    again = typed(
        create_backup.sync_detailed(SNAP2, client=a, body=CreateBackupRequest(name=f"{name}-2"), idempotency_key=key),
        202,
        JobView,
        "POST /snapshots/{id}/backups retried with the same Idempotency-Key",
    )
    require(again.id == job2.id, "a retry with the same Idempotency-Key answers the same job", again.id)
    expect_problem(
        create_backup.sync_detailed(
            SNAP2, client=a, body=CreateBackupRequest(name=f"{name}-other"), idempotency_key=key
        ),
        422,
        "idempotency-key-reused",
        "the same Idempotency-Key with another body",
    )

    job3: list[JobView] = []

    def create_without_body() -> None:
        # The document makes the body optional (requestBody.required is
        # false): the generated function's default must work.
        job3.append(
            typed(
                create_backup.sync_detailed(SNAP3, client=a),
                202,
                JobView,
                "POST /snapshots/{id}/backups with no body (the generated default)",
            )
        )
        ok("POST /snapshots/{id}/backups with no body: 202 JobView")

    soft("POST /snapshots/{id}/backups with no body (the generated default)", create_without_body)

    print("(c) long-poll the jobs until they succeed")
    done1 = wait_until_done(a, job1.id, "job 1")
    wait_until_done(a, job2.id, "job 2")
    for j in job3:
        wait_until_done(a, j.id, "job 3 (no body)")

    print("(d) list jobs with filters, paging with limit=1")
    seen: list[str] = []
    pages = 0
    token = UNSET
    while True:
        pages += 1
        if pages > 100:
            raise CheckFailed("GET /jobs?state=succeeded&limit=1: more than 100 pages")
        jp = typed(
            list_jobs.sync_detailed(client=a, state=JobState.SUCCEEDED, limit=1, page_token=token),
            200,
            JobListResponse,
            "GET /jobs?state=succeeded&limit=1",
        )
        if len(jp.jobs) > 1 or any(j.state != JobState.SUCCEEDED for j in jp.jobs):
            raise CheckFailed(f"GET /jobs?state=succeeded&limit=1 page {pages}: {[j.to_dict() for j in jp.jobs]}")
        seen += [str(j.id) for j in jp.jobs]
        if isinstance(jp.next_page_token, str):
            token = jp.next_page_token
            continue
        break
    require(pages >= 2, f"paged through {pages} pages of 1 following next_page_token until it was absent")
    require(len(seen) == len(set(seen)), "no job twice across pages", seen)
    require(
        str(job1.id) in seen and str(job2.id) in seen,
        f"both new jobs are among the {len(seen)} succeeded jobs, each page in state `succeeded`",
        seen,
    )
    by_snap = typed(
        list_jobs.sync_detailed(client=a, snapshot_id=SNAP1, limit=100),
        200,
        JobListResponse,
        "GET /jobs?snapshot_id=",
    )
    require(
        all(j.snapshot_id == SNAP1 for j in by_snap.jobs) and str(job1.id) in [str(j.id) for j in by_snap.jobs],
        f"GET /jobs?snapshot_id={SNAP1} answers only that snapshot's jobs, job 1 among them",
    )
    made = typed(
        list_snapshot_backups.sync_detailed(SNAP1, client=a),
        200,
        SnapshotBackupsResponse,
        "GET /snapshots/{id}/backups",
    )
    require(
        done1.backup_id in [b.id for b in made.backups] and str(job1.id) in [str(j.id) for j in made.jobs],
        "GET /snapshots/{id}/backups shows job 1 and its Cinder backup",
    )

    print("(e) typed errors")
    expect_problem(
        get_snapshot.sync_detailed(MISSING_SNAPSHOT, client=a), 404, "snapshot-not-found", "GET /snapshots/{missing}"
    )
    expect_problem(
        create_backup.sync_detailed(MISSING_SNAPSHOT, client=a, body=CreateBackupRequest()),
        404,
        "snapshot-not-found",
        "POST /snapshots/{missing}/backups",
    )
    expect_problem(get_job.sync_detailed(uuid.uuid4(), client=a), 404, "job-not-found", "GET /jobs/{missing}")
    finished = expect_problem(
        cancel_job.sync_detailed(job1.id, client=a),
        409,
        "job-not-cancellable",
        "POST /jobs/{finished}/cancel",
    )
    require(finished.job_id == str(job1.id), "the 409 Problem names the finished job (job_id)", finished.job_id)
    expect_problem(
        get_job.sync_detailed(job1.id, client=client_for(TOKEN_B)),
        404,
        "job-not-found",
        "GET /jobs/{tenant-a's job} as tenant-b",
    )
    bad = list_snapshots.sync_detailed(client=client_for("not-a-valid-token"))
    expect_problem(bad, 401, "unauthenticated", "GET /snapshots with a bad token")
    require(
        bad.headers.get("www-authenticate", "").lower().startswith("bearer"),
        "401 has WWW-Authenticate: Bearer",
        bad.headers.get("www-authenticate"),
    )

    print("(f) webhooks")
    with Receiver() as rx:
        check_webhooks(a, rx)


def main() -> int:
    print(f"python client (openapi-python-client) against {GATEWAY}")
    try:
        run()
    except CheckFailed as exc:
        failed.append(str(exc))
        print(f"  FAIL  {exc}", flush=True)
    except Exception as exc:  # noqa: BLE001 - any error of the generated client fails the check
        failed.append(f"{type(exc).__name__}: {exc}")
        print(f"  FAIL  {type(exc).__name__}: {exc}", flush=True)
        traceback.print_exc()
    print(f"python: {len(passed)} passed, {len(failed)} failed")
    for f in failed:
        print(f"python FAILED: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
