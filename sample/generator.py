"""Synthetic sample data: a beauty-booking app's clickstream, bookings and payments exports.

Simulates customers one at a time (a stream: memory does not grow with the number of customers)
and writes each record to the export file of the day it was received, in the format the source
system would export (see data/sample/sources.yaml):

- clickstream: JSON lines, Segment-SDK style; `timestamp` is client time with the device's UTC
  offset (Europe/Berlin), `receivedAt` the server's UTC receipt time; file day = UTC day of
  `receivedAt`.
- bookings: CSV, one row per booking state change; `slot_time` and `changed_at` are naive
  Europe/Berlin local time; file day = UTC day of `changed_at`.
- payments: CSV processor export, one row per payment state; `created_at` ISO UTC with `Z`;
  file day = UTC day of `created_at`.

Journeys run Discovery → Consideration → Decision → Purchase → Service → Repeat with drop-off at
every step, and carry planted stories (payment failures by platform and method, a weak
paid-social channel, scarce massage slots, a payment outage, low ratings that do not come back,
anonymous browsing before login) plus real-world dirt in small, exactly counted amounts. The
story parameters, the dirt counts and the realised figures go to `ground_truth.json`.

Every dirty record is an *extra* record with its own identity (except duplicates, which repeat
a clean line byte for byte), so the clean records are exactly what a correct ingestion loads.
Deterministic: one `random.Random(seed)` drives everything, in a fixed order.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SOURCES = ("clickstream", "bookings", "payments")
BOOKING_COLUMNS = ("booking_id", "customer_id", "salon_id", "city", "service_category",
                   "slot_time", "price", "currency", "status", "cancel_reason", "rating",
                   "complaint", "changed_at")
PAYMENT_COLUMNS = ("payment_id", "booking_id", "amount", "currency", "method", "status",
                   "failure_reason", "created_at")
EVENT_NAMES = ("app_installed", "app_opened", "campaign_clicked", "search_performed",
               "signed_up", "logged_in", "service_viewed", "salon_viewed", "reviews_read",
               "favourite_added", "slot_selected", "checkout_started")
CONSIDERATION_EVENTS = ("search_performed", "service_viewed", "salon_viewed", "reviews_read",
                        "favourite_added")
DECISION_EVENTS = ("slot_selected", "checkout_started")
DEFAULT_START = dt.date(2026, 10, 1)
TIMEZONE = "Europe/Berlin"

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
EPOCH = dt.date(1970, 1, 1)

# ---------------------------------------------------------------------------------------------
# Story parameters (the truth the pipeline should rediscover). Written to ground_truth.json.
# ---------------------------------------------------------------------------------------------
PARAMS: dict[str, Any] = {
    "platform_share": {"ios": 0.42, "android": 0.40, "web": 0.18},
    "channel_share": {"organic": 0.30, "paid_social": 0.34, "paid_search": 0.16,
                      "referral": 0.12, "email": 0.08},
    "city_share": {"Berlin": 0.27, "Hamburg": 0.16, "München": 0.16, "Köln": 0.11,
                   "Frankfurt am Main": 0.09, "Stuttgart": 0.08, "Düsseldorf": 0.07,
                   "Leipzig": 0.06},
    "interest_share": {"hair": 0.40, "nails": 0.27, "massage": 0.18, "cosmetics": 0.15},
    "p_consider": 0.85,
    "p_early_signup": 0.10,
    "p_signup_without_booking": 0.08,
    "p_decide_base": 0.46,
    "decide_factor_channel": {"paid_social": 0.5},
    "decide_factor_interest": {"massage": 0.5},
    "p_drop_at_signup_wall": 0.10,
    "p_drop_after_slot_logged_in": 0.05,
    "p_no_payment_attempt": 0.04,
    "payment_method_share": {
        "ios": {"apple_pay": 0.42, "card": 0.30, "paypal": 0.20, "klarna": 0.08},
        "android": {"card": 0.42, "google_pay": 0.28, "paypal": 0.22, "klarna": 0.08},
        "web": {"card": 0.45, "paypal": 0.35, "klarna": 0.15, "apple_pay": 0.05},
    },
    "p_payment_fail_base": 0.05,
    "p_payment_fail_android_card": 0.25,
    "android_card_excess_reason": "3ds_timeout",
    "base_failure_reasons": {"insufficient_funds": 0.35, "card_declined": 0.35,
                             "expired_card": 0.10, "authentication_failed": 0.12,
                             "do_not_honor": 0.08},
    "p_retry_after_failure": 0.55,
    "p_retry_after_failure_returning": 0.92,
    "p_switch_method_on_retry": 0.35,
    "max_payment_attempts": 3,
    "max_payment_attempts_returning": 4,
    "outage": {"day_number": 12, "utc_hours": [13, 19], "reason": "processor_unavailable",
               "p_fail": 0.60,
               "note": "attempts created in [day 13:00Z, day 19:00Z) fail with the outage "
                       "reason with probability p_fail; otherwise the normal model applies. "
                       "day_number is 1-based within the range (or the middle day when the "
                       "range has fewer than 14 days)"},
    "p_customer_cancel": 0.06,
    "p_salon_cancel": 0.02,
    "free_cancellation_hours": 24,
    "p_no_show": 0.04,
    "rating_share": {"5": 0.45, "4": 0.25, "3": 0.12, "2": 0.10, "1": 0.08},
    "p_review": 0.60,
    "p_complaint_by_rating": {"1": 0.8, "2": 0.7, "3": 0.4, "4": 0.05, "5": 0.0},
    "p_repeat_low_rating": 0.05,
    "p_repeat_high_rating": 0.40,
    "low_rating_max": 2,
    "repeat_delay_days": {"distribution": "lognormal", "median": 6.0, "sigma": 0.6,
                          "min": 1.0, "max": 14.0,
                          "from": "the completed visit"},
    "p_second_device_on_return": 0.10,
    "p_existing_account_email": 0.6,
    "p_login_expired_on_return": {"web": 0.5, "ios": 0.05, "android": 0.05},
    "p_idle_return_visit": 0.30,
    "clickstream_lag_ms": {"median": 450, "offline_share": 0.003,
                           "offline_lag_minutes": [5, 360]},
}

# dirt rates (per clean record unless said otherwise)
DIRT_RATES: dict[str, dict[str, float]] = {
    "clickstream": {"duplicate": 0.004, "malformed_json": 0.0005, "bad_timestamp": 0.0003,
                    "unknown_event": 0.0005, "missing_field": 0.0003, "invalid_enum": 0.0003,
                    "clock_skew_devices": 0.003},
    "bookings": {"duplicate": 0.004, "late_file": 0.004, "wrong_column_count": 0.003,
                 "bad_timestamp": 0.003, "missing_field": 0.003, "invalid_enum": 0.003,
                 "negative_amount": 0.002, "rating_out_of_range": 0.02},
    "payments": {"duplicate": 0.004, "late_file": 0.004, "wrong_column_count": 0.003,
                 "bad_timestamp": 0.003, "missing_field": 0.003, "invalid_enum": 0.003,
                 "negative_amount": 0.003},
}

DIRT_DEFINITIONS = {
    "duplicate": "an extra line identical, byte for byte, to a clean line in the same file "
                 "(clickstream: SDK retry, same messageId)",
    "malformed_json": "an extra line that is a truncated copy of a clean line (not valid JSON)",
    "bad_timestamp": "an extra record (own id) whose event time is not a parseable timestamp",
    "unknown_event": "an extra clickstream record (own messageId) with an event name not in "
                     "the enum",
    "missing_field": "an extra record (own id where the id is not the missing field) lacking a "
                     "required field (key absent in JSON, empty in CSV)",
    "invalid_enum": "an extra record (own id) with a value outside an enum (clickstream "
                    "platform; bookings status/service_category/currency; payments "
                    "method/status/currency)",
    "clock_skew": "clean clickstream lines from a device whose clock is off by days or years: "
                  "|timestamp - receivedAt| > 1 day; receivedAt is right",
    "late_file": "clean lines in the file of the day after the UTC day of their event time "
                 "(clickstream: received after midnight UTC; never more than one day late)",
    "wrong_column_count": "an extra CSV line (own id) with too many or too few fields",
    "negative_amount": "an extra CSV record (own id) with a negative price/amount",
    "rating_out_of_range": "an extra bookings 'reviewed' record (own booking_id) with rating "
                           "outside 1..5",
}

SERVICES: dict[str, list[tuple[str, float, int]]] = {  # name, base price, minutes
    "hair": [("Women's cut & blow-dry", 55, 75), ("Men's cut", 29, 30), ("Balayage", 120, 150),
             ("Colour & cut", 85, 120), ("Blow-dry", 35, 45)],
    "nails": [("Gel manicure", 39, 60), ("Classic manicure", 28, 45), ("Pedicure", 42, 60),
              ("Nail art", 49, 75)],
    "massage": [("Swedish massage 60 min", 65, 60), ("Deep tissue 60 min", 75, 60),
                ("Thai massage 90 min", 95, 90), ("Hot stone 75 min", 85, 75)],
    "cosmetics": [("Facial", 69, 60), ("Lash lift", 55, 50), ("Brow shaping", 25, 30),
                  ("Microneedling", 110, 75)],
}
SEARCH_TERMS = {
    "hair": ["haircut", "balayage", "friseur", "blow dry", "hair colour"],
    "nails": ["gel nails", "maniküre", "nail salon", "pedicure"],
    "massage": ["massage", "thai massage", "deep tissue", "massage near me"],
    "cosmetics": ["facial", "lash lift", "kosmetik", "brows"],
}
CAMPAIGNS = {
    "paid_social": [("instagram", "autumn_glow_2026"), ("facebook", "autumn_glow_2026"),
                    ("tiktok", "nails_oct_promo")],
    "paid_search": [("google", "brand_search"), ("google", "generic_salon_near_me"),
                    ("bing", "brand_search")],
    "referral": [("referral_program", "friend_invite_10eur")],
    "email": [("newsletter", "oct_weekly"), ("newsletter", "welcome_series")],
    "organic": [("google", "")],
}
APP_VERSIONS = {"ios": (["5.12.0", "5.12.1", "5.13.0"], [0.2, 0.3, 0.5]),
                "android": (["5.12.0", "5.12.2", "5.13.0"], [0.25, 0.35, 0.4]),
                "web": (["2026.09.4", "2026.10.1"], [0.4, 0.6])}
SIGNUP_METHODS = ["email", "apple", "google"]
CUSTOMER_CANCEL_REASONS = ["customer_request", "schedule_conflict", "found_other_salon"]
COMPLAINTS = [
    'Waited 40 minutes, nobody apologised',
    'The "express" manicure took 90 minutes',
    'Colour was wrong, had to go back the next day',
    'Therapist said "we are fully booked" and rushed it',
    "Stylist didn't listen, cut 5 cm instead of 1",
    'Too expensive for what it was',
    'Sehr unfreundlich, würde nicht wiederkommen',
    'Salon was cold, music too loud, towels "meh"',
    'Booked via app, salon had no record of it',
]
# local hour weights for session starts (Europe/Berlin)
HOUR_WEIGHTS = [2, 1, 0.3, 0.2, 0.2, 0.4, 1.5, 3, 4, 4, 4, 4.5, 6, 5.5, 4.5, 4.5, 5, 6, 7, 8.5,
                9, 8, 6, 4]
BAD_TIMESTAMPS = ["not-a-date", "Invalid Date", "NaN", "2026-10-32T10:00:00+02:00",
                  "0000-00-00 00:00:00"]
CLOCK_SKEWS_DAYS = [-9, -3, -2, 2, 4, -365, 365, -2190]
SALONS_TOTAL = 640
# a review counts as "eligible" for the repeat story when it lies at least the maximum repeat
# delay plus this many days before the end of the range (so a repeat could be observed)
REPEAT_ELIGIBLE_SLACK_DAYS = 3


class _Cat:
    """A categorical distribution sampled with one uniform draw (faster than rng.choices)."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, items: Sequence[Any], weights: Sequence[float]) -> None:
        self.items = list(items)
        acc = 0.0
        self.cum: list[float] = []
        for w in weights:
            acc += w
            self.cum.append(acc)
        self.total = acc

    @classmethod
    def of(cls, mapping: dict[str, float]) -> _Cat:
        return cls(list(mapping), list(mapping.values()))

    def pick(self, rng: random.Random) -> Any:
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


