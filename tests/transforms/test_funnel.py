"""Worked examples for every funnel rule; expected counts are reasoned out by hand in comments."""

from __future__ import annotations

import datetime as dt

import pytest

from transforms.errors import UserError
from transforms.funnel import (
    Exclusion,
    Step,
    dropped_actors,
    entry_day_completeness,
    funnel,
    funnel_actors,
)
from transforms.sqlutil import ident, read_events_file

DAY = 86400


def load(con, rows, extra=(), name="ev"):
    """rows: (actor, event, timestamp text, *extra column values)."""
    cols = ["actor", "event", "timestamp", *extra]
    con.execute(f"create or replace table {name} ({', '.join(c + ' varchar' for c in cols)})")
    con.executemany(f"insert into {name} values ({', '.join('?' for _ in cols)})", rows)
    return name


def counts(con, rows, steps, extra=(), **opts):
    return [s["count"] for s in funnel(con, load(con, rows, extra), steps, **opts).steps]


def actors(con, rows, steps, extra=(), **opts):
    rel = funnel_actors(con, load(con, rows, extra), steps, **opts)
    return {r[0]: dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()}


T = dt.datetime


# --- window -----------------------------------------------------------------------------------

def test_window_boundary_is_inclusive_and_one_second_over_is_out(con):
    rows = [
        # u1: pay exactly 3600 s after signup -> inside a 3600 s window (inclusive)
        ("u1", "signup", "2026-01-01T10:00:00Z"), ("u1", "pay", "2026-01-01T11:00:00Z"),
        # u2: pay 3601 s after signup -> outside
        ("u2", "signup", "2026-01-01T10:00:00Z"), ("u2", "pay", "2026-01-01T11:00:01Z"),
    ]
    # signup: u1, u2 = 2; pay: u1 only = 1
    assert counts(con, rows, ["signup", "pay"], window_seconds=3600) == [2, 1]


def test_reentry_restarts_the_clock(con):
    rows = [
        ("u1", "signup", "2026-01-01T00:00:00"),   # attempt 1: window ends 01-02 00:00
        ("u1", "signup", "2026-01-02T12:00:00"),   # attempt 2: window ends 01-03 12:00
        ("u1", "pay", "2026-01-03T00:00:00"),      # 36 h after attempt 1, 12 h after attempt 2
    ]
    got = actors(con, rows, ["signup", "pay"], window_seconds=DAY)
    # attempt 2 converts, so u1 counts at step 2, with times from attempt 2
    assert got["u1"]["furthest_step"] == 2
    assert got["u1"]["entry_ts"] == T(2026, 1, 2, 12)
    assert got["u1"]["step_2_ts"] == T(2026, 1, 3)
    # reentry=first keeps only attempt 1, whose window closed before the pay
    assert counts(con, rows, ["signup", "pay"], window_seconds=DAY, reentry="first") == [1, 0]


def test_reentry_first_vs_latest_time_to_convert(con):
    rows = [
        ("u1", "view", "2026-01-01T00:00:00"), ("u1", "buy", "2026-01-01T01:00:00"),
        ("u1", "view", "2026-01-01T00:30:00"),
    ]
    # latest: both attempts reach step 2; tie -> the first attempt, 3600 s to convert
    res = funnel(con, load(con, rows), ["view", "buy"])
    assert res.steps[1]["median_seconds_to_convert"] == 3600.0
    # first: also the 00:00 entry
    res = funnel(con, load(con, rows), ["view", "buy"], reentry="first")
    assert res.steps[1]["median_seconds_to_convert"] == 3600.0


def test_repeated_identical_steps_need_separate_events(con):
    rows = [
        ("u1", "view", "2026-01-01T00:00:00"),                                      # one view
        ("u2", "view", "2026-01-01T00:00:00"), ("u2", "view", "2026-01-01T00:05:00"),  # two
        ("u3", "view", "2026-01-01T00:00:00"), ("u3", "view", "2026-01-01T00:00:00"),  # two, tie
    ]
    # view->view: u1 has one event, so only step 1; u2 and u3 have two events each -> 3, 2
    assert counts(con, rows, ["view", "view"]) == [3, 2]
    # view->view->view: nobody has three views
    assert counts(con, rows, ["view", "view", "view"]) == [3, 2, 0]


def test_same_timestamp_steps_count_in_step_order(con):
    # pay is listed before signup in the input and shares the instant: still converts
    rows = [("u1", "pay", "2026-01-01T00:00:00Z"), ("u1", "signup", "2026-01-01T01:00:00+01:00")]
    got = actors(con, rows, ["signup", "pay"])
    assert got["u1"]["furthest_step"] == 2
    assert got["u1"]["step_1_ts"] == got["u1"]["step_2_ts"] == T(2026, 1, 1)


