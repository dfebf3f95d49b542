// Contract check: the gateway's /docs/ page (Swagger UI) in a real headless
// Chromium, driven by playwright-core. Run by tests/contract/docs-page.sh,
// which starts the demo gateway and passes:
//
//   GATEWAY      http://127.0.0.1:PORT of `serve --demo`
//   TOKEN        a bearer token of the demo (tenant-a)
//   CHROMIUM     the Chromium executable (Debian's /usr/bin/chromium)
//   OUT_DIR      where the screenshots go (docs-page.png: the page as it
//                loads; docs-page-try-it-out.png: create_backup after Execute)
//   RESULT       the JSON file the results go to (job id, requests, console)
//
// DOCS_PAGE_INJECT_OFF_HOST=1 makes the page ask a font of another host once
// it has loaded: the check must then fail (a test of the check itself).
//
// It proves:
//   1. the page loads, and every request the page (and anything it starts:
//      workers, popups) makes goes to the gateway's own origin; a request to
//      any other host is recorded, aborted and fails the check. Chromium
//      also resolves no host name but 127.0.0.1, so nothing leaves even
//      outside the page;
//   2. the page lists every operation of the served /openapi.json (method,
//      path and operation id; the requests of its `webhooks` by name), and
//      nothing else;
//   3. "Authorize" with the pasted token, then "Try it out" on
//      create_backup, answers 202 in the page, with the token sent.
// The job id of the 202 goes to RESULT; the shell script then
// checks with curl that GET /jobs lists it.
//
// Console messages, page errors, failed requests and answers >= 400 are
// recorded and printed; uncaught page errors fail the check, console errors
// are reported (a user sees nothing of them) and fail it too unless
// DOCS_PAGE_ALLOW_CONSOLE_ERRORS=1.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const GATEWAY = need("GATEWAY").replace(/\/+$/, "");
const TOKEN = need("TOKEN");
const CHROMIUM = need("CHROMIUM");
const OUT_DIR = need("OUT_DIR");
const RESULT = need("RESULT");
const SNAPSHOT_ID = process.env.SNAPSHOT_ID || "000005a9-0000-4000-8000-a00000000001";
const ALLOW_CONSOLE_ERRORS = process.env.DOCS_PAGE_ALLOW_CONSOLE_ERRORS === "1";
// Each wait in the page (a click, a selector) and each navigation.
const STEP_TIMEOUT = 15_000;
const NAV_TIMEOUT = 20_000;

const ORIGIN = new URL(GATEWAY).origin;
if (new URL(ORIGIN).hostname !== "127.0.0.1") {
  fail(`GATEWAY must be a 127.0.0.1 origin, got ${ORIGIN}`);
}

function need(name) {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
}

function log(message) {
  console.log(`docs-page: ${message}`);
}

function fail(message) {
  console.error(`docs-page: FAIL: ${message}`);
  process.exit(1);
}

// What the browser did, for the checks and the report.
const requests = []; // { method, url, resourceType, offHost }
const offHost = [];
const consoleMessages = []; // { type, text, location }
const pageErrors = [];
const failedRequests = [];
const errorResponses = [];
const websockets = [];
const problems = []; // failures found along the way
const notes = []; // what a user may find wrong or confusing (no failure)
const authHeaders = []; // promises of the Authorization headers of the page's create_backup POSTs
const watched = new WeakSet();

// A URL that stays on the host: the gateway's origin, or one with no
// network at all (data:, blob:, about:).
function staysOnHost(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (["data:", "blob:", "about:"].includes(parsed.protocol)) return true;
  return parsed.origin === ORIGIN;
}

