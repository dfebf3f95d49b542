// Drives the demo gateway with a TypeScript client GENERATED from
// openapi/openapi.json: the types come from openapi-typescript (written to
// generated/schema.d.ts at test time, never edited) and the calls from
// openapi-fetch. Run by tests/contract/clients.sh, which exports GATEWAY,
// TOKEN_A and TOKEN_B; `tsc --noEmit` (strict) must pass before it runs.
//
// Exit status: 0 when every check passed, 1 otherwise.

import { randomUUID } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema.js";

type Problem = components["schemas"]["Problem"];
type JobView = components["schemas"]["JobView"];
type JobState = components["schemas"]["JobState"];

const GATEWAY = mustEnv("GATEWAY");
const TOKEN_A = mustEnv("TOKEN_A");
const TOKEN_B = mustEnv("TOKEN_B");

const SNAP1 = "000005a9-0000-4000-8000-a00000000001";
const SNAP2 = "000005a9-0000-4000-8000-a00000000002";
const SNAP3 = "000005a9-0000-4000-8000-a00000000003";
const MISSING_SNAPSHOT = "000005a9-0000-4000-8000-a000000000ff";

// Long poll: each GET /jobs/{id}?wait=WAIT_S; the whole wait for one job is
// bounded by JOB_DEADLINE_MS.
const WAIT_S = 10;
const JOB_DEADLINE_MS = 60_000;

function mustEnv(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === "") {
    console.error(`${name} is not set (run tests/contract/clients.sh)`);
    process.exit(2);
  }
  return v;
}

class CheckFailed extends Error {}

const passed: string[] = [];
const failed: string[] = [];

function ok(what: string): void {
  passed.push(what);
  console.log(`  ok    ${what}`);
}

function require(cond: boolean, what: string, detail?: unknown): void {
  if (!cond) {
    throw new CheckFailed(detail === undefined ? what : `${what}: ${JSON.stringify(detail)}`);
  }
  ok(what);
}

async function soft(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    const msg = `${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
    failed.push(msg);
    console.log(`  FAIL  ${msg}`);
  }
}

// What openapi-fetch answers: `data` on a documented success, `error` on a
// documented error status.
interface Answer<D, E> {
  data?: D;
  error?: E;
  response: Response;
}

function success<D, E>(r: Answer<D, E>, status: number, what: string): D {
  if (r.response.status !== status || r.data === undefined) {
    throw new CheckFailed(
      `${what}: expected HTTP ${status} with a body, got ${r.response.status}: ${JSON.stringify(r.error ?? r.data)}`,
    );
  }
  return r.data;
}

// True only when E is exactly the generated Problem: an error body typed
// `unknown`, `never` or anything else fails to compile where `true` is passed.
type IsProblem<E> = [E] extends [never]
  ? false
  : [E] extends [Problem]
    ? [Problem] extends [E]
      ? true
      : false
    : false;

function slug(p: Problem): string {
  const parts = p.type.replace(/\/+$/, "").split("/");
  return parts[parts.length - 1] ?? "";
}

function expectProblem<D, E extends Problem>(
  r: Answer<D, E>,
  typed: IsProblem<E>,
  status: number,
  wantSlug: string,
  what: string,
): Problem {
  if (!typed) throw new CheckFailed(`${what}: the error body is not typed as Problem`);
  if (r.response.status !== status || r.error === undefined) {
    throw new CheckFailed(
      `${what}: expected HTTP ${status} with a Problem, got ${r.response.status}: ${JSON.stringify(r.error ?? r.data)}`,
    );
  }
  const problem: Problem = r.error;
  const ctype = r.response.headers.get("content-type") ?? "";
  require(
    problem.status === status && slug(problem) === wantSlug,
    `${what} -> ${status} Problem(type=…/${wantSlug})`,
    { status: problem.status, type: problem.type },
  );
  require(
    typeof problem.title === "string" && problem.title !== "" && typeof problem.detail === "string" && problem.detail !== "",
    `${what}: Problem has title and detail`,
    problem,
  );
  require(ctype.startsWith("application/problem+json"), `${what}: Content-Type application/problem+json`, ctype);
  return problem;
}

function clientFor(token: string) {
  return createClient<paths>({ baseUrl: GATEWAY, headers: { Authorization: `Bearer ${token}` } });
}

const a = clientFor(TOKEN_A);

async function waitUntilDone(jobId: string, label: string): Promise<JobView> {
  const start = Date.now();
  let polls = 0;
  let job: JobView;
  for (;;) {
    polls += 1;
    job = success(
      await a.GET("/jobs/{job_id}", { params: { path: { job_id: jobId }, query: { wait: WAIT_S } } }),
      200,
      `GET /jobs/{id}?wait=${WAIT_S} (${label})`,
    );
    if (job.done) break;
    if (Date.now() - start > JOB_DEADLINE_MS) {
      throw new CheckFailed(`${label}: job ${jobId} still ${job.state} after ${JOB_DEADLINE_MS / 1000} s`);
    }
  }
  const took = ((Date.now() - start) / 1000).toFixed(1);
  const succeeded: JobState = "succeeded";
  require(
    job.state === succeeded,
    `${label}: long poll saw job ${jobId} reach \`succeeded\` (${polls} poll(s), ${took} s)`,
    job,
  );
  require(polls <= 10, `${label}: long poll waited instead of spinning (${polls} polls)`);
  require(
    typeof job.backup_id === "string" && job.backup_id !== "" && typeof job.finished_at === "string",
    `${label}: finished job has backup_id and finished_at`,
    job,
  );
  return job;
}

