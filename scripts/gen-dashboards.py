#!/usr/bin/env python3
"""Generates the Grafana dashboards in compose/grafana/dashboards/*.json.

The JSON files are what Grafana loads (and what is reviewed); this script is where panels and
queries are written, since PromQL reads better here than in 3,000 lines of JSON. After a change:

    python3 scripts/gen-dashboards.py compose/grafana/dashboards

scripts/validate-deploy.sh fails when the JSON files differ from what this script generates.
Only metric names the services export may appear in queries (the validator checks them too).
Standard library only.
"""
import json
import os
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "compose/grafana/dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
RI = "$__rate_interval"


class Dash:
    def __init__(self, uid, title, description, tags, variables=()):
        self.uid, self.title, self.description = uid, title, description
        self.tags = ["sidechain"] + list(tags)
        self.panels = []
        self.next_id = 1
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.variables = list(variables)

    def _pos(self, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0
        self.panels.append({
            "type": "row", "title": title, "id": self._id(), "collapsed": False,
            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": [],
        })
        self.y += 1

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def _targets(self, targets):
        out = []
        for i, t in enumerate(targets):
            expr, legend = t[0], t[1]
            tgt = {"datasource": DS, "expr": expr, "legendFormat": legend,
                   "refId": chr(ord("A") + i), "range": True}
            out.append(tgt)
        return out

    def ts(self, title, desc, targets, unit="short", w=12, h=8, stack=False, min0=True,
           thresholds=None, overrides=None):
        custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if not stack else 40,
                  "showPoints": "never", "spanNulls": False,
                  "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
        defaults = {"unit": unit, "custom": custom, "color": {"mode": "palette-classic"}}
        if min0:
            defaults["min"] = 0
        if thresholds:
            defaults["thresholds"] = thresholds
            custom["thresholdsStyle"] = {"mode": "line"}
        self.panels.append({
            "type": "timeseries", "title": title, "description": desc, "id": self._id(),
            "datasource": DS, "gridPos": self._pos(w, h),
            "targets": self._targets(targets),
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom",
                                   "calcs": ["mean", "max", "lastNotNull"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
        })

    def stat(self, title, desc, targets, unit="short", w=4, h=4, mappings=None,
             thresholds=None, decimals=None, color_mode="value"):
        defaults = {"unit": unit, "color": {"mode": "thresholds"},
                    "thresholds": thresholds or {"mode": "absolute", "steps": [
                        {"color": "green", "value": None}]},
                    "mappings": mappings or []}
        if decimals is not None:
            defaults["decimals"] = decimals
        self.panels.append({
            "type": "stat", "title": title, "description": desc, "id": self._id(),
            "datasource": DS, "gridPos": self._pos(w, h),
            "targets": [dict(t, instant=True, range=False) for t in self._targets(targets)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": color_mode, "graphMode": "area", "justifyMode": "auto",
                        "textMode": "auto", "orientation": "auto"},
        })

    def state(self, title, desc, targets, mappings, thresholds, w=12, h=6):
        self.panels.append({
            "type": "state-timeline", "title": title, "description": desc, "id": self._id(),
            "datasource": DS, "gridPos": self._pos(w, h),
            "targets": self._targets(targets),
            "fieldConfig": {"defaults": {"color": {"mode": "thresholds"},
                                         "thresholds": thresholds, "mappings": mappings,
                                         "custom": {"fillOpacity": 80, "lineWidth": 0}},
                            "overrides": []},
            "options": {"showValue": "auto", "mergeValues": True, "rowHeight": 0.9,
                        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "single", "sort": "none"}},
        })

    def text(self, content, w=24, h=3):
        self.panels.append({
            "type": "text", "title": "", "id": self._id(), "gridPos": self._pos(w, h),
            "options": {"mode": "markdown", "content": content},
        })

    def json(self):
        links = [{"title": "Sidechain dashboards", "type": "dashboards", "tags": ["sidechain"],
                  "asDropdown": True, "includeVars": False, "keepTime": True, "icon": "external link",
                  "targetBlank": False, "tooltip": "", "url": ""}]
        return {
            "__inputs": [],
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard"}]},
            "description": self.description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": links,
            "panels": self.panels,
            "refresh": "30s",
            "schemaVersion": 39,
            "tags": self.tags,
            "templating": {"list": self.variables},
            "time": {"from": "now-3h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        }


def query_var(name, label, query, multi=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery",
                  "qryType": 1},
        "definition": query, "refresh": 2, "includeAll": True, "multi": multi,
        "allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1, "hide": 0, "regex": "", "options": [],
    }


def quantiles(metric, by, sel, legend_prefix=""):
    out = []
    for q in ("0.5", "0.95", "0.99"):
        out.append((f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{sel}[{RI}])))",
                    f"{legend_prefix}p{int(float(q) * 100)} {{{{{by}}}}}"))
    return out


PCT = {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                      {"color": "orange", "value": 0.01},
                                      {"color": "red", "value": 0.05}]}
UPDOWN = [{"type": "value", "options": {
    "0": {"text": "DOWN", "color": "red", "index": 0},
    "1": {"text": "UP", "color": "green", "index": 1}}}]