def test_strict_mode_breaks_on_any_other_event(con):
    rows = [
        # u1: signup, browse, pay -> the unrelated browse breaks strict; ordered converts
        ("u1", "signup", "2026-01-01T00:00:00"), ("u1", "browse", "2026-01-01T00:01:00"),
        ("u1", "pay", "2026-01-01T00:02:00"),
        # u2: signup immediately followed by pay -> converts in both modes
        ("u2", "signup", "2026-01-01T00:00:00"), ("u2", "pay", "2026-01-01T00:02:00"),
        # u3: signup, signup, pay: the second signup breaks attempt 1, but attempt 2
        # (the second signup) is immediately followed by pay
        ("u3", "signup", "2026-01-01T00:00:00"), ("u3", "signup", "2026-01-01T00:01:00"),
        ("u3", "pay", "2026-01-01T00:02:00"),
    ]
    assert counts(con, rows, ["signup", "pay"], order="strict") == [3, 2]   # u2, u3
    assert counts(con, rows, ["signup", "pay"], order="ordered") == [3, 3]


def test_any_order_enters_at_a_later_step(con):
    rows = [
        # u1 does pay before signup: in any order both steps are done within the window
        ("u1", "pay", "2026-01-01T00:00:00"), ("u1", "signup", "2026-01-01T00:10:00"),
        # u2 only pays: enters at "pay", completes 1 step
        ("u2", "pay", "2026-01-01T00:00:00"),
        # u3 pays then signs up 2 h later: outside the 1 h window -> 1 step
        ("u3", "pay", "2026-01-01T00:00:00"), ("u3", "signup", "2026-01-01T02:00:00"),
    ]
    assert counts(con, rows, ["signup", "pay"], order="any", window_seconds=3600) == [3, 1]
    # ordered: u1's pay precedes signup, u2 never signs up, u3's signup has no pay after it
    assert counts(con, rows, ["signup", "pay"], order="ordered", window_seconds=3600) == [2, 0]


# --- per-step windows ---------------------------------------------------------------------------
# Step(..., window_seconds=w): time allowed from the event that filled the previous step, on top
# of the funnel's window from the entry; inclusive boundary.

VIEW, CART = Step("view", "view"), Step("cart", "cart")


def pay(window):
    return Step("pay", "pay", window_seconds=window)


def test_step_window_counts_from_the_previous_step_inclusive(con):
    rows = [
        # u1: pay 1800 s after cart (5 h 30 min after the entry): inside pay's 1800 s window
        ("u1", "view", "2026-01-01T00:00:00"), ("u1", "cart", "2026-01-01T05:00:00"),
        ("u1", "pay", "2026-01-01T05:30:00"),
        # u2: pay 1801 s after cart -> one second over pay's window
        ("u2", "view", "2026-01-01T00:00:00"), ("u2", "cart", "2026-01-01T05:00:00"),
        ("u2", "pay", "2026-01-01T05:30:01"),
    ]
    # view: u1, u2 = 2; cart (no window of its own, 14 d from entry): 2; pay: u1 only = 1
    assert counts(con, rows, [VIEW, CART, pay(1800)]) == [2, 2, 1]
    # the same 1800 s as the funnel's window (from the entry) would stop both at view
    assert counts(con, rows, [VIEW, CART, pay(None)], window_seconds=1800) == [2, 0, 0]


def test_step_window_tighter_than_the_funnel_window(con):
    rows = [
        # cart at 00:10, pay at 02:10: 2 h after cart, 2 h 10 min after entry
        ("u1", "view", "2026-01-01T00:00:00"), ("u1", "cart", "2026-01-01T00:10:00"),
        ("u1", "pay", "2026-01-01T02:10:00"),
    ]
    # funnel window 1 d lets pay in (02:10 <= 1 d); pay's own 30 min from cart does not
    # (02:10 > 00:10 + 30 min = 00:40) -> [1, 1, 0]
    assert counts(con, rows, [VIEW, CART, pay(1800)], window_seconds=DAY) == [1, 1, 0]
    assert counts(con, rows, [VIEW, CART, pay(None)], window_seconds=DAY) == [1, 1, 1]


def test_funnel_window_tighter_than_the_step_window(con):
    rows = [
        # u1: pay exactly at entry + 1 h (and 30 min after cart): inside both bounds
        ("u1", "view", "2026-01-01T00:00:00"), ("u1", "cart", "2026-01-01T00:30:00"),
        ("u1", "pay", "2026-01-01T01:00:00"),
        # u2: pay at entry + 1 h + 1 s: inside pay's 1 d step window, outside the 1 h funnel
        # window from the entry, which still applies
        ("u2", "view", "2026-01-01T00:00:00"), ("u2", "cart", "2026-01-01T00:30:00"),
        ("u2", "pay", "2026-01-01T01:00:01"),
    ]
    # bound = min(entry + 3600 s, cart + 86400 s) = 01:00:00 -> u1 pays, u2 does not
    got = actors(con, rows, [VIEW, CART, pay(DAY)], window_seconds=3600)
    assert {a: r["furthest_step"] for a, r in got.items()} == {"u1": 3, "u2": 2}


