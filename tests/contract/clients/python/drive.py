"""Drives the demo gateway with the Python client GENERATED from openapi/openapi.json.

Run by tests/contract/clients.sh, which generates the package
`backup_gateway_client` (openapi-python-client, no hand edits), puts it on
PYTHONPATH and exports GATEWAY, TOKEN_A and TOKEN_B. Only the generated
functions and models are used to talk to the server; every answer must parse
into the generated type that the document names for its status.

Exit status: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

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
from backup_gateway_client.models import (
    CreateBackupRequest,
    CreateBackupRequestMetadataType0,
    HealthStatus,
    JobListResponse,
    JobState,
    JobView,
    Problem,
    SnapshotBackupsResponse,
    SnapshotListResponse,
    SnapshotView,
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
