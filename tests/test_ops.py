"""The Grafana dashboard and the Prometheus alert rules (ops/) name only series cohortflow exports.

Every PromQL expression of ops/grafana/cohortflow.json and ops/prometheus/alerts.yml is read by a
small tokenizer (below), and each metric and label it names is looked up in the samples the real
metric objects expose: :class:`cohortflow.pipeline.metrics.PrometheusObserver` and
:class:`cohortflow.api.metrics.Metrics`, each driven once through its hooks so that every labelled
family has samples. No service is needed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from cohortflow.api.metrics import Metrics
from cohortflow.pipeline.metrics import PrometheusObserver
from cohortflow.pipeline.observer import BatchReport

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "ops" / "grafana" / "cohortflow.json"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"

# Series the rules may name that cohortflow does not export: Prometheus' own, per scrape target.
KNOWN_NOT_EXPORTED = {"up": {"job", "instance"}}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}

# ---------------------------------------------------------------------------------------------------------------
# A PromQL tokenizer: enough to tell metric names from functions, keywords, label names, strings and durations.

AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio",
}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time",
    "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing", "end",
    "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile",
    "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "info",
    "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
    "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time",
    "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label",
    "sort_by_label_desc", "sort_desc", "sqrt", "start", "stddev_over_time", "stdvar_over_time", "sum_over_time",
    "tan", "tanh", "time", "timestamp", "vector", "year",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = GROUPING | {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
MATCHERS = {"=", "!=", "=~", "!~"}
# Functions over counters (and the cumulative histogram series), and over gauges.
COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets"}
GAUGE_FUNCTIONS = {"delta", "idelta", "deriv", "predict_linear"}

_UNIT = r"(?:ms|[smhdwy])"
TOKEN = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<range>\[[^\]]*\])
      | (?P<duration>\d+""" + _UNIT + r"(?:\d+" + _UNIT + r""")*(?![\w:]))
      | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<variable>\$\{[^}]*\}|\$\w+)
      | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
      | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>@,(){}])
    """,
    re.X,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


@dataclass
class Selector:
    """One series selector: the metric, and the label names its ``{...}`` matches on."""

    metric: str
    labels: set[str] = field(default_factory=set)


@dataclass
class Grouping:
    """Labels of a ``by``/``without``/``on``/... clause, and the metrics of the expression they apply to.

    ``every``: the label must exist on every metric of ``scope`` (an aggregation's argument); otherwise on
    one of them at least (vector matching: one side may lack it).
    """

    clause: str
    labels: list[str]
    scope: list[str]
    every: bool


@dataclass
class Call:
    function: str
    metrics: list[str]


@dataclass
class Parsed:
    selectors: list[Selector]
    groupings: list[Grouping]
    calls: list[Call]

    @property
    def metrics(self) -> set[str]:
        return {s.metric for s in self.selectors}


