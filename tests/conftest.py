"""Shared fixtures: a tiny project (config + export files) written by hand, row by row."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from transforms.definitions import create_macros
from transforms.journey_map import JourneyMap, load_journey_map

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = REPO / "data" / "sample" / "sources.yaml"
SHARED = REPO.parent / "shared"


def click(mid: str, anon: str, event: str, ts: str, *, user: str | None = None,
          received: str | None = None, platform: str = "android", medium: str | None = None,
          **props: object) -> dict:
    """One SDK event as the clickstream export writes it."""
    ctx: dict = {"platform": platform, "app": {"version": "5.2.0"},
                 "screen": {"name": "Home"}, "location": {"city": "Berlin"}}
    if medium:
        ctx["campaign"] = {"source": "instagram", "medium": medium, "name": "autumn"}
    return {"messageId": mid, "anonymousId": anon, "userId": user, "event": event,
            "timestamp": ts, "receivedAt": received or ts, "context": ctx, "properties": props}


BOOKING_HEADER = ("booking_id,customer_id,salon_id,city,service_category,slot_time,price,"
                  "currency,status,cancel_reason,rating,complaint,changed_at")
PAYMENT_HEADER = "payment_id,booking_id,amount,currency,method,status,failure_reason,created_at"


class TinyProject:
    """A project folder with sources.yaml (copied from the sample) and hand-written exports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "sources.yaml"
        text = SAMPLE_CONFIG.read_text()
        text = text.replace("warehouse: ../../warehouse/journeys.duckdb",
                            "warehouse: warehouse/journeys.duckdb")
        text = text.replace("output_dir: ../../output", "output_dir: output")
        self.config.write_text(text)
        shutil.copy(SAMPLE_CONFIG.parent / "journey_map.yaml", root / "journey_map.yaml") \
            if (SAMPLE_CONFIG.parent / "journey_map.yaml").exists() else None
        for sub in ("clickstream", "bookings", "payments"):
            (root / "raw" / sub).mkdir(parents=True, exist_ok=True)

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse" / "journeys.duckdb"

    def clicks(self, day: str, *lines: dict | str) -> Path:
        path = self.root / "raw" / "clickstream" / f"{day}.jsonl"
        with path.open("a") as fh:
            for line in lines:
                fh.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
        return path

    def bookings(self, day: str, *rows: str) -> Path:
        return self._csv("bookings", day, BOOKING_HEADER, rows)

    def payments(self, day: str, *rows: str) -> Path:
        return self._csv("payments", day, PAYMENT_HEADER, rows)

    def _csv(self, sub: str, day: str, header: str, rows: tuple[str, ...]) -> Path:
        path = self.root / "raw" / sub / f"{day}.csv"
        new = not path.exists()
        with path.open("a") as fh:
            if new:
                fh.write(header + "\n")
            for row in rows:
                fh.write(row + "\n")
        return path


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # only the UI's code location reads JOURNEYS_CONFIG; a stray value must not leak in
    monkeypatch.delenv("JOURNEYS_CONFIG", raising=False)


def memory_warehouse() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB set up like a warehouse connection: UTC, the rate definitions."""
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    create_macros(c)
    return c


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = memory_warehouse()
    yield c
    c.close()


@pytest.fixture(scope="module")
def module_con() -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection for a whole module (property tests reuse it across examples)."""
    c = memory_warehouse()
    yield c
    c.close()


@pytest.fixture
def jmap() -> JourneyMap:
    """The sample's journey map."""
    return load_journey_map(SAMPLE_CONFIG.parent / "journey_map.yaml")


@pytest.fixture
def tiny(tmp_path: Path) -> TinyProject:
    return TinyProject(tmp_path)
