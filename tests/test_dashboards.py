"""Grafana provisioning and dashboards, and the BI views they read (``sinks/clickhouse_bi.sql``).

Dashboards are checked as Grafana would read them (uids, datasource references, grid, targets),
their Prometheus expressions against the metrics the code really exports, and every ClickHouse
panel is run on chdb the way the grafana-clickhouse-datasource plugin would send it (template
variables from their own queries, macros expanded as the plugin expands them) over a simulated
cohort. The BI views are compared with numbers computed from the statements alone
(``tests/cohort.py``), before and after voiding statements.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lrs.settings import ServerSettings
from lrs.xapi.formats import parse_timestamp
from sinks.clickhouse import ClickHouseSink, connect
from sinks.ports import Batch, Retraction
from sinks.catalog import Catalog, CatalogDocument
from streams.locate import Locator
from streams.enrich import flatten
from sinks.positions import encode
from streams.settings import CatalogSettings, StreamSettings

from .cohort import Cohort, catalog
from .reference import model

ROOT = Path(__file__).resolve().parents[1] / "dashboards"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
FROM, TO = NOW - timedelta(days=30), NOW + timedelta(days=1)
"""The dashboards' time range in these tests: every simulated statement lies inside it."""
INTERVAL_SECONDS = 3600
MAIN = catalog(10, 2, list(range(1, 13)))
VOIDED = catalog(30, 1, list(range(41, 49)))
"""A course of its own for the voiding test, so the other tests' numbers do not move."""


# --- reading the files ---------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def yaml_items(path: Path, section: str) -> list[dict[str, str]]:
    """Scalar fields of the items of the top-level list ``section`` of a provisioning file, nested
    mappings flattened into their item. These files use block mappings and scalars only, so a line
    reading is enough (PyYAML is no dependency of the project)."""
    items: list[dict[str, str]] = []
    inside, indent = False, None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace() and not line.startswith("-"):
            inside = line == f"{section}:"
            continue
        m = re.match(r"(\s*)(- )?(\w+):\s*(.*)$", line)
        if not inside or m is None:
            continue
        if m.group(2) and indent in (None, len(m.group(1))):
            indent = len(m.group(1))
            items.append({})
        items[-1].setdefault(m.group(3), m.group(4).strip().strip('"'))
    return items


def provisioned_datasources() -> dict[str, str]:
    """uid → type of the provisioned datasources."""
    items = yaml_items(ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yaml", "datasources")
    return {item["uid"]: item["type"] for item in items}


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def is_clickhouse(thing: dict[str, Any]) -> bool:
    return thing["datasource"]["type"] == CLICKHOUSE_PLUGIN


# --- Grafana's query interpolation -----------------------------------------------------------------


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


MACROS: dict[str, Callable[[list[str]], str]] = {
    # as pkg/macros/macros.go of grafana-clickhouse-datasource expands them
    "timeFilter": lambda a: f"{a[0]} >= toDateTime({_unix(FROM)}) AND {a[0]} <= toDateTime({_unix(TO)})",
    "timeFilter_ms": lambda a: (
        f"{a[0]} >= fromUnixTimestamp64Milli({_unix(FROM) * 1000})"
        f" AND {a[0]} <= fromUnixTimestamp64Milli({_unix(TO) * 1000})"
    ),
    "dateFilter": lambda a: f"{a[0]} >= toDate('{FROM:%Y-%m-%d}') AND {a[0]} <= toDate('{TO:%Y-%m-%d}')",
    "timeInterval": lambda a: f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {INTERVAL_SECONDS} second)",
    "fromTime": lambda a: f"toDateTime({_unix(FROM)})",
    "toTime": lambda a: f"toDateTime({_unix(TO)})",
    "fromTime_ms": lambda a: f"fromUnixTimestamp64Milli({_unix(FROM) * 1000})",
    "toTime_ms": lambda a: f"fromUnixTimestamp64Milli({_unix(TO) * 1000})",
    "interval_s": lambda a: str(INTERVAL_SECONDS),
}
FORMATS: dict[str | None, Callable[[str], str]] = {
    None: lambda v: v,  # the plugin's own format: a single value goes in as it is
    "singlequote": lambda v: "'" + v.replace("'", "\\'") + "'",
}