def test_step_window_with_reentry_and_the_first_matching_event(con):
    rows = [
        ("u1", "view", "2026-01-01T00:00:00"),   # attempt 1
        ("u1", "cart", "2026-01-01T00:10:00"),   # attempt 1's cart: pay due by 00:40
        ("u1", "view", "2026-01-01T01:30:00"),   # attempt 2
        ("u1", "cart", "2026-01-01T01:40:00"),   # attempt 2's cart: pay due by 02:10
        ("u1", "pay", "2026-01-01T02:00:00"),    # 1 h 50 min after cart 1, 20 min after cart 2
    ]
    # attempt 1: view 00:00, cart 00:10 (first cart after it), pay 02:00 > 00:40 -> reaches 2
    # (its later cart at 01:40 does not reopen pay's window: step k-1 is its first match).
    # attempt 2 (re-entry restarts every clock): view 01:30, cart 01:40, pay 02:00 <= 02:10 ->
    # reaches 3 and is counted, times from it.
    got = actors(con, rows, [VIEW, CART, pay(1800)])["u1"]
    assert got["furthest_step"] == 3 and got["entry_ts"] == T(2026, 1, 1, 1, 30)
    assert got["step_2_ts"] == T(2026, 1, 1, 1, 40) and got["step_3_ts"] == T(2026, 1, 1, 2)
    # without the second view there is only attempt 1: the 01:40 cart does not rescue it
    assert counts(con, [r for r in rows if r[2] != "2026-01-01T01:30:00"],
                  [VIEW, CART, pay(1800)]) == [1, 1, 0]
    # reentry=first keeps attempt 1 only -> [1, 1, 0]
    assert counts(con, rows, [VIEW, CART, pay(1800)], reentry="first") == [1, 1, 0]


def test_step_window_in_strict_mode(con):
    rows = [
        # u1: cart is the very next event, 30 min after view -> inside cart's 1 h window
        ("u1", "view", "2026-01-01T00:00:00"), ("u1", "cart", "2026-01-01T00:30:00"),
        # u2: cart is the very next event but 2 h later -> outside
        ("u2", "view", "2026-01-01T00:00:00"), ("u2", "cart", "2026-01-01T02:00:00"),
    ]
    cart = Step("cart", "cart", window_seconds=3600)
    assert counts(con, rows, [VIEW, cart], order="strict") == [2, 1]


def test_exclusion_scope_ends_at_the_step_deadline(con):
    steps = [VIEW, Step("cart", "cart", window_seconds=3600)]
    rows = [
        # u1: no cart within 1 h of the view: the attempt stops waiting at 01:00; the refund at
        # 01:30 comes after that deadline -> not spoiled, u1 counts at step 1
        ("u1", "view", "2026-01-01T00:00:00"), ("u1", "refund", "2026-01-01T01:30:00"),
        ("u1", "cart", "2026-01-01T02:00:00"),
        # u2: refund exactly at the deadline (view + 1 h, inclusive) -> spoiled, removed
        ("u2", "view", "2026-01-01T00:00:00"), ("u2", "refund", "2026-01-01T01:00:00"),
    ]
    got = actors(con, rows, steps, exclusions=[Exclusion("refund", 1, 2)])
    assert {a: r["furthest_step"] for a, r in got.items()} == {"u1": 1}


def test_step_window_errors(con):
    load(con, [("u1", "view", "2026-01-01T00:00:00")])
    with pytest.raises(UserError, match="first step has none"):
        funnel(con, "ev", [Step("view", "view", window_seconds=60), CART])
    with pytest.raises(UserError, match="per-step windows need an ordered funnel"):
        funnel(con, "ev", [VIEW, pay(60)], order="any")
    for bad in (0, -5, True, float("nan"), "1h"):
        with pytest.raises(UserError, match="invalid window"):
            funnel(con, "ev", [VIEW, pay(bad)])
    res = funnel(con, "ev", [VIEW, CART, pay(90)])
    assert res.options["step_windows_seconds"] == [None, None, 90]


# --- hold a property constant -------------------------------------------------------------------
# hold="booking_id": every step event of an attempt carries the entry event's booking id; rows
# with a NULL booking id take no part.

BOOK = ["created", "paid", "completed"]


def test_hold_two_interleaved_bookings(con):
    rows = [
        ("u1", "created", "2026-01-01T00:00:00", "b1"),
        ("u1", "created", "2026-01-01T00:10:00", "b2"),
        ("u1", "paid", "2026-01-01T00:20:00", "b2"),
        ("u1", "paid", "2026-01-01T00:30:00", "b1"),
        ("u1", "completed", "2026-01-01T00:40:00", "b2"),
    ]
    # held: b1 = created 00:00, paid 00:30, never completed -> reaches 2; b2 = created 00:10,
    # paid 00:20, completed 00:40 -> reaches 3: counted, entry 00:10, 600 s to pay
    got = actors(con, rows, BOOK, ["booking_id"], hold="booking_id")["u1"]
    assert (got["furthest_step"], got["entry_ts"], got["held_value"]) == \
        (3, T(2026, 1, 1, 0, 10), "b2")
    res = funnel(con, "ev", BOOK, hold="booking_id")
    assert [s["count"] for s in res.steps] == [1, 1, 1]
    assert res.steps[1]["median_seconds_to_convert"] == 600.0
    # not held: created 00:00 (b1), the first paid after it 00:20 (b2), completed 00:40 ->
    # 1200 s to pay, from the b1 entry
    res = funnel(con, "ev", BOOK)
    assert res.steps[1]["median_seconds_to_convert"] == 1200.0