class _Clock:
    """UTC milliseconds ↔ Europe/Berlin offsets and ISO strings, cached per day."""

    def __init__(self, first: dt.date, last: dt.date) -> None:
        zone = ZoneInfo(TIMEZONE)
        # offset changes between first-400d and last+60d, found by hourly probing
        lo = _ms_of_date(first - dt.timedelta(days=400))
        hi = _ms_of_date(last + dt.timedelta(days=60))
        self.lo, self.hi = lo, hi
        self.trans: list[int] = [lo]
        self.offs: list[int] = [_offset_ms(zone, lo)]
        self.fallbacks: list[int] = []
        t = lo
        while t < hi:
            t += HOUR
            off = _offset_ms(zone, t)
            if off != self.offs[-1]:
                # exact instant: offsets change on the hour
                if off < self.offs[-1]:
                    self.fallbacks.append(t)
                self.trans.append(t)
                self.offs.append(off)
        self._zone = zone
        self._dates: dict[int, str] = {}
        self._offstr: dict[int, str] = {}

    def offset(self, ms: int) -> int:
        if ms < self.lo or ms >= self.hi:  # far away (skewed clocks): ask the zone
            return _offset_ms(self._zone, ms)
        return self.offs[bisect.bisect_right(self.trans, ms) - 1]

    def date(self, day: int) -> str:
        s = self._dates.get(day)
        if s is None:
            s = (EPOCH + dt.timedelta(days=day)).isoformat()
            self._dates[day] = s
        return s

    def utc_iso_ms(self, ms: int) -> str:
        day, rem = divmod(ms, DAY)
        h, rem = divmod(rem, HOUR)
        m, rem = divmod(rem, MIN)
        s, milli = divmod(rem, SEC)
        return f"{self.date(day)}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}Z"

    def utc_iso_s(self, ms: int) -> str:
        day, rem = divmod(ms, DAY)
        h, rem = divmod(rem, HOUR)
        m, rem = divmod(rem, MIN)
        return f"{self.date(day)}T{h:02d}:{m:02d}:{rem // SEC:02d}Z"

    def local_iso_ms(self, ms: int) -> str:
        """Client time with the device's UTC offset, e.g. 2026-10-03T14:22:05.123+02:00."""
        off = self.offset(ms)
        day, rem = divmod(ms + off, DAY)
        h, rem = divmod(rem, HOUR)
        m, rem = divmod(rem, MIN)
        s, milli = divmod(rem, SEC)
        suffix = self._offstr.get(off)
        if suffix is None:
            sign = "+" if off >= 0 else "-"
            oh, om = divmod(abs(off) // MIN, 60)
            suffix = f"{sign}{oh:02d}:{om:02d}"
            self._offstr[off] = suffix
        return f"{self.date(day)}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}{suffix}"

    def local_naive(self, ms: int) -> str:
        """Naive Europe/Berlin wall time, seconds: 2026-10-03 14:22:05."""
        day, rem = divmod(ms + self.offset(ms), DAY)
        h, rem = divmod(rem, HOUR)
        m, rem = divmod(rem, MIN)
        return f"{self.date(day)} {h:02d}:{m:02d}:{rem // SEC:02d}"

    def unambiguous(self, ms: int) -> int:
        """Move an instant out of the hour around a fall-back transition, where the naive local
        wall time would be ambiguous (the bookings export writes naive local time)."""
        for t in self.fallbacks:
            if t - HOUR <= ms < t + HOUR:
                return t + HOUR + (ms - (t - HOUR))
        return ms

    def local_to_utc(self, local_ms: int) -> int:
        return local_ms - self.offset(local_ms - 2 * HOUR)


def _ms_of_date(d: dt.date) -> int:
    return (d - EPOCH).days * DAY


def _offset_ms(zone: ZoneInfo, ms: int) -> int:
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).astimezone(zone)
    off = t.utcoffset()
    assert off is not None
    return int(off.total_seconds()) * SEC


