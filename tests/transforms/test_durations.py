"""The one duration grammar (transforms/durations.py); expected seconds worked out by hand."""

from __future__ import annotations

import pytest

from transforms.durations import DurationError, parse_duration
from transforms.errors import UserError


@pytest.mark.parametrize(("text", "seconds"), [
    # each unit
    ("30s", 30),
    ("5m", 5 * 60),                     # 300
    ("2h", 2 * 3600),                   # 7200
    ("14d", 14 * 86400),                # 1209600
    ("1w", 7 * 86400),                  # 604800
    ("2w", 2 * 7 * 86400),              # 1209600: the same as 14d
    # a bare number is seconds
    ("90", 90),
    ("3600", 3600),
    # decimals
    ("1.5d", 86400 + 43200),            # 129600
    ("0.5h", 1800),
    ("1.25h", 3600 + 900),              # 4500
    ("0.5w", 302400),                   # 3.5 days
    ("2.0m", 120),
    # whitespace around the number and between number and unit
    ("  14d  ", 14 * 86400),
    ("14 d", 14 * 86400),
    ("\t3 h\n", 3 * 3600),
    # rounded to whole seconds: 0.001h = 3.6 s -> 4; 1.4 s -> 1; a tie goes to the even second
    ("0.001h", 4),
    ("1.4s", 1),
    ("2.5s", 2),
    ("3.5s", 4),
    # a long window is fine
    ("365d", 31536000),
])
def test_accepted_forms(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "message"), [
    ("", "expected <number><unit> like 30d, got ''"),
    ("   ", "expected <number><unit>"),
    ("d", "expected <number><unit>"),
    ("soon", "expected <number><unit> like 30d, got 'soon'"),
    ("-1d", "expected <number><unit>"),          # no sign
    ("+1d", "expected <number><unit>"),
    (".5d", "expected <number><unit>"),          # digits before the point
    ("1.d", "expected <number><unit>"),          # and after it
    ("1e3s", "expected <number><unit>"),         # no exponent
    ("1,5d", "expected <number><unit>"),
    ("1 4d", "expected <number><unit>"),
    ("3y", "unknown time unit 'y' in '3y'"),
    ("1mo", "unknown time unit 'mo' in '1mo'"),
    ("14 days", "unknown time unit 'days' in '14 days'"),
    ("2 fortnights", "unknown time unit 'fortnights'"),
    ("14D", "unknown time unit 'D'"),            # units are lower case
    ("0s", "'0s' comes to less than one second"),
    ("0", "'0' comes to less than one second"),
    ("0.4s", "less than one second"),            # rounds to 0
    ("0.0001h", "less than one second"),         # 0.36 s
])
def test_rejected_forms_say_what_is_wrong_and_name_the_accepted_forms(text, message):
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    err = info.value
    assert message in str(err)
    # every message names the accepted forms
    assert "s, m, h, d or w" in str(err) and "bare number means seconds" in str(err)
    # a UserError (the CLI prints it as one line) and a ValueError
    assert isinstance(err, UserError) and isinstance(err, ValueError)
    assert "\n" not in str(err)


def test_unknown_unit_explains_calendar_units():
    with pytest.raises(DurationError, match="calendar months and years are not allowed"):
        parse_duration("1mo")


def test_problem_and_fix_are_separate_for_config_errors():
    with pytest.raises(DurationError) as info:
        parse_duration("14 days")
    assert info.value.problem == "unknown time unit 'days' in '14 days'"
    assert info.value.fix.startswith("use a number (decimals allowed) with a unit s, m, h, d or w")
    assert info.value.text == "14 days"


def test_the_value_is_named_in_the_message():
    with pytest.raises(DurationError, match=r"^invalid window: unknown time unit 'x'"):
        parse_duration("3x", what="window")
    with pytest.raises(DurationError, match=r"^invalid duration: "):
        parse_duration("3x")


@pytest.mark.parametrize("value", [14, 1.5, None, True])
def test_only_text_is_accepted(value):
    # a YAML `conversion_window: 14` must not silently mean 14 seconds
    with pytest.raises(DurationError, match="expected text like 30d"):
        parse_duration(value)