BREAKER = [{"type": "value", "options": {
    "0": {"text": "closed", "color": "green", "index": 0},
    "1": {"text": "half-open", "color": "orange", "index": 1},
    "2": {"text": "open", "color": "red", "index": 2}}}]
BREAKER_T = {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                            {"color": "orange", "value": 1},
                                            {"color": "red", "value": 2}]}
UPDOWN_T = {"mode": "absolute", "steps": [{"color": "red", "value": None},
                                           {"color": "green", "value": 1}]}

dashes = []

# ------------------------------------------------------------------ overview (RED)
EDGE = 'job="sidechain-edge", instance=~"$instance"'
API = EDGE + ', route!~"/health.*"'
d = Dash("sidechain-overview", "Sidechain / Overview (RED)",
         "Rate, errors and duration of the edge API per route, and the event writes behind it.",
         ["edge", "red"],
         [query_var("instance", "edge instance", 'label_values(sidechain_http_requests_total{job="sidechain-edge"}, instance)')])
d.text("**Rate, Errors, Duration** of the edge API (health routes excluded). Writes are events "
       "stored in JetStream before the 2xx; feeds are NATS requests to the cache service. "
       "Runbooks: `docs/operations.md`. Traces: Jaeger (data source *Jaeger*, UI on :16686).", h=2)
d.stat("Requests / s", "All API requests per second.",
       [(f"sum(rate(sidechain_http_requests_total{{{API}}}[5m]))", "req/s")], unit="reqps", w=4)
d.stat("5xx ratio", "Share of API requests answered 5xx over 5 minutes.",
       [(f'(sum(rate(sidechain_http_requests_total{{{API}, status=~"5.."}}[5m])) or vector(0)) / sum(rate(sidechain_http_requests_total{{{API}}}[5m]))', "5xx")],
       unit="percentunit", thresholds=PCT, decimals=2, w=4)
d.stat("4xx ratio", "Share of API requests answered 4xx (validation, auth, 429 rate limits).",
       [(f'(sum(rate(sidechain_http_requests_total{{{API}, status=~"4.."}}[5m])) or vector(0)) / sum(rate(sidechain_http_requests_total{{{API}}}[5m]))', "4xx")],
       unit="percentunit", decimals=2, w=4)
d.stat("p99 latency", "99th percentile of all API requests over 5 minutes.",
       [(f"histogram_quantile(0.99, sum by (le) (rate(sidechain_http_request_duration_seconds_bucket{{{API}}}[5m])))", "p99")],
       unit="s", thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                          {"color": "orange", "value": 0.5},
                                                          {"color": "red", "value": 1}]}, w=4)
d.stat("In flight", "Requests being served right now (all edges).",
       [(f"sum(sidechain_http_requests_in_flight{{{EDGE}}})", "in flight")], w=4)
d.stat("Services up", "Scraped Sidechain instances answering /metrics.",
       [('count(up{job=~"sidechain-.*"} == 1)', "up")], w=4,
       thresholds={"mode": "absolute", "steps": [{"color": "red", "value": None},
                                                  {"color": "green", "value": 3}]})
d.row("Rate")
d.ts("Requests / s by route", "Per route template (e.g. /api/v1/posts/{id}/play).",
     [(f"sum by (route) (rate(sidechain_http_requests_total{{{API}}}[{RI}]))", "{{route}}")],
     unit="reqps", w=12)
d.ts("Requests / s by status", "Status codes over all routes; 429 are rate limits, 503 dependencies down.",
     [(f"sum by (status) (rate(sidechain_http_requests_total{{{API}}}[{RI}]))", "{{status}}")],
     unit="reqps", w=12, stack=True)
d.row("Errors")
d.ts("5xx ratio by route", "Share of each route's requests answered 5xx.",
     [(f'(sum by (route) (rate(sidechain_http_requests_total{{{API}, status=~"5.."}}[{RI}])) or sum by (route) (rate(sidechain_http_requests_total{{{API}}}[{RI}])) * 0) / sum by (route) (rate(sidechain_http_requests_total{{{API}}}[{RI}]))', "{{route}}")],
     unit="percentunit", w=12, thresholds=PCT)
d.ts("4xx / s by route and status", "Client errors: 400 invalid input, 401 auth, 404, 409, 413, 429.",
     [(f'sum by (route, status) (rate(sidechain_http_requests_total{{{API}, status=~"4.."}}[{RI}]))', "{{status}} {{route}}")],
     unit="reqps", w=12)
d.row("Duration")
for q in ("0.5", "0.95", "0.99"):
    d.ts(f"p{int(float(q) * 100)} latency by route", f"{q} quantile of request duration per route.",
         [(f"histogram_quantile({q}, sum by (le, route) (rate(sidechain_http_request_duration_seconds_bucket{{{API}}}[{RI}])))", "{{route}}")],
         unit="s", w=8)
d.ts("Request and response size p95", "Body sizes (MAX_BODY_BYTES caps requests).",
     [(f"histogram_quantile(0.95, sum by (le) (rate(sidechain_http_request_size_bytes_bucket{{{API}}}[{RI}])))", "request p95"),
      (f"histogram_quantile(0.95, sum by (le) (rate(sidechain_http_response_size_bytes_bucket{{{API}}}[{RI}])))", "response p95")],
     unit="bytes", w=12)
