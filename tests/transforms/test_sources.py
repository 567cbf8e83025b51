"""Config mistakes in sources.yaml stop with one message naming the file, the key and the fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from tests.conftest import SAMPLE_CONFIG, TinyProject
from transforms import ingest
from transforms.errors import ConfigError
from transforms.sources import load_config


def write(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(SAMPLE_CONFIG.read_text())
    mutate(doc)
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_sample_config_loads() -> None:
    cfg = load_config(SAMPLE_CONFIG)
    assert set(cfg.sources) == {"clickstream", "bookings", "payments"}
    assert cfg.sources["bookings"].timezone == "Europe/Berlin"
    assert cfg.warehouse.name == "journeys.duckdb" and cfg.schedule_hour_utc == 4
    assert len(cfg.sources["clickstream"].files()) == 30


@pytest.mark.parametrize(("mutate", "key", "fix_words"), [
    (lambda d: d["sources"]["payments"].update(format="xml"),
     "sources.payments.format", "use one of jsonl, csv"),
    (lambda d: d["sources"]["bookings"]["columns"].pop("cancel_reason"),
     "sources.bookings.event.columns.cancel_reason", "use one of booking_id"),
    (lambda d: d["sources"]["payments"]["types"].update(amount="money"),
     "sources.payments.types.amount", "use one of string"),
    (lambda d: d["sources"]["payments"]["enums"].update(colour=["red"]),
     "sources.payments.enums.colour", "add it under columns"),
    (lambda d: d["sources"]["bookings"].update(timezone="Berlin"),
     "sources.bookings.timezone", "IANA name"),
    (lambda d: d["sources"]["clickstream"].update(late_days=-1),
     "sources.clickstream.late_days", "integer from 0 to 30"),
    (lambda d: d["sources"]["clickstream"].update(event_time="platform"),
     "sources.clickstream.event_time", "declared `timestamp`"),
    (lambda d: d["sources"]["clickstream"]["clock_skew"].update(max_seconds=0),
     "sources.clickstream.clock_skew.max_seconds", "max_seconds: 86400"),
    (lambda d: d.update(sources={}), "sources", "define at least one source"),
    (lambda d: d["sources"].update({"CRM-2": d["sources"]["payments"]}), "sources.CRM-2",
     "rename it"),
    (lambda d: d["sources"].pop("bookings"), "sources.payments.event.lookup.source",
     "name one of clickstream"),
    (lambda d: d["sources"]["payments"]["event"]["lookup"].update(columns=["tier"]),
     "sources.payments.event.lookup.columns", "name customer_id or columns declared"),
    (lambda d: d["sources"]["payments"]["event"]["lookup"].update(by="payment_id"),
     "sources.payments.event.lookup.by", "map payment_id under sources.bookings.event.columns"),
    (lambda d: d["sources"]["bookings"]["event"]["columns"].update(tier="price"),
     "sources.bookings.event.columns.tier", "declare it under events.columns"),
    (lambda d: d["sources"]["bookings"]["event"]["columns"].update(city="town"),
     "sources.bookings.event.columns.city", "use one of booking_id"),
    (lambda d: d["sources"]["bookings"]["event"]["columns"].update(city="price.town"),
     "sources.bookings.event.columns.city", "declare price: json"),
    (lambda d: d["sources"]["bookings"]["event"].pop("event_name"),
     "sources.bookings.event.event_name", "name the column holding the event name"),
    (lambda d: d["sources"]["bookings"]["event"].pop("customer"),
     "sources.bookings.event.customer", "map the customer id"),
    (lambda d: d["events"]["columns"].update(rating="float"),
     "events.columns.rating", "use one of string, integer, decimal, json"),
    (lambda d: d["events"]["columns"].update(event_ts="string"),
     "events.columns.event_ts", "leave it out"),
    (lambda d: d["events"].update(carry_forward=["device"]),
     "events.carry_forward", "list columns declared under events.columns"),
    (lambda d: d.update(currency=""), "currency", "write a currency code"),
    (lambda d: d.update(warehose="x.duckdb"), "warehose", "use only"),
    (lambda d: d["sources"]["bookings"]["ranges"].update(status={"min": 0}),
     "sources.bookings.ranges.status", "declare status as integer or decimal"),
    (lambda d: d["sources"]["bookings"].update(id_columns=["booking_ref"]),
     "sources.bookings.id_columns", "list mapped columns"),
])
def test_each_mistake_names_file_key_and_fix(tmp_path: Path, mutate, key: str,
                                            fix_words: str) -> None:
    path = write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: key '{key}': ")
    assert "Fix: " in message and fix_words in message.split("Fix: ", 1)[1]
    assert "\n" not in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("warehouse: w.duckdb\nsources:\n  clickstream: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+"):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist. Fix: pass --config"):
        load_config(tmp_path / "nope.yaml")


def test_an_export_without_a_date_in_its_name_loads_by_event_time(tiny: TinyProject) -> None:
    import duckdb

    # one file for all history: its rows land in the partitions of their event days, and the
    # project's partitions reach back to the earliest of them
    (tiny.root / "raw" / "payments" / "export.csv").write_text(
        "payment_id,booking_id,amount,currency,method,status,failure_reason,created_at\n"
        "p1,b1,10.00,EUR,card,succeeded,,2026-09-20T08:00:00Z\n"
        "p2,b2,10.00,EUR,card,succeeded,,2026-10-01T08:00:00Z\n")
    cfg = load_config(tiny.config)
    assert cfg.first_partition() == dt.date(2026, 9, 20)
    con = duckdb.connect()
    stats = ingest.load_range(con, cfg.sources["payments"], dt.date(2026, 9, 20),
                              dt.date(2026, 10, 1))
    assert con.execute("select payment_id, partition_date from raw_payments order by 1"
                       ).fetchall() == [("p1", dt.date(2026, 9, 20)), ("p2", dt.date(2026, 10, 1))]
    assert sum(s.rows_read for s in stats) == 2
