"""Measuring half of bench/real-openstack (Python 3.11, standard library only).

bench/real-openstack starts the gateway and then runs this file, which:
  * seeds fresh volumes + snapshots with the harness's seed.sh,
  * times the manual `openstack` CLI workflow as tenant-a,
  * times the same backup through the gateway (POST -> 202, then the job
    followed by 1 s polling and by ?wait=60 long-polling),
  * prints a table (median / min / max over the rounds) and the ratios,
  * deletes what it made in the cloud (unless BENCH_KEEP_CLOUD=1).

Everything comes from the environment (set by bench/real-openstack):
  BENCH_ROUNDS, BENCH_GATEWAY_URL, BENCH_JWT_SECRET, BENCH_HARNESS,
  BENCH_POLL_INTERVAL, BENCH_GATEWAY_LOG, BENCH_JSON (optional output file),
  BENCH_KEEP_CLOUD, BENCH_BACKUP_TIMEOUT (seconds per backup, 600), BENCH_REVISION,
  OS_CLIENT_CONFIG_FILE, OPENSTACK_CLI.

With BENCH_MODE=estimates it measures the gateway's completion estimates
instead: BENCH_BACKUPS (20) backups through the gateway one after the
other, each estimate (`expected_completion_at` - `started_at`) against the
backup's real duration (`finished_at` - `started_at`), and as the baseline
in the same run the naive estimate "as long as the tenant's previous
backup" (see run_estimates).

Exit status: 0 all good, 1 a measurement failed, 3 only the cloud clean-up
failed, 130 interrupted.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from datetime import datetime, timezone

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
GATEWAY = os.environ["BENCH_GATEWAY_URL"]
SECRET = os.environ["BENCH_JWT_SECRET"]
HARNESS = os.environ["BENCH_HARNESS"]
CLI = os.environ["OPENSTACK_CLI"]
CLOUDS = os.environ["OS_CLIENT_CONFIG_FILE"]
POLL_INTERVAL = os.environ.get("BENCH_POLL_INTERVAL", "1s")
GATEWAY_LOG = os.environ.get("BENCH_GATEWAY_LOG")
JSON_OUT = os.environ.get("BENCH_JSON")
KEEP_CLOUD = os.environ.get("BENCH_KEEP_CLOUD", "0") == "1"
BACKUP_TIMEOUT = float(os.environ.get("BENCH_BACKUP_TIMEOUT", "600"))
CLOUD = "tenant-a"
MODE = os.environ.get("BENCH_MODE", "workflow")
BACKUP_COUNT = int(os.environ.get("BENCH_BACKUPS", "20"))
STAMP = time.strftime("%Y%m%d-%H%M%S")


class Failure(Exception):
    """A measurement that could not be made (the run exits 1)."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def now():
    return time.monotonic()


# ---------------------------------------------------------------- the CLI --

def cli_env():
    # Only the clouds.yaml: no stray OS_* of the caller's shell may change
    # which credentials the CLI uses.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = CLOUDS
    env["PYTHONWARNINGS"] = "ignore"
    return env


CLI_ENV = cli_env()
CLI_CALLS = 0