d.ts("NATS request latency p99 (edge to cache)", "Feed, session and lookup requests to the cache service, by subject and outcome.",
     [(f"histogram_quantile(0.99, sum by (le, subject, outcome) (rate(sidechain_nats_request_duration_seconds_bucket{{{EDGE}}}[{RI}])))", "{{subject}} {{outcome}}")],
     unit="s", w=12)
d.row("Writes (events)")
d.ts("Events published / s by outcome", "stored: in the stream; duplicate: retry deduplicated; unavailable: NATS down (503); rejected: refused (e.g. stream full).",
     [(f"sum by (outcome) (rate(sidechain_events_published_total{{{EDGE}}}[{RI}]))", "{{outcome}}")],
     unit="ops", w=8, stack=True)
d.ts("Events published / s by kind", "Stored events per kind.",
     [(f'sum by (kind) (rate(sidechain_events_published_total{{{EDGE}, outcome="stored"}}[{RI}]))', "{{kind}}")],
     unit="ops", w=8)
d.ts("Publish latency (until JetStream ack)", "p50 / p99 of publish + ack per kind.",
     [(f"histogram_quantile(0.5, sum by (le, kind) (rate(sidechain_event_publish_duration_seconds_bucket{{{EDGE}}}[{RI}])))", "p50 {{kind}}"),
      (f"histogram_quantile(0.99, sum by (le, kind) (rate(sidechain_event_publish_duration_seconds_bucket{{{EDGE}}}[{RI}])))", "p99 {{kind}}")],
     unit="s", w=8)
d.ts("Session lookups / s", "Token checks by tier (memory, cache service, users bucket fallback) and result.",
     [(f"sum by (tier, result) (rate(sidechain_session_lookups_total{{{EDGE}}}[{RI}]))", "{{tier}} {{result}}")],
     unit="ops", w=24)
dashes.append(d)

# ------------------------------------------------------------------ feedback pipeline
FB = 'job="sidechain-feedback"'
d = Dash("sidechain-feedback", "Sidechain / Feedback pipeline",
         "Events from the stream to Gorse: batches, queue depth, dead letters, Gorse health and latency.",
         ["feedback", "gorse"])
d.stat("Gorse", "Gorse readiness as seen by the feedback service (checked every GORSE_HEALTH_INTERVAL).",
       [(f"min(sidechain_gorse_healthy{{{FB}}})", "gorse")], mappings=UPDOWN, thresholds=UPDOWN_T,
       color_mode="background", w=4)
d.stat("Circuit breaker", "Worst breaker state over feedback instances: closed, half-open, open.",
       [(f"max(sidechain_gorse_circuit_state{{{FB}}})", "breaker")], mappings=BREAKER,
       thresholds=BREAKER_T, color_mode="background", w=4)
d.stat("Last sync age", "Time since Gorse last accepted a batch (time() - sidechain_feedback_last_sync_timestamp_seconds). Grows when idle too.",
       [(f"time() - max(sidechain_feedback_last_sync_timestamp_seconds{{{FB}}})", "age")], unit="s",
       thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                  {"color": "orange", "value": 300},
                                                  {"color": "red", "value": 1800}]}, w=4)
d.stat("Dead-letter list", "Entries waiting in gorse_failed_feedback.",
       [(f"max(sidechain_feedback_dead_letter_length{{{FB}}})", "entries")],
       thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                  {"color": "orange", "value": 1}]}, w=4)
d.stat("Parked", "Entries in {gorse_failed_feedback}:parked (need an operator).",
       [(f"max(sidechain_feedback_dead_letter_parked_length{{{FB}}})", "parked")],
       thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                  {"color": "red", "value": 1}]}, w=4)
d.stat("Abandoned (24 h)", "Events terminated after FEEDBACK_MAX_DELIVER attempts; replay them.",
       [(f"sum(increase(sidechain_feedback_abandoned_total{{{FB}}}[24h]))", "abandoned")],
       thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                  {"color": "red", "value": 1}]}, decimals=0, w=4)
d.row("Flow")
d.ts("Events in / s by outcome", "Consumed from the stream: batched (for Gorse), ignored (e.g. logout), poison (undecodable).",
     [(f"sum by (outcome) (rate(sidechain_feedback_events_total{{{FB}}}[{RI}]))", "{{outcome}}")],
     unit="ops", w=8, stack=True)
d.ts("Events in / s by kind", "Consumed events per kind.",
     [(f"sum by (kind) (rate(sidechain_feedback_events_total{{{FB}}}[{RI}]))", "{{kind}}")],
     unit="ops", w=8)
d.ts("Out: Gorse operations / s", "Operations delivered from live batches and from the dead-letter list.",
     [(f"sum(rate(sidechain_feedback_items_sent_total{{{FB}}}[{RI}]))", "live batches"),
      (f"sum(rate(sidechain_feedback_dead_letter_flushed_total{{{FB}}}[{RI}]))", "dead-letter flush")],
     unit="ops", w=8)
