"""The fast transpile check (no JVM): every SQL text of a sample run goes through the Spark
dialect (transforms/spark_sql.py); one that does not is a failure unless NOT_YET_PORTABLE lists
it with its reason. Below, each rewrite rule against SQL worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.engine.conftest import CapturedRun
from transforms.spark_functions import SPARK_FUNCTIONS
from transforms.spark_sql import NotPortable, spark_args, to_spark

# (caller, construct) -> why it does not run on Spark: DuckDB-only statements the Spark path never
# sends. Each must still occur in a sample run (test_not_yet_portable_has_no_stale_entries).
NOT_YET_PORTABLE: dict[tuple[str, str], str] = {
    ("transforms.ingest:_stage_plain_csv", "read_text"):
        "DuckDB only: DuckDB's reader; on Spark transforms/spark_ingest.py stages the files",
    ("transforms.ingest:_stage_jsonl_lines", "read_text"):
        "DuckDB only: DuckDB's reader; on Spark transforms/spark_ingest.py stages the files",
    ("transforms.ingest:_classify", "timezone"):
        "DuckDB only: on Spark readers.timestamp_sql(engine='spark') writes Spark's own form",
    ("transforms.ingest:_load_chunk", "transaction"):
        "DuckDB only: engine.transaction(); on Spark the block's statements simply run",
    ("transforms.funnel:run", "current_setting"):
        "DuckDB only: the funnel pins DuckDB's TimeZone; on Spark it checks the session's",
    ("transforms.funnel:run", "SET"):
        "DuckDB only: the funnel pins DuckDB's TimeZone; on Spark it checks the session's",
}


def _outcomes(run: CapturedRun) -> tuple[int, dict[tuple[str, str], NotPortable]]:
    types = run.column_types()
    clean, failed = 0, {}
    for st in run.statements:
        try:
            to_spark(st.sql, caller=st.caller, column_types=types, params=st.params)
            clean += 1
        except NotPortable as e:
            for caller in st.callers:
                failed.setdefault((caller, e.function), NotPortable(e.function, caller, e.detail))
    return clean, failed


@pytest.fixture(scope="module")
def outcomes(captured_run: CapturedRun) -> tuple[int, dict[tuple[str, str], NotPortable]]:
    return _outcomes(captured_run)


def test_the_capture_holds_every_step_of_the_run(captured_run: CapturedRun) -> None:
    callers = {st.caller.split(":")[0] for st in captured_run.statements}
    for module in ("transforms.ingest", "transforms.events", "transforms.journeys",
                   "transforms.stage_funnels", "transforms.mining", "transforms.findings"):
        assert module in callers
    assert len(captured_run.log) > len(captured_run.statements) > 300


def test_every_sample_statement_transpiles_or_is_listed(outcomes) -> None:
    clean, failed = outcomes
    unlisted = [str(e) for key, e in failed.items() if key not in NOT_YET_PORTABLE]
    assert not unlisted, "\n".join(unlisted)
    assert clean > 380


def test_not_yet_portable_has_no_stale_entries(outcomes) -> None:
    _, failed = outcomes
    stale = sorted(set(NOT_YET_PORTABLE) - set(failed))
    assert not stale, f"no longer failing, remove from NOT_YET_PORTABLE: {stale}"


# --- the rules, by hand ------------------------------------------------------------------------

def test_ordered_list_keeps_its_order_direction_and_nulls() -> None:
    # DuckDB: list(x ORDER BY t DESC) sorts by t descending, NULL t last, and keeps NULL x
    assert to_spark("select list(x order by t desc) from v") == (
        "SELECT TRANSFORM(ARRAY_SORT(COLLECT_LIST(NAMED_STRUCT('k0', t, 'v', x)), (l, r) -> "
        "CASE WHEN l.k0 IS NULL AND NOT r.k0 IS NULL THEN 1 "
        "WHEN NOT l.k0 IS NULL AND r.k0 IS NULL THEN -1 "
        "WHEN l.k0 < r.k0 THEN 1 WHEN l.k0 > r.k0 THEN -1 ELSE 0 END), s -> s.v) FROM v")


def test_two_keys_compare_in_turn_each_with_its_own_null_order() -> None:
    out = to_spark("select list(x order by a, b desc nulls first) from v")
    assert ("WHEN l.k0 < r.k0 THEN -1 WHEN l.k0 > r.k0 THEN 1 "
            "WHEN l.k1 IS NULL AND NOT r.k1 IS NULL THEN -1 "
            "WHEN NOT l.k1 IS NULL AND r.k1 IS NULL THEN 1 "
            "WHEN l.k1 < r.k1 THEN 1 WHEN l.k1 > r.k1 THEN -1 ELSE 0 END") in out


def test_plain_and_distinct_lists_keep_their_nulls() -> None:
    assert to_spark("select list(x) from v") == (
        "SELECT TRANSFORM(COLLECT_LIST(NAMED_STRUCT('v', x)), s -> s.v) FROM v")
    assert to_spark("select list(distinct x) filter (where y) from v") == (
        "SELECT TRANSFORM(COLLECT_SET(NAMED_STRUCT('v', x)) FILTER(WHERE y), s -> s.v) FROM v")


def test_list_indexes_stay_one_based_and_count_from_the_end() -> None:
    assert to_spark("select names[c], stages[-1], l[0], l[2] from v") == (
        "SELECT TRY_ELEMENT_AT(names, c), TRY_ELEMENT_AT(stages, -1), NULL, "
        "TRY_ELEMENT_AT(l, 2) FROM v")
    # [2:3] is elements 2 and 3; [-2:] the last two: start size - 1, length 2
    assert to_spark("select l[2:3], l[-2:] from v") == (
        "SELECT SLICE(l, 2, GREATEST((3) - (2) + 1, 0)), "
        "SLICE(l, SIZE(l) + -1, GREATEST((SIZE(l)) - (SIZE(l) + -1) + 1, 0)) FROM v")


def test_divisions_and_averages_are_double() -> None:
    assert to_spark("select x / 86400.0, a // b, avg(amount) from v") == (
        "SELECT CAST(x AS DOUBLE) / CAST(86400.0 AS DOUBLE), a DIV b, "
        "AVG(CAST(amount AS DOUBLE)) FROM v")


def test_quantiles_interpolate_as_duckdb() -> None:
    assert to_spark("select quantile_cont(x, 0.9), median(x) from v") == (
        "SELECT PERCENTILE(x, 0.9), PERCENTILE(x, 0.5) FROM v")


def test_epoch_keeps_microseconds_and_differences_are_seconds_between() -> None:
    micros = "UNIX_MICROS(CAST({} AS TIMESTAMP))"
    assert to_spark("select epoch(ts), epoch(t2 - t1), epoch_us(ts) from v") == (
        f"SELECT CAST(({micros.format('ts')}) AS DOUBLE) / CAST(1e6 AS DOUBLE), "
        f"CAST(({micros.format('t2')} - {micros.format('t1')}) AS DOUBLE) / CAST(1e6 AS DOUBLE), "
        f"{micros.format('ts')} FROM v")
    # a timestamp minus an interval is a timestamp, not a difference
    assert "UNIX_MICROS(CAST(ts - INTERVAL '1' DAY AS TIMESTAMP))" in to_spark(
        "select epoch(ts - interval 1 day) from v")


def test_date_minus_date_is_days_and_date_minus_days_stays() -> None:
    assert to_spark("select cast(a as date) - cast(b as date), d - 1, max(d) - min(d), d - ? "
                    "from v", column_types={"d": "DATE"}, params=[dt.date(2024, 1, 1)]) == (
        "SELECT DATEDIFF(CAST(a AS DATE), CAST(b AS DATE)), d - 1, DATEDIFF(MAX(d), MIN(d)), "
        "DATEDIFF(d, :p0) FROM v")
    with pytest.raises(NotPortable, match="cannot tell the type"):
        to_spark("select d - e from v", column_types={"d": "DATE"})


def test_definition_macros_are_inlined() -> None:
    # step_conversion(entered, previous) = entered / nullif(previous, 0)
    assert to_spark("select step_conversion(sum(a), 4) from v") == (
        "SELECT (CAST((SUM(a)) AS DOUBLE) / CAST(NULLIF((4), 0) AS DOUBLE)) FROM v")


def test_parameters_become_named_markers() -> None:
    assert to_spark("select * from v where a = ? and b = ?::int[] and c = '?'") == (
        "SELECT * FROM v WHERE a = :p0 AND b = CAST(:p1 AS ARRAY<INT>) AND c = '?'")
    assert to_spark("select * from v where a = $x") == "SELECT * FROM v WHERE a = :x"
    assert spark_args([1, "a"]) == {"p0": 1, "p1": "a"}
    assert spark_args({"x": 2}) == {"x": 2}
    assert spark_args(None) == {}


@pytest.mark.parametrize(("sql", "construct"), [
    ("select a from t asof join u on t.k = u.k and t.ts >= u.ts", "ASOF JOIN"),
    ("select * from t, lateral (values (t.a), (t.b)) v(x)", "LATERAL (VALUES ...)"),
    ("select * replace (1 as a) from t", "* REPLACE"),
    ("select * from information_schema.columns", "information_schema.columns"),
    ("select * from read_text('x.csv')", "read_text"),
    ("select * from duckdb_tables()", "duckdb_tables"),
    ("select isfinite(x) from t", "isfinite"),
    ("select list_sum(x) from t", "list_sum"),
    ("select unnest(a), unnest(b), count(*) from t group by all",
     "several unnest() in one select"),
    ("begin transaction", "transaction"),
])
def test_duckdb_only_constructs_fail_loudly(sql: str, construct: str) -> None:
    with pytest.raises(NotPortable) as err:
        to_spark(sql, caller="here:it")
    assert err.value.function == construct
    assert err.value.caller == "here:it"


def test_zipped_unnests_become_one_lateral_view() -> None:
    # DuckDB zips the lists of one select's unnests; Spark takes one generator per select
    assert to_spark("select k, unnest(a) as x, unnest(b)::int as y from t where k > 1") == (
        "SELECT k, __z.__u0 AS x, CAST(__z.__u1 AS INT) AS y FROM t "
        "LATERAL VIEW INLINE(ARRAYS_ZIP(a, b)) __z AS __u0, __u1 WHERE k > 1")
    assert to_spark("select unnest(a), unnest(b)") == (
        "SELECT __z.__u0, __z.__u1 FROM (SELECT 1 AS __one) AS __one "
        "LATERAL VIEW INLINE(ARRAYS_ZIP(a, b)) __z AS __u0, __u1")
    assert to_spark("select k, unnest(a) from t") == "SELECT k, EXPLODE(a) FROM t"


def test_length_of_a_list_is_its_size() -> None:
    assert to_spark("select len(l), length(s), len(?::int[]) from t",
                    column_types={"l": "BIGINT[]", "s": "VARCHAR"}) == (
        "SELECT SIZE(l), LENGTH(s), SIZE(CAST(:p0 AS ARRAY<INT>)) FROM t")


def test_json_path_parameters_are_written_as_sparks() -> None:
    # DuckDB reads $."key" (and a bare key); Spark's get_json_object reads $['key']
    assert to_spark("select json_extract_string(j, ?) from t") == (
        "SELECT GET_JSON_OBJECT(j, CASE WHEN LEFT(:p0, 1) = '$' THEN "
        "REGEXP_REPLACE(:p0, '\\\\.\"([^\"]*)\"', '[\\'$1\\']') "
        "ELSE CONCAT('$[\\'', :p0, '\\']') END) FROM t")


def test_window_operands_are_parenthesised() -> None:
    assert to_spark("select lag(n) over w - n as d from t window w as (order by i)") == (
        "SELECT (LAG(n) OVER w) - n AS d FROM t WINDOW w AS (ORDER BY i NULLS LAST)")


def test_try_cast_is_sparks_syntax() -> None:
    # not in Spark's function list (it is syntax, as CAST), so the check must not refuse it
    assert to_spark("select try_cast(x as integer), try_cast(y as date) from t") == (
        "SELECT TRY_CAST(x AS INT), TRY_CAST(y AS DATE) FROM t")


def test_cte_materialization_hints_are_left_out() -> None:
    # DuckDB's planner hint; Spark's parser refuses it and the rows are the same without
    assert to_spark("with a as not materialized (select 1 as x), b as materialized "
                    "(select 2 as y) select x, y from a, b") == (
        "WITH a AS (SELECT 1 AS x), b AS (SELECT 2 AS y) SELECT x, y FROM a, b")


def test_star_exclude_is_sparks_star_except() -> None:
    assert to_spark("select * exclude (a, b) from t") == "SELECT * EXCEPT (a, b) FROM t"


def test_the_function_list_is_sparks() -> None:
    assert {"percentile", "try_element_at", "collect_list", "array_sort", "unix_micros",
            "datediff", "transform"} <= SPARK_FUNCTIONS
    assert not {"list", "epoch", "quantile_cont", "read_csv", "list_sum"} & SPARK_FUNCTIONS


def test_json_values_are_json_text_on_spark() -> None:
    """Spark has no JSON type: a cast to DuckDB's JSON is a cast to STRING (the same text)."""
    assert to_spark("select cast(x as json) as j, y::json from t") == \
        "SELECT CAST(x AS STRING) AS j, CAST(y AS STRING) FROM t"