def tokenize(expr: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(Token(kind, m.group()))
    return tokens


def _matching(tokens: list[Token], open_: str, close: str) -> dict[int, int]:
    pairs, stack = {}, []
    for i, t in enumerate(tokens):
        if t.kind == "op" and t.text == open_:
            stack.append(i)
        elif t.kind == "op" and t.text == close:
            if not stack:
                raise ValueError(f"unbalanced {close!r}")
            pairs[stack.pop()] = i
    if stack:
        raise ValueError(f"unbalanced {open_!r}")
    return pairs


def parse(expr: str) -> Parsed:
    """The metrics, matcher labels, grouping labels and function calls of one PromQL expression."""
    tokens = tokenize(expr)
    parens = _matching(tokens, "(", ")")
    braces = _matching(tokens, "{", "}")

    def is_op(i: int, text: str) -> bool:
        return i < len(tokens) and tokens[i].kind == "op" and tokens[i].text == text

    selectors: list[tuple[int, Selector]] = []  # (token index, selector)
    label_groups: dict[int, tuple[str, list[str], int]] = {}  # "(" index -> (clause, labels, ")" index)
    skip: set[int] = set()
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if i in skip or t.kind != "ident" and not is_op(i, "{"):
            i += 1
            continue
        if is_op(i, "{"):  # a selector without a metric name before it
            name = _name_matcher(tokens[i + 1:braces[i]])
            selectors.append((i, Selector(name, _matcher_labels(tokens[i + 1:braces[i]]))))
            i = braces[i] + 1
            continue
        word = t.text
        if word in GROUPING:
            if is_op(i + 1, "("):
                close = parens[i + 1]
                labels = [x.text for x in tokens[i + 2:close] if x.kind == "ident"]
                label_groups[i + 1] = (word, labels, close)
                skip.update(range(i + 1, close + 1))
                i = close + 1
            elif word in {"group_left", "group_right"}:
                i += 1
            else:
                raise ValueError(f"{word} without a label list in {expr!r}")
            continue
        if word in KEYWORDS:
            i += 1
            continue
        if word in AGGREGATIONS or word in FUNCTIONS:
            if not (is_op(i + 1, "(") or word in AGGREGATIONS and i + 1 < len(tokens)
                    and tokens[i + 1].text in {"by", "without"}):
                raise ValueError(f"{word} is a function, not a metric, in {expr!r}")
            i += 1
            continue
        if is_op(i + 1, "("):
            raise ValueError(f"unknown function {word}( in {expr!r}")
        selector = Selector(word)
        if is_op(i + 1, "{"):
            selector.labels = _matcher_labels(tokens[i + 2:braces[i + 1]])
            selectors.append((i, selector))
            i = braces[i + 1] + 1
        else:
            selectors.append((i, selector))
            i += 1

    def within(start: int, end: int) -> list[str]:
        return [s.metric for at, s in selectors if start < at < end]

    groupings, calls = [], []
    for open_, (clause, labels, _close) in label_groups.items():
        by_at = open_ - 1
        if clause in {"by", "without"}:
            if by_at >= 1 and tokens[by_at - 1].text in AGGREGATIONS:  # sum by (x) (arg)
                arg = parens[open_] + 1
            else:  # sum (arg) by (x): the argument closes just before the clause
                closer = by_at - 1
                arg = next(o for o, c in parens.items() if c == closer)
            if not is_op(arg, "("):
                raise ValueError(f"{clause} without an aggregation argument in {expr!r}")
            groupings.append(Grouping(clause, labels, within(arg, parens[arg]), every=clause == "by"))
        else:
            groupings.append(Grouping(clause, labels, [s.metric for _, s in selectors], every=False))
    for at, t in enumerate(tokens):
        if t.kind == "ident" and t.text in FUNCTIONS and is_op(at + 1, "("):
            calls.append(Call(t.text, within(at + 1, parens[at + 1])))
    return Parsed([s for _, s in selectors], groupings, calls)


def _matcher_labels(inside: list[Token]) -> set[str]:
    return {t.text for t, nxt in zip(inside, inside[1:]) if t.kind == "ident" and nxt.text in MATCHERS}


def _name_matcher(inside: list[Token]) -> str:
    for t, op, value in zip(inside, inside[1:], inside[2:]):
        if t.text == "__name__" and op.text == "=" and value.kind == "string":
            return value.text[1:-1]
    raise ValueError("a selector with neither a metric name nor __name__=")


# ---------------------------------------------------------------------------------------------------------------
# What cohortflow exports.


@dataclass(frozen=True)
class Series:
    family: str
    type: str  # counter, gauge, histogram
    labels: frozenset[str]


def exported_series(registry: CollectorRegistry) -> dict[str, Series]:
    """Sample name (``x_total``, ``x_bucket``, a gauge's name...) -> its family, type and label names."""
    found: dict[str, tuple[str, str, set[str]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            _, _, labels = found.setdefault(sample.name, (family.name, family.type, set()))
            labels.update(sample.labels)
    return {name: Series(f, t, frozenset(labels)) for name, (f, t, labels) in found.items()}


def worker_registry() -> CollectorRegistry:
    """The worker's metrics, with a sample in every labelled family."""
    observer = PrometheusObserver(registry=CollectorRegistry())
    observer.batch(BatchReport(records=3, by_type=Counter({"submission": 2}), rejected=Counter({"bad_json": 1}),
                               fold_seconds=0.01, commit_seconds=0.02, freshness={"floors": 0.1},
                               cached_entities=5, evicted=1))
    observer.lag("cohort.submissions", 0, 7)
    observer.conflict("ShardMoved")
    observer.badges_restored(2)
    return observer.registry


def api_registry() -> CollectorRegistry:
    """The API's metrics (its own registry per app), after one request."""
    metrics = Metrics()
    metrics.observe({"type": "http", "method": "GET", "route": SimpleNamespace(path="/v1/global")}, 200, 0.003)
    return metrics.registry


@pytest.fixture(scope="module")
def exported() -> dict[str, Series]:
    worker, api = exported_series(worker_registry()), exported_series(api_registry())
    assert not set(worker) & set(api), "the worker and the API export a series of the same name"
    return {**worker, **api}


def family_of(name: str, exported: dict[str, Series]) -> str | None:
    """The family a referenced series belongs to (``x_bucket``/``x_sum``/``x_count``, ``x_total``/``x_created``
    -> ``x``), or None when nothing exported has that sample name."""
    series = exported.get(name)
    return series.family if series else None


def missing_metrics(expr: str, exported: dict[str, Series]) -> list[str]:
    return sorted(m for m in parse(expr).metrics if m not in KNOWN_NOT_EXPORTED and family_of(m, exported) is None)


def labels_of(metric: str, exported: dict[str, Series]) -> set[str]:
    if metric in KNOWN_NOT_EXPORTED:
        return set(KNOWN_NOT_EXPORTED[metric])
    series = exported.get(metric)
    return set(series.labels) | TARGET_LABELS if series else set()


def unknown_labels(expr: str, exported: dict[str, Series]) -> list[str]:
    """``metric.label`` for each label an expression uses that its metric(s) lack."""
    parsed, bad = parse(expr), []
    for s in parsed.selectors:
        bad += [f"{s.metric}.{label}" for label in sorted(s.labels - labels_of(s.metric, exported))]
    for g in parsed.groupings:
        for label in g.labels:
            has = [label in labels_of(m, exported) for m in g.scope]
            if not has or not (all(has) if g.every else any(has)):
                bad.append(f"{g.clause}({label}) over {sorted(set(g.scope))}")
    return bad


# ---------------------------------------------------------------------------------------------------------------
# The two files.


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def load_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for p in panels:
        found.append(p)
        found += all_panels(p.get("panels", []))  # a collapsed row holds its panels
    return found


def dashboard_expressions() -> list[tuple[str, str]]:
    return [(f"panel {p['title']!r} {t['refId']}", t["expr"])
            for p in all_panels(load_dashboard()["panels"]) for t in p.get("targets", [])]


def alert_expressions() -> list[tuple[str, str]]:
    return [(f"alert {rule['alert']}", rule["expr"]) for rule in load_rules()]


EXPRESSIONS = dashboard_expressions() + alert_expressions()
IDS = [where for where, _ in EXPRESSIONS]


# ---------------------------------------------------------------------------------------------------------------
# The tests.


def test_there_are_expressions_in_both_files() -> None:
    assert len(dashboard_expressions()) >= 13 and len(alert_expressions()) >= 6


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=IDS)
def test_every_metric_named_is_exported(where: str, expr: str, exported: dict[str, Series]) -> None:
    assert parse(expr).metrics, f"{where} names no metric"
    assert missing_metrics(expr, exported) == [], f"{where} names series cohortflow does not export"


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=IDS)
def test_every_label_used_exists_on_its_metric(where: str, expr: str, exported: dict[str, Series]) -> None:
    assert unknown_labels(expr, exported) == [], where


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=IDS)
def test_functions_get_the_right_kind_of_series(where: str, expr: str, exported: dict[str, Series]) -> None:
    """rate() and friends over counters (histogram series are cumulative), delta() and deriv() over gauges,
    histogram_quantile() over _bucket series grouped by le."""
    parsed = parse(expr)
    for call in parsed.calls:
        kinds = {(exported[m].type, m.endswith("_bucket")) for m in call.metrics if m in exported}
        if call.function in COUNTER_FUNCTIONS:
            assert all(t in {"counter", "histogram"} for t, _ in kinds), f"{where}: {call.function} of a gauge"
        if call.function in GAUGE_FUNCTIONS:
            assert all(t == "gauge" for t, _ in kinds), f"{where}: {call.function} of a counter"
        if call.function == "histogram_quantile":
            assert call.metrics and all(m.endswith("_bucket") for m in call.metrics), where
            assert all("le" in g.labels for g in parsed.groupings if g.clause == "by"), f"{where}: by without le"