d.ts("Batches / s by outcome", "delivered: Gorse took it; dead_lettered: stored in the dead-letter list; not_stored: Redis down too (nacked, redelivered).",
     [(f"sum by (outcome) (rate(sidechain_feedback_batches_total{{{FB}}}[{RI}]))", "{{outcome}}")],
     unit="ops", w=8, stack=True)
d.ts("Batch fill (messages per batch)", "Median, p95 and mean messages per settled batch (cap GORSE_BATCH_SIZE, 100). Small batches: low traffic or GORSE_BATCH_TIMEOUT.",
     [(f"histogram_quantile(0.5, sum by (le) (rate(sidechain_feedback_batch_size_bucket{{{FB}}}[{RI}])))", "p50"),
      (f"histogram_quantile(0.95, sum by (le) (rate(sidechain_feedback_batch_size_bucket{{{FB}}}[{RI}])))", "p95"),
      (f"sum(rate(sidechain_feedback_batch_size_sum{{{FB}}}[{RI}])) / sum(rate(sidechain_feedback_batch_size_count{{{FB}}}[{RI}]))", "mean")],
     unit="short", w=8)
d.ts("Redeliveries and retries / s", "Stream redeliveries (missed or negative acks) and Gorse retries per endpoint.",
     [(f"sum(rate(sidechain_feedback_redeliveries_total{{{FB}}}[{RI}]))", "redeliveries"),
      (f"sum by (endpoint) (rate(sidechain_gorse_retries_total{{{FB}}}[{RI}]))", "retries {{endpoint}}")],
     unit="ops", w=8)
d.row("Queue depth")
d.ts("Queue depth (stacked)", "Where feedback waits, stacked: the batch being assembled in memory (summed over instances), the stream backlog not yet delivered to the consumer, and the dead-letter list (entries are whole batches). Ack pending (delivered, not yet acked) overlaps the in-memory batch and is shown on the NATS dashboard.",
     [(f"sum(sidechain_feedback_batch_pending_messages{{{FB}}})", "in-memory batch"),
      (f"max(sidechain_feedback_consumer_pending_messages{{{FB}}})", "consumer pending (stream)"),
      (f"max(sidechain_feedback_dead_letter_length{{{FB}}})", "dead-letter list")],
     unit="short", w=12, stack=True)
d.ts("Dead-letter list", "Length of gorse_failed_feedback and of the parked list; entries added per second by kind.",
     [(f"max(sidechain_feedback_dead_letter_length{{{FB}}})", "waiting"),
      (f"max(sidechain_feedback_dead_letter_parked_length{{{FB}}})", "parked"),
      (f"sum by (kind) (rate(sidechain_feedback_dead_letter_entries_total{{{FB}}}[{RI}])) * 60", "added/min {{kind}}"),
      (f"sum(rate(sidechain_feedback_dead_letter_parked_total{{{FB}}}[{RI}])) * 60", "parked/min")],
     unit="short", w=12)
d.row("Gorse")
d.ts("Gorse call latency by endpoint", "p50 / p99 of Gorse calls including retries.",
     [(f"histogram_quantile(0.5, sum by (le, endpoint) (rate(sidechain_gorse_request_duration_seconds_bucket{{{FB}}}[{RI}])))", "p50 {{endpoint}}"),
      (f"histogram_quantile(0.99, sum by (le, endpoint) (rate(sidechain_gorse_request_duration_seconds_bucket{{{FB}}}[{RI}])))", "p99 {{endpoint}}")],
     unit="s", w=12)
d.ts("Gorse calls / s by outcome", "ok, rejected (4xx), unavailable (after retries), circuit_open (failed fast).",
     [(f"sum by (outcome) (rate(sidechain_gorse_request_duration_seconds_count{{{FB}}}[{RI}]))", "{{outcome}}")],
     unit="ops", w=12, stack=True)
d.state("Gorse health per instance", "1 = ready, 0 = not ready.",
        [(f"sidechain_gorse_healthy{{{FB}}}", "{{instance}}")], UPDOWN, UPDOWN_T, w=12)
d.state("Circuit breaker per instance", "0 closed, 1 half-open, 2 open.",
        [(f"sidechain_gorse_circuit_state{{{FB}}}", "{{instance}}")], BREAKER, BREAKER_T, w=12)
d.ts("Last sync age", "Seconds since Gorse last accepted a batch, per instance.",
     [(f"time() - sidechain_feedback_last_sync_timestamp_seconds{{{FB}}}", "{{instance}}")],
     unit="s", w=24, h=6)
d.ts("Placeholder items", "Items Gorse lacked when feedback came: written from the read models (upserted), dropped for deleted posts, or written as hidden placeholders that wait in gorse_placeholders until a reconciliation pass resolves them (docs/operations.md, hidden placeholders).",
     [(f"max(sidechain_gorse_placeholders_pending{{{FB}}})", "pending"),
      (f"sum(rate(sidechain_gorse_placeholder_items_total{{{FB}}}[{RI}])) * 60", "placeholders/min"),
      (f"sum by (outcome) (rate(sidechain_gorse_reconciled_items_total{{{FB}}}[{RI}])) * 60", "resolved/min {{outcome}}")],
     unit="short", w=12, h=6)