def interpolate(sql: str, variables: dict[str, str]) -> str:
    """Template variables (``$name``, ``${name}``, ``${name:format}``) and then the plugin's
    macros (``$__name(args)`` or ``$__name``); anything else left with a ``$`` is an error."""

    def variable(m: re.Match) -> str:
        name, fmt = m.group(1) or m.group(3), m.group(2)
        assert name in variables, f"undefined template variable ${name}"
        assert fmt in FORMATS, f"unsupported variable format {fmt!r}"
        return FORMATS[fmt](variables[name])

    sql = re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)", variable, sql)

    def macro(m: re.Match) -> str:
        assert m.group(1) in MACROS, f"not a macro of the ClickHouse plugin: $__{m.group(1)}"
        args = [a.strip() for a in (m.group(2) or "").split(",") if a.strip()]
        return MACROS[m.group(1)](args)

    sql = re.sub(r"\$__(\w+)(?:\(([^)]*)\))?", macro, sql)
    assert "$" not in sql, f"uninterpolated: {sql}"
    return sql


# --- PromQL ------------------------------------------------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}  # fmt: skip
PROMETHEUS_BUILTINS = {"up"}
"""Series Prometheus writes itself for every scrape target."""


def promql_metrics(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are neither functions, keywords, label
    names (in ``{…}`` matchers or ``by (…)`` clauses) nor inside strings and ranges."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = re.findall(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr)
    return {n for n in names if n.lower() not in PROMQL_WORDS}


def exported_metrics() -> set[str]:
    """Sample names the LRS and the worker expose on /metrics (their prometheus_client registry)."""
    import lrs.http.metrics  # noqa: F401  (registers the HTTP metrics)
    import sinks.forward  # noqa: F401  (registers the forwarding metrics: the default forward sink's)
    import streams.app  # noqa: F401  (registers the pipeline metrics)

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    return {family.name + s for family in REGISTRY.collect() for s in suffixes.get(family.type, ("",))}


def prometheus_queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for panel, t in targets(dashboard) if not is_clickhouse(panel)]
    for var in dashboard["templating"]["list"]:
        if var.get("type") == "query" and not is_clickhouse(var):
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
            assert found, f"variable {var['name']}: unsupported Prometheus variable query {query!r}"
            exprs.append(found.group(1))
    return exprs


# --- the simulated cohort in chdb ---------------------------------------------------------------------


def lms_catalog(*documents: dict[str, Any]) -> Locator:
    """The worker's catalog and mapping rules for cohort documents, as after ``lrs catalog load``."""
    settings = CatalogSettings()
    catalog = Catalog.of(*(CatalogDocument.model_validate(d) for d in documents))
    return Locator(catalog, settings.iri_templates, settings.student_homepage)


def cohort(document: dict[str, Any], seed: int, days_ago: int, days: int) -> list[dict[str, Any]]:
    """Learners of ``document`` working in sessions over ``days`` days from ``days_ago`` days ago."""
    people = Cohort(document, seed, start=NOW - timedelta(days=days_ago), days=days)
    for student in document["students"]:
        people.learn(student["id"])
    return people.statements


class Analytics:
    """A ClickHouseSink on chdb fed like the worker feeds it, plus synchronous reads."""

    def __init__(self, runner: asyncio.Runner, sink: ClickHouseSink, catalog: Catalog) -> None:
        self.runner, self.sink, self.catalog = runner, sink, catalog
        self.seq = 0

    def _position(self, stored: datetime) -> str:
        self.seq += 1
        return encode(stored, self.seq)

    def store(self, statements: list[dict[str, Any]]) -> None:
        """Flatten statements as the worker does (stored = their timestamp) and apply them."""
        events = [
            flatten(
                {**st, "stored": st["timestamp"]},
                self._position(parse_timestamp(st["timestamp"])),
                self.catalog,
            )
            for st in statements
        ]
        self.runner.run(self.sink.apply([Batch(0, list(events), events[-1].position, "e1")]))

    def void(self, statement_ids: list[str]) -> None:
        position = self._position(datetime.now(timezone.utc))
        retractions = [Retraction(sid, position) for sid in statement_ids]
        self.runner.run(self.sink.apply([Batch(0, list(retractions), position, "e1")]))

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.runner.run(self.sink.records(sql, parameters))