def test_every_family_exported_has_samples_and_is_on_the_dashboard(exported: dict[str, Series]) -> None:
    """The hooks driven above reach every family (so the lookups are complete), and every family is charted."""
    families = {f.name for r in (worker_registry(), api_registry()) for f in r.collect()}
    assert families == {s.family for s in exported.values()}
    charted = {exported[m].family for _, e in dashboard_expressions() for m in parse(e).metrics if m in exported}
    assert families - charted == set()


def test_the_dashboard_is_a_grafana_dashboard_on_a_datasource_variable() -> None:
    board = load_dashboard()
    assert 36 <= board["schemaVersion"] <= 41 and board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = all_panels(board["panels"])
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    for p in panels:
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]), p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t.get("datasource", p["datasource"]) == p["datasource"], p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]


def test_every_alert_has_for_severity_summary_and_description() -> None:
    rules = load_rules()
    assert len({r["alert"] for r in rules}) == len(rules), "alert names repeat"
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, rule["alert"]
        assert rule.get("annotations", {}).get("summary"), rule["alert"]
        assert rule.get("annotations", {}).get("description"), rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule["alert"]


SUBJECTS: dict[str, str] = {
    "lag": "cohortflow_consumer_lag",
    "freshness": "cohortflow_view_freshness_seconds",
    "dead letters": "cohortflow_rejected_total",
    "commit latency": "cohortflow_commit_seconds_bucket",
    "API requests": "cohortflow_api_requests_total",
}