d.ts("Reconciliation pass duration", "p50 / p99 of one pass over the pending placeholders.",
     [(f"histogram_quantile(0.5, sum by (le) (rate(sidechain_gorse_reconcile_duration_seconds_bucket{{{FB}}}[{RI}])))", "p50"),
      (f"histogram_quantile(0.99, sum by (le) (rate(sidechain_gorse_reconcile_duration_seconds_bucket{{{FB}}}[{RI}])))", "p99")],
     unit="s", w=12, h=6)
dashes.append(d)

# ------------------------------------------------------------------ cache
CA = 'job="sidechain-cache"'
d = Dash("sidechain-cache", "Sidechain / Cache and read models",
         "Page cache hit ratio per feed, invalidations, rebuilds, and how far the read models lag the stream.",
         ["cache"])
HIT = (f'1 - ((sum by (feed) (rate(sidechain_cache_page_requests_total{{{CA}, result="miss"}}[{RI}])) '
       f'or sum by (feed) (rate(sidechain_cache_page_requests_total{{{CA}}}[{RI}])) * 0) '
       f'/ sum by (feed) (rate(sidechain_cache_page_requests_total{{{CA}}}[{RI}])))')
d.stat("Hit ratio (all feeds)", "1 - misses / page requests over 5 minutes (memory, Redis and coalesced count as hits).",
       [(f'1 - (sum(rate(sidechain_cache_page_requests_total{{{CA}, result="miss"}}[5m])) or vector(0)) / sum(rate(sidechain_cache_page_requests_total{{{CA}}}[5m]))', "hit ratio")],
       unit="percentunit", decimals=1, w=6,
       thresholds={"mode": "absolute", "steps": [{"color": "red", "value": None},
                                                  {"color": "orange", "value": 0.5},
                                                  {"color": "green", "value": 0.8}]})
d.stat("Read-model lag", "Stream messages not yet applied to the read models.",
       [(f"max(sidechain_cache_consumer_lag_messages{{{CA}}})", "lag")], w=6,
       thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                  {"color": "orange", "value": 100},
                                                  {"color": "red", "value": 1000}]})
d.stat("Applied sequence", "Last stream sequence applied (readmodel:applied_seq).",
       [(f"max(sidechain_cache_applied_sequence{{{CA}}})", "seq")], w=6, decimals=0)
d.stat("Gorse circuit", "Breaker of the recommendation reads (worst instance).",
       [(f"max(sidechain_gorse_circuit_state{{{CA}}})", "breaker")], mappings=BREAKER,
       thresholds=BREAKER_T, color_mode="background", w=6)
d.row("Page cache")
d.ts("Hit ratio by feed", "1 - miss / total page requests, per feed.",
     [(HIT, "{{feed}}")], unit="percentunit", w=12)
d.ts("Page requests / s by result", "hit_memory, hit_redis, miss (rebuilt), coalesced (waited for a concurrent rebuild).",
     [(f"sum by (result) (rate(sidechain_cache_page_requests_total{{{CA}}}[{RI}]))", "{{result}}")],
     unit="ops", w=12, stack=True)
d.ts("Invalidations / s by feed", "Page scopes dropped because membership changed (new/deleted post, follow/unfollow).",
     [(f"sum by (feed) (rate(sidechain_cache_invalidations_total{{{CA}}}[{RI}]))", "{{feed}}")],
     unit="ops", w=8)
d.ts("Rebuilds / s by feed", "Pages assembled from the read models (cache misses).",
     [(f"sum by (feed) (rate(sidechain_cache_rebuild_duration_seconds_count{{{CA}}}[{RI}]))", "{{feed}}")],
     unit="ops", w=8)
d.ts("Rebuild duration p99 by feed", "Time to assemble a page on a miss.",
     [(f"histogram_quantile(0.99, sum by (le, feed) (rate(sidechain_cache_rebuild_duration_seconds_bucket{{{CA}}}[{RI}])))", "{{feed}}")],
     unit="s", w=8)
d.ts("Gorse fallbacks / s", "Unified and for-you feeds served from trending instead of Gorse, by reason.",
     [(f"sum by (feed, reason) (rate(sidechain_cache_gorse_fallbacks_total{{{CA}}}[{RI}]))", "{{feed}} {{reason}}")],
     unit="ops", w=12)
d.ts("Request duration p99 by subject", "NATS requests answered by the cache service (feeds, sessions, lookups).",
     [(f"histogram_quantile(0.99, sum by (le, subject) (rate(sidechain_cache_request_duration_seconds_bucket{{{CA}}}[{RI}])))", "{{subject}}")],
     unit="s", w=12)
d.row("Read models (apply)")
d.ts("Read-model lag (messages)", "Consumer lag of cache-read-models; grows during a replay or when Redis fails.",
     [(f"max(sidechain_cache_consumer_lag_messages{{{CA}}})", "lag")], unit="short", w=8)
d.ts("Events applied / s by kind", "Events applied to Redis (one MULTI/EXEC per batch).",
     [(f"sum by (kind) (rate(sidechain_cache_events_applied_total{{{CA}}}[{RI}]))", "{{kind}}")],
     unit="ops", w=8, stack=True)