def openstack(*args, cloud=CLOUD):
    """Runs one CLI command; returns (seconds, stdout)."""
    global CLI_CALLS
    CLI_CALLS += 1 if cloud else 0
    t0 = now()
    cmd = [CLI, "--os-cloud", cloud, *args] if cloud else [CLI, *args]
    p = subprocess.run(cmd, env=CLI_ENV,
                       capture_output=True, text=True)
    dt = now() - t0
    if p.returncode != 0:
        raise Failure("openstack %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                     p.stderr.strip()[-600:]))
    return dt, p.stdout.strip()


# ------------------------------------------------------------ the gateway --

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(tenant, lifetime=4 * 3600):
    header = {"alg": "HS256", "typ": "JWT"}
    t = int(time.time())
    claims = {"tenant": tenant, "sub": "bench-real-openstack", "iat": t, "nbf": t - 5,
              "exp": t + lifetime, "iss": "bench-real-openstack", "aud": "backup-gateway",
              "scope": "backups:read backups:write"}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


TOKEN = jwt("tenant-a")
GW = urllib.parse.urlsplit(GATEWAY)


def gateway(method, path, body=None, timeout=30):
    """One request on a new connection; returns (seconds, status, json body).
    Timed from just before the connection is opened to the end of the body."""
    headers = {"Authorization": "Bearer " + TOKEN, "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    t0 = now()
    conn = http.client.HTTPConnection(GW.hostname, GW.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    dt = now() - t0
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return dt, resp.status, parsed


# ------------------------------------------------------------------ seeds --

SEEDED = {"tenant-a": [], "tenant-b": []}   # volume ids, for the clean-up
BACKUPS = []                                # tenant-a backup ids, for the clean-up


def seed(n):
    """n fresh volumes per tenant with an available snapshot each (harness
    seed.sh); returns tenant-a's [(volume_id, snapshot_id)]."""
    t0 = now()
    p = subprocess.run([os.path.join(HARNESS, "seed.sh"), str(n)], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise Failure("seed.sh %d failed: %s" % (n, (p.stderr or p.stdout).strip()[-600:]))
    out = json.loads(p.stdout)
    for tenant, t in out.items():
        SEEDED.setdefault(tenant, []).extend(v["id"] for v in t["volumes"])
    mine = [(v["id"], v["snapshot_id"]) for v in out["tenant-a"]["volumes"]]
    log("  seeded %d volume(s)+snapshot(s) per tenant in %.1f s (not timed)" % (n, now() - t0))
    return mine


# ------------------------------------------------------------------ flows --

def cli_flow(snap, label):
    """The manual workflow (as smoke.sh): snapshot show, backup create, then
    `backup list` once a second until the backup is available."""
    t0 = now()
    t_show, vol = openstack("volume", "snapshot", "show", snap, "-c", "volume_id", "-f", "value")
    t_bk, bk = openstack("volume", "backup", "create", "--snapshot", snap,
                         "--name", "bench-cli-%s-%s" % (STAMP, label), vol, "-f", "value", "-c", "id")
    t_created = now() - t0
    BACKUPS.append(bk)
    polls, status, list_times = 0, None, []
    while True:
        t_list, out = openstack("volume", "backup", "list", "-f", "value", "-c", "ID", "-c", "Status")
        polls += 1
        list_times.append(t_list)
        status = next((line.split()[1] for line in out.splitlines()
                       if line.split() and line.split()[0] == bk and len(line.split()) > 1), None)
        if status == "available":
            break
        if status is None or status.startswith("error"):
            raise Failure("CLI backup %s of snapshot %s: status %r" % (bk, snap, status))
        if now() - t0 > BACKUP_TIMEOUT:
            raise Failure("CLI backup %s not available after %.0f s" % (bk, BACKUP_TIMEOUT))
        time.sleep(1)
    t_avail = now() - t0
    return {"flow": "cli", "snapshot_id": snap, "volume_id": vol, "backup_id": bk,
            "show_s": t_show, "backup_create_s": t_bk, "create_s": t_created,
            "available_s": t_avail, "polls": polls, "list_s": list_times}


def gw_flow(snap, label, mode):
    """POST /snapshots/{id}/backups, then follow the job until it is done:
    mode 'poll' = GET /jobs/{id} once a second; 'longpoll' = GET ?wait=60."""
    t0 = now()
    t_post, status, job = gateway("POST", "/snapshots/%s/backups" % snap,
                                  {"name": "bench-gw-%s-%s" % (STAMP, label)})
    if status != 202:
        raise Failure("gateway POST for snapshot %s: %d %s" % (snap, status, job))
    state_at_202 = job["state"]
    if job.get("backup_id"):
        BACKUPS.append(job["backup_id"])
    job_id = job["id"]
    gets, get_times = 0, []
    path = "/jobs/%s" % job_id + ("?wait=60" if mode == "longpoll" else "")
    while not job["done"]:
        if mode == "poll" and gets:
            time.sleep(1)
        t_get, status, job = gateway("GET", path, timeout=90)
        gets += 1
        get_times.append(t_get)
        if status != 200:
            raise Failure("gateway GET %s: %d %s" % (path, status, job))
        if now() - t0 > BACKUP_TIMEOUT:
            raise Failure("gateway job %s not done after %.0f s" % (job_id, BACKUP_TIMEOUT))
    t_done = now() - t0
    # Reference, after the job: one Cinder read through the gateway (warm token).
    t_snap, status, _ = gateway("GET", "/snapshots/%s" % snap)
    if status != 200:
        raise Failure("gateway GET /snapshots/%s: %d" % (snap, status))
    if job.get("backup_id") and job["backup_id"] not in BACKUPS:
        BACKUPS.append(job["backup_id"])
    if job["state"] != "succeeded":
        raise Failure("gateway job %s ended %s: %s" % (job_id, job["state"], job.get("error")))
    return {"flow": "gw-" + mode, "snapshot_id": snap, "job_id": job_id,
            "backup_id": job.get("backup_id"), "state_at_202": state_at_202,
            "attempts": job.get("attempts"), "create_s": t_post, "succeeded_s": t_done,
            "gets": gets, "get_s": get_times, "get_snapshot_s": t_snap}


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_estimates(results):
    """BACKUP_COUNT backups of fresh snapshots through the gateway, one at a
    time, each followed to its end by long polls. For each backup made with
    an estimate (all but the first: the tenant has no history before it),
    the error of the gateway's estimate and of the baseline (the previous
    backup's duration) against the backup's duration."""
    log("== estimates: %d backups, one after the other" % BACKUP_COUNT)
    snaps = seed(BACKUP_COUNT)
    rows, previous = [], None
    for n, (_, snap) in enumerate(snaps, 1):
        t_post, status, job = gateway("POST", "/snapshots/%s/backups" % snap,
                                      {"name": "bench-estimate-%s-%d" % (STAMP, n)})
        if status != 202:
            raise Failure("gateway POST for snapshot %s: %d %s" % (snap, status, job))
        estimate = None
        path = "/jobs/%s?wait=60" % job["id"]
        t0 = now()
        while not job["done"]:
            if job["state"] == "running" and estimate is None:
                estimate = job.get("expected_completion_at") or ""
            _, status, job = gateway("GET", path, timeout=90)
            if status != 200:
                raise Failure("gateway GET %s: %d %s" % (path, status, job))
            if now() - t0 > BACKUP_TIMEOUT:
                raise Failure("job %s not done after %.0f s" % (job["id"], BACKUP_TIMEOUT))
        if job.get("backup_id"):
            BACKUPS.append(job["backup_id"])
        if job["state"] != "succeeded":
            raise Failure("job %s ended %s: %s" % (job["id"], job["state"], job.get("error")))
        started = parse_time(job["started_at"])
        took = (parse_time(job["finished_at"]) - started).total_seconds()
        expected = ((parse_time(estimate) - started).total_seconds() if estimate else None)
        row = {"n": n, "size_gib": job.get("size_gib"), "took_s": took,
               "estimate_s": expected, "baseline_s": previous}
        rows.append(row)
        log("  backup %2d: %.3f s; gateway's estimate %s; previous backup's %s"
            % (n, took, "%.3f s" % expected if expected is not None else "none",
               "%.3f s" % previous if previous is not None else "none"))
        previous = took
    results["estimates"] = rows
    judged = [r for r in rows if r["estimate_s"] is not None and r["baseline_s"] is not None]
    if not judged:
        raise Failure("no backup got an estimate")
    mae = statistics.mean(abs(r["estimate_s"] - r["took_s"]) for r in judged)
    base = statistics.mean(abs(r["baseline_s"] - r["took_s"]) for r in judged)
    mape = statistics.mean(abs(r["estimate_s"] - r["took_s"]) / r["took_s"] for r in judged)
    base_pct = statistics.mean(abs(r["baseline_s"] - r["took_s"]) / r["took_s"] for r in judged)
    durations = [r["took_s"] for r in rows]
    print()
    print("Completion estimates over %d backups (%d with an estimate), %s"
          % (len(rows), len(judged), results["revision"]))
    print("  backup duration: median %.2f s (min %.2f, max %.2f)"
          % (statistics.median(durations), min(durations), max(durations)))
    print("  gateway's estimate: mean absolute error %.2f s (%.0f%% of the duration)"
          % (mae, 100 * mape))
    print("  baseline (previous backup's duration): %.2f s (%.0f%%)" % (base, 100 * base_pct))
    print("  ratio gateway / baseline: %.2f (under 1: the gateway's estimate is closer)"
          % (mae / base if base else float("nan")))
    results["estimate_summary"] = {"judged": len(judged), "mae_s": mae, "baseline_mae_s": base,
                                   "mape": mape, "baseline_mape": base_pct}
    return 0


# ------------------------------------------------------------------ stats --

def fmt(v, unit="s"):
    if v is None:
        return "-"
    if unit == "n":
        return "%g" % v
    return "%.3f s" % v


def row(name, values, unit="s"):
    if not values:
        return "| %s | 0 | - | - | - |" % name
    return "| %s | %d | %s | %s | %s |" % (name, len(values), fmt(statistics.median(values), unit),
                                          fmt(min(values), unit), fmt(max(values), unit))


def gateway_log_summary():
    """Counts from the gateway's JSON log: Keystone tokens issued, warnings
    and errors (first few shown)."""
    if not GATEWAY_LOG or not os.path.exists(GATEWAY_LOG):
        return None
    tokens, bad, versions = 0, [], 0
    with open(GATEWAY_LOG, errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            msg = rec.get("message") or (rec.get("fields") or {}).get("message", "")
            if msg == "issued Keystone token":
                tokens += 1
            if msg == "discovered Cinder version":
                versions += 1
            if rec.get("level") in ("WARN", "ERROR"):
                bad.append(line.strip())
    return {"keystone_tokens_issued": tokens, "version_discoveries": versions,
            "warn_or_error_lines": len(bad), "first_warn_or_error": bad[:10]}


# ------------------------------------------------------------------- main --

def main():
    results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "revision": os.environ.get("BENCH_REVISION", "unknown"),
               "rounds": ROUNDS, "poll_interval": POLL_INTERVAL, "host_cores": os.cpu_count(),
               "loadavg_start": os.getloadavg(), "round_results": [], "failures": []}
    rc = 0
    try:
        rc = run_estimates(results) if MODE == "estimates" else run(results)
    except Failure as e:
        results["failures"].append(str(e))
        log("FAILED: %s" % e)
        rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    finally:
        if not KEEP_CLOUD:
            if not clean_cloud() and rc == 0:
                rc = 3
        else:
            log("BENCH_KEEP_CLOUD=1: left in the cloud: volumes %s, backups %s" % (SEEDED, BACKUPS))
        if JSON_OUT:
            with open(JSON_OUT, "w") as f:
                json.dump(results, f, indent=2)
            log("raw results: %s" % JSON_OUT)
    return rc


def run(results):
    log("== cold phase: the gateway has made no upstream call yet")
    (cold_vol, cold_snap), = seed(1)
    # CLI warm-up: one untimed command (page cache, Python bytecode, the
    # services' first requests). The CLI keeps no token between commands, so
    # no later command can profit from it beyond that.
    t_cli_warm, _ = openstack("volume", "snapshot", "show", cold_snap, "-c", "volume_id", "-f", "value")
    log("  CLI warm-up `volume snapshot show` (not counted): %.3f s" % t_cli_warm)
    cold = gw_flow(cold_snap, "cold", "longpoll")
    log("  gateway COLD create (first request of the process: Keystone token, Cinder "
        "version discovery): %.3f s; succeeded after %.3f s (state at 202: %s)"
        % (cold["create_s"], cold["succeeded_s"], cold["state_at_202"]))
    t_warm, status, body = gateway("GET", "/snapshots")
    if status != 200:
        raise Failure("gateway warm-up GET /snapshots: %d %s" % (status, body))
    log("  gateway warm-up GET /snapshots (not counted): %.3f s" % t_warm)
    results["cold"] = {"cli_warmup_show_s": t_cli_warm, "gateway_cold": cold,
                       "gateway_warmup_get_snapshots_s": t_warm}

    flows = ["cli", "gw-poll", "gw-longpoll"]
    failures = results["failures"]
    for r in range(1, ROUNDS + 1):
        order = flows[(r - 1) % 3:] + flows[:(r - 1) % 3]   # rotate: no flow always goes first
        log("== round %d/%d (order: %s)" % (r, ROUNDS, ", ".join(order)))
        try:
            snaps = seed(len(flows))
        except Failure as e:
            failures.append("round %d: %s" % (r, e))
            log("  FAILED: %s" % e)
            break
        for flow, (_, snap) in zip(order, snaps):
            label = "r%d-%s" % (r, flow)
            try:
                if flow == "cli":
                    res = cli_flow(snap, label)
                    log("  cli:         create %.3f s (show %.3f + backup create %.3f), "
                        "available after %.3f s, %d `backup list` polls"
                        % (res["create_s"], res["show_s"], res["backup_create_s"],
                           res["available_s"], res["polls"]))
                else:
                    res = gw_flow(snap, label, flow[3:])
                    log("  %-12s create %.3f s (202, job %s), succeeded after %.3f s, %d GETs"
                        % (flow + ":", res["create_s"], res["state_at_202"], res["succeeded_s"],
                           res["gets"]))
                res["round"] = r
                results["round_results"].append(res)
            except Failure as e:
                failures.append("round %d %s: %s" % (r, flow, e))
                log("  FAILED %s: %s" % (flow, e))
        # Reference: the CLI's start-up alone (no Keystone, no Cinder).
        try:
            t_ver, _ = openstack("--version", cloud=None)
            results.setdefault("cli_version_s", []).append(t_ver)
        except Failure as e:
            failures.append("round %d openstack --version: %s" % (r, e))

    results["loadavg_end"] = os.getloadavg()
    report(results)
    return 1 if failures else 0


def report(results):
    rr = results["round_results"]
    cli = [x for x in rr if x["flow"] == "cli"]
    poll = [x for x in rr if x["flow"] == "gw-poll"]
    lpoll = [x for x in rr if x["flow"] == "gw-longpoll"]
    gw = poll + lpoll
    cli_create = [x["create_s"] for x in cli]
    gw_create = [x["create_s"] for x in gw]
    cli_avail = [x["available_s"] for x in cli]
    poll_done = [x["succeeded_s"] for x in poll]
    lpoll_done = [x["succeeded_s"] for x in lpoll]

    lines = [
        "Real Keystone + Cinder (harness), %s, gateway %s (release), %d rounds, "
        "gateway --poll-interval %s, host %s cores, load average %.2f at start, %.2f at end"
        % (results["date"], results["revision"], results["rounds"], POLL_INTERVAL, results["host_cores"],
           results["loadavg_start"][0], results["loadavg_end"][0]),
        "",
        "| metric (warm unless marked cold) | n | median | min | max |",
        "|---|---|---|---|---|",
        row("CLI `volume snapshot show`", [x["show_s"] for x in cli]),
        row("CLI `volume backup create`", [x["backup_create_s"] for x in cli]),
        row("**CLI create** (show + create)", cli_create),
        row("**gateway create** (POST -> 202)", gw_create),
        row("CLI `volume backup list` (one poll)", [t for x in cli for t in x["list_s"]]),
        row("CLI start-up alone: `openstack --version` (reference)", results.get("cli_version_s", [])),
        row("gateway `GET /snapshots/{id}`: one Cinder read (reference)",
            [x["get_snapshot_s"] for x in gw]),
        row("gateway `GET /jobs/{id}` (one poll)", [t for x in poll for t in x["get_s"]]),
        row("**CLI time to `available`** (from start of show, 1 s polling)", cli_avail),
        row("**gateway time to `succeeded`**, 1 s polling (from POST)", poll_done),
        row("**gateway time to `succeeded`**, `?wait=60` (from POST)", lpoll_done),
        row("CLI `backup list` polls per backup", [x["polls"] for x in cli], "n"),
        row("gateway polls per job (1 s polling)", [x["gets"] for x in poll], "n"),
        row("gateway long-polls per job", [x["gets"] for x in lpoll], "n"),
    ]
    cold = results.get("cold")
    if cold:
        c = cold["gateway_cold"]
        lines += [
            "",
            "Cold / warm-up (once per run, not in the table):",
            "- gateway COLD create (first request after start: Keystone token + Cinder version "
            "discovery + first use of the token on Cinder): %.3f s; its job succeeded after %.3f s "
            "(long-poll)" % (c["create_s"], c["succeeded_s"]),
            "- gateway warm-up `GET /snapshots` after it: %.3f s" % cold["gateway_warmup_get_snapshots_s"],
            "- CLI warm-up `volume snapshot show` (first CLI command of the run): %.3f s"
            % cold["cli_warmup_show_s"],
        ]
    ratios = {}
    if cli_create and gw_create:
        ratios["create_median"] = statistics.median(cli_create) / statistics.median(gw_create)
        ratios["create_worst"] = min(cli_create) / max(gw_create)
    if cli_avail and poll_done:
        ratios["done_poll_median"] = statistics.median(cli_avail) / statistics.median(poll_done)
    if cli_avail and lpoll_done:
        ratios["done_longpoll_median"] = statistics.median(cli_avail) / statistics.median(lpoll_done)
    results["ratios"] = ratios
    lines += ["", "Ratios:"]
    if "create_median" in ratios:
        lines.append("- CLI create / gateway create: %.1fx (medians); %.1fx worst case "
                     "(fastest CLI create / slowest gateway create)"
                     % (ratios["create_median"], ratios["create_worst"]))
        met = ratios["create_median"] >= 20
        lines.append("- target \"gateway create at least 20x faster than the CLI's two commands\": "
                     "%s on medians%s" % ("MET" if met else "NOT MET",
                                          ", and in the worst case" if ratios["create_worst"] >= 20
                                          else ", not in the worst case" if met else ""))
    if "done_poll_median" in ratios:
        lines.append("- CLI time to available / gateway time to succeeded (1 s polling): %.2fx (medians)"
                     % ratios["done_poll_median"])
    if "done_longpoll_median" in ratios:
        lines.append("- CLI time to available / gateway time to succeeded (?wait=60): %.2fx (medians)"
                     % ratios["done_longpoll_median"])
    states = sorted({x["state_at_202"] for x in gw})
    lines += ["", "Other facts:",
              "- job state in the 202 answers: %s; submissions per job: %s"
              % (", ".join(states) or "-", sorted({x["attempts"] for x in gw})),
              "- CLI commands run against the cloud: %d (each one authenticates with Keystone anew)"
              % CLI_CALLS]
    summary = gateway_log_summary()
    if summary:
        results["gateway_log"] = summary
        lines.append("- gateway log: %d Keystone token(s) issued, %d Cinder version discovery(ies), "
                     "%d WARN/ERROR line(s)" % (summary["keystone_tokens_issued"],
                                                summary["version_discoveries"],
                                                summary["warn_or_error_lines"]))
        for bad in summary["first_warn_or_error"]:
            lines.append("    " + bad[:400])
    if results["failures"]:
        lines += ["", "FAILURES:"] + ["- " + f for f in results["failures"]]
    print("\n".join(lines), flush=True)


def clean_cloud():
    """Deletes the backups this run made, then its volumes with their
    snapshots (both tenants). Cinder deletes asynchronously; we do not wait."""
    ok = True
    log("== clean-up: %d backup(s), %d + %d volume(s) (asynchronous deletes)"
        % (len(BACKUPS), len(SEEDED.get("tenant-a", [])), len(SEEDED.get("tenant-b", []))))
    if BACKUPS:
        try:
            # After a failure a backup may still be `creating`, and Cinder
            # deletes only `available` or `error` ones: let them finish.
            deadline = now() + 300
            while now() < deadline:
                _, out = openstack("volume", "backup", "list", "-f", "value", "-c", "ID", "-c", "Status")
                busy = [line for line in out.splitlines()
                        if line.split()[:1] and line.split()[0] in BACKUPS
                        and not line.endswith((" available", " error"))]
                if not busy:
                    break
                time.sleep(2)
            openstack("volume", "backup", "delete", *BACKUPS)
            # Let the backups go before their volumes, so that no volume
            # delete races a backup delete on the same volume.
            deadline = now() + 180
            while now() < deadline:
                _, out = openstack("volume", "backup", "list", "-f", "value", "-c", "ID")
                left = set(out.split()) & set(BACKUPS)
                if not left:
                    break
                time.sleep(2)
            else:
                log("  WARNING: backups still present after 180 s: %s" % sorted(left))
                ok = False
        except Failure as e:
            log("  WARNING: backup clean-up: %s" % e)
            ok = False
    for tenant, vols in SEEDED.items():
        if not vols:
            continue
        try:
            openstack("volume", "delete", "--cascade", *vols, cloud=tenant)
        except Failure as e:
            log("  WARNING: volume clean-up (%s): %s" % (tenant, e))
            ok = False
    return ok


if __name__ == "__main__":
    sys.exit(main())