async function run(): Promise<void> {
  console.log("(a) probes, and list tenant-a's snapshots");
  const ready = success(await createClient<paths>({ baseUrl: GATEWAY }).GET("/readyz"), 200, "GET /readyz");
  require(ready.status === "ready", "GET /readyz answers a HealthStatus `ready` (no token)", ready);
  const page = success(await a.GET("/snapshots"), 200, "GET /snapshots");
  const ids = page.snapshots.map((s) => s.id);
  require(
    [SNAP1, SNAP2, SNAP3].every((id) => ids.includes(id)),
    `GET /snapshots lists tenant-a's 3 snapshots (${ids.length} in all)`,
    ids,
  );
  const paged: string[] = [];
  let snapToken: string | undefined;
  for (let i = 0; i < 50; i++) {
    const p = success(
      await a.GET("/snapshots", { params: { query: { limit: 1, page_token: snapToken } } }),
      200,
      "GET /snapshots?limit=1",
    );
    paged.push(...p.snapshots.map((s) => s.id));
    if (typeof p.next_page_token !== "string") break;
    snapToken = p.next_page_token;
  }
  require(
    JSON.stringify(paged) === JSON.stringify(ids),
    `GET /snapshots?limit=1 pages through the same ${ids.length} snapshots`,
    paged,
  );
  const snap = success(
    await a.GET("/snapshots/{snapshot_id}", { params: { path: { snapshot_id: SNAP1 } } }),
    200,
    "GET /snapshots/{id}",
  );
  require(snap.id === SNAP1 && snap.volume_id !== "", "GET /snapshots/{id} answers a SnapshotView");

  console.log("(b) create a backup");
  const name = `contract-ts-${randomUUID().slice(0, 8)}`;
  const created = await a.POST("/snapshots/{snapshot_id}/backups", {
    params: { path: { snapshot_id: SNAP1 } },
    body: {
      name,
      description: "made by tests/contract/clients/typescript/drive.ts",
      metadata: { suite: "contract" },
    },
  });
  const job1: JobView = success(created, 202, "POST /snapshots/{id}/backups");
  require(
    job1.snapshot_id === SNAP1 && !job1.done && (job1.state === "queued" || job1.state === "running"),
    `202 with a JobView (id ${job1.id}, state ${job1.state})`,
    job1,
  );
  require(
    created.response.headers.get("location") === `/jobs/${job1.id}`,
    "202 has Location: /jobs/{job_id}",
    created.response.headers.get("location"),
  );
  require(
    job1.request.name === name && job1.request.metadata?.["suite"] === "contract",
    "the job echoes the request (name, metadata)",
    job1.request,
  );

  console.log("(e) 409: the same snapshot again, at once");
  const busy = expectProblem(
    await a.POST("/snapshots/{snapshot_id}/backups", { params: { path: { snapshot_id: SNAP1 } }, body: {} }),
    true,
    409,
    "snapshot-busy",
    "POST /snapshots/{id}/backups while its backup runs",
  );
  require(busy.job_id === job1.id, "the 409 Problem names the busy job (job_id)", busy.job_id);

  console.log("(b) a second backup, of another snapshot (for paging)");
  const key = `contract-ts-${randomUUID()}`;
  const createWithKey = (body: { name: string }) =>
    a.POST("/snapshots/{snapshot_id}/backups", {
      params: { path: { snapshot_id: SNAP2 }, header: { "Idempotency-Key": key } },
      body,
    });
  const job2 = success(
    await createWithKey({ name: `${name}-2` }),
    202,
    "POST /snapshots/{id}/backups (second snapshot, Idempotency-Key)",
  );
  ok(`second job ${job2.id} on ${SNAP2}`);
  const again = success(
    await createWithKey({ name: `${name}-2` }),
    202,
    "POST /snapshots/{id}/backups retried with the same Idempotency-Key",
  );
  require(again.id === job2.id, "a retry with the same Idempotency-Key answers the same job", again.id);
  expectProblem(
    await createWithKey({ name: `${name}-other` }),
    true,
    422,
    "idempotency-key-reused",
    "the same Idempotency-Key with another body",
  );

  const job3: JobView[] = [];
  await soft("POST /snapshots/{id}/backups with no body", async () => {
    // The document makes the body optional (requestBody.required is false).
    job3.push(
      success(
        await a.POST("/snapshots/{snapshot_id}/backups", { params: { path: { snapshot_id: SNAP3 } } }),
        202,
        "POST /snapshots/{id}/backups with no body",
      ),
    );
    ok("POST /snapshots/{id}/backups with no body: 202 JobView");
  });

  console.log("(c) long-poll the jobs until they succeed");
  const done1 = await waitUntilDone(job1.id, "job 1");
  await waitUntilDone(job2.id, "job 2");
  for (const j of job3) await waitUntilDone(j.id, "job 3 (no body)");

  console.log("(d) list jobs with filters, paging with limit=1");
  const seen: string[] = [];
  let pages = 0;
  let token: string | undefined;
  for (;;) {
    pages += 1;
    if (pages > 100) throw new CheckFailed("GET /jobs?state=succeeded&limit=1: more than 100 pages");
    const p = success(
      await a.GET("/jobs", { params: { query: { state: "succeeded", limit: 1, page_token: token } } }),
      200,
      "GET /jobs?state=succeeded&limit=1",
    );
    if (p.jobs.length > 1 || p.jobs.some((j) => j.state !== "succeeded")) {
      throw new CheckFailed(`GET /jobs?state=succeeded&limit=1 page ${pages}: ${JSON.stringify(p.jobs)}`);
    }
    seen.push(...p.jobs.map((j) => j.id));
    if (typeof p.next_page_token === "string") {
      token = p.next_page_token;
      continue;
    }
    break;
  }
  require(pages >= 2, `paged through ${pages} pages of 1 following next_page_token until it was absent`);
  require(new Set(seen).size === seen.length, "no job twice across pages", seen);
  require(
    seen.includes(job1.id) && seen.includes(job2.id),
    `both new jobs are among the ${seen.length} succeeded jobs, each page in state \`succeeded\``,
    seen,
  );
  const bySnap = success(
    await a.GET("/jobs", { params: { query: { snapshot_id: SNAP1, limit: 100 } } }),
    200,
    "GET /jobs?snapshot_id=",
  );
  require(
    bySnap.jobs.every((j) => j.snapshot_id === SNAP1) && bySnap.jobs.some((j) => j.id === job1.id),
    `GET /jobs?snapshot_id=${SNAP1} answers only that snapshot's jobs, job 1 among them`,
  );
  const made = success(
    await a.GET("/snapshots/{snapshot_id}/backups", { params: { path: { snapshot_id: SNAP1 } } }),
    200,
    "GET /snapshots/{id}/backups",
  );
  require(
    made.backups.some((b) => b.id === done1.backup_id) && made.jobs.some((j) => j.id === job1.id),
    "GET /snapshots/{id}/backups shows job 1 and its Cinder backup",
  );

  console.log("(e) typed errors");
  expectProblem(
    await a.GET("/snapshots/{snapshot_id}", { params: { path: { snapshot_id: MISSING_SNAPSHOT } } }),
    true,
    404,
    "snapshot-not-found",
    "GET /snapshots/{missing}",
  );
  expectProblem(
    await a.POST("/snapshots/{snapshot_id}/backups", { params: { path: { snapshot_id: MISSING_SNAPSHOT } }, body: {} }),
    true,
    404,
    "snapshot-not-found",
    "POST /snapshots/{missing}/backups",
  );
  expectProblem(
    await a.GET("/jobs/{job_id}", { params: { path: { job_id: randomUUID() } } }),
    true,
    404,
    "job-not-found",
    "GET /jobs/{missing}",
  );
  const finished = expectProblem(
    await a.POST("/jobs/{job_id}/cancel", { params: { path: { job_id: job1.id } } }),
    true,
    409,
    "job-not-cancellable",
    "POST /jobs/{finished}/cancel",
  );
  require(finished.job_id === job1.id, "the 409 Problem names the finished job (job_id)", finished.job_id);
  expectProblem(
    await clientFor(TOKEN_B).GET("/jobs/{job_id}", { params: { path: { job_id: job1.id } } }),
    true,
    404,
    "job-not-found",
    "GET /jobs/{tenant-a's job} as tenant-b",
  );
  const bad = await clientFor("not-a-valid-token").GET("/snapshots");
  expectProblem(bad, true, 401, "unauthenticated", "GET /snapshots with a bad token");
  const challenge = bad.response.headers.get("www-authenticate") ?? "";
  require(challenge.toLowerCase().startsWith("bearer"), "401 has WWW-Authenticate: Bearer", challenge);
}

console.log(`typescript client (openapi-typescript + openapi-fetch) against ${GATEWAY}`);
try {
  await run();
} catch (e) {
  const msg = e instanceof CheckFailed ? e.message : e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : String(e);
  failed.push(msg);
  console.log(`  FAIL  ${msg}`);
}
console.log(`typescript: ${passed.length} passed, ${failed.length} failed`);
for (const f of failed) console.log(`typescript FAILED: ${f}`);
process.exit(failed.length > 0 ? 1 : 0);