d.ts("Apply duration", "p50 / p99 of one batch transaction.",
     [(f"histogram_quantile(0.5, sum by (le) (rate(sidechain_cache_apply_duration_seconds_bucket{{{CA}}}[{RI}])))", "p50"),
      (f"histogram_quantile(0.99, sum by (le) (rate(sidechain_cache_apply_duration_seconds_bucket{{{CA}}}[{RI}])))", "p99")],
     unit="s", w=8)
d.ts("Apply failures, poison events, stream rebuilds", "Failed batch applies (retried), undecodable events (skipped), and replays started because Redis lost its read models.",
     [(f"sum(increase(sidechain_cache_apply_failures_total{{{CA}}}[{RI}]))", "apply failures"),
      (f"sum(increase(sidechain_cache_events_poison_total{{{CA}}}[{RI}]))", "poison events"),
      (f"sum(increase(sidechain_cache_stream_rebuilds_total{{{CA}}}[{RI}]))", "stream rebuilds")],
     unit="short", w=12)
d.ts("In-memory lookups hit ratio", "Post, profile and following lookups served from memory, by kind.",
     [(f'(sum by (what) (rate(sidechain_cache_memory_lookups_total{{{CA}, result="hit"}}[{RI}])) or sum by (what) (rate(sidechain_cache_memory_lookups_total{{{CA}}}[{RI}])) * 0) / sum by (what) (rate(sidechain_cache_memory_lookups_total{{{CA}}}[{RI}]))', "{{what}}")],
     unit="percentunit", w=6)
d.ts("Session checks / s", "auth.session answers by result.",
     [(f"sum by (result) (rate(sidechain_cache_session_checks_total{{{CA}}}[{RI}]))", "{{result}}")],
     unit="ops", w=6)
dashes.append(d)

# ------------------------------------------------------------------ rate limiting
d = Dash("sidechain-rate-limiting", "Sidechain / Rate limiting",
         "GCRA rate limits of the edge: allowed and limited requests per class, Redis or local backend, fallback state.",
         ["edge", "rate-limit"],
         [query_var("instance", "edge instance", 'label_values(sidechain_rate_limit_decisions_total{job="sidechain-edge"}, instance)')])
d.stat("Limited (5 m)", "Share of requests refused with 429.",
       [(f'(sum(rate(sidechain_rate_limit_decisions_total{{{EDGE}, decision="limited"}}[5m])) or vector(0)) / sum(rate(sidechain_rate_limit_decisions_total{{{EDGE}}}[5m]))', "limited")],
       unit="percentunit", decimals=2, w=8)
d.stat("Instances on local fallback", "Edges deciding without Redis (each limits alone).",
       [(f"sum(sidechain_rate_limit_fallback_active{{{EDGE}}})", "fallback")], w=8,
       thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                  {"color": "red", "value": 1}]})
d.stat("Check p99", "Time to decide (one Redis round trip normally).",
       [(f"histogram_quantile(0.99, sum by (le) (rate(sidechain_rate_limit_check_duration_seconds_bucket{{{EDGE}}}[5m])))", "p99")],
       unit="s", w=8)
d.ts("Decisions / s by class", "Allowed and limited per route class (default, auth, upload).",
     [(f"sum by (class, decision) (rate(sidechain_rate_limit_decisions_total{{{EDGE}}}[{RI}]))", "{{class}} {{decision}}")],
     unit="ops", w=12)
d.ts("Limited ratio by class", "Share of each class's requests refused.",
     [(f'(sum by (class) (rate(sidechain_rate_limit_decisions_total{{{EDGE}, decision="limited"}}[{RI}])) or sum by (class) (rate(sidechain_rate_limit_decisions_total{{{EDGE}}}[{RI}])) * 0) / sum by (class) (rate(sidechain_rate_limit_decisions_total{{{EDGE}}}[{RI}]))', "{{class}}")],
     unit="percentunit", w=12)
d.ts("Decisions / s by backend", "redis: shared buckets; local: in-process fallback.",
     [(f"sum by (backend) (rate(sidechain_rate_limit_decisions_total{{{EDGE}}}[{RI}]))", "{{backend}}")],
     unit="ops", w=8, stack=True)
d.state("Fallback per instance", "1 while an edge decides with its in-process buckets (Redis failing or > 250 ms).",
        [(f"sidechain_rate_limit_fallback_active{{{EDGE}}}", "{{instance}}")],
        [{"type": "value", "options": {"0": {"text": "redis", "color": "green", "index": 0},
                                       "1": {"text": "local fallback", "color": "red", "index": 1}}}],
        {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]},
        w=8)
d.ts("Check duration by backend", "p50 / p99 of one rate-limit decision.",
     [(f"histogram_quantile(0.5, sum by (le, backend) (rate(sidechain_rate_limit_check_duration_seconds_bucket{{{EDGE}}}[{RI}])))", "p50 {{backend}}"),
      (f"histogram_quantile(0.99, sum by (le, backend) (rate(sidechain_rate_limit_check_duration_seconds_bucket{{{EDGE}}}[{RI}])))", "p99 {{backend}}")],
     unit="s", w=8)
d.ts("429 responses / s by route", "What clients see (Retry-After is sent).",
     [(f'sum by (route) (rate(sidechain_http_requests_total{{{EDGE}, status="429"}}[{RI}]))', "{{route}}")],
     unit="reqps", w=24)
