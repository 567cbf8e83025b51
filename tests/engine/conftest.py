"""One `journeys run` of the committed sample with SQL capture on, shared by the engine tests.

Every statement the run sends to the warehouse is in the capture log (transforms/engine.py,
`JOURNEYS_SQL_LOG`); `statements` are its distinct texts, each with the first caller and
parameters that ran it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from tests.e2e.conftest import journeys, sample_config
from transforms.engine import SQL_LOG_ENV, decode_params, read_sql_log


@dataclass
class Statement:
    sql: str
    caller: str
    params: object
    calls: int = 1
    callers: list[str] = field(default_factory=list)  # every caller that ran this text


@dataclass
class CapturedRun:
    root: Path
    warehouse: Path
    log: list[dict]
    statements: list[Statement] = field(default_factory=list)

    def column_types(self) -> dict[str, str]:
        """column name -> DuckDB type over every warehouse table (names with two types left
        out): what the Spark dialect's `date - date` rule is told."""
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            rows = con.execute("select column_name, data_type from information_schema.columns "
                               "where table_schema = 'main'").fetchall()
        finally:
            con.close()
        seen: dict[str, set[str]] = {}
        for name, typ in rows:
            seen.setdefault(name.lower(), set()).add(typ)
        return {name: next(iter(ts)) for name, ts in seen.items() if len(ts) == 1}


@pytest.fixture(scope="session")
def captured_run(tmp_path_factory: pytest.TempPathFactory) -> CapturedRun:
    root = tmp_path_factory.mktemp("captured_run")
    config = sample_config(root)
    log = root / "sql.jsonl"
    proc = journeys("run", "--config", str(config),
                    env={"DAGSTER_HOME": str(root / "dagster_home"), SQL_LOG_ENV: str(log)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_sql_log(log)
    distinct: dict[str, Statement] = {}
    for row in rows:
        st = distinct.get(row["sql"])
        if st is None:
            st = distinct[row["sql"]] = Statement(row["sql"], row["caller"],
                                                  decode_params(row["params"]), 0)
        st.calls += 1
        if row["caller"] not in st.callers:
            st.callers.append(row["caller"])
    return CapturedRun(root, root / "warehouse" / "journeys.duckdb", rows,
                       list(distinct.values()))