def test_events_of_a_source_without_record_ids_transpile(tmp_path) -> None:
    """A source without `id_columns` (an XES log, most process logs) names its events by file
    name and line, which the sample never does: that SQL runs on Spark too (DuckDB's
    parse_filename does not), and the file name is the path's last part on both engines."""
    import duckdb

    from transforms.events import FILE_NAME_PATTERN, _records_sql
    from transforms.sources import load_config
    from transforms.sqlutil import Params

    (tmp_path / "log.xes").write_text("<log/>")
    (tmp_path / "sources.yaml").write_text("""
warehouse: wh.duckdb
journey_map: map.yaml
events: {columns: {}}
sources:
  tickets:
    path: log.xes
    format: xes
    columns: {case_id: "case:concept:name", activity: "concept:name", ts: "time:timestamp"}
    types: {ts: timestamp}
    event_time: ts
    event: {event_name: activity, customer: case_id}
""")
    cfg = load_config(tmp_path / "sources.yaml")
    source = cfg.sources["tickets"]
    assert not source.id_columns
    to_spark(_records_sql(source, cfg.events, Params()), caller="events")  # raises if not
    assert duckdb.execute("select regexp_extract(?, ?, 0)",
                          ["/exports/2026/log.xes.gz", FILE_NAME_PATTERN]).fetchone() == (
        "log.xes.gz",)