@pytest.fixture(scope="module")
def cohorts() -> dict[str, list[dict[str, Any]]]:
    """Main: 12 learners over 16 days ending 4 days ago, so on both sides of the 7-day line, some
    completing each course. Voided: 8 learners who stopped 20 days ago, several completing."""
    found = {
        "main": cohort(MAIN, seed=2, days_ago=20, days=16),
        "voided": cohort(VOIDED, seed=7, days_ago=30, days=10),
    }
    ids = [st["id"] for statements in found.values() for st in statements]
    assert len(set(ids)) == len(ids), "statement ids come from the seed: the sink would skip repeats"
    return found


@pytest.fixture(scope="module")
def analytics(tmp_path_factory: pytest.TempPathFactory, cohorts) -> Iterator[Analytics]:
    data_dir = tmp_path_factory.mktemp("bi")
    with asyncio.Runner() as runner:
        locator = lms_catalog(MAIN, VOIDED)
        sink = ClickHouseSink(lambda: connect(None, data_dir), catalog=lambda: {"default": locator.catalog})
        runner.run(sink.start())
        store = Analytics(runner, sink, locator)
        store.store(cohorts["main"] + cohorts["voided"])
        yield store
        runner.run(sink.close())


# --- what the statements say: the reference model of docs/analytics.md --------------------------


def activity_of(document: dict[str, Any], statements: list[dict[str, Any]]) -> dict[tuple[int, str], dict]:
    """(course, mbox) → the model's ``bi_learner_activity`` row."""
    reference = model.Catalog(document)
    rows = model.learner_activity(model.facts_of(statements, reference), reference)
    return {(course, mbox(key)): row for (course, key), row in rows.items()}


def expected(document: dict[str, Any], statements: list[dict[str, Any]]) -> dict[str, Any]:
    """What the views must hold for these statements (at-risk learners depend on the clock: see
    the tests)."""
    reference = model.Catalog(document)
    facts = model.facts_of(statements, reference)
    activity = model.learner_activity(facts, reference)
    heatmap: Counter = Counter()
    for (_, _, video, segment), (views, _) in model.video_segments(facts).items():
        heatmap[(video, segment)] += views
    return {
        "overview": {
            course: {k: pytest.approx(row[k]) if isinstance(row[k], float) else row[k] for k in OVERVIEW}
            for course, row in model.course_overview(activity).items()
        },
        "daily": {(day, course): v[:4] for (day, course), v in model.course_daily(facts, activity).items()},
        "engagement": {k: pytest.approx(v[:3]) for k, v in model.lesson_engagement(facts).items()},
        "heatmap": dict(heatmap),
        "quizzes": {k: (v["attempts"], v["passed"]) for k, v in model.quiz_performance(facts).items()},
        "items": {question: v[:2] for (_, _, question), v in model.quiz_items(facts).items()},
    }


def at_risk(
    document: dict[str, Any], statements: list[dict[str, Any]], now: datetime
) -> set[tuple[int, str]]:
    return {key for key, row in activity_of(document, statements).items()
            if not row["completed"] and row["last_event"] <= now - timedelta(days=7)}  # fmt: skip


def mbox(learner_key: str) -> str:
    return learner_key.removeprefix("mbox:")


def courses_of(document: dict[str, Any]) -> list[int]:
    return [c["id"] for c in document["courses"]]


def course_rows(analytics: Analytics, view: str, courses: list[int]) -> list[dict[str, Any]]:
    return analytics.rows(f"SELECT * FROM {view} WHERE course_id IN %(courses)s", {"courses": courses})


OVERVIEW = ("learners", "completed_learners", "completion_rate_percent", "avg_days_to_complete", "events")
DAILY = ("active_learners", "new_learners", "completions", "events")
ENGAGEMENT = ("events", "learners", "time_spent_seconds")