def test_hold_step_on_another_booking_does_not_count(con):
    rows = [
        # u2: created b3, paid b4 (another booking, never created) -> held: step 1 only
        ("u2", "created", "2026-01-01T00:00:00", "b3"), ("u2", "paid", "2026-01-01T00:05:00", "b4"),
    ]
    assert counts(con, rows, BOOK, ["booking_id"], hold="booking_id") == [1, 0, 0]
    assert counts(con, rows, BOOK, ["booking_id"]) == [1, 1, 0]


def test_hold_null_values_take_no_part(con):
    rows = [
        # u3: both events without a booking id -> never enters a held funnel
        ("u3", "created", "2026-01-01T00:00:00", None), ("u3", "paid", "2026-01-01T00:05:00", None),
        # u4: created b5, paid without a booking id -> the paid cannot fill b5's step 2
        ("u4", "created", "2026-01-01T00:00:00", "b5"), ("u4", "paid", "2026-01-01T00:05:00", None),
    ]
    got = actors(con, rows, BOOK, ["booking_id"], hold="booking_id")
    assert {a: r["furthest_step"] for a, r in got.items()} == {"u4": 1}
    # not held: both enter and pay
    assert counts(con, rows, BOOK, ["booking_id"]) == [2, 2, 0]


def test_hold_in_strict_mode_only_same_value_events_are_in_between(con):
    rows = [
        # u5: created b6, an unrelated event without booking, paid b6 -> held strict converts
        ("u5", "created", "2026-01-01T00:00:00", "b6"),
        ("u5", "browse", "2026-01-01T00:01:00", None),
        ("u5", "paid", "2026-01-01T00:02:00", "b6"),
        # u6: created b7, cancelled b8 (another booking), paid b7 -> held strict converts
        ("u6", "created", "2026-01-01T00:00:00", "b7"),
        ("u6", "cancelled", "2026-01-01T00:01:00", "b8"),
        ("u6", "paid", "2026-01-01T00:02:00", "b7"),
        # u7: created b9, cancelled b9, paid b9 -> the same booking's cancel breaks it
        ("u7", "created", "2026-01-01T00:00:00", "b9"),
        ("u7", "cancelled", "2026-01-01T00:01:00", "b9"),
        ("u7", "paid", "2026-01-01T00:02:00", "b9"),
    ]
    steps = ["created", "paid"]
    assert counts(con, rows, steps, ["booking_id"], order="strict", hold="booking_id") == [3, 2]
    # not held: every other event of the actor breaks strict -> nobody converts
    assert counts(con, rows, steps, ["booking_id"], order="strict") == [3, 0]


def test_hold_tie_takes_the_earliest_entry_and_exclusions_stay_on_their_value(con):
    rows = [
        # u8: b1 created 00:10, paid 00:20; b2 created 00:00, paid 00:30: both reach step 2 ->
        # the earliest entry (b2 at 00:00) is counted, 1800 s to pay
        ("u8", "created", "2026-01-01T00:10:00", "b1"), ("u8", "paid", "2026-01-01T00:20:00", "b1"),
        ("u8", "created", "2026-01-01T00:00:00", "b2"), ("u8", "paid", "2026-01-01T00:30:00", "b2"),
        # u9: a cancel of b4 between b3's created and paid does not spoil b3
        ("u9", "created", "2026-01-01T00:00:00", "b3"),
        ("u9", "cancelled", "2026-01-01T00:01:00", "b4"),
        ("u9", "paid", "2026-01-01T00:02:00", "b3"),
    ]
    steps = ["created", "paid"]
    got = actors(con, rows, steps, ["booking_id"], hold="booking_id",
                 exclusions=[Exclusion("cancelled", 1, 2)])
    assert got["u8"]["held_value"] == "b2" and got["u8"]["entry_ts"] == T(2026, 1, 1)
    assert got["u9"]["furthest_step"] == 2 and got["u9"]["held_value"] == "b3"
    # not held, u9's cancel spoils its only attempt -> removed
    assert "u9" not in actors(con, rows, steps, ["booking_id"],
                              exclusions=[Exclusion("cancelled", 1, 2)])


def test_hold_with_reentry_first_keeps_each_values_first_entry(con):
    rows = [
        ("u1", "created", "2026-01-01T00:00:00", "b1"),
        ("u1", "created", "2026-01-01T00:10:00", "b2"),
        ("u1", "created", "2026-01-01T00:15:00", "b2"),
        ("u1", "paid", "2026-01-01T00:20:00", "b2"),
    ]
    # first entry per booking: b1 at 00:00 (reaches 1), b2 at 00:10 (paid 00:20: reaches 2)
    got = actors(con, rows, ["created", "paid"], ["booking_id"], hold="booking_id",
                 reentry="first")["u1"]
    assert (got["furthest_step"], got["entry_ts"]) == (2, T(2026, 1, 1, 0, 10))


