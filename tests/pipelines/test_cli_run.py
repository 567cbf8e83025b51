"""`journeys run` refuses bad options and bad configs with one line, before any work."""

from __future__ import annotations

import pytest

from pipelines.cli import main
from tests.conftest import SAMPLE_CONFIG, TinyProject


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = main(["run", *args])
    return code, capsys.readouterr().err.strip()


def test_broken_journey_map_stops_before_the_run(tiny: TinyProject, capsys) -> None:
    text = (SAMPLE_CONFIG.parent / "journey_map.yaml").read_text()
    (tiny.root / "journey_map.yaml").write_text(
        text.replace("conversion_window: 14d", "conversion_window: 14 days"))
    tiny.clicks("2026-10-01", "{}")
    code, err = run(capsys, "--config", str(tiny.config))
    assert code == 2
    assert err == (f"journeys run: error: {tiny.root / 'journey_map.yaml'}: key "
                   "'conversion_window': unknown time unit 'days' in '14 days'. Fix: use a "
                   "number (decimals allowed) with a unit s, m, h, d or w, e.g. 30s, 90m, "
                   "1.5h, 30d or 2w; a bare number means seconds (calendar months and years "
                   "are not allowed because their length varies)")
    assert not tiny.warehouse.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--start", "2026-13-01"], "--start '2026-13-01' is not a date; write it as YYYY-MM-DD"),
    (["--start", "2026-10-05", "--end", "2026-10-01"],
     "--start 2026-10-05 is after --end 2026-10-01"),
])
def test_bad_dates(tiny: TinyProject, capsys, args: list[str], message: str) -> None:
    tiny.clicks("2026-10-01", "{}")
    code, err = run(capsys, "--config", str(tiny.config), *args)
    assert (code, err) == (2, f"journeys run: error: {message}")


def test_no_export_files(tiny: TinyProject, capsys) -> None:
    code, err = run(capsys, "--config", str(tiny.config))
    assert code == 2 and err.startswith("journeys run: error: no export files found")
