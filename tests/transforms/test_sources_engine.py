"""`engine:` and `spark:` in sources.yaml: DuckDB by default, Spark when asked, and each mistake
stops the run with one line naming the file, the key and the fix."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import sample_config
from transforms.errors import ConfigError
from transforms.sources import SparkSettings, load_config

_SPARK = (importlib.util.find_spec("pyspark") is not None and shutil.which("java") is not None)


def config(tmp_path: Path, **top: object) -> Path:
    path = sample_config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    for key, value in top.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path.write_text(yaml.safe_dump(doc))
    return path


def test_duckdb_is_the_default_engine(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path))
    assert cfg.engine == "duckdb" and cfg.spark == SparkSettings()
    assert cfg.warehouse.name == "journeys.duckdb"


@pytest.mark.skipif(not _SPARK, reason="pyspark or java missing: `engine: spark` is refused here")
def test_spark_settings_are_read(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, engine="spark", warehouse=str(tmp_path / "wh"),
                             spark={"master": "local[2]",
                                    "conf": {"spark.driver.memory": "2g",
                                             "spark.sql.ansi.enabled": True}}))
    assert cfg.engine == "spark" and cfg.warehouse == tmp_path / "wh"
    assert cfg.spark == SparkSettings(master="local[2]", conf=(
        ("spark.driver.memory", "2g"), ("spark.sql.ansi.enabled", "true")))


@pytest.mark.skipif(not _SPARK, reason="pyspark or java missing: `engine: spark` is refused here")
def test_spark_warehouse_defaults_to_a_folder_beside_the_config(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, engine="spark", warehouse=None))
    assert cfg.warehouse == (tmp_path / "warehouse" / "spark").resolve()


@pytest.mark.parametrize(("top", "key", "fix"), [
    ({"engine": "postgres"}, "engine", "`engine: spark`"),
    ({"spark": {"master": "local[2]"}}, "spark", "add `engine: spark`"),
    ({"engine": "spark", "spark": {"cluster": "x"}}, "spark.cluster",
     "allowed keys are master, remote, database, conf"),
    ({"engine": "spark", "spark": {"master": "local[2]", "remote": "sc://h:15002"}},
     "spark.remote", "keep one"),
    ({"engine": "spark", "spark": {"remote": "http://h:15002"}}, "spark.remote",
     "sc://host:15002"),
    ({"engine": "spark", "spark": {"master": 4}}, "spark.master", "`master: local[4]`"),
    ({"engine": "spark", "spark": {"database": "my db"}}, "spark.database",
     "letters, digits and underscores"),
    ({"engine": "spark", "spark": {"conf": {"driver.memory": "4g"}}},
     "spark.conf.driver.memory", "start with spark."),
    ({"engine": "spark", "spark": {"conf": {"spark.sql.session.timeZone": "Europe/Berlin"}}},
     "spark.conf.spark.sql.session.timeZone", "remove it"),
    ({"engine": "spark", "spark": {"conf": {"spark.jars": ["a", "b"]}}},
     "spark.conf.spark.jars", "expected one value"),
])
def test_engine_mistakes_name_the_key_and_the_fix(tmp_path: Path, top: dict, key: str,
                                                  fix: str) -> None:
    if top.get("engine") == "spark" and not _SPARK and key != "spark.cluster":
        pytest.skip("pyspark or java missing: the install check would answer first")
    with pytest.raises(ConfigError) as err:
        load_config(config(tmp_path, **top))
    message = str(err.value)
    assert "\n" not in message and f"key '{key}':" in message and fix in message, message


def test_a_duckdb_file_is_not_a_spark_warehouse(tmp_path: Path) -> None:
    if not _SPARK:
        pytest.skip("pyspark or java missing: the install check would answer first")
    file = tmp_path / "journeys.duckdb"
    file.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"key 'warehouse': .* is a file; with `engine: spark`"):
        load_config(config(tmp_path, engine="spark", warehouse=str(file)))


def test_spark_without_pyspark_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyspark" else real(name, *a))
    with pytest.raises(ConfigError, match=r"key 'engine': spark needs pyspark.*pip install -e "):
        load_config(config(tmp_path, engine="spark"))