def test_hold_errors_and_options(con):
    load(con, [("u1", "created", "2026-01-01T00:00:00")])
    with pytest.raises(UserError, match="missing hold column 'booking_id'"):
        funnel(con, "ev", BOOK, hold="booking_id")
    with pytest.raises(UserError, match="invalid hold"):
        funnel(con, "ev", BOOK, hold="")
    load(con, [("u1", "created", "2026-01-01T00:00:00", "b1")], ["booking_id"])
    assert funnel(con, "ev", BOOK, hold="booking_id").options["hold"] == "booking_id"
    dropped = dropped_actors(con, "ev", BOOK, 1, hold="booking_id")
    assert dropped.columns[-1] == "held_value" and dropped.fetchall()[0][-1] == "b1"


# --- exclusions ---------------------------------------------------------------------------------

def test_exclusion_removes_actor_and_later_clean_attempt_heals(con):
    steps = ["signup", "pay", "done"]
    rows = [
        # u1: signup, refund, pay, done -> refund between steps 1 and 2 spoils the only attempt
        ("u1", "signup", "2026-01-01T00:00:00"), ("u1", "refund", "2026-01-01T00:01:00"),
        ("u1", "pay", "2026-01-01T00:02:00"), ("u1", "done", "2026-01-01T00:03:00"),
        # u2: spoiled attempt, then a clean attempt from the second signup
        ("u2", "signup", "2026-01-01T00:00:00"), ("u2", "refund", "2026-01-01T00:01:00"),
        ("u2", "signup", "2026-01-01T00:02:00"), ("u2", "pay", "2026-01-01T00:03:00"),
        # u3: refund before signup and after pay -> outside 1..2, clean, reaches done
        ("u3", "refund", "2026-01-01T00:00:00"), ("u3", "signup", "2026-01-01T00:01:00"),
        ("u3", "pay", "2026-01-01T00:02:00"), ("u3", "refund", "2026-01-01T00:03:00"),
        ("u3", "done", "2026-01-01T00:04:00"),
        # u4: signup then refund, never pays: still spoiled (refund within the window while
        # waiting for step 2) -> removed
        ("u4", "signup", "2026-01-01T00:00:00"), ("u4", "refund", "2026-01-01T00:01:00"),
    ]
    got = actors(con, rows, steps, exclusions=[Exclusion("refund", 1, 2)])
    # u1, u4 removed; u2 counted from its 00:02 attempt (reaches pay); u3 reaches done
    assert sorted(got) == ["u2", "u3"]
    assert got["u2"]["entry_ts"] == T(2026, 1, 1, 0, 2) and got["u2"]["furthest_step"] == 2
    assert got["u3"]["furthest_step"] == 3
    assert counts(con, rows, steps, exclusions=[Exclusion("refund", 1, 2)]) == [2, 2, 1]
    # without the exclusion: all four enter; u1, u2, u3 pay; u1 and u3 are done
    assert counts(con, rows, steps) == [4, 3, 2]


def test_exclusion_scope_ends_at_the_window(con):
    rows = [
        # the refund comes 2 h after signup, but the window is 1 h: not between the steps
        ("u1", "signup", "2026-01-01T00:00:00"), ("u1", "refund", "2026-01-01T02:00:00"),
        # refund exactly at entry + window while waiting for pay: inside (inclusive)
        ("u2", "signup", "2026-01-01T00:00:00"), ("u2", "refund", "2026-01-01T01:00:00"),
    ]
    got = actors(con, rows, ["signup", "pay"], window_seconds=3600,
                 exclusions=[Exclusion("refund", 1, 2)])
    assert sorted(got) == ["u1"]


def test_exclusion_at_the_same_instant_as_a_step_does_not_spoil(con):
    rows = [("u1", "signup", "2026-01-01T00:00:00"), ("u1", "refund", "2026-01-01T00:00:00"),
            ("u1", "pay", "2026-01-01T00:05:00"), ("u1", "refund", "2026-01-01T00:05:00")]
    # "between" is strictly after step 1's time and strictly before step 2's time
    assert counts(con, rows, ["signup", "pay"], exclusions=[Exclusion("refund", 1, 2)]) == [1, 1]


@pytest.mark.parametrize("frm,to", [(2, 1), (1, 1), (0, 2), (1, 4), (3, 4)])
def test_invalid_exclusion_ranges_are_errors(con, frm, to):
    load(con, [("u1", "a", "2026-01-01T00:00:00")])
    with pytest.raises(UserError, match="invalid exclusion"):
        funnel(con, "ev", ["a", "b", "c"], exclusions=[Exclusion("x", frm, to)])


# --- incomplete cohorts, DST, date range -------------------------------------------------------

