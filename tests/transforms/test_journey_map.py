"""The journey map loads, and every mistake names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from transforms.errors import ConfigError
from transforms.journey_map import load_journey_map
from transforms.project import vocabulary
from transforms.sources import load_config

DEFAULT_MAP = Path(__file__).resolve().parents[2] / "data" / "sample" / "journey_map.yaml"
# what the sample's sources.yaml lets rules name: its sources and events columns
VOCABULARY = vocabulary(load_config(DEFAULT_MAP.parent / "sources.yaml"))


def test_default_map_loads():
    m = load_journey_map(DEFAULT_MAP)
    assert m.stage_names == ["Discovery", "Consideration", "Decision", "Purchase", "Service",
                             "Repeat"]
    assert m.window_seconds == 14 * 86400
    assert [s.name for s in m.required_stages] == ["Discovery", "Decision", "Purchase",
                                                   "Service", "Repeat"]
    assert m.stage("Repeat").repeat.repeat_of == "Purchase"
    assert m.repeat_horizons == (7, 14, 30)
    assert [s.name for s in m.segments] == ["channel", "platform", "city", "service_category",
                                            "customer_type"]


def _write(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(DEFAULT_MAP.read_text())
    mutate(doc)
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _set(path: list, value):
    def mutate(doc):
        node = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return mutate


@pytest.mark.parametrize(("mutate", "key", "fix_part"), [
    (_set(["stages", 2, "rules", 0, "source"], "crm"), "stages[2].rules[0].source",
     "clickstream"),
    (_set(["stages", 1, "name"], "Discovery"), "stages[1].name", "unique"),
    (_set(["stages", 3, "rules"], []), "stages[3].rules", "add"),
    (_set(["conversion_window"], "1mo"), "conversion_window", "s, m, h, d or w"),
    (_set(["conversion_window"], "soon"), "conversion_window", "30d"),
    (_set(["segments", "platform"], {"column": "device"}), "segments.platform.column",
     "service_category"),
    (_set(["stages", 5, "rules", 0, "repeat_of"], "Checkout"), "stages[5].rules[0].repeat_of",
     "Purchase"),
    (_set(["conversion_stage"], "Paid"), "conversion_stage", "Purchase"),
    (_set(["stages", 2, "rules", 0, "event_name"], []), "stages[2].rules[0].event_name",
     "at least one"),
    (_set(["stages", 4, "pains", 2, "rule", "where", "rating"], {"below": 2}),
     "stages[4].pains[2].rule.where.rating.below", "lte"),
    (_set(["stages", 0, "touchpoints"], ["screen", "colour"]), "stages[0].touchpoints[1]",
     "channel"),
    (_set(["repeat_horizons"], [30, -1]), "repeat_horizons[1]", "30"),
    (_set(["payment_segments"], ["platform", "gateway"]), "payment_segments[1]", "method"),
    (_set(["payment_segments"], "method"), "payment_segments", "[platform, method]"),
    (_set(["payment_segments"], ["amount"]), "payment_segments[0]", "categorical"),
    (_set(["stages", 0, "optional"], True), "stages[0].optional", "first stage"),
    # a stage window counts from the previous required stage: not on the first stage (none) nor
    # on an optional one (stages[1] is Consideration); the value is a duration like 2d
    (_set(["stages", 0, "window"], "1h"), "stages[0].window", "from the first stage"),
    (_set(["stages", 1, "window"], "1h"), "stages[1].window", "next required stage"),
    (_set(["stages", 3, "window"], "1mo"), "stages[3].window", "s, m, h, d or w"),
    (_set(["stages", 3, "window"], "soon"), "stages[3].window", "30d"),
    (_set(["stages", 3, "window"], 0), "stages[3].window", "30d"),
    (_set(["stages", 0, "rulez"], []), "stages[0].rulez", "rules"),
    (_set(["metric_events", "refund"], {"source": "payments"}), "metric_events.refund",
     "payment_refunded"),
])
def test_config_errors_name_file_key_and_fix(tmp_path, mutate, key, fix_part):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_journey_map(path, VOCABULARY)
    assert err.value.path == str(path)
    assert err.value.key == key
    assert fix_part in err.value.fix
    assert str(path) in str(err.value) and key in str(err.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nstages:\n  - name: Discovery\n   rules: [\n")
    with pytest.raises(ConfigError) as err:
        load_journey_map(path)
    assert "line 4" in err.value.problem and err.value.key == "(file)"


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_journey_map(tmp_path / "nope.yaml")
    assert "does not exist" in err.value.problem


def test_rules_name_only_the_configured_sources_and_columns(tmp_path):
    doc = yaml.safe_load(DEFAULT_MAP.read_text())
    doc["stages"][0]["rules"][0]["source"] = "crm"
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_journey_map(path, VOCABULARY)
    assert err.value.key == "stages[0].rules[0].source"
    assert err.value.fix == "use one of: clickstream, bookings, payments"


def test_metric_stages_are_named_not_found_by_position(tmp_path):
    m = load_journey_map(DEFAULT_MAP, VOCABULARY)
    assert m.metric_stages == {"discovery": "Discovery", "consideration": "Consideration",
                               "decision": "Decision", "purchase": "Purchase",
                               "service": "Service", "repeat": "Repeat"}
    doc = yaml.safe_load(DEFAULT_MAP.read_text())
    del doc["metric_stages"]  # left out: purchase = conversion stage, repeat = derived stage
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert load_journey_map(path, VOCABULARY).metric_stages == {
        "purchase": "Purchase", "repeat": "Repeat"}
    doc["metric_stages"] = {"decision": "Checkout"}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_journey_map(path, VOCABULARY)
    assert err.value.key == "metric_stages.decision"



def test_stage_window_is_parsed_on_required_stages(tmp_path):
    def mutate(doc):
        doc["stages"][2]["window"] = "2d"      # Decision: 2 days from Discovery
        doc["stages"][3]["window"] = "1.5h"    # Purchase: 90 minutes from Decision
    m = load_journey_map(_write(tmp_path, mutate), VOCABULARY)
    assert [s.window_seconds for s in m.stages] == [None, None, 2 * 86400, 5400, None, None]
    # the sample sets none
    assert all(s.window_seconds is None for s in load_journey_map(DEFAULT_MAP).stages)


def test_payment_segments_default_to_the_segment_columns(tmp_path):
    assert load_journey_map(DEFAULT_MAP).payment_segments == ("platform", "method")
    path = _write(tmp_path, lambda doc: doc.pop("payment_segments"))
    # the column segments' columns, in map order; the derived segment has none
    assert load_journey_map(path, VOCABULARY).payment_segments == (
        "channel", "platform", "city", "service_category")