async function gatewayJson(path, init = {}) {
  const response = await fetch(`${GATEWAY}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
  if (!response.ok) fail(`GET ${path} answered ${response.status}`);
  return response.json();
}

// --- what the page should show -------------------------------------------------
const index = await gatewayJson("/");
const docsLink = index?.links?.docs;
if (typeof docsLink !== "string") fail(`/ has no links.docs: ${JSON.stringify(index)}`);
const docsUrl = new URL(docsLink, `${GATEWAY}/`).href;
if (!staysOnHost(docsUrl)) fail(`links.docs (${docsLink}) points off the gateway: ${docsUrl}`);
log(`/ links.docs = ${docsLink} -> ${docsUrl}`);

const spec = await gatewayJson("/openapi.json");
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const expected = [];
// The operations of `paths`, and the requests the gateway makes of
// `webhooks` (the page lists those under their name).
for (const [path, item] of [...Object.entries(spec.paths ?? {}), ...Object.entries(spec.webhooks ?? {})]) {
  for (const method of METHODS) {
    const op = item?.[method];
    if (!op) continue;
    expected.push({ method: method.toUpperCase(), path, operationId: op.operationId ?? "", summary: op.summary ?? "" });
  }
}
if (expected.length === 0) fail("/openapi.json has no operations");
const opKey = (op) => `${op.method} ${op.path} ${op.operationId}`;
const create = expected.find((op) => op.operationId === "create_backup");
if (!create || create.method !== "POST" || create.path !== "/snapshots/{snapshot_id}/backups") {
  fail("/openapi.json has no create_backup operation at POST /snapshots/{snapshot_id}/backups");
}
log(`/openapi.json: ${spec.openapi}, "${spec.info?.title}" ${spec.info?.version}, ${expected.length} operations`);

// --- the browser ------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: 30_000,
  args: [
    // Belt and braces with the request check below: no host name resolves
    // but the gateway's, so nothing (the browser's own pings included)
    // can reach the network.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--no-pings",
    // Docker's /dev/shm is 64 MB.
    "--disable-dev-shm-usage",
  ],
});
let exitCode = 0;
try {
  exitCode = await drive(browser);
} catch (error) {
  console.error(`docs-page: FAIL: ${error?.stack ?? error}`);
  exitCode = 1;
} finally {
  await browser.close().catch(() => {});
}
process.exit(exitCode);

async function drive(browser) {
  log(`browser: ${CHROMIUM} (Chromium ${browser.version()})`);
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    // No service worker may hide a request from the recording.
    serviceWorkers: "block",
    locale: "en-US",
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(NAV_TIMEOUT);

  // Every request of every page of the context: recorded; those off the
  // host are aborted (and fail the check).
  context.on("request", (request) => {
    const url = request.url();
    const entry = { method: request.method(), url, resourceType: request.resourceType(), offHost: !staysOnHost(url) };
    requests.push(entry);
    if (entry.offHost) offHost.push(entry);
    if (request.method() === "POST" && url === `${ORIGIN}/snapshots/${SNAPSHOT_ID}/backups`) {
      authHeaders.push(request.headerValue("authorization").catch(() => null));
    }
  });
  await context.route(
    (url) => !staysOnHost(url.href),
    (route) => route.abort("blockedbyclient"),
  );
  context.on("requestfailed", (request) => {
    failedRequests.push({ method: request.method(), url: request.url(), error: request.failure()?.errorText ?? "" });
  });
  context.on("response", (response) => {
    if (response.status() >= 400) {
      errorResponses.push({ method: response.request().method(), url: response.url(), status: response.status() });
    }
  });
  context.on("page", (page) => watchPage(page));
  const page = await context.newPage();
  watchPage(page);

  // 1. The page loads.
  const started = Date.now();
  const response = await page.goto(docsUrl, { waitUntil: "load" });
  if (!response || !response.ok()) fail(`${docsUrl} answered ${response?.status()}`);
  await page.locator(".information-container .info .title").first().waitFor({ state: "visible" });
  await page.locator(".opblock").first().waitFor({ state: "visible" });
  await page.waitForLoadState("networkidle", { timeout: NAV_TIMEOUT });
  log(`page loaded in ${Date.now() - started} ms: <title> "${await page.title()}"`);

  const errorsBox = page.locator(".swagger-ui .errors-wrapper");
  if (await errorsBox.count()) {
    problems.push(`the page shows Swagger UI's error box: ${(await errorsBox.first().innerText()).replace(/\s+/g, " ")}`);
  }
  await lookAtThePage(page);
  if (process.env.DOCS_PAGE_INJECT_OFF_HOST === "1") {
    log("DOCS_PAGE_INJECT_OFF_HOST=1: the page now asks fonts.googleapis.com for a font");
    await page.evaluate(() => {
      const link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = "https://fonts.googleapis.com/css?family=Open+Sans:400,700";
      document.head.append(link);
    });
  }

  mkdirSync(OUT_DIR, { recursive: true });
  const screenshot = join(OUT_DIR, "docs-page.png");
  await page.screenshot({ path: screenshot, fullPage: true });
  log(`screenshot: ${screenshot}`);

  // 2. Every operation is listed, and only those.
  const rendered = await page.locator(".opblock").evaluateAll((blocks) =>
    blocks.map((block) => ({
      method: (block.querySelector(".opblock-summary-method")?.textContent ?? "").trim().toUpperCase(),
      path: block.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "",
      operationId: (block.querySelector(".opblock-summary-operation-id")?.textContent ?? "").trim(),
      summary: (block.querySelector(".opblock-summary-description")?.textContent ?? "").trim(),
      id: block.id,
    })),
  );
  const renderedKeys = new Set(rendered.map(opKey));
  const expectedKeys = new Set(expected.map(opKey));
  const missing = [...expectedKeys].filter((key) => !renderedKeys.has(key));
  const extra = [...renderedKeys].filter((key) => !expectedKeys.has(key));
  for (const key of missing) problems.push(`operation not listed on the page: ${key}`);
  for (const key of extra) problems.push(`the page lists an operation the document does not have: ${key}`);
  for (const op of expected) {
    const shown = rendered.find((r) => opKey(r) === opKey(op));
    if (shown && op.summary && shown.summary !== op.summary.trim()) {
      notes.push(`${op.operationId}: the page shows the summary "${shown.summary}", the document has "${op.summary}"`);
    }
    if (!op.summary) notes.push(`${op.operationId} (${op.method} ${op.path}) has no summary: the page shows only its path`);
  }
  log(
    `operations: ${expected.length} in the document, ${rendered.length} on the page, ` +
      `${missing.length} missing, ${extra.length} extra`,
  );
  for (const op of rendered) log(`    ${op.method.padEnd(6)} ${op.path.padEnd(36)} ${op.operationId}`);

  // 3. Authorize with the pasted token.
  await page.locator(".scheme-container .auth-wrapper button.authorize").click();
  const modal = page.locator(".dialog-ux .modal-ux");
  await modal.waitFor({ state: "visible" });
  const schemes = await modal.locator(".auth-container h4").allInnerTexts();
  log(`Authorize dialog: ${schemes.map((s) => s.replace(/\s+/g, " ").trim()).join("; ")}`);
  const tokenInput = modal.locator(".auth-container input").first();
  await tokenInput.fill(TOKEN);
  await modal.locator("button.authorize").first().click();
  await modal.locator("button", { hasText: "Logout" }).first().waitFor({ state: "visible" });
  await modal.locator("button.btn-done").first().click();
  await modal.waitFor({ state: "hidden" });
  const locked = await page.locator(".scheme-container .auth-wrapper button.authorize").getAttribute("class");
  if (!/\blocked\b/.test(locked ?? "")) problems.push(`after Authorize the Authorize button is not shown as locked (class "${locked}")`);
  log("authorized with the pasted token, dialog closed");

  // Open create_backup (deep-link id operations-<tag>-<operationId>).
  const block = page.locator(`.opblock:has(.opblock-summary-operation-id:text-is("create_backup"))`).first();
  await block.locator(".opblock-summary").first().click();
  await block.locator(".opblock-body").waitFor({ state: "visible" });
  // The operation's lock reads "authorization button locked" once a token
  // applies to it.
  const lockLabel = (await block.locator(".opblock-summary .authorization__btn").first().getAttribute("aria-label")) ?? "";
  if (!/\block(ed)?\b/.test(lockLabel) || /unlocked/.test(lockLabel)) {
    problems.push(`create_backup's lock does not show the token as applied ("${lockLabel}")`);
  }
  const tryOut = block.locator("button.try-out__btn");
  const tryOutText = (await tryOut.innerText()).trim();
  if (/try it out/i.test(tryOutText)) {
    await tryOut.click();
    log('clicked "Try it out"');
  } else {
    // tryItOutEnabled: the operation opens in Try-it-out mode already, and
    // the button reads "Cancel".
    log(`"Try it out" is on already (the button reads "${tryOutText}": tryItOutEnabled)`);
  }
  const snapshotInput = block.locator('tr[data-param-name="snapshot_id"] input').first();
  await snapshotInput.fill(SNAPSHOT_ID);
  const bodyArea = block.locator(".body-param textarea, textarea.body-param__text").first();
  let prefilled = null;
  if (await bodyArea.count()) {
    prefilled = await bodyArea.inputValue();
    log(`request body prefilled by the page: ${prefilled.replace(/\s+/g, " ")}`);
    try {
      const value = JSON.parse(prefilled);
      if (value !== null && (typeof value !== "object" || Array.isArray(value))) {
        notes.push(`create_backup's prefilled body is not an object (the server wants an object or null): ${prefilled}`);
      }
      const known = Object.keys(spec.components?.schemas?.CreateBackupRequest?.properties ?? {});
      const unknown = value && typeof value === "object" ? Object.keys(value).filter((k) => !known.includes(k)) : [];
      if (known.length && unknown.length) {
        notes.push(`create_backup's prefilled body has fields CreateBackupRequest does not: ${unknown.join(", ")}`);
      }
    } catch {
      notes.push(`create_backup's prefilled body is not JSON: ${prefilled}`);
    }
    await bodyArea.fill('{"name": "docs-page-check"}');
  } else {
    notes.push("create_backup shows no request body editor");
  }
  await block.locator("button.execute").click();
  const status = block.locator(".live-responses-table tbody tr.response .response-col_status").first();
  await status.waitFor({ state: "visible" });
  const statusText = (await status.innerText()).trim();
  const responseBodyText = (
    await block.locator(".live-responses-table tbody tr.response .response-col_description pre").first().innerText()
  ).trim();
  const curlText = (await block.locator(".curl-command").first().innerText().catch(() => "")).trim();
  log(`Execute: the page shows status ${statusText}`);
  log(`    body: ${responseBodyText.replace(/\s+/g, " ").slice(0, 300)}`);
  let jobId = null;
  if (statusText !== "202") {
    problems.push(`Try it out on create_backup shows status ${statusText}, not 202: ${responseBodyText}`);
  } else {
    try {
      jobId = JSON.parse(responseBodyText).id;
    } catch {
      problems.push(`the 202's body as the page shows it is not JSON: ${responseBodyText}`);
    }
    if (!jobId) problems.push(`the 202's body has no job id: ${responseBodyText}`);
  }
  // The request went out with the pasted token, to the gateway.
  const sent = requests.filter((r) => r.method === "POST" && r.url === `${ORIGIN}/snapshots/${SNAPSHOT_ID}/backups`);
  if (sent.length !== 1) {
    problems.push(`expected one POST ${ORIGIN}/snapshots/${SNAPSHOT_ID}/backups from the page, saw ${sent.length}`);
  }
  const sentAuth = await Promise.all(authHeaders);
  if (!sentAuth.length || !sentAuth.every((a) => a === `Bearer ${TOKEN}`)) problems.push("the page's POST did not carry `Authorization: Bearer <the pasted token>`");
  if (curlText && !curlText.includes(`Bearer ${TOKEN}`)) {
    notes.push("the curl command the page shows does not carry the token");
  }
  // The operation from its summary down to the live response (the whole
  // block, with every documented response, is ~9000 px tall).
  const clip = await block.evaluate((element) => {
    const top = element.getBoundingClientRect();
    const live = element.querySelector(".live-responses-table")?.getBoundingClientRect() ?? top;
    return { x: top.x + window.scrollX, y: top.y + window.scrollY, width: top.width, height: live.bottom - top.y };
  });
  await page.screenshot({ path: join(OUT_DIR, "docs-page-try-it-out.png"), fullPage: true, clip });

  // Let anything late (fonts, images) still be requested and recorded.
  await page.waitForLoadState("networkidle", { timeout: NAV_TIMEOUT }).catch(() => {});
  await context.close();
  return report({ jobId, statusText, prefilled, curlText });
}