def test_incomplete_cohorts_are_flagged(con):
    rows = [
        ("u1", "signup", "2026-01-01T00:00:00"),   # window ends 01-02 00:00 <= data end: complete
        ("u2", "signup", "2026-01-02T00:00:00"),   # window ends 01-03 00:00 > data end
        ("u2", "pay", "2026-01-02T12:00:00"),      # data end = this event
    ]
    got = actors(con, rows, ["signup", "pay"], window_seconds=DAY)
    assert got["u1"]["complete"] is True and got["u2"]["complete"] is False
    days = entry_day_completeness(con, funnel_actors(con, "ev", ["signup", "pay"],
                                                     window_seconds=DAY)).fetchall()
    assert days == [(dt.date(2026, 1, 1), 1, 0, True), (dt.date(2026, 1, 2), 1, 1, False)]
    res = funnel(con, "ev", ["signup", "pay"], window_seconds=DAY)
    assert res.incomplete_actors == 1 and [s["count"] for s in res.steps] == [2, 1]
    # complete_only keeps u2 out of every figure: only u1, who did not pay
    res = funnel(con, "ev", ["signup", "pay"], window_seconds=DAY, complete_only=True)
    assert [s["count"] for s in res.steps] == [1, 0]


def test_window_across_daylight_saving_change_is_absolute_seconds(con):
    # Europe/Berlin leaves summer time on 2026-10-25 at 03:00 CEST (+02:00) -> 02:00 CET (+01:00).
    # signup 2026-10-24 12:00+02:00 = 10:00 UTC.
    # u1 pay 2026-10-25 11:00+01:00 = 10:00 UTC: 86400 s later (wall clock shows only 23 h) -> in
    # u2 pay 2026-10-25 12:00+01:00 = 11:00 UTC: 90000 s later (wall clock shows 24 h) -> out
    rows = [
        ("u1", "signup", "2026-10-24T12:00:00+02:00"), ("u1", "pay", "2026-10-25T11:00:00+01:00"),
        ("u2", "signup", "2026-10-24T12:00:00+02:00"), ("u2", "pay", "2026-10-25T12:00:00+01:00"),
    ]
    res = funnel(con, load(con, rows), ["signup", "pay"], window_seconds=DAY)
    assert [s["count"] for s in res.steps] == [2, 1]
    assert res.steps[1]["median_seconds_to_convert"] == 86400.0


def test_date_range_bounds_entry_only(con):
    rows = [
        ("u1", "signup", "2026-01-31T23:00:00"), ("u1", "pay", "2026-02-01T01:00:00"),  # before
        ("u2", "signup", "2026-02-01T00:00:00"), ("u2", "pay", "2026-03-02T00:00:00"),  # in
        ("u3", "signup", "2026-02-28T23:59:59"), ("u3", "pay", "2026-03-05T00:00:00"),  # in
        ("u4", "signup", "2026-03-01T00:00:00"), ("u4", "pay", "2026-03-01T00:00:01"),  # after
    ]
    # February entries: u2 and u3. u2 pays 29 days later (> 14 d window); u3 pays after the range
    # end but within 14 d -> counted. signup 2, pay 1.
    assert counts(con, rows, ["signup", "pay"], start=dt.date(2026, 2, 1),
                  end=dt.date(2026, 2, 28)) == [2, 1]
    got = actors(con, rows, ["signup", "pay"], start="2026-02-01", end="2026-02-28")
    assert sorted(got) == ["u2", "u3"] and got["u3"]["furthest_step"] == 2


# --- breakdown and attribution -----------------------------------------------------------------

BD_ROWS = [
    # u1: entry on ios, pay on web, done on android
    ("u1", "signup", "2026-01-01T00:00:00", "ios"), ("u1", "pay", "2026-01-01T00:01:00", "web"),
    ("u1", "done", "2026-01-01T00:02:00", "android"),
    # u2: entry on web, pay on web, no done
    ("u2", "signup", "2026-01-01T00:00:00", "web"), ("u2", "pay", "2026-01-01T00:01:00", "web"),
    # u3: entry on ios only
    ("u3", "signup", "2026-01-01T00:00:00", "ios"),
]


def _rows(result):
    return {r["value"]: [s["count"] for s in r["steps"]] for r in result.breakdown}


def test_breakdown_first_touch(con):
    res = funnel(con, load(con, BD_ROWS, ["platform"]), ["signup", "pay", "done"],
                 breakdown="platform")
    # entry values: u1 ios, u2 web, u3 ios -> ios: [2, 1, 1] (u1 done), web: [1, 1, 0]
    assert _rows(res) == {"ios": [2, 1, 1], "web": [1, 1, 0]}


def test_breakdown_last_touch(con):
    res = funnel(con, load(con, BD_ROWS, ["platform"]), ["signup", "pay", "done"],
                 breakdown="platform", attribution="last")
    # last matched step: u1 done@android, u2 pay@web, u3 signup@ios
    assert _rows(res) == {"android": [1, 1, 1], "web": [1, 1, 0], "ios": [1, 0, 0]}


def test_breakdown_step_attribution(con):
    res = funnel(con, load(con, BD_ROWS, ["platform"]), ["signup", "pay", "done"],
                 breakdown="platform", attribution="step:2")
    # pay event decides: u1 web, u2 web; u3 never paid -> not attributed
    assert _rows(res) == {"web": [2, 2, 1]}
    assert res.unattributed_actors == 1
    got = actors(con, BD_ROWS, ["signup", "pay", "done"], ["platform"], breakdown="platform",
                 attribution="step:2")
    assert got["u3"]["attributed"] is False and got["u3"]["breakdown_value"] is None