def observed(analytics: Analytics, document: dict[str, Any]) -> dict[str, Any]:
    """What the BI views hold for a document's courses, keyed and shaped like the expectations."""
    courses = courses_of(document)

    def rows(view: str) -> list[dict[str, Any]]:
        return course_rows(analytics, view, courses)

    def pick(row: dict[str, Any], names: tuple[str, ...]) -> Any:
        return row[names[0]] if len(names) == 1 else tuple(row[n] for n in names)

    def keyed(view: str, key: tuple[str, ...], value: tuple[str, ...]) -> dict:
        """{key columns: value columns} over a view's rows (one column stands for itself)."""
        return {pick(r, key): pick(r, value) for r in rows(view)}

    return {
        "overview": {r["course_id"]: {k: r[k] for k in OVERVIEW} for r in rows("bi_course_overview")},
        "daily": keyed("bi_course_daily", ("day", "course_id"), DAILY),
        "engagement": keyed("bi_lesson_engagement", ("course_id", "lesson_id", "day", "hour"), ENGAGEMENT),
        "heatmap": keyed("bi_video_segments", ("activity_id", "segment"), ("views",)),
        "quizzes": keyed("bi_quiz_performance", ("course_id", "quiz_id"), ("attempts", "passed")),
        "items": keyed("bi_quiz_items", ("question_id",), ("answers", "correct")),
        "at_risk": {(r["course_id"], mbox(r["learner_key"])) for r in rows("bi_at_risk_learners")},
    }


# --- provisioning and dashboard structure ------------------------------------------------------------