function watchPage(page) {
  if (watched.has(page)) return;
  watched.add(page);
  page.on("console", (message) => {
    const location = message.location();
    consoleMessages.push({
      type: message.type(),
      text: message.text(),
      where: location?.url ? `${location.url}:${location.lineNumber}` : "",
    });
  });
  page.on("pageerror", (error) => pageErrors.push(String(error?.stack ?? error)));
  page.on("websocket", (ws) => {
    websockets.push(ws.url());
    if (!staysOnHost(ws.url().replace(/^ws/, "http"))) offHost.push({ method: "WS", url: ws.url(), resourceType: "websocket" });
  });
}

// What a user sees at first: the title, the info block, the tags.
async function lookAtThePage(page) {
  const title = await page.title();
  const infoTitle = (await page.locator(".information-container .info .title").first().innerText()).replace(/\s+/g, " ").trim();
  log(`info block: "${infoTitle}"`);
  if (spec.info?.title && !title.includes(spec.info.title)) {
    notes.push(`the browser tab reads "${title}", not the API's name ("${spec.info.title}")`);
  }
  if (await page.locator(".topbar .download-url-wrapper input").count()) {
    const value = await page.locator(".topbar .download-url-wrapper input").first().inputValue();
    notes.push(
      `the top bar shows Swagger UI's "Explore" box (${value}): it invites loading any other document's URL, which this page is not for`,
    );
  }
  const description = (await page.locator(".information-container .info .description").first().innerText().catch(() => "")).trim();
  if (spec.info?.description && !description) notes.push("the API's description is not shown");
  for (const tag of spec.tags ?? []) {
    const shown = page.locator(`.opblock-tag[data-tag="${tag.name}"]`);
    if (!(await shown.count())) {
      notes.push(`tag "${tag.name}" is not shown`);
      continue;
    }
    const text = (await shown.first().innerText()).replace(/\s+/g, " ");
    if (tag.description && !text.includes(tag.description)) notes.push(`tag "${tag.name}" is shown without its description`);
  }
  // Links (not requests: only a click follows them) to other hosts.
  const links = await page.locator("a[href]").evaluateAll((anchors) => anchors.map((a) => a.href));
  const offHostLinks = [...new Set(links.filter((href) => !staysOnHost(href) && !href.startsWith("javascript:")))];
  if (offHostLinks.length) log(`links to other hosts (followed only on a click): ${offHostLinks.join(", ")}`);
  if (!(await page.locator(".scheme-container .auth-wrapper button.authorize").count())) {
    problems.push('the page has no "Authorize" button');
  }
}