def test_invalid_attribution_step(con):
    load(con, BD_ROWS, ["platform"])
    with pytest.raises(UserError, match="attribution"):
        funnel(con, "ev", ["signup", "pay"], breakdown="platform", attribution="step:3")


# --- counting unit, stats, filters -------------------------------------------------------------

def test_counting_unit_is_any_column(con):
    rows = [
        # one customer, two sessions: s1 converts, s2 does not
        ("c1", "view", "2026-01-01T00:00:00", "s1"), ("c1", "buy", "2026-01-01T00:01:00", "s1"),
        ("c1", "view", "2026-01-02T00:00:00", "s2"),
    ]
    # per customer: 1 entered, 1 bought; per session: 2 entered, 1 bought
    assert counts(con, rows, ["view", "buy"], ["session"]) == [1, 1]
    assert counts(con, rows, ["view", "buy"], ["session"], actor_col="session") == [2, 1]


def test_time_to_convert_statistics(con):
    rows = []
    # four actors converting in 10, 20, 30, 100 seconds
    for i, secs in enumerate([10, 20, 30, 100]):
        b_time = f"2026-01-01T00:{secs // 60:02d}:{secs % 60:02d}"
        rows += [(f"u{i}", "a", "2026-01-01T00:00:00"), (f"u{i}", "b", b_time)]
    res = funnel(con, load(con, rows), ["a", "b"])
    s2 = res.steps[1]
    # interpolated quantiles of [10, 20, 30, 100]: median (20+30)/2 = 25; p75 at rank 2.25 ->
    # 30 + 0.25*70 = 47.5; p90 at rank 2.7 -> 30 + 0.7*70 = 79; mean 160/4 = 40
    assert s2["median_seconds_to_convert"] == pytest.approx(25.0)
    assert s2["p75_seconds_to_convert"] == pytest.approx(47.5)
    assert s2["p90_seconds_to_convert"] == pytest.approx(79.0)
    assert s2["mean_seconds_to_convert"] == pytest.approx(40.0)
    first = res.steps[0]
    assert (first["conversion"], first["step_conversion"], first["dropout_rate"],
            first["median_seconds_to_convert"]) == (1.0, 1.0, 0.0, None)


def test_report_ratios(con):
    rows = [(f"u{i}", "a", "2026-01-01T00:00:00") for i in range(4)]
    rows += [("u0", "b", "2026-01-01T00:01:00"), ("u1", "b", "2026-01-01T00:01:00"),
             ("u0", "c", "2026-01-01T00:02:00")]
    s = funnel(con, load(con, rows), ["a", "b", "c"]).steps
    # n = 4, 2, 1: conversion 1, .5, .25; step conversion 1, .5, .5; dropoff 0, 2, 1
    assert [x["count"] for x in s] == [4, 2, 1]
    assert [x["conversion"] for x in s] == [1.0, 0.5, 0.25]
    assert [x["step_conversion"] for x in s] == [1.0, 0.5, 0.5]
    assert [x["dropout_rate"] for x in s] == [0.0, 0.5, 0.5]
    assert [x["dropoff_count"] for x in s] == [0, 2, 1]


def test_dropped_actors_lists_who_left_after_a_step(con):
    rows = [(f"u{i}", "a", "2026-01-01T00:00:00") for i in range(3)]
    rows += [("u0", "b", "2026-01-01T00:01:00")]
    load(con, rows)
    # u1, u2 reached a and not b
    assert [r[0] for r in dropped_actors(con, "ev", ["a", "b"], 1).fetchall()] == ["u1", "u2"]
    with pytest.raises(UserError, match="out of range"):
        dropped_actors(con, "ev", ["a", "b"], 2)


def test_step_filters_and_any_event_step(con):
    rows = [
        ("u1", "view", "2026-01-01T00:00:00", "hair"), ("u1", "book", "2026-01-01T00:01:00", ""),
        ("u2", "view", "2026-01-01T00:00:00", "nails"), ("u2", "book", "2026-01-01T00:01:00", ""),
    ]
    steps = [Step("hair view", "view", {"category": "hair"}), Step("anything", None)]
    # only u1 views hair; any later event fills "anything"
    assert counts(con, rows, steps, ["category"]) == [1, 1]


def test_shuffled_ties_resolve_the_same(con):
    # two entries at the same instant with different platforms: the tie is broken by value, so
    # first-touch attribution does not depend on input row order
    rows = [("u1", "signup", "2026-01-01T00:00:00", "web"),
            ("u1", "signup", "2026-01-01T00:00:00", "ios")]
    a = actors(con, rows, ["signup"], ["platform"], breakdown="platform")
    b = actors(con, rows[::-1], ["signup"], ["platform"], breakdown="platform")
    assert a == b and a["u1"]["breakdown_value"] == "ios"