def test_provisioning_declares_both_datasources_and_the_dashboard_folder():
    sources = yaml_items(
        ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yaml", "datasources"
    )
    by_uid = {s["uid"]: s for s in sources}
    assert by_uid["clickhouse"]["type"] == CLICKHOUSE_PLUGIN
    assert (by_uid["clickhouse"]["host"], by_uid["clickhouse"]["protocol"]) == ("clickhouse", "native")
    assert by_uid["prometheus"]["type"] == "prometheus"
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    providers = yaml_items(ROOT / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml", "providers")
    assert [(p["type"], p["path"]) for p in providers] == [("file", "/var/lib/grafana/dashboards/lrs")]


def test_prometheus_scrapes_every_lrs_and_worker_replica_on_their_metrics_ports():
    jobs = {j["job_name"]: j for j in yaml_items(ROOT / "prometheus" / "prometheus.yml", "scrape_configs")}
    scraped = {name: (j["names"], j["type"], int(j["port"]), j["metrics_path"]) for name, j in jobs.items()}
    assert scraped == {
        "lrs": ('["lrs"]', "A", ServerSettings().port, "/metrics"),
        "lrs-worker": ('["worker"]', "A", StreamSettings().worker_web_port, "/metrics"),
    }
    compose = (ROOT.parent / "docker-compose.yml").read_text(encoding="utf-8")
    for service in ("lrs", "worker"):
        assert re.search(rf"^  {service}:\s*$", compose, flags=re.MULTILINE), f"no compose service {service}"
    for dashboard in map(load, DASHBOARDS):
        for expr in prometheus_queries(dashboard):
            for pattern in re.findall(r'job=~?"([^"]+)"', expr):
                assert set(pattern.split("|")) <= set(jobs), f"{expr}: no such scrape job"


def test_dashboards_are_all_there_with_unique_uids():
    dashboards = [load(p) for p in DASHBOARDS]
    uids = [d["uid"] for d in dashboards]
    assert len(set(uids)) == len(uids) == 6
    assert set(uids) == {
        "lrs-course-overview",
        "lrs-engagement-heatmap",
        "lrs-video-heatmap",
        "lrs-quiz-performance",
        "lrs-at-risk",
        "lrs-operations",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_structure(path: Path):
    dashboard = load(path)
    sources = provisioned_datasources()
    assert dashboard["title"] and dashboard["schemaVersion"] >= 36 and dashboard["panels"]
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert len(set(names)) == len(names)
    for var in dashboard["templating"]["list"]:
        assert sources.get(var["datasource"]["uid"]) == var["datasource"]["type"], var["name"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "xywh") and grid["w"] > 0 and grid["h"] > 0
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        assert panel["title"] and panel["type"] and panel["targets"]
        assert sources.get(panel["datasource"]["uid"]) == panel["datasource"]["type"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs)
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            if is_clickhouse(target):
                assert target["editorType"] == "sql" and target["rawSql"].strip()
                assert (target["format"], target["queryType"]) in ((0, "timeSeries"), (1, "table"))
            else:
                assert target["expr"].strip()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_prometheus_queries_use_only_exported_metrics(path: Path):
    known = exported_metrics() | PROMETHEUS_BUILTINS
    for expr in prometheus_queries(load(path)):
        metrics = promql_metrics(expr)
        assert metrics, f"no metric in {expr!r}"
        assert metrics <= known, f"{expr!r}: unknown {sorted(metrics - known)}"


def test_the_metric_extraction_sees_through_promql_syntax():
    expr = (
        'histogram_quantile(0.95, sum by (le, sink) (rate(lrs_sink_batch_seconds_bucket{sink=~"$sink"}'
        '[$__rate_interval]))) / on (sink) group_left max without (x) (up{job="a b"}) > bool 1e-9'
    )
    assert promql_metrics(expr) == {"lrs_sink_batch_seconds_bucket", "up"}
    assert "lrs_pipeline_events_total" in exported_metrics() and "lrs_sink_lag_seconds" in exported_metrics()


def test_panels_read_only_the_bi_views():
    for dashboard in map(load, DASHBOARDS):
        queries = [t["rawSql"] for p, t in targets(dashboard) if is_clickhouse(p)]
        queries += [v["query"] for v in dashboard["templating"]["list"] if is_clickhouse(v)]
        for sql in queries:
            tables = re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)", sql, flags=re.IGNORECASE)
            assert tables and all(t.startswith("bi_") for t in tables), sql


# --- every ClickHouse panel, run on chdb -----------------------------------------------------------


def referenced_columns(panel: dict[str, Any]) -> set[str]:
    """Columns a panel's options and overrides name: a query that stops returning one breaks it."""
    names = {
        o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byName"
    }
    options = panel["options"]
    names |= {options[k] for k in ("xField", "colorByField") if k in options}
    fields = options.get("reduceOptions", {}).get("fields", "")
    names |= set(re.findall(r"^/\^(\w+)\$/$", fields))
    return names


CLICKHOUSE_DASHBOARDS = [p for p in DASHBOARDS if any(map(is_clickhouse, load(p)["panels"]))]


@pytest.mark.parametrize("path", CLICKHOUSE_DASHBOARDS, ids=lambda p: p.stem)
def test_clickhouse_panels_return_their_columns_on_chdb(path: Path, analytics: Analytics):
    dashboard = load(path)
    variables: dict[str, str] = {}
    for var in dashboard["templating"]["list"]:
        options = analytics.rows(interpolate(var["query"], variables))
        assert options, f"variable {var['name']} has no values"
        variables[var["name"]] = str(next(iter(options[0].values())))  # single column: text = value
    assert variables.get("course") == str(courses_of(MAIN)[0])
    for panel, target in targets(dashboard):
        rows = analytics.rows(interpolate(target["rawSql"], variables))
        assert rows, f"{panel['title']}: no rows"
        columns = list(rows[0])
        missing = referenced_columns(panel) - set(columns)
        assert not missing, f"{panel['title']}: columns {sorted(missing)} not returned ({columns})"
        numeric = [
            c for c in columns if all(isinstance(r[c], (int, float)) for r in rows if r[c] is not None)
        ]
        assert numeric, f"{panel['title']}: nothing to plot in {columns}"
        if target["format"] == 0:
            assert columns[0] == "time" and all(isinstance(r["time"], datetime) for r in rows), panel["title"]
            assert [r["time"] for r in rows] == sorted(r["time"] for r in rows), f"{panel['title']}: unsorted"
        if panel["type"] == "stat":
            assert len(rows) == 1 and len(columns) == 1, panel["title"]


# --- the BI views against the statements ------------------------------------------------------------


def test_bi_views_hold_what_the_statements_say(analytics: Analytics, cohorts):
    statements = cohorts["main"]
    found, want = observed(analytics, MAIN), expected(MAIN, statements)
    for name, value in want.items():
        assert found[name] == value, name
    assert all(0 < o["completed_learners"] < o["learners"] for o in found["overview"].values()), (
        "a mixed cohort"
    )
    columns = ("lessons_completed", "quizzes_passed", "quiz_attempts", "items_completed", "completed")
    activity = {
        (r["course_id"], mbox(r["learner_key"])): tuple(r[c] for c in columns)
        for r in course_rows(analytics, "bi_learner_activity", courses_of(MAIN))
    }
    assert activity == {
        key: tuple(row[c] for c in columns) for key, row in activity_of(MAIN, statements).items()
    }


def test_at_risk_and_recent_activity_are_relative_to_now(analytics: Analytics, cohorts):
    """Learners become at risk as time passes, so the view is read between two clock readings:
    what was at risk before the query must be, what is at risk after it may be."""
    statements, courses = cohorts["main"], courses_of(MAIN)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    found = {
        (r["course_id"], mbox(r["learner_key"]))
        for r in course_rows(analytics, "bi_at_risk_learners", courses)
    }
    overview = {r["course_id"]: r for r in course_rows(analytics, "bi_course_overview", courses)}
    after = datetime.now(timezone.utc)
    assert at_risk(MAIN, statements, before) <= found <= at_risk(MAIN, statements, after)
    everyone = activity_of(MAIN, statements)
    assert found and len(found) < len(everyone), "the cohort spans both sides of the 7-day line"
    for course in courses:
        assert overview[course]["at_risk_learners"] == sum(c == course for c, _ in found)
        recent = [e["last_event"] for (c, _), e in everyone.items() if c == course]
        assert (
            sum(last >= after - timedelta(days=7) for last in recent)
            <= overview[course]["active_learners_7d"]
            <= sum(last >= before - timedelta(days=7) for last in recent)
        )


def test_voiding_retracts_statements_from_every_bi_view(analytics: Analytics, cohorts):
    """Void the passing attempts of one quiz by a learner who completed the course, and a video
    play: every view drops them and recomputes completion rate, time to complete, quizzes,
    heatmap and risk."""
    statements, course = cohorts["voided"], VOIDED["courses"][0]
    before = observed(analytics, VOIDED)
    for name, value in expected(VOIDED, statements).items():
        assert before[name] == value, name
    completers = sorted(k for k, row in activity_of(VOIDED, statements).items() if row["completed"])
    assert len(completers) >= 2, "the voided cohort needs several completions"
    learner = completers[0][1]
    quizzes = {q["iri"] for m in course["modules"] for q in m["quizzes"]}
    passing = [
        st for st in statements
        if st["actor"]["mbox"] == learner and st["object"]["id"] in quizzes and st["verb"]["id"].endswith("/passed")
    ]  # fmt: skip
    passing = [st for st in passing if st["object"]["id"] == passing[0]["object"]["id"]]
    played = next(st for st in statements if st["verb"]["id"].endswith("/played"))
    assert (course["id"], learner) not in before["at_risk"]
    voided = sorted({*(st["id"] for st in passing), played["id"]})

    analytics.void(voided)
    remaining = [st for st in statements if st["id"] not in voided]
    after = observed(analytics, VOIDED)
    for name, value in expected(VOIDED, remaining).items():
        assert after[name] == value, name
    assert after["overview"][course["id"]]["completed_learners"] == len(completers) - 1
    assert not analytics.rows(
        "SELECT 1 FROM bi_events WHERE toString(statement_id) IN %(ids)s", {"ids": voided}
    )
    mine = analytics.rows(
        "SELECT completed, completed_at, at_risk FROM bi_learner_activity"
        " WHERE course_id = %(course)s AND learner_key = %(learner)s",
        {"course": course["id"], "learner": "mbox:" + learner},
    )
    assert mine == [{"completed": 0, "completed_at": None, "at_risk": 1}]  # inactive for 20 days
    assert after["at_risk"] == before["at_risk"] | {(course["id"], learner)}


# --- documentation --------------------------------------------------------------------------------------


def test_every_bi_view_is_documented_with_its_columns(analytics: Analytics):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    views = analytics.rows(
        "SELECT name, comment FROM system.tables"
        " WHERE database = currentDatabase() AND name LIKE 'bi\\_%' ORDER BY name"
    )
    assert len(views) >= 9
    for view in views:
        assert view["comment"], f"{view['name']} has no COMMENT"
        section = readme.split(f"### `{view['name']}`", 1)
        assert len(section) == 2, f"{view['name']} missing from dashboards/README.md"
        documented = section[1].split("\n### ", 1)[0]
        for column in analytics.rows(f"DESCRIBE TABLE {view['name']}"):
            row = f"| `{column['name']}` | `{column['type']}` |"
            assert row in documented, f"{view['name']}.{column['name']} ({column['type']}) not documented"