def _covers(exprs: list[str], subject: str) -> bool:
    metric = SUBJECTS[subject]
    found = [e for e in exprs if metric in parse(e).metrics]
    if subject == "API requests":  # the 5xx ratio: a 5xx selector over the requests counter
        return any(re.search(r'status=~"5\.\."', e) for e in found)
    return bool(found)


@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_the_dashboard_and_the_alerts_cover_the_required_subjects(subject: str) -> None:
    assert _covers([e for _, e in dashboard_expressions()], subject), f"no panel on {subject}"
    assert _covers([e for _, e in alert_expressions()], subject), f"no alert on {subject}"


def test_the_alerts_watch_up_for_the_worker_and_the_api() -> None:
    jobs = set()
    for _, expr in alert_expressions():
        if "up" in parse(expr).metrics:
            jobs |= set(re.findall(r'job="([^"]+)"', expr))
    assert jobs == {"cohortflow-worker", "cohortflow-api"}


# The checker itself.


def test_a_made_up_metric_is_reported_missing(exported: dict[str, Series]) -> None:
    expr = ('sum by (reason) (rate(cohortflow_nonexistent_total{reason="x"}[5m]))'
            " / sum(rate(cohortflow_rejected_total[5m]))")
    assert missing_metrics(expr, exported) == ["cohortflow_nonexistent_total"]
    assert missing_metrics("cohortflow_rejected", exported) == ["cohortflow_rejected"]  # a family, not a sample
    assert missing_metrics("cohortflow_commit_seconds", exported) == ["cohortflow_commit_seconds"]