def test_native_timestamp_columns(con):
    con.execute("create table nat as select 'u1' as actor, 'a' as event, "
                "timestamp '2026-01-01 00:00:00' as timestamp union all select 'u1', 'b', "
                "timestamptz '2026-01-01 01:00:00+01:00'::timestamp")
    con.execute("create table tz as select 'u1' as actor, 'a' as event, "
                "timestamptz '2026-01-01 00:00:00+00' as timestamp union all select 'u1', 'b', "
                "timestamptz '2026-01-01 01:00:00+01:00'")
    # both: b happens at 00:00 UTC, the same instant as a -> converts in 0 s
    for table in ("nat", "tz"):
        res = funnel(con, table, ["a", "b"])
        assert [s["count"] for s in res.steps] == [1, 1]
        assert res.steps[1]["median_seconds_to_convert"] == 0.0


# --- errors ------------------------------------------------------------------------------------

def test_missing_column_is_a_user_error(con):
    load(con, [("u1", "a", "2026-01-01T00:00:00")])
    with pytest.raises(UserError, match="missing actor column 'customer'"):
        funnel(con, "ev", ["a"], actor_col="customer")


def test_unparseable_timestamp_is_a_user_error(con):
    load(con, [("u1", "a", "2026-01-01T00:00:00"), ("u1", "b", "yesterday")])
    with pytest.raises(UserError, match="not ISO 8601.*yesterday"):
        funnel(con, "ev", ["a", "b"])


def test_bad_options_are_user_errors(con):
    load(con, [("u1", "a", "2026-01-01T00:00:00")])
    for opts in ({"order": "sideways"}, {"reentry": "never"}, {"window_seconds": 0},
                 {"start": "2026-02-01", "end": "2026-01-01"}, {"start": "soon"}):
        with pytest.raises(UserError):
            funnel(con, "ev", ["a"], **opts)
    with pytest.raises(UserError, match="no steps"):
        funnel(con, "ev", [])
    with pytest.raises(UserError, match="no table"):
        funnel(con, "missing_table", ["a"])


def test_options_are_explicit_keywords(con):
    load(con, [("u1", "a", "2026-01-01T00:00:00")])
    # a misspelt option is a TypeError from the signature itself, never silently ignored
    with pytest.raises(TypeError):
        funnel(con, "ev", ["a"], windw_seconds=60)
    with pytest.raises(TypeError):
        funnel_actors(con, "ev", ["a"], complete=True)
    with pytest.raises(TypeError):
        funnel(con, "ev", ["a"], 60)  # options are keyword-only


def test_result_options_name_every_option_with_its_default(con):
    load(con, [("u1", "a", "2026-01-01T00:00:00")])
    res = funnel(con, "ev", ["a"])
    assert res.options == {
        "window_seconds": 14 * DAY, "order": "ordered", "reentry": "latest",
        "actor_col": "actor", "event_col": "event", "time_col": "timestamp",
        "breakdown": None, "attribution": "first", "hold": None,
        "step_windows_seconds": [None], "start": None, "end": None,
        "exclusions": [], "complete_only": False, "steps": ["a"],
    }
    res = funnel(con, "ev", ["a", "b"], exclusions=[Exclusion("x", 1, 2)],
                 start=dt.date(2026, 1, 1), complete_only=True)
    assert res.options["exclusions"] == [{"event": "x", "from_step": 1, "to_step": 2}]
    assert (res.options["start"], res.options["end"], res.options["complete_only"]) == \
        ("2026-01-01", None, True)


# --- sqlutil -----------------------------------------------------------------------------------

def test_ident_quotes_names():
    assert ident("event") == '"event"'
    assert ident('we"ird; drop') == '"we""ird; drop"'
    with pytest.raises(UserError):
        ident("")


def test_read_events_file_by_extension(con, tmp_path):
    con.execute("create table src as select 'u1' as actor, 'a' as event, "
                "'2026-01-01T00:00:00+01:00' as timestamp")
    con.execute(f"copy src to '{tmp_path / 'e.parquet'}' (format parquet)")
    con.execute(f"copy src to '{tmp_path / 'e.csv'}' (format csv, header)")
    con.execute(f"copy src to '{tmp_path / 'e.jsonl'}' (format json)")
    for name in ("e.parquet", "e.csv", "e.jsonl"):
        rel = read_events_file(con, tmp_path / name)
        assert rel.columns == ["actor", "event", "timestamp"]
        assert funnel(con, rel, ["a"]).steps[0]["count"] == 1
    with pytest.raises(UserError, match="unknown file type"):
        read_events_file(con, tmp_path / "e.xlsx")
    with pytest.raises(UserError, match="no such file"):
        read_events_file(con, tmp_path / "missing.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="cannot read"):
        read_events_file(con, tmp_path / "bad.parquet")


def test_naive_text_is_utc_whatever_the_session_time_zone(con):
    con.execute("SET TimeZone = 'Europe/Berlin'")
    # a at naive 00:00 (UTC), b at 01:00+01:00 = 00:00 UTC: same instant, converts in a 1 s window
    rows = [("u1", "a", "2026-01-01 00:00:00"), ("u1", "b", "2026-01-01T01:00:00+01:00")]
    assert counts(con, rows, ["a", "b"], window_seconds=1) == [1, 1]
    # the caller's session setting is left as it was
    assert con.execute("select current_setting('TimeZone')").fetchall() == [("Europe/Berlin",)]