def _mix(n: int) -> int:
    """A bijection on 40-bit integers: sequential counters become random-looking unique ids."""
    x = (n * 0x9E3779B1 + 0x5BD1E995) & 0xFFFFFFFFFF
    x ^= x >> 17
    x = (x * 0x3C6EF372FB) & 0xFFFFFFFFFF
    x ^= x >> 13
    return x


def _csv_field(s: str) -> str:
    if '"' in s or "," in s or "\n" in s or "\r" in s:
        return '"' + s.replace('"', '""') + '"'
    return s


def _money(x: float) -> str:
    return f"{x:.2f}"


@dataclass
class _Device:
    anon: str
    platform: str
    version: str
    skew: int  # ms added to the client clock (0 for a correct clock)
    city: str
    ctx_head: str = ""


@dataclass
class _Ev:
    t: int
    name: str
    props: str
    screen: str
    dev: _Device
    user: str | None
    campaign: str = ""


@dataclass
class _Row:
    t: int  # event time, UTC ms
    fields: list[str]


@dataclass
class _Customer:
    """The records of one simulated customer (clean), plus facts for the realised figures."""

    idx: int
    platform: str
    channel: str
    city: str
    interest: str
    customer_id: str
    events: list[_Ev] = field(default_factory=list)
    bookings: list[_Row] = field(default_factory=list)
    payments: list[tuple[_Row, str]] = field(default_factory=list)  # row, checkout platform


class _Sink:
    """Per-day export files, appended through bounded in-memory buffers (few open handles)."""

    def __init__(self, out: Path, first: dt.date, days: int, buffer_lines: int) -> None:
        self.out = out
        self.buffer_lines = buffer_lines
        self.first = first
        self.days = days
        self.first_day = (first - EPOCH).days
        self.buf: dict[str, list[list[str]]] = {s: [[] for _ in range(days)] for s in SOURCES}
        self.lines: dict[str, list[int]] = {s: [0] * days for s in SOURCES}
        self.pending = 0
        headers = {"clickstream": None, "bookings": ",".join(BOOKING_COLUMNS),
                   "payments": ",".join(PAYMENT_COLUMNS)}
        for src in SOURCES:
            (out / src).mkdir(parents=True, exist_ok=True)
            for d in range(days):
                header = headers[src]
                with self.path(src, d).open("w", encoding="utf-8", newline="") as fh:
                    if header:
                        fh.write(header + "\n")

    def path(self, src: str, d: int) -> Path:
        ext = "jsonl" if src == "clickstream" else "csv"
        return self.out / src / f"{(self.first + dt.timedelta(days=d)).isoformat()}.{ext}"

    def add(self, src: str, d: int, line: str) -> None:
        self.buf[src][d].append(line)
        self.lines[src][d] += 1
        self.pending += 1
        if self.pending >= self.buffer_lines:
            self.flush()

    def flush(self) -> None:
        for src in SOURCES:
            for d, lines in enumerate(self.buf[src]):
                if lines:
                    with self.path(src, d).open("a", encoding="utf-8", newline="") as fh:
                        fh.write("\n".join(lines))
                        fh.write("\n")
                    lines.clear()
        self.pending = 0

    def files(self) -> list[Path]:
        return [self.path(s, d) for s in SOURCES for d in range(self.days)]


def _zero_dirt() -> dict[str, dict[str, int]]:
    return {
        "clickstream": {k: 0 for k in ("duplicate", "malformed_json", "bad_timestamp",
                                       "unknown_event", "missing_field", "invalid_enum",
                                       "clock_skew", "late_file")},
        "bookings": {k: 0 for k in ("duplicate", "late_file", "wrong_column_count",
                                    "bad_timestamp", "missing_field", "invalid_enum",
                                    "negative_amount", "rating_out_of_range")},
        "payments": {k: 0 for k in ("duplicate", "late_file", "wrong_column_count",
                                    "bad_timestamp", "missing_field", "invalid_enum",
                                    "negative_amount")},
    }


@dataclass
class GenerationResult:
    files: list[Path]
    lines: dict[str, int]  # lines written per source (CSV: data rows, header excluded)
    ground_truth: dict[str, Any]
    ground_truth_path: Path
    elapsed_seconds: float