dashes.append(d)

# ------------------------------------------------------------------ NATS consumers
d = Dash("sidechain-nats", "Sidechain / NATS stream and consumers",
         "The EVENTS stream from the services' side: what is published, and how far the feedback and cache consumers lag.",
         ["nats", "jetstream"])
d.stat("feedback pending", "Stream messages not yet delivered to the feedback consumer.",
       [(f"max(sidechain_feedback_consumer_pending_messages{{{FB}}})", "pending")], w=6,
       thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                  {"color": "orange", "value": 100},
                                                  {"color": "red", "value": 1000}]})
d.stat("feedback ack pending", "Delivered, not yet acknowledged (bounded by FEEDBACK_MAX_ACK_PENDING).",
       [(f"max(sidechain_feedback_consumer_ack_pending_messages{{{FB}}})", "ack pending")], w=6)
d.stat("cache lag", "Stream messages not yet applied to the read models.",
       [(f"max(sidechain_cache_consumer_lag_messages{{{CA}}})", "lag")], w=6,
       thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                  {"color": "orange", "value": 100},
                                                  {"color": "red", "value": 1000}]})
d.stat("Publish failures (5 m)", "Events the edge could not store (unavailable or rejected).",
       [('sum(increase(sidechain_events_published_total{job="sidechain-edge", outcome=~"unavailable|rejected"}[5m])) or vector(0)', "failed")],
       w=6, decimals=0, thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                   {"color": "red", "value": 1}]})
d.ts("Consumer lag", "Backlog of both durable consumers.",
     [(f"max(sidechain_feedback_consumer_pending_messages{{{FB}}})", "feedback pending"),
      (f"max(sidechain_feedback_consumer_ack_pending_messages{{{FB}}})", "feedback ack pending"),
      (f"max(sidechain_cache_consumer_lag_messages{{{CA}}})", "cache lag")],
     unit="short", w=24)
d.ts("Throughput: published vs consumed", "Events stored by the edge, consumed by feedback, applied by cache (/s).",
     [('sum(rate(sidechain_events_published_total{job="sidechain-edge", outcome="stored"}[' + RI + ']))', "published (stored)"),
      (f"sum(rate(sidechain_feedback_events_total{{{FB}}}[{RI}]))", "feedback consumed"),
      (f"sum(rate(sidechain_cache_events_applied_total{{{CA}}}[{RI}]))", "cache applied")],
     unit="ops", w=12)
d.ts("Publish outcomes / s", "stored, duplicate, unavailable (NATS down), rejected (e.g. stream full).",
     [('sum by (outcome) (rate(sidechain_events_published_total{job="sidechain-edge"}[' + RI + ']))', "{{outcome}}")],
     unit="ops", w=12, stack=True)
d.ts("Publish latency p99", "Until the JetStream ack, by kind.",
     [('histogram_quantile(0.99, sum by (le, kind) (rate(sidechain_event_publish_duration_seconds_bucket{job="sidechain-edge"}[' + RI + '])))', "{{kind}}")],
     unit="s", w=8)
d.ts("Request/reply latency p99", "Edge side (round trip) and cache side (handling), by subject.",
     [('histogram_quantile(0.99, sum by (le, subject) (rate(sidechain_nats_request_duration_seconds_bucket{job="sidechain-edge"}[' + RI + '])))', "edge {{subject}}"),
      (f"histogram_quantile(0.99, sum by (le, subject) (rate(sidechain_cache_request_duration_seconds_bucket{{{CA}}}[{RI}])))", "cache {{subject}}")],
     unit="s", w=8)
d.ts("Redeliveries / s", "Messages the feedback consumer received again (ack wait expired or nacked).",
     [(f"sum(rate(sidechain_feedback_redeliveries_total{{{FB}}}[{RI}]))", "redeliveries")],
     unit="ops", w=8)
dashes.append(d)

# ------------------------------------------------------------------ process
ALL = 'job=~"$job", instance=~"$instance"'
d = Dash("sidechain-process", "Sidechain / Processes and Redis",
         "CPU, memory, threads and file descriptors of every Sidechain process, and Redis command latency as the services see it.",
         ["process", "redis"],
         [query_var("job", "service", 'label_values(sidechain_process_start_time_seconds, job)'),
          query_var("instance", "instance", 'label_values(sidechain_process_start_time_seconds{job=~"$job"}, instance)')])
d.ts("CPU (cores)", "CPU seconds per second per process.",
     [(f"sum by (job, instance) (rate(sidechain_process_cpu_seconds_total{{{ALL}}}[{RI}]))", "{{job}} {{instance}}")],
     unit="short", w=12)
d.ts("Resident memory", "RSS per process.",
     [(f"sidechain_process_resident_memory_bytes{{{ALL}}}", "{{job}} {{instance}}")], unit="bytes", w=12)
d.ts("Open file descriptors", "Open fds per process (sockets included), and the share of the limit.",
     [(f"sidechain_process_open_fds{{{ALL}}}", "{{job}} {{instance}}")], unit="short", w=8)