function report({ jobId, statusText, prefilled, curlText }) {
  const byType = {};
  for (const r of requests) byType[r.resourceType] = (byType[r.resourceType] ?? 0) + 1;
  log(
    `requests: ${requests.length} in all (${Object.entries(byType)
      .map(([t, n]) => `${t} ${n}`)
      .join(", ")}), ${offHost.length} off the host`,
  );
  const seen = new Set();
  for (const r of requests) {
    const line = `${r.method} ${r.url.length > 120 ? `${r.url.slice(0, 117)}...` : r.url} [${r.resourceType}]${r.offHost ? "  <-- OFF THE HOST" : ""}`;
    if (seen.has(line)) continue;
    seen.add(line);
    log(`    ${line}`);
  }
  for (const r of offHost) problems.push(`a request left the host: ${r.method} ${r.url} [${r.resourceType}]`);
  if (websockets.length) log(`websockets: ${websockets.join(", ")}`);
  for (const r of failedRequests) log(`request failed: ${r.method} ${r.url}: ${r.error}`);
  for (const r of errorResponses) log(`answered >= 400: ${r.method} ${r.url}: ${r.status}`);

  const errors = consoleMessages.filter((m) => m.type === "error");
  const warnings = consoleMessages.filter((m) => m.type === "warning");
  log(`console: ${consoleMessages.length} messages, ${errors.length} errors, ${warnings.length} warnings; ${pageErrors.length} uncaught page errors`);
  for (const m of consoleMessages) log(`    console.${m.type}: ${m.text.replace(/\s+/g, " ").slice(0, 400)}${m.where ? ` (${m.where})` : ""}`);
  for (const e of pageErrors) problems.push(`uncaught error in the page: ${e}`);
  if (errors.length && !ALLOW_CONSOLE_ERRORS) {
    problems.push(`${errors.length} error(s) in the browser console (listed above; DOCS_PAGE_ALLOW_CONSOLE_ERRORS=1 lets them pass)`);
  }

  for (const note of notes) log(`NOTE (a user may find this wrong or confusing): ${note}`);
  writeFileSync(
    RESULT,
    `${JSON.stringify(
      {
        gateway: GATEWAY,
        docs: docsUrl,
        status: statusText,
        job_id: jobId,
        snapshot_id: SNAPSHOT_ID,
        prefilled_body: prefilled,
        curl: curlText ? curlText.replaceAll(TOKEN, "<token>") : null,
        requests,
        off_host: offHost,
        console: consoleMessages,
        page_errors: pageErrors,
        failed_requests: failedRequests,
        error_responses: errorResponses,
        notes,
        problems,
      },
      null,
      2,
    )}\n`,
  );
  if (problems.length) {
    for (const p of problems) console.error(`docs-page: FAIL: ${p}`);
    return 1;
  }
  log(`OK: ${requests.length} requests, all to ${ORIGIN}; ${expected.length}/${expected.length} operations listed; Try it out answered 202 (job ${jobId})`);
  return 0;
}
