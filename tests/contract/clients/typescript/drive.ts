// Drives the demo gateway with a TypeScript client GENERATED from
// openapi/openapi.json: the types come from openapi-typescript (written to
// generated/schema.d.ts at test time, never edited) and the calls from
// openapi-fetch. Run by tests/contract/clients.sh, which exports GATEWAY,
// TOKEN_A and TOKEN_B; `tsc --noEmit` (strict) must pass before it runs.
// Section (f) starts a webhook receiver of its own on 127.0.0.1 (node:http),
// which the demo may deliver to; the receiver only records what the gateway
// POSTs to it and checks nothing itself.
//
// Exit status: 0 when every check passed, 1 otherwise.

import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import createClient from "openapi-fetch";
import type { components, paths, webhooks } from "./generated/schema.js";

type Problem = components["schemas"]["Problem"];
type JobView = components["schemas"]["JobView"];
type JobState = components["schemas"]["JobState"];
type WebhookView = components["schemas"]["WebhookView"];
type DeliveryListResponse = components["schemas"]["DeliveryListResponse"];
type JobEventType = components["schemas"]["JobEventType"];
// What the gateway POSTs to a webhook: the document's `webhooks` section.
type JobEvent = webhooks["job-event"]["post"]["requestBody"]["content"]["application/json"];

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
// Deliveries to the driver's receiver must have succeeded within this, once
// their job has.
const DELIVERY_DEADLINE_MS = 30_000;
// A receiver refuses a webhook-timestamp further than this from its clock.
const TIMESTAMP_TOLERANCE_S = 300;

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

// One POST the receiver got: the Standard Webhooks headers and the raw body.
interface Received {
  path: string;
  webhookId: string;
  timestamp: string;
  signature: string;
  body: Buffer;
}

// A webhook receiver on 127.0.0.1: records each POST and answers 204.
interface Receiver {
  url: string;
  posts(path: string): Received[];
  close(): Promise<void>;
}

function header(req: IncomingMessage, name: string): string {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(", ") : (v ?? "");
}