d.ts("File descriptors used (of max)", "open_fds / max_fds.",
     [(f"sidechain_process_open_fds{{{ALL}}} / sidechain_process_max_fds{{{ALL}}}", "{{job}} {{instance}}")],
     unit="percentunit", w=8, thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                          {"color": "red", "value": 0.8}]})
d.ts("Threads", "OS threads per process.",
     [(f"sidechain_process_threads{{{ALL}}}", "{{job}} {{instance}}")], unit="short", w=8)
d.ts("Virtual memory", "Virtual size per process.",
     [(f"sidechain_process_virtual_memory_bytes{{{ALL}}}", "{{job}} {{instance}}")], unit="bytes", w=12)
d.ts("Uptime", "Time since start (restarts show as drops).",
     [(f"time() - sidechain_process_start_time_seconds{{{ALL}}}", "{{job}} {{instance}}")], unit="s", w=12)
d.row("Redis (as seen by the services)")
d.ts("Redis command latency p99 by operation", "Pipelines and transactions count as `pipeline`.",
     [(f"histogram_quantile(0.99, sum by (le, job, operation) (rate(sidechain_redis_command_duration_seconds_bucket{{{ALL}}}[{RI}])))", "{{job}} {{operation}}")],
     unit="s", w=12)
d.ts("Redis commands / s by outcome", "Commands per service and outcome.",
     [(f"sum by (job, outcome) (rate(sidechain_redis_command_duration_seconds_count{{{ALL}}}[{RI}]))", "{{job}} {{outcome}}")],
     unit="ops", w=12)
dashes.append(d)

# ------------------------------------------------------------------ audio: uploads and media
MD = 'job="sidechain-media"'
ED = 'job="sidechain-edge"'
d = Dash("sidechain-media", "Sidechain / Audio uploads and media pipeline",
         "Uploads at the edge (by outcome, bytes, time) and the media service that measures them (jobs, failures, lag, processing time).",
         ["media", "audio"])
d.row("Uploads (edge)")
d.ts("Uploads / s by outcome", "accepted, or why refused: too_large, not_audio, empty, stalled, malformed, invalid_field (the client's); store_unavailable, spool_failed, event_not_stored (ours, 503).",
     [(f"sum by (outcome) (rate(sidechain_audio_uploads_total{{{ED}}}[{RI}]))", "{{outcome}}")],
     unit="ops", w=12, stack=True)
d.ts("Upload bytes / s by format", "Bytes of accepted uploads, by the format sniffed from the file.",
     [(f"sum by (format) (rate(sidechain_audio_upload_bytes_total{{{ED}}}[{RI}]))", "{{format}}")],
     unit="Bps", w=12, stack=True)
d.ts("Upload time p50 / p99", "From the first byte of an upload to its acknowledged events (accepted uploads).",
     [(f"histogram_quantile(0.5, sum by (le) (rate(sidechain_audio_upload_duration_seconds_bucket{{{ED}}}[{RI}])))", "p50"),
      (f"histogram_quantile(0.99, sum by (le) (rate(sidechain_audio_upload_duration_seconds_bucket{{{ED}}}[{RI}])))", "p99")],
     unit="s", w=12)
d.ts("Audio served / s", "Bytes of stored audio and waveforms streamed to clients (a CDN in front takes most of this in production).",
     [(f"sum(rate(sidechain_audio_served_bytes_total{{{ED}}}[{RI}]))", "served")],
     unit="Bps", w=12)
d.row("Media service")
d.ts("Jobs / s by outcome", "processed, rejected (unusable file or poison), retried (a passing failure).",
     [(f"sum by (outcome) (rate(sidechain_media_jobs_total{{{MD}}}[{RI}]))", "{{outcome}}")],
     unit="ops", w=12, stack=True)
d.ts("Failures / s by reason", "undecodable, corrupt, truncated, empty, object_missing (the file's); store_unavailable, event_store_unavailable, gave_up (ours).",
     [(f"sum by (reason) (rate(sidechain_media_failures_total{{{MD}}}[{RI}]))", "{{reason}}")],
     unit="ops", w=12, stack=True)
d.ts("Backlog and in flight", "Uploads not yet delivered to the media consumer, and files being processed now (summed over instances).",
     [(f"max(sidechain_media_consumer_pending{{{MD}}})", "consumer pending"),
      (f"sum(sidechain_media_jobs_in_flight{{{MD}}})", "in flight")],
     unit="short", w=12)
d.ts("Processing time p50 / p99 by format", "Fetch, decode, measure, store the waveform and record the result, per upload.",
     [(f"histogram_quantile(0.5, sum by (le, format) (rate(sidechain_media_processing_duration_seconds_bucket{{{MD}}}[{RI}])))", "p50 {{format}}"),
      (f"histogram_quantile(0.99, sum by (le, format) (rate(sidechain_media_processing_duration_seconds_bucket{{{MD}}}[{RI}])))", "p99 {{format}}")],
     unit="s", w=12)
dashes.append(d)

os.makedirs(OUT, exist_ok=True)
for dash in dashes:
    path = os.path.join(OUT, dash.uid + ".json")
    with open(path, "w") as f:
        json.dump(dash.json(), f, indent=2)
        f.write("\n")
    print(path, len(dash.panels), "panels")