class _Generator:
    def __init__(self, customers: int, days: int, seed: int, start: dt.date, out: Path,
                 buffer_lines: int = 200_000) -> None:
        self.n = customers
        self.days = days
        self.seed = seed
        self.start = start
        self.rng = random.Random(seed)
        self.clock = _Clock(start, start + dt.timedelta(days=days))
        self.start_ms = _ms_of_date(start)
        self.end_ms = self.start_ms + days * DAY
        self.sink = _Sink(out, start, days, buffer_lines)
        self.first_day = self.sink.first_day
        p = PARAMS
        self.cat_platform = _Cat.of(p["platform_share"])
        self.cat_channel = _Cat.of(p["channel_share"])
        self.cat_city = _Cat.of(p["city_share"])
        self.cat_interest = _Cat.of(p["interest_share"])
        self.cat_method = {k: _Cat.of(v) for k, v in p["payment_method_share"].items()}
        self.cat_fail_reason = _Cat.of(p["base_failure_reasons"])
        ratings = p["rating_share"]
        self.cat_rating = _Cat([int(k) for k in ratings], list(ratings.values()))
        self.cat_hour = _Cat(list(range(24)), HOUR_WEIGHTS)
        self.cat_version = {k: _Cat(*v) for k, v in APP_VERSIONS.items()}
        self.cat_event = _Cat(list(CONSIDERATION_EVENTS), [0.16, 0.38, 0.26, 0.12, 0.08])
        self.outage_offset = 11 if days >= 14 else days // 2
        h0, h1 = p["outage"]["utc_hours"]
        self.outage_lo = self.start_ms + self.outage_offset * DAY + h0 * HOUR
        self.outage_hi = self.start_ms + self.outage_offset * DAY + h1 * HOUR
        # 3ds excess so that android+card fails p_android_card overall
        base = p["p_payment_fail_base"]
        self.p_3ds = (p["p_payment_fail_android_card"] - base) / (1 - base)
        self._salons()
        self.booking_seq = 0
        self.payment_seq = 0
        self.dirt = _zero_dirt()
        self.dirt_by_file: dict[str, dict[str, dict[str, int]]] = {s: {} for s in SOURCES}
        self.r = _Realised()

    # -- static world -------------------------------------------------------------------------
    def _salons(self) -> None:
        """Partner salons: each in one city, offering one or two categories, with a price level
        and a quality (poor salons get lower ratings). Drawn from a separate seeded stream so
        the salon list does not depend on the number of customers."""
        srng = random.Random(f"salons:{self.seed}")
        cities = _Cat.of(PARAMS["city_share"])
        cats = list(SERVICES)
        self.salons: dict[tuple[str, str], list[tuple[str, float, float]]] = {
            (c, k): [] for c in PARAMS["city_share"] for k in cats}
        for i in range(SALONS_TOTAL):
            sid = f"sal_{i + 1:04d}"
            city = cities.pick(srng)
            offered = {cats[srng.randrange(4)], cats[srng.randrange(4)]}
            level = round(srng.uniform(0.85, 1.25), 2)
            quality = srng.choice([1.0] * 8 + [0.0] * 2)  # 20 % poor
            for k in cats:
                if k in offered:
                    self.salons[(city, k)].append((sid, level, quality))
        extra = SALONS_TOTAL
        for lst in self.salons.values():  # every city offers every category
            if not lst:
                extra += 1
                lst.append((f"sal_{extra:04d}", 1.0, 1.0))

    # -- helpers --------------------------------------------------------------------------------
    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def session_start(self, after: int, min_gap: int) -> int:
        """A plausible local-hour session start at least `min_gap` after `after`."""
        rng = self.rng
        t = after + min_gap
        local = t + self.clock.offset(t)
        day0 = local // DAY
        for extra in range(0, 4):
            day = day0 + extra
            hour = self.cat_hour.pick(rng)
            cand = day * DAY + hour * HOUR + rng.randrange(HOUR)
            utc = self.clock.local_to_utc(cand)
            if utc >= t:
                return utc
        return t + rng.randrange(HOUR)

    def gap(self) -> int:
        """Seconds between two screens in a session."""
        return int(min(300.0, max(3.0, self.rng.lognormvariate(3.2, 0.7))) * SEC)

    def customer_id(self, idx: int) -> str:
        return f"cus_{_mix(idx + 1):010x}"

    # -- one customer ---------------------------------------------------------------------------
    def customer(self, idx: int) -> _Customer:
        rng = self.rng
        p = PARAMS
        platform = self.cat_platform.pick(rng)
        channel = self.cat_channel.pick(rng)
        city = self.cat_city.pick(rng)
        interest = self.cat_interest.pick(rng)
        c = _Customer(idx, platform, channel, city, interest, self.customer_id(idx))
        skew = 0
        if rng.random() < DIRT_RATES["clickstream"]["clock_skew_devices"]:
            skew = rng.choice(CLOCK_SKEWS_DAYS) * DAY + rng.randrange(-HOUR, HOUR)
        dev = self.device(platform, city, skew)
        day = rng.randrange(self.days)
        t = self.session_start(self.start_ms + day * DAY, 0)
        user: str | None = None
        ev = c.events

        def emit(name: str, props: str, screen: str, campaign: str = "",
                 d: _Device = dev) -> None:
            ev.append(_Ev(t, name, props, screen, d, user, campaign))

        # Discovery
        camp = self.campaign(channel)
        if platform != "web":
            store = "app_store" if platform == "ios" else "play_store"
            if channel != "organic":
                emit("campaign_clicked", f'{{"landing_page":"/{interest}"}}', "deeplink", camp)
                t += rng.randrange(20, 180) * SEC
                emit("app_installed", f'{{"store":"{store}"}}', "store", camp)
            else:
                emit("app_installed", f'{{"store":"{store}"}}', "store",
                     camp if rng.random() < 0.3 else "")
            t += rng.randrange(30, 400) * SEC
            emit("app_opened", '{"first_open":true}', "home")
        else:
            if channel != "organic":
                emit("campaign_clicked", f'{{"landing_page":"/{interest}"}}', "landing", camp)
            else:
                emit("app_opened", '{"first_open":true}', "home", camp)
        t += self.gap()

        if rng.random() < p["p_early_signup"]:
            user = c.customer_id
            emit(*self.identify(c))
            t += self.gap()

        # Consideration
        if rng.random() >= p["p_consider"]:
            if user is None and rng.random() < p["p_signup_without_booking"]:
                user = c.customer_id
                emit("signed_up", '{"method":"email"}', "sign_up")
            return c
        sessions = 1 + min(4, int(rng.expovariate(1 / 0.8)))
        for s in range(sessions):
            if s > 0:
                t = self.session_start(t, int(rng.lognormvariate(math.log(8 * HOUR), 1.2)))
                if t >= self.end_ms:
                    return c
                emit("app_opened", "{}", "home")
                t += self.gap()
            t = self.browse(c, dev, t, user, 1 + int(rng.expovariate(1 / 3.0)))

        factor = p["decide_factor_channel"].get(channel, 1.0) * \
            p["decide_factor_interest"].get(interest, 1.0)
        if rng.random() >= p["p_decide_base"] * factor:
            if user is None and rng.random() < p["p_signup_without_booking"]:
                user = c.customer_id
                emit("signed_up", '{"method":"email"}', "sign_up")
            return c

        # Decision → Purchase → Service → Repeat (loop over bookings)
        returning = False
        while t < self.end_ms:
            outcome = self.book(c, dev, t, user, interest, returning)
            if outcome is None:
                return c
            t, user, rating = outcome
            if rating is None:
                return c  # cancelled / no-show / payment failed: no repeat modelled
            low = rating <= p["low_rating_max"]
            if rng.random() >= (p["p_repeat_low_rating"] if low else p["p_repeat_high_rating"]):
                if rng.random() < p["p_idle_return_visit"]:
                    t = self.session_start(t, int(rng.uniform(1, 10) * DAY))
                    if t < self.end_ms:
                        ev.append(_Ev(t, "app_opened", "{}", "home", dev, user))
                        self.browse(c, dev, t + self.gap(), user, 1 + rng.randrange(3))
                return c
            rd = p["repeat_delay_days"]
            delay = min(rd["max"], max(rd["min"], rng.lognormvariate(math.log(rd["median"]),
                                                                       rd["sigma"])))
            t = self.session_start(t, int(delay * DAY))
            if rng.random() < p["p_second_device_on_return"]:
                other = "web" if platform != "web" else rng.choice(["ios", "android"])
                dev = self.device(other, city, 0)
                user = None
                ev.append(_Ev(t, "app_opened", "{}", "home", dev, None))
                t += self.gap()
                user = c.customer_id
                ev.append(_Ev(t, "logged_in", '{"method":"email"}', "login", dev, user))
            elif rng.random() < p["p_login_expired_on_return"][dev.platform]:
                ev.append(_Ev(t, "app_opened", "{}", "home", dev, None))
                t = self.browse(c, dev, t + self.gap(), None, 1 + rng.randrange(2))
                ev.append(_Ev(t, "logged_in", '{"method":"email"}', "login", dev, user))
            else:
                ev.append(_Ev(t, "app_opened", "{}", "home", dev, user))
            t += self.gap()
            t = self.browse(c, dev, t, user, 1 + rng.randrange(4))
            returning = True
        return c

    def identify(self, c: _Customer) -> tuple[str, str, str]:
        """The event that first attaches the customer's id: sign-up, or a login for the
        newsletter audience that already has an account from the website."""
        method = self.rng.choice(SIGNUP_METHODS)
        if c.channel == "email" and self.rng.random() < PARAMS["p_existing_account_email"]:
            return ("logged_in", f'{{"method":"{method}"}}', "login")
        return ("signed_up", f'{{"method":"{method}"}}', "sign_up")

    def device(self, platform: str, city: str, skew: int) -> _Device:
        d = _Device(self.uuid(), platform, self.cat_version[platform].pick(self.rng), skew, city)
        d.ctx_head = f'"context":{{"platform":"{platform}","app":{{"version":"{d.version}"}},'
        return d

    def campaign(self, channel: str) -> str:
        source, name = self.rng.choice(CAMPAIGNS[channel])
        if name:
            return (f'"campaign":{{"source":"{source}","medium":"{channel}",'
                    f'"name":"{name}"}},')
        return f'"campaign":{{"source":"{source}","medium":"{channel}"}},'

    def pick_salon(self, city: str, cat: str) -> tuple[str, float, float]:
        lst = self.salons[(city, cat)]
        return lst[self.rng.randrange(len(lst))]

    def browse(self, c: _Customer, dev: _Device, t: int, user: str | None, n: int) -> int:
        rng = self.rng
        for _ in range(n):
            cat = c.interest if rng.random() < 0.85 else rng.choice(list(SERVICES))
            name = self.cat_event.pick(rng)
            if name == "search_performed":
                term = rng.choice(SEARCH_TERMS[cat])
                props = (f'{{"search_term":"{term}","service_category":"{cat}",'
                         f'"results":{rng.randrange(3, 60)}}}')
                screen = "search"
            elif name == "service_viewed":
                sid, level, _q = self.pick_salon(c.city, cat)
                sname, base, _m = SERVICES[cat][rng.randrange(len(SERVICES[cat]))]
                props = (f'{{"service_category":"{cat}","service_name":"{sname}",'
                         f'"salon_id":"{sid}","price":{round(base * level):.2f}}}')
                screen = "service_detail"
            elif name == "salon_viewed":
                sid = self.pick_salon(c.city, cat)[0]
                props = f'{{"salon_id":"{sid}","service_category":"{cat}"}}'
                screen = "salon_detail"
            elif name == "reviews_read":
                sid = self.pick_salon(c.city, cat)[0]
                props = f'{{"salon_id":"{sid}","reviews_shown":{rng.randrange(3, 25)}}}'
                screen = "salon_reviews"
            else:
                sid = self.pick_salon(c.city, cat)[0]
                props = f'{{"salon_id":"{sid}"}}'
                screen = "salon_detail"
            c.events.append(_Ev(t, name, props, screen, dev, user))
            t += self.gap()
        return t

    def slot(self, t: int, cat: str) -> int:
        """A salon slot (UTC ms) in the future: Mon-Sat 09:00-19:00 local; massage customers
        find few weekend slots."""
        rng = self.rng
        local_now = t + self.clock.offset(t)
        lead = min(14, int(rng.expovariate(1 / 3.0)))
        for _ in range(20):
            day = local_now // DAY + lead
            weekday = (day + 3) % 7  # 1970-01-01 was a Thursday (weekday 3, Monday = 0)
            if weekday == 6 or (cat == "massage" and weekday == 5 and rng.random() < 0.7):
                lead += 1
                continue
            hour = rng.randrange(9, 19)
            local = day * DAY + hour * HOUR + rng.choice((0, 30)) * MIN
            if local - local_now >= 2 * HOUR:
                return self.clock.local_to_utc(local)
            lead += 1
        return self.clock.local_to_utc((local_now // DAY + lead) * DAY + 12 * HOUR)

    def book(self, c: _Customer, dev: _Device, t: int, user: str | None, cat: str,
             returning: bool) -> tuple[int, str | None, int | None] | None:
        """One booking attempt from slot selection on. Returns (time, user, rating) after the
        visit, with rating None when there was no completed visit, or None when the customer
        dropped out before a booking existed."""
        rng = self.rng
        p = PARAMS
        sid, level, quality = self.pick_salon(c.city, cat)
        sname, base, minutes = SERVICES[cat][rng.randrange(len(SERVICES[cat]))]
        price = float(round(base * level))
        slot = self.slot(t, cat)
        slot_local = self.clock.local_naive(slot)
        slot_iso = slot_local.replace(" ", "T")
        common = f'"salon_id":"{sid}","service_category":"{cat}","slot_time":"{slot_iso}"'
        c.events.append(_Ev(t, "slot_selected", f'{{{common},"price":{price:.2f}}}',
                            "slot_picker", dev, user))
        t += self.gap()
        if user is None:
            if rng.random() < p["p_drop_at_signup_wall"]:
                return None
            user = c.customer_id
            c.events.append(_Ev(t, *self.identify(c), dev, user))
            t += self.gap()
        elif not returning and rng.random() < p["p_drop_after_slot_logged_in"]:
            return None
        self.booking_seq += 1
        bid = f"bk_{_mix(self.booking_seq):010x}"
        c.events.append(_Ev(t, "checkout_started",
                            f'{{"booking_id":"{bid}",{common},"price":{price:.2f},'
                            f'"currency":"EUR"}}', "checkout", dev, user))
        t += rng.randrange(500, 3000)
        head = [bid, c.customer_id, sid, c.city, cat, slot_local, _money(price), "EUR"]

        def brow(when: int, status: str, reason: str = "", rating: str = "",
                 complaint: str = "") -> int:
            when = self.clock.unambiguous(when)
            c.bookings.append(_Row(when, [*head, status, reason, rating, _csv_field(complaint),
                                          self.clock.local_naive(when)]))
            return when

        brow(t, "created")
        if not returning and rng.random() < p["p_no_payment_attempt"]:
            brow(t + 30 * MIN + rng.randrange(MIN), "cancelled", "payment_timeout")
            return (t, user, None)
        # Purchase: payment attempts
        method = self.cat_method[dev.platform].pick(rng)
        max_attempts = p["max_payment_attempts_returning" if returning else "max_payment_attempts"]
        p_retry = p["p_retry_after_failure_returning" if returning else "p_retry_after_failure"]
        paid_pid = None
        for attempt in range(max_attempts):
            t += rng.randrange(300, 2500)
            self.payment_seq += 1
            pid = f"pay_{_mix(self.payment_seq):010x}"
            amount = _money(price)
            prow = [pid, bid, amount, "EUR", method]
            c.payments.append((_Row(t, [*prow, "initiated", "", self.clock.utc_iso_s(t)]),
                               dev.platform))
            reason = self.failure(t, dev.platform, method)
            if reason == "3ds_timeout":
                t += rng.randrange(5 * MIN, 10 * MIN)
            elif reason == "processor_unavailable":
                t += rng.randrange(20 * SEC, 40 * SEC)
            else:
                t += rng.randrange(2 * SEC, 15 * SEC)
            status = "failed" if reason else "succeeded"
            c.payments.append((_Row(t, [*prow, status, reason, self.clock.utc_iso_s(t)]),
                               dev.platform))
            if not reason:
                paid_pid = (pid, prow)
                break
            if attempt + 1 == max_attempts or rng.random() >= p_retry:
                break
            t += rng.randrange(30 * SEC, 10 * MIN)
            if rng.random() < p["p_switch_method_on_retry"]:
                method = self.cat_method[dev.platform].pick(rng)
        if paid_pid is None:
            brow(t + rng.randrange(15 * MIN, 30 * MIN), "cancelled", "payment_failed")
            return (t, user, None)
        t = brow(t + rng.randrange(1 * SEC, 6 * SEC), "confirmed")
        # Service
        u = rng.random()
        if u < p["p_customer_cancel"] + p["p_salon_cancel"]:
            by_salon = u < p["p_salon_cancel"]
            lo, hi = t + MIN, max(t + 2 * MIN, slot - HOUR)
            when = rng.randrange(lo, hi)
            reason = "salon_unavailable" if by_salon else rng.choice(CUSTOMER_CANCEL_REASONS)
            when = brow(when, "cancelled", reason)
            free = slot - when >= p["free_cancellation_hours"] * HOUR
            if by_salon or free:
                pid, prow = paid_pid
                rt = when + rng.randrange(2 * MIN, 2 * DAY)
                c.payments.append((_Row(rt, [*prow[:4], prow[4], "refunded", "",
                                              self.clock.utc_iso_s(rt)]), dev.platform))
            return (when, user, None)
        if rng.random() < p["p_no_show"]:
            return (brow(slot + rng.randrange(15 * MIN, 30 * MIN), "no_show"), user, None)
        done = brow(slot + (minutes + rng.randrange(-5, 15)) * MIN, "completed")
        rating = self.cat_rating.pick(rng)
        if quality == 0.0 and rating >= 4 and rng.random() < 0.5:
            rating = rng.choice((1, 2, 3))
        if rng.random() < p["p_review"]:
            complaint = ""
            if rng.random() < p["p_complaint_by_rating"][str(rating)]:
                complaint = rng.choice(COMPLAINTS)
            rt = self.session_start(done, rng.randrange(HOUR, 2 * DAY))
            brow(rt, "reviewed", rating=str(rating), complaint=complaint)
        return (done, user, rating)

    def failure(self, t: int, platform: str, method: str) -> str:
        rng = self.rng
        p = PARAMS
        if self.outage_lo <= t < self.outage_hi and rng.random() < p["outage"]["p_fail"]:
            return p["outage"]["reason"]
        if platform == "android" and method == "card" and rng.random() < self.p_3ds:
            return "3ds_timeout"
        if rng.random() < p["p_payment_fail_base"]:
            return self.cat_fail_reason.pick(rng)
        return ""

    # -- writing ----------------------------------------------------------------------------------
    def day_of(self, ms: int) -> int:
        return ms // DAY - self.first_day

    def count(self, src: str, d: int, kind: str) -> None:
        self.dirt[src][kind] += 1
        per = self.dirt_by_file[src].setdefault(
            (self.start + dt.timedelta(days=d)).isoformat(), {})
        per[kind] = per.get(kind, 0) + 1

    def write(self, c: _Customer) -> None:
        rng = self.rng
        clock = self.clock
        sink = self.sink
        days = self.days
        dr = DIRT_RATES["clickstream"]
        r = self.r
        written_events: list[_Ev] = []
        median = math.log(PARAMS["clickstream_lag_ms"]["median"])
        offline = PARAMS["clickstream_lag_ms"]["offline_share"]
        olo, ohi = PARAMS["clickstream_lag_ms"]["offline_lag_minutes"]
        for e in c.events:
            if rng.random() < offline:
                lag = rng.randrange(olo * MIN, ohi * MIN)
            else:
                lag = int(rng.lognormvariate(median, 0.8)) + 20
            recv = e.t + lag
            d = recv // DAY - self.first_day
            if d >= days:
                continue
            dev = e.dev
            uid = "null" if e.user is None else f'"{e.user}"'
            line = (f'{{"messageId":"{self.uuid()}","anonymousId":"{dev.anon}",'
                    f'"userId":{uid},'
                    f'"event":"{e.name}","timestamp":"{clock.local_iso_ms(e.t + dev.skew)}",'
                    f'"receivedAt":"{clock.utc_iso_ms(recv)}",{dev.ctx_head}{e.campaign}'
                    f'"screen":{{"name":"{e.screen}"}},"location":{{"city":"{dev.city}"}}}},'
                    f'"properties":{e.props}}}')
            sink.add("clickstream", d, line)
            written_events.append(e)
            if dev.skew:
                self.count("clickstream", d, "clock_skew")
            elif e.t // DAY != recv // DAY:
                self.count("clickstream", d, "late_file")
            elif rng.random() < dr["duplicate"]:
                sink.add("clickstream", d, line)
                self.count("clickstream", d, "duplicate")
            u = rng.random()
            if u < dr["malformed_json"]:
                cut = rng.randrange(10, len(line) - 1)
                sink.add("clickstream", d, line[:cut])
                self.count("clickstream", d, "malformed_json")
            elif (u := u - dr["malformed_json"]) < dr["bad_timestamp"]:
                obj = self.reid(line)
                obj["timestamp"] = rng.choice(BAD_TIMESTAMPS)
                sink.add("clickstream", d, _dumps(obj))
                self.count("clickstream", d, "bad_timestamp")
            elif (u := u - dr["bad_timestamp"]) < dr["unknown_event"]:
                obj = self.reid(line)
                obj["event"] = rng.choice(["debug_ping", "push_received", "screen_view_v2"])
                obj["properties"] = {"debug": True} if obj["event"] == "debug_ping" else {}
                sink.add("clickstream", d, _dumps(obj))
                self.count("clickstream", d, "unknown_event")
            elif (u := u - dr["unknown_event"]) < dr["missing_field"]:
                obj = self.reid(line)
                which = rng.choice(["messageId", "anonymousId", "event", "timestamp",
                                    "receivedAt", "platform"])
                if which == "platform":
                    del obj["context"]["platform"]
                else:
                    del obj[which]
                sink.add("clickstream", d, _dumps(obj))
                self.count("clickstream", d, "missing_field")
            elif (u := u - dr["missing_field"]) < dr["invalid_enum"]:
                obj = self.reid(line)
                obj["context"]["platform"] = rng.choice(["iPhone OS", "Android", "windows"])
                sink.add("clickstream", d, _dumps(obj))
                self.count("clickstream", d, "invalid_enum")
        written_b = self.write_csv("bookings", [(row, "") for row in c.bookings],
                                   self.booking_dirt)
        written_p = self.write_csv("payments", c.payments, self.payment_dirt)
        r.add(self, c, written_events, written_b, written_p)

    def reid(self, line: str) -> dict[str, Any]:
        obj = json.loads(line)
        obj["messageId"] = self.uuid()
        return obj

    def write_csv(self, src: str, rows: list[tuple[_Row, str]],
                  dirt_fn: Any) -> list[tuple[_Row, str]]:
        rng = self.rng
        sink = self.sink
        days = self.days
        dr = DIRT_RATES[src]
        written = []
        for row, extra in rows:
            d = self.day_of(row.t)
            if d >= days:
                continue
            line = ",".join(row.fields)
            written.append((row, extra))
            if d + 1 < days and rng.random() < dr["late_file"]:
                sink.add(src, d + 1, line)
                self.count(src, d + 1, "late_file")
                continue
            sink.add(src, d, line)
            if rng.random() < dr["duplicate"]:
                sink.add(src, d, line)
                self.count(src, d, "duplicate")
            dirt_fn(d, row)
        return written

    def _csv_variant(self, src: str, d: int, fields: list[str], kind: str) -> None:
        self.sink.add(src, d, ",".join(fields))
        self.count(src, d, kind)

    def _wrong_columns(self, src: str, d: int, fields: list[str]) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            bad = fields[: len(fields) - rng.randrange(1, 4)]
        else:  # an unquoted comma splits a field in two
            bad = [*fields[:-1], "see note", fields[-1]]
        self._csv_variant(src, d, bad, "wrong_column_count")

    def booking_dirt(self, d: int, row: _Row) -> None:
        rng = self.rng
        dr = DIRT_RATES["bookings"]
        u = rng.random()
        kinds = ("wrong_column_count", "bad_timestamp", "missing_field", "invalid_enum",
                 "negative_amount")
        for kind in kinds:
            if u < dr[kind]:
                break
            u -= dr[kind]
        else:
            kind = ""
        if not kind and row.fields[8] == "reviewed" and rng.random() < dr["rating_out_of_range"]:
            kind = "rating_out_of_range"
        if not kind:
            return
        self.booking_seq += 1
        f = list(row.fields)
        f[0] = f"bk_{_mix(self.booking_seq):010x}"
        if kind == "wrong_column_count":
            return self._wrong_columns("bookings", d, f)
        if kind == "bad_timestamp":
            f[12] = rng.choice(BAD_TIMESTAMPS)
        elif kind == "missing_field":
            f[rng.choice((1, 4, 6, 8, 12))] = ""
        elif kind == "invalid_enum":
            i, v = rng.choice([(8, "canceled"), (8, "COMPLETED"), (4, "waxing"), (7, "USD")])
            f[i] = v
        elif kind == "negative_amount":
            f[6] = "-" + f[6]
        else:
            f[10] = rng.choice(("0", "6", "10"))
        self._csv_variant("bookings", d, f, kind)

    def payment_dirt(self, d: int, row: _Row) -> None:
        rng = self.rng
        dr = DIRT_RATES["payments"]
        u = rng.random()
        for kind in ("wrong_column_count", "bad_timestamp", "missing_field", "invalid_enum",
                     "negative_amount"):
            if u < dr[kind]:
                break
            u -= dr[kind]
        else:
            return
        self.payment_seq += 1
        f = list(row.fields)
        f[0] = f"pay_{_mix(self.payment_seq):010x}"
        if kind == "wrong_column_count":
            return self._wrong_columns("payments", d, f)
        if kind == "bad_timestamp":
            f[7] = rng.choice(BAD_TIMESTAMPS)
        elif kind == "missing_field":
            f[rng.choice((0, 1, 2, 4, 5, 7))] = ""
        elif kind == "invalid_enum":
            i, v = rng.choice([(4, "bitcoin"), (4, "Card"), (5, "SUCCEEDED"), (5, "pending"),
                               (3, "usd")])
            f[i] = v
        else:
            f[2] = "-" + f[2]
        self._csv_variant("payments", d, f, kind)

    def run(self) -> None:
        for i in range(self.n):
            self.write(self.customer(i))
        self.sink.flush()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class _Realised:
    """Figures measured on the clean records actually written (what a correct ingestion loads)."""

    def __init__(self) -> None:
        self.customers = 0
        self.customers_with_events = 0
        self.identified = 0
        self.identified_anon_first = 0
        self.clean = {s: 0 for s in SOURCES}
        self.pay: dict[str, dict[str, list[int]]] = {}  # platform -> method -> [attempts, fails]
        self.outage = [0, 0]
        self.reasons: dict[str, int] = {}
        self.by_channel: dict[str, list[int]] = {}  # channel -> [customers, considered, decided]
        self.by_interest: dict[str, list[int]] = {}
        self.stage = {k: 0 for k in ("discovery", "consideration", "decision", "purchase",
                                     "service", "repeat")}
        self.bookings = 0
        self.status: dict[str, int] = {}
        self.repeat = {"low": [0, 0], "high": [0, 0], "low_eligible": [0, 0],
                       "high_eligible": [0, 0]}

    def add(self, g: _Generator, c: _Customer, events: list[_Ev],
            bookings: list[tuple[_Row, str]], payments: list[tuple[_Row, str]]) -> None:
        self.customers += 1
        self.clean["clickstream"] += len(events)
        self.clean["bookings"] += len(bookings)
        self.clean["payments"] += len(payments)
        if not events:
            return
        self.customers_with_events += 1
        self.stage["discovery"] += 1
        names = {e.name for e in events}
        considered = any(n in names for n in CONSIDERATION_EVENTS)
        decided = any(n in names for n in DECISION_EVENTS)
        for key, table in ((c.channel, self.by_channel), (c.interest, self.by_interest)):
            row = table.setdefault(key, [0, 0, 0])
            row[0] += 1
            row[1] += considered
            row[2] += decided and considered
        self.stage["consideration"] += considered
        self.stage["decision"] += decided
        first_user = next((i for i, e in enumerate(events) if e.user is not None), None)
        if first_user is not None:
            self.identified += 1
            if any(e.name in CONSIDERATION_EVENTS for e in events[:first_user]):
                self.identified_anon_first += 1
        for row, _ in bookings:
            status = row.fields[8]
            self.status[status] = self.status.get(status, 0) + 1
        self.bookings += sum(1 for row, _ in bookings if row.fields[8] == "created")
        paid_bookings: dict[str, int] = {}
        for row, platform in payments:
            f = row.fields
            status = f[5]
            if status in ("succeeded", "failed"):
                if g.outage_lo <= row.t < g.outage_hi:
                    self.outage[0] += 1
                    self.outage[1] += status == "failed"
                else:
                    cell = self.pay.setdefault(platform, {}).setdefault(f[4], [0, 0])
                    cell[0] += 1
                    cell[1] += status == "failed"
                if status == "failed":
                    self.reasons[f[6]] = self.reasons.get(f[6], 0) + 1
            if status == "succeeded":
                paid_bookings.setdefault(f[1], row.t)
        if paid_bookings:
            self.stage["purchase"] += 1
        if any(row.fields[8] == "completed" for row, _ in bookings):
            self.stage["service"] += 1
        if len(paid_bookings) >= 2:
            self.stage["repeat"] += 1
        review = next((row for row, _ in bookings if row.fields[8] == "reviewed"), None)
        if review is not None:
            rating = int(review.fields[10])
            created = {row.fields[0]: row.t for row, _ in bookings if row.fields[8] == "created"}
            first = created.get(review.fields[0], review.t)
            again = any(created.get(bid, -1) > first for bid in paid_bookings)
            group = "low" if rating <= PARAMS["low_rating_max"] else "high"
            self.repeat[group][0] += 1
            self.repeat[group][1] += again
            horizon = (PARAMS["repeat_delay_days"]["max"] + REPEAT_ELIGIBLE_SLACK_DAYS) * DAY
            if review.t <= g.end_ms - horizon:
                self.repeat[group + "_eligible"][0] += 1
                self.repeat[group + "_eligible"][1] += again

    def as_dict(self) -> dict[str, Any]:
        def rate(a: int, b: int) -> float | None:
            return round(b / a, 4) if a else None

        pay = {pl: {m: {"attempts": v[0], "failed": v[1], "failure_rate": rate(v[0], v[1])}
                    for m, v in sorted(ms.items())} for pl, ms in sorted(self.pay.items())}
        ac = [0, 0]
        other = [0, 0]
        for pl, ms in self.pay.items():
            for m, v in ms.items():
                tgt = ac if (pl, m) == ("android", "card") else other
                tgt[0] += v[0]
                tgt[1] += v[1]

        def funnel(table: dict[str, list[int]]) -> dict[str, Any]:
            return {k: {"customers": v[0], "considered": v[1], "decided": v[2],
                        "consideration_to_decision": rate(v[1], v[2])}
                    for k, v in sorted(table.items())}

        ch = self.by_channel
        ps = ch.get("paid_social", [0, 0, 0])
        rest = [sum(v[i] for k, v in ch.items() if k != "paid_social") for i in range(3)]
        it = self.by_interest
        ms = it.get("massage", [0, 0, 0])
        rest_i = [sum(v[i] for k, v in it.items() if k != "massage") for i in range(3)]
        return {
            "definitions": {
                "scope": "clean records actually written (what a correct ingestion loads); "
                         "customers are simulated people, one per index",
                "considered": "has any of " + ", ".join(CONSIDERATION_EVENTS),
                "decided": "considered and has slot_selected or checkout_started",
                "payment outcomes": "attempts = payment rows with status succeeded or failed; "
                                    "platform = platform of the device that started checkout; "
                                    "outside/inside the outage window by created_at",
                "repeat_after_first_review": "per customer with a 'reviewed' row: the first one "
                    "decides the group (low: rating <= low_rating_max); repeated = another "
                    "booking created after the reviewed booking's creation with a succeeded "
                    "payment; *_eligible = reviews at least repeat_delay_days.max + "
                    f"{REPEAT_ELIGIBLE_SLACK_DAYS} days before end_exclusive",
                "share_anonymous_browsing_before_login": "customers with a userId on some "
                    "event who had a consideration event without userId before their first "
                    "event with userId",
            },
            "customers_simulated": self.customers,
            "customers_with_clickstream": self.customers_with_events,
            "customers_identified": self.identified,
            "identified_with_anonymous_consideration_before_login": self.identified_anon_first,
            "share_anonymous_browsing_before_login": rate(self.identified,
                                                          self.identified_anon_first),
            "clean_records": dict(self.clean),
            "customers_reaching_stage": dict(self.stage),
            "bookings_created": self.bookings,
            "booking_rows_by_status": dict(sorted(self.status.items())),
            "payment_outcomes_outside_outage": pay,
            "failure_rate_android_card_outside_outage": rate(ac[0], ac[1]),
            "failure_rate_other_outside_outage": rate(other[0], other[1]),
            "outage_window": {"attempts": self.outage[0], "failed": self.outage[1],
                              "failure_rate": rate(*self.outage)},
            "failure_reasons": dict(sorted(self.reasons.items())),
            "by_channel": funnel(ch),
            "paid_social_vs_other_consideration_to_decision": {
                "paid_social": rate(ps[1], ps[2]), "other": rate(rest[1], rest[2])},
            "by_interest": funnel(it),
            "massage_vs_other_consideration_to_decision": {
                "massage": rate(ms[1], ms[2]), "other": rate(rest_i[1], rest_i[2])},
            "repeat_after_first_review": {
                k: {"reviewers": v[0], "repeated": v[1], "rate": rate(v[0], v[1])}
                for k, v in self.repeat.items()},
        }


def generate(customers: int, days: int, seed: int, out: Path | str,
             start: dt.date = DEFAULT_START, ground_truth_path: Path | str | None = None,
             generated_by: str | None = None, overwrite: bool = False,
             buffer_lines: int = 200_000) -> GenerationResult:
    """Write the three exports for `customers` simulated customers over `days` days from
    `start` into `out/{clickstream,bookings,payments}/YYYY-MM-DD.*` and the ground truth to
    `ground_truth_path` (default `out/ground_truth.json`).

    Memory stays flat: one customer is simulated at a time and at most `buffer_lines` output
    lines are buffered before they are appended to their files."""
    from transforms.errors import UserError

    if customers < 1:
        raise UserError(f"--customers must be at least 1, got {customers}")
    if days < 1:
        raise UserError(f"--days must be at least 1, got {days}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory for the export files")
    gt_path = Path(ground_truth_path) if ground_truth_path else out / "ground_truth.json"
    existing = [p for s in SOURCES if (out / s).is_dir() for p in sorted((out / s).iterdir())]
    if existing:
        if not overwrite:
            raise UserError(f"{out} already holds export files (e.g. {existing[0]}); choose an "
                            "empty --out directory or pass --overwrite to replace them")
        for s in SOURCES:
            shutil.rmtree(out / s, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    g = _Generator(customers, days, seed, start, out, buffer_lines)
    g.run()
    elapsed = time.perf_counter() - t0
    lines = {s: sum(g.sink.lines[s]) for s in SOURCES}
    if generated_by is None:
        generated_by = (f"journeys generate --customers {customers} --days {days} --seed {seed} "
                        f"--start {start.isoformat()} --out {out}")
    gt = ground_truth(g, generated_by, lines)
    gt_path.parent.mkdir(parents=True, exist_ok=True)
    gt_path.write_text(json.dumps(gt, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return GenerationResult(g.sink.files(), lines, gt, gt_path, elapsed)


def ground_truth(g: _Generator, generated_by: str, lines: dict[str, int]) -> dict[str, Any]:
    outage_day = g.start + dt.timedelta(days=g.outage_offset)
    h0, h1 = PARAMS["outage"]["utc_hours"]
    lines_by_file = {s: {(g.start + dt.timedelta(days=d)).isoformat(): g.sink.lines[s][d]
                         for d in range(g.days)} for s in SOURCES}
    return {
        "generated_by": generated_by,
        "generator": "sample/generator.py",
        "seed": g.seed,
        "customers": g.n,
        "start": g.start.isoformat(),
        "days": g.days,
        "end_exclusive": (g.start + dt.timedelta(days=g.days)).isoformat(),
        "timezone": TIMEZONE,
        "files": {"clickstream": "clickstream/YYYY-MM-DD.jsonl",
                  "bookings": "bookings/YYYY-MM-DD.csv", "payments": "payments/YYYY-MM-DD.csv",
                  "file_day": "UTC day the record was received (clickstream: receivedAt) or "
                              "exported (bookings: changed_at; payments: created_at), "
                              "except late_file rows which sit in the next day's file"},
        "lines": {"total_by_source": lines, "by_file": lines_by_file,
                  "note": "data lines (CSV header excluded), dirt included"},
        "parameters": {
            **PARAMS,
            "outage": {**PARAMS["outage"], "date": outage_day.isoformat(),
                       "start_utc": f"{outage_day.isoformat()}T{h0:02d}:00:00Z",
                       "end_utc": f"{outage_day.isoformat()}T{h1:02d}:00:00Z"},
            "p_3ds_timeout_android_card": round(g.p_3ds, 6),
            "dirt_rates": DIRT_RATES,
        },
        "stories": {
            "1_android_card_payment_failures": "android + card attempts fail ~25% (excess "
                                                "reason 3ds_timeout), all others ~5%; failed "
                                                "payments are sometimes retried with a new "
                                                "payment_id for the same booking",
            "2_paid_social_weak_decision": "paid_social brings the most new customers but "
                                           "converts Consideration -> Decision at half the "
                                           "rate of other channels",
            "3_massage_decision_loss": "massage-interested customers reach Decision half as "
                                       "often (weekend slots scarce)",
            "4_payment_outage": f"{outage_day.isoformat()} {h0:02d}:00-{h1:02d}:00 UTC: "
                                f"~{PARAMS['outage']['p_fail']:.0%} of attempts fail with "
                                f"{PARAMS['outage']['reason']}",
            "5_low_ratings_do_not_return": "customers whose visit rates <= 2 book again ~5% "
                                           "vs ~40%",
            "6_anonymous_browsing": "most customers browse anonymously before signing up / "
                                    "logging in (identity stitching needed)",
            "7_dirt": "small, exactly counted amounts of dirt, see 'dirt'",
        },
        "dirt": g.dirt,
        "dirt_by_file": {s: dict(sorted(v.items())) for s, v in g.dirt_by_file.items()},
        "dirt_definitions": DIRT_DEFINITIONS,
        "realised": g.r.as_dict(),
    }