async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      // Recorded before the answer: a delivery the gateway lists as
      // `succeeded` is already here.
      if (req.method === "POST") {
        received.push({
          path: req.url ?? "",
          webhookId: header(req, "webhook-id"),
          timestamp: header(req, "webhook-timestamp"),
          signature: header(req, "webhook-signature"),
          body: Buffer.concat(chunks),
        });
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") {
    throw new CheckFailed(`the webhook receiver has no TCP address: ${String(address)}`);
  }
  return {
    url: `http://127.0.0.1:${address.port}`,
    posts: (path) => received.filter((r) => r.path === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// Standard Webhooks: some `v1,<sig>` of the space-separated header is
// base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")), the
// key being the bytes whose base64 follows `whsec_` in the secret.
function signatureOk(secret: string, got: Received): boolean {
  if (!secret.startsWith("whsec_")) return false;
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const want = Buffer.from(
    createHmac("sha256", key).update(`${got.webhookId}.${got.timestamp}.`).update(got.body).digest("base64"),
  );
  return got.signature.split(" ").some((part) => {
    if (!part.startsWith("v1,")) return false;
    const sig = Buffer.from(part.slice("v1,".length));
    return sig.length === want.length && timingSafeEqual(sig, want);
  });
}

function timestampFresh(got: Received): boolean {
  return /^[0-9]+$/.test(got.timestamp) && Math.abs(Number(got.timestamp) - Date.now() / 1000) <= TIMESTAMP_TOLERANCE_S;
}

// The POSTed body as the document's `job-event` webhook types it (a
// JobEventView); openapi-fetch validates nothing, so the fields used are
// checked here.
function eventOf(got: Received): JobEvent {
  const text = got.body.toString("utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new CheckFailed(`the body POSTed to ${got.path} is not JSON (${String(e)}): ${text.slice(0, 300)}`);
  }
  const event = parsed as Partial<JobEvent> | null;
  if (
    typeof event !== "object" ||
    event === null ||
    typeof event.type !== "string" ||
    typeof event.timestamp !== "string" ||
    typeof event.data?.job_id !== "string" ||
    typeof event.data.state !== "string"
  ) {
    throw new CheckFailed(`the body POSTed to ${got.path} is not a JobEventView: ${text.slice(0, 300)}`);
  }
  return event as JobEvent;
}

// Polls both webhooks' deliveries until the subscription has a `succeeded`
// one for the job and the callback's job.succeeded is `succeeded` too.
async function waitForDeliveries(
  webhookId: string,
  callbackId: string,
  jobId: string,
): Promise<[DeliveryListResponse, DeliveryListResponse]> {
  const summary = (page: DeliveryListResponse) =>
    page.deliveries.map((d) => `${d.event_type}:${d.status}:${d.attempts}:${d.last_status_code}:${d.last_error}`);
  const start = Date.now();
  for (;;) {
    const subscription = success(
      await a.GET("/webhooks/{webhook_id}/deliveries", { params: { path: { webhook_id: webhookId } } }),
      200,
      "GET /webhooks/{id}/deliveries (the subscription)",
    );
    const callback = success(
      await a.GET("/webhooks/{webhook_id}/deliveries", { params: { path: { webhook_id: callbackId } } }),
      200,
      "GET /webhooks/{job_id}/deliveries (the callback)",
    );
    if (
      subscription.deliveries.some((d) => d.status === "succeeded" && d.job_id === jobId) &&
      callback.deliveries.some((d) => d.status === "succeeded" && d.event_type === "job.succeeded")
    ) {
      ok(`deliveries to the subscription and the callback \`succeeded\` (${((Date.now() - start) / 1000).toFixed(1)} s)`);
      return [subscription, callback];
    }
    if (Date.now() - start > DELIVERY_DEADLINE_MS) {
      throw new CheckFailed(
        `no succeeded job.succeeded delivery within ${DELIVERY_DEADLINE_MS / 1000} s: ` +
          `subscription ${JSON.stringify(summary(subscription))}, callback ${JSON.stringify(summary(callback))}`,
      );
    }
    await sleep(250);
  }
}

async function checkWebhooks(rx: Receiver): Promise<void> {
  const name = `contract-ts-${randomUUID().slice(0, 8)}`;
  const hooksUrl = `${rx.url}/hooks`;
  const description = "made by tests/contract/clients/typescript/drive.ts";
  const created = await a.POST("/webhooks", {
    body: { url: hooksUrl, event_types: ["job.succeeded"], description },
  });
  const sub: WebhookView = success(created, 201, "POST /webhooks");
  const secret = sub.secret ?? "";
  require(
    secret.startsWith("whsec_") &&
      sub.url === hooksUrl &&
      sub.description === description &&
      JSON.stringify(sub.event_types) === JSON.stringify(["job.succeeded"]) &&
      sub.job_id === null,
    `201 with a WebhookView (id ${sub.id}, event_types [job.succeeded]) and its whsec_ secret`,
    { ...sub, secret: undefined },
  );
  require(
    created.response.headers.get("location") === `/webhooks/${sub.id}`,
    "201 has Location: /webhooks/{webhook_id}",
    created.response.headers.get("location"),
  );

  const listed: WebhookView[] = [];
  let pages = 0;
  let token: string | undefined;
  for (;;) {
    pages += 1;
    if (pages > 100) throw new CheckFailed("GET /webhooks?limit=1: more than 100 pages");
    const p = success(
      await a.GET("/webhooks", { params: { query: { limit: 1, page_token: token } } }),
      200,
      "GET /webhooks?limit=1",
    );
    if (p.webhooks.length > 1) {
      throw new CheckFailed(`GET /webhooks?limit=1 page ${pages}: ${p.webhooks.length} webhooks`);
    }
    listed.push(...p.webhooks);
    if (typeof p.next_page_token !== "string") break;
    token = p.next_page_token;
  }
  const mine = listed.filter((w) => w.id === sub.id);
  require(
    mine.length === 1 && mine[0]?.url === hooksUrl && mine[0].secret == null,
    `GET /webhooks?limit=1 (${pages} page(s) along next_page_token) lists the new webhook once, without its secret`,
    mine,
  );
  const got = success(
    await a.GET("/webhooks/{webhook_id}", { params: { path: { webhook_id: sub.id } } }),
    200,
    "GET /webhooks/{id}",
  );
  require(
    got.id === sub.id &&
      got.url === hooksUrl &&
      JSON.stringify(got.event_types) === JSON.stringify(["job.succeeded"]) &&
      got.secret == null,
    "GET /webhooks/{id} answers the WebhookView, without its secret",
    got,
  );

  // SNAP1's earlier job has ended (section (c)): the snapshot is free.
  const callbackUrl = `${rx.url}/callback`;
  const job = success(
    await a.POST("/snapshots/{snapshot_id}/backups", {
      params: { path: { snapshot_id: SNAP1 } },
      body: { name: `${name}-callback`, callback_url: callbackUrl },
    }),
    202,
    "POST /snapshots/{id}/backups with callback_url",
  );
  const callbackSecret = job.callback_secret ?? "";
  require(
    callbackSecret.startsWith("whsec_"),
    `202 JobView (id ${job.id}) carries a whsec_ callback_secret`,
    { ...job, callback_secret: undefined },
  );
  require(
    job.links["callback"] === `/webhooks/${job.id}`,
    "202 JobView has links.callback: /webhooks/{job_id}",
    job.links,
  );
  const callbackHook = success(
    await a.GET("/webhooks/{webhook_id}", { params: { path: { webhook_id: job.id } } }),
    200,
    "GET /webhooks/{job_id} (the callback)",
  );
  require(
    callbackHook.job_id === job.id && callbackHook.url === callbackUrl && callbackHook.secret == null,
    "GET links.callback answers a WebhookView with the job's job_id and the callback_url",
    callbackHook,
  );
  await waitUntilDone(job.id, "job 4 (callback_url)");

  const [deliveries] = await waitForDeliveries(sub.id, job.id, job.id);
  const hooks = rx.posts("/hooks").map((r) => ({ r, e: eventOf(r) }));
  require(
    hooks.length >= 1 && hooks.every(({ e }) => e.type === "job.succeeded"),
    `every POST to /hooks (${hooks.length}) is a JobEventView of type job.succeeded (the subscription's event_types)`,
    hooks.map(({ e }) => e.type),
  );
  const forJob = hooks.filter(({ e }) => e.data.job_id === job.id && e.data.state === "succeeded").map(({ r }) => r);
  const hook = forJob[0];
  if (hook === undefined) {
    throw new CheckFailed(
      `the receiver got no POST at /hooks for job ${job.id}: ${JSON.stringify(hooks.map(({ e }) => e))}`,
    );
  }
  ok(`the receiver got a POST at /hooks: job.succeeded with data.job_id ${job.id}`);
  require(
    signatureOk(secret, hook),
    "its webhook-signature verifies: v1, base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{body} " +
      "keyed with the subscription's secret",
    hook.signature,
  );
  require(
    !signatureOk(callbackSecret, hook),
    "the /hooks signature does not verify with another secret (the callback's): the check tells secrets apart",
  );
  require(
    timestampFresh(hook),
    `its webhook-timestamp is within ${TIMESTAMP_TOLERANCE_S} s of this machine's clock`,
    hook.timestamp,
  );

  const callbacks = rx
    .posts("/callback")
    .map((r) => ({ r, e: eventOf(r) }))
    .filter(({ e }) => e.data.job_id === job.id);
  const types: JobEventType[] = callbacks.map(({ e }) => e.type);
  require(
    types.length >= 2 && types[0] === "job.created" && types[types.length - 1] === "job.succeeded",
    `the callback_url got the job's events in order: ${types.join(" ")}`,
    types,
  );
  require(
    callbacks.every(({ r }) => signatureOk(callbackSecret, r)),
    `each of the ${callbacks.length} callback POSTs verifies with the 202's callback_secret`,
    callbacks.filter(({ r }) => !signatureOk(callbackSecret, r)).map(({ r }) => r.signature),
  );
  require(
    callbacks.every(({ r }) => timestampFresh(r)),
    `each callback POST's webhook-timestamp is within ${TIMESTAMP_TOLERANCE_S} s of this machine's clock`,
    callbacks.map(({ r }) => r.timestamp),
  );

  const delivered = deliveries.deliveries.filter((d) => d.job_id === job.id);
  const d = delivered[0];
  if (delivered.length !== 1 || d === undefined) {
    throw new CheckFailed(
      `GET /webhooks/{id}/deliveries: ${delivered.length} deliveries for the job: ${JSON.stringify(deliveries.deliveries)}`,
    );
  }
  ok("GET /webhooks/{id}/deliveries: a DeliveryListResponse with one delivery for the job");
  require(
    d.status === "succeeded" &&
      d.attempts >= 1 &&
      d.last_status_code === 204 &&
      d.event_type === "job.succeeded" &&
      d.webhook_id === sub.id,
    `the delivery is \`succeeded\` after ${d.attempts} attempt(s), last_status_code 204, event_type job.succeeded`,
    d,
  );
  require(
    forJob.some((r) => r.webhookId === d.id),
    "the delivery's id is the webhook-id header the receiver got",
    { delivery: d.id, headers: forJob.map((r) => r.webhookId) },
  );

  // The body is optional (requestBody.required: false): none is sent, and
  // the gateway makes the secret.
  const rotated = success(
    await a.POST("/webhooks/{webhook_id}/rotate-secret", { params: { path: { webhook_id: sub.id } } }),
    200,
    "POST /webhooks/{id}/rotate-secret",
  );
  const newSecret = rotated.secret ?? "";
  require(
    rotated.id === sub.id && newSecret.startsWith("whsec_") && newSecret !== secret,
    "POST /webhooks/{id}/rotate-secret answers a WebhookView with a new whsec_ secret",
    { ...rotated, secret: undefined },
  );
  require(
    typeof rotated.previous_secret_expires_at === "string" && Date.parse(rotated.previous_secret_expires_at) > Date.now(),
    "the rotated WebhookView has previous_secret_expires_at, in the future (the old secret still signs)",
    rotated.previous_secret_expires_at,
  );

  const gone = await a.DELETE("/webhooks/{webhook_id}", { params: { path: { webhook_id: sub.id } } });
  require(gone.response.status === 204, "DELETE /webhooks/{id} answers 204", {
    status: gone.response.status,
    error: gone.error,
  });
  expectProblem(
    await a.GET("/webhooks/{webhook_id}", { params: { path: { webhook_id: sub.id } } }),
    true,
    404,
    "webhook-not-found",
    "GET /webhooks/{deleted}",
  );
  expectProblem(
    await a.POST("/webhooks", { body: { url: "http://10.0.0.1/x" } }),
    true,
    400,
    "webhook-target-not-allowed",
    "POST /webhooks with url http://10.0.0.1/x (outside the demo's allow-list)",
  );
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

  console.log("(f) webhooks");
  const rx = await startReceiver();
  try {
    await checkWebhooks(rx);
  } finally {
    await rx.close();
  }
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