def test_series_map_to_their_family(exported: dict[str, Series]) -> None:
    for suffix in ("_bucket", "_sum", "_count", "_created"):
        assert family_of("cohortflow_commit_seconds" + suffix, exported) == "cohortflow_commit_seconds"
    for suffix in ("_total", "_created"):
        assert family_of("cohortflow_api_requests" + suffix, exported) == "cohortflow_api_requests"
    assert family_of("cohortflow_consumer_lag", exported) == "cohortflow_consumer_lag"
    assert family_of("cohortflow_consumer_lag_total", exported) is None


def test_labels_functions_strings_and_durations_are_not_metrics() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(cohortflow_api_request_seconds_bucket'
        '{route!~".*/stream", status=~"5..|rate"}[5m:30s] offset 1h30m)))'
        ' > on (job) group_left (instance) max without (pid) (up{job="sum"}) and bool 1e3'
        ' or label_replace(vector(1), "route", "$1", "x", "(.*)") unless {__name__="cohortflow_fold_seconds_count"}'
        ' * topk(3, cohortflow_consumer_lag[$__rate_interval])'
    )
    parsed = parse(expr)
    assert parsed.metrics == {"cohortflow_api_request_seconds_bucket", "up", "cohortflow_fold_seconds_count",
                              "cohortflow_consumer_lag"}
    assert {s.metric: s.labels for s in parsed.selectors}["cohortflow_api_request_seconds_bucket"] == {
        "route", "status"}
    assert [(g.clause, g.labels) for g in parsed.groupings] == [
        ("by", ["le", "route"]), ("on", ["job"]), ("group_left", ["instance"]), ("without", ["pid"])]
    assert parsed.groupings[0].scope == ["cohortflow_api_request_seconds_bucket"]
    assert parsed.groupings[3].scope == ["up"]
    assert [c.function for c in parsed.calls] == ["histogram_quantile", "rate", "label_replace", "vector"]
    # the trailing form: sum (x) by (label)
    trailing = parse("sum(rate(cohortflow_records_total[5m])) by (type)")
    assert trailing.groupings[0].scope == ["cohortflow_records_total"]


def test_wrong_labels_are_reported(exported: dict[str, Series]) -> None:
    assert unknown_labels('cohortflow_consumer_lag{view="x"}', exported) == ["cohortflow_consumer_lag.view"]
    assert unknown_labels("sum by (status) (cohortflow_consumer_lag)", exported) == [
        "by(status) over ['cohortflow_consumer_lag']"]
    # le exists on the _bucket series only
    assert unknown_labels("sum by (le) (rate(cohortflow_commit_seconds_bucket[5m]))", exported) == []
    assert unknown_labels("sum by (le) (rate(cohortflow_commit_seconds_count[5m]))", exported) != []
    assert unknown_labels('max by (instance) (up{job="x"})', exported) == []


def test_the_checker_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="unknown function"):
        parse("ratee(cohortflow_records_total[5m])")
    with pytest.raises(ValueError, match="unbalanced"):
        parse("sum(rate(cohortflow_records_total[5m])")
    with pytest.raises(ValueError, match="function, not a metric"):
        parse("rate + 1")


SCRAPE = ROOT / "ops" / "prometheus" / "prometheus.yml"


def test_the_scrape_config_defines_the_jobs_the_alerts_watch_on_the_default_ports() -> None:
    from cohortflow.settings import Settings

    config = yaml.safe_load(SCRAPE.read_text())
    assert config["rule_files"] == [ALERTS.name]
    targets = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
               for job in config["scrape_configs"]}
    defaults = Settings.model_fields
    assert targets == {"cohortflow-worker": [f"127.0.0.1:{defaults['metrics_port'].default}"],
                       "cohortflow-api": [f"127.0.0.1:{defaults['api_port'].default}"]}
    watched = {job for _, expr in alert_expressions() for job in re.findall(r'job="([^"]+)"', expr)}
    assert watched <= set(targets)
