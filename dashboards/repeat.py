"""Repeat purchase page: repeat rate, time to the second purchase, frequency, cohorts, lifecycle,
and which experiences of the first journey go with customers not coming back.

Every rate is shown with its n (the buyers it is a share of). A rate over fewer than `MIN_N`
buyers is greyed and marked "(small n)": it is never a headline and never ranked. Cohort
heatmaps switch from weekly to monthly cohorts when there would be more than `MAX_PERIODS`
weeks (the tables hold both), and colour their cells on one 0-100 % scale.
"""

from __future__ import annotations

import pandas as pd

from dashboards import fmt
from dashboards.charts import (
    COLORWAY,
    GREY,
    OKABE_ITO,
    SEQUENTIAL,
    cell_labels,
    figure,
    to_div,
    trace,
)
from dashboards.context import Context
from dashboards.layout import (
    Page,
    Safe,
    card,
    cards,
    esc,
    not_available,
    paragraph,
    section,
    table,
)

SLUG = "repeat"
# A rate over fewer buyers than this is greyed "(small n)": no headline, no rank.
MIN_N = 30
# More weekly cohorts than this: monthly cohorts instead; at most this many rows and columns.
MAX_PERIODS = 26
# Ranked experiences drawn in the chart (the table lists every row).
MAX_EXPERIENCE_BARS = 20
# Two charts side by side where there is room, one per row below ~900 px. The columns do not
# depend on how many charts the row holds, so a chart drawn before its neighbour exists already
# has its final width.
ROW = Safe('<div style="display:grid;grid-template-columns:repeat(auto-fill,'
           'minmax(min(100%,420px),1fr));gap:1rem">')
END = Safe("</div>")
# Cells of cohorts smaller than MIN_N: greyed, whatever their share.
SMALL_N_SCALE = [[0.0, "#F2F2F2"], [1.0, "#BDBDBD"]]
EXPERIENCES = {"failed_payment": "failed payment before the first purchase",
               "skipped_stage": "skipped a stage", "first_rating": "rating of the first visit",
               "first_path": "path to the first purchase"}
# Why an experience of the first journey is absent from `repeat_by_experience`.
ABSENT = {"failed_payment": "no failed payments",
          "skipped_stage": "no optional stage before the purchase",
          "first_rating": "no ratings", "first_path": "no stage events"}
LIFECYCLE_COLORS = {"new": OKABE_ITO["blue"], "returning": OKABE_ITO["green"],
                    "resurrecting": OKABE_ITO["orange"], "dormant": OKABE_ITO["vermillion"]}


def render(ctx: Context) -> Page:
    page = Page(SLUG, "Repeat purchase")
    page.add(_repeat_rate(ctx, page))
    page.add(_experiences(ctx, page))
    page.add(_timing(ctx, page))
    page.add(_cohorts(ctx, page))
    page.add(_lifecycle(ctx, page))
    return page


# --- rates with their n -------------------------------------------------------------------

def small(n: object) -> bool:
    """Too few buyers for a rate to stand on its own (fewer than MIN_N, or none)."""
    return pd.isna(n) or int(n) < MIN_N


def with_n(rate: object, n: object) -> str:
    """'25.5% (n = 196)', '(n = 12, small n)' marked when n < MIN_N."""
    mark = ", small n" if small(n) else ""
    return f"{fmt.pct(rate)} (n = {fmt.count(n)}{mark})"


def _bar_label(rate: object, n: object) -> str:
    """A bar's label: the rate over its n, on two lines."""
    mark = ", small n" if small(n) else ""
    return f"{fmt.pct(rate)}<br>(n = {fmt.count(n)}{mark})"


def _muted(text: str) -> Safe:
    return Safe(f'<span class="muted">{esc(text)}</span>')


def _rating_color(value: object) -> str:
    text = str(value)
    if text.startswith("low"):
        return OKABE_ITO["vermillion"]
    if text.startswith("high"):
        return OKABE_ITO["blue"]
    return GREY


def _has_ratings(values: pd.Series) -> bool:
    """Some first purchase was rated (otherwise every buyer groups as 'no rating')."""
    return any(str(v) != "no rating" for v in values)


def _no_ratings_sentence(ctx: Context) -> Safe:
    why = ("the journey map sets no low_rating_max" if ctx.setting("low_rating_max") is None
           else "no first purchase was rated")
    return paragraph(f"The data has no ratings ({why}), so repeat buying by the rating of the "
                     "first visit is not shown.", cls="muted")


# --- the headline: repeat rate by horizon -------------------------------------------------

def _rate_value(rate: object, n: object) -> Safe:
    """A card's value: '20.2% (n = 262)', the n in smaller type so it fits a narrow card."""
    return Safe(f'{esc(fmt.pct(rate))} <span style="font-size:1rem;font-weight:400">'
                f"(n&nbsp;=&nbsp;{esc(fmt.count(n))})</span>")


def _horizon_cards(overall: pd.DataFrame) -> Safe:
    items = []
    for r in overall.itertuples():
        h, n = int(r.horizon_days), int(r.eligible)
        label = f"Bought again within {h} days"
        if n == 0:
            items.append(card(label, fmt.NO_VALUE, detail=f"not measured yet: no buyer has been "
                              f"observed for {h} days after the first purchase"))
        elif small(n):
            items.append(card(label, fmt.NO_VALUE, detail=(
                f"too few buyers to say: only {fmt.count(n)} observed for {h} days after the "
                f"first purchase (small n; a rate here needs at least {MIN_N})")))
        else:
            items.append(card(label, _rate_value(r.repeat_rate, n), detail=(
                f"{fmt.count(r.repeated_within)} of {fmt.count(n)} buyers observed {h} days "
                "after their first purchase bought again")))
    return cards(items)


def _repeat_rate(ctx: Context, page: Page) -> Safe:
    title = "Do customers buy again, and does a bad first visit stop them?"
    if not ctx.wh.has("repeat_purchase"):
        return section(title, not_available("Repeat rates", ctx.wh.missing("repeat_purchase")))
    df = ctx.wh.df("select * from repeat_purchase order by group_name, group_value, horizon_days")
    if df.empty:
        return section(title, paragraph("No purchases yet."))
    observed = df[df["eligible"].fillna(0) > 0]
    if observed.empty:
        if not ctx.wh.has("repeat_so_far"):
            return section(title, not_available(
                "Repeat purchase so far", ctx.wh.missing("repeat_so_far")))
        return _repeat_so_far(ctx, page, int(df["horizon_days"].min()), title)
    parts: list[Safe] = []
    overall_all = df[df["group_name"] == "all"]
    if not overall_all.empty:
        parts.append(_horizon_cards(overall_all))
    charts: list[Safe] = []
    overall = observed[observed["group_name"] == "all"]
    if not overall.empty:
        fig = figure("How many buyers come back? Repeat rate by horizon (n: buyers observed)",
                     height=380)
        fig.add_trace(trace("bar", 
            x=[f"{h} days" for h in overall["horizon_days"]], y=overall["repeat_rate"],
            marker=dict(color=OKABE_ITO["blue"],
                        opacity=[0.35 if small(n) else 1.0 for n in overall["eligible"]]),
            text=[_bar_label(v, n) for v, n in zip(overall["repeat_rate"], overall["eligible"],
                                                   strict=True)],
            textposition="outside", cliponaxis=False, showlegend=False,
            customdata=list(zip(overall["repeated_within"], overall["eligible"], strict=True)),
            hovertemplate="within %{x}: %{y:.1%}<br>%{customdata[0]:,d} of %{customdata[1]:,d} "
                          "buyers observed that long bought again<extra></extra>"))
        fig.update_yaxes(title_text="bought again within the horizon", tickformat=".0%",
                         rangemode="tozero")
        fig.update_xaxes(title_text="horizon after the first purchase")
        charts.append(to_div(fig, ctx.div_id(SLUG, "repeat-rate")))
        page.figures += 1

    insight: Safe | None = None
    rating = observed[observed["group_name"] == "first_rating"]
    rated = _has_ratings(df[df["group_name"] == "first_rating"]["group_value"]) and \
        ctx.setting("low_rating_max") is not None
    if not rating.empty and rated:
        fig = figure("Does a low first rating stop repeat buying? By the rating of the "
                     "first purchase (n: buyers observed)", height=380)
        for value in sorted(rating["group_value"].astype(str).unique()):
            part = rating[rating["group_value"].astype(str) == value]
            fig.add_trace(trace("bar", 
                x=[f"{h} days" for h in part["horizon_days"]], y=part["repeat_rate"],
                name=f"first rating {value}",
                marker=dict(color=_rating_color(value),
                            opacity=[0.35 if small(n) else 1.0 for n in part["eligible"]]),
                text=[_bar_label(v, n) for v, n in zip(part["repeat_rate"], part["eligible"],
                                                       strict=True)],
                textposition="outside", cliponaxis=False,
                customdata=list(zip(part["repeated_within"], part["eligible"], strict=True)),
                hovertemplate="%{fullData.name}, within %{x}: %{y:.1%}<br>%{customdata[0]:,d} "
                              "of %{customdata[1]:,d} buyers<extra></extra>"))
        fig.update_layout(barmode="group")
        fig.update_yaxes(title_text="bought again within the horizon", tickformat=".0%",
                         rangemode="tozero")
        fig.update_xaxes(title_text="horizon after the first purchase")
        charts.append(to_div(fig, ctx.div_id(SLUG, "repeat-by-rating")))
        page.figures += 1
        insight = _rating_insight(rating)
    elif not rated:
        insight = _no_ratings_sentence(ctx)
    parts.append(insight or Safe(""))
    parts += [ROW, *charts, END]
    return section(title, *parts,
                   lead="Rates count only buyers observed for the whole horizon after their "
                        "first purchase (n); a purchase is an order paid and not cancelled "
                        "(the journey map's purchase). Pale bars rest on fewer than "
                        f"{MIN_N} buyers (small n)."
                        + _low_rating_sentence(ctx))


def _rating_insight(rating: pd.DataFrame) -> Safe | None:
    """Low against high first ratings at the longest horizon observed for both; a finding only
    when both groups have at least MIN_N buyers, else said to be too small."""
    low = rating[rating["group_value"].astype(str).str.startswith("low")]
    high = rating[rating["group_value"].astype(str).str.startswith("high")]
    common = sorted(set(low["horizon_days"]) & set(high["horizon_days"]))
    if not common:
        return None
    h = common[-1]  # the longest horizon observed for both groups
    lo = low[low["horizon_days"] == h].iloc[0]
    hi = high[high["horizon_days"] == h].iloc[0]
    sentence = (f"Within {h} days, {fmt.pct(lo['repeat_rate'])} of customers who rated their "
                f"first visit low bought again, against {fmt.pct(hi['repeat_rate'])} of those "
                f"who rated it high. (n = {fmt.count(lo['eligible'])} and "
                f"{fmt.count(hi['eligible'])}: the buyers observed that long.)")
    if small(lo["eligible"]) or small(hi["eligible"]):
        return paragraph(f"No finding yet: too few buyers to compare first ratings (small n: "
                         f"fewer than {MIN_N} in a group). {sentence}", cls="muted")
    return paragraph(sentence)


def _low_rating_sentence(ctx: Context) -> str:
    low = ctx.setting("low_rating_max")
    return "" if low is None else f" A low rating is {low} or less."


def _repeat_so_far(ctx: Context, page: Page, horizon: int, title: str) -> Safe:
    """No buyer observed for a whole horizon yet: show who has bought again so far."""
    groups = ctx.wh.df("select *, repeat_share as share from repeat_so_far "
                       "where group_name in ('all', 'first_rating') "
                       "order by group_name <> 'all', group_value")
    rated = _has_ratings(groups[groups["group_name"] == "first_rating"]["group_value"]) and \
        ctx.setting("low_rating_max") is not None
    if not rated:
        groups = groups[groups["group_name"] == "all"]
    groups["label"] = ["all buyers" if g == "all" else f"first rating {v}"
                       for g, v in zip(groups["group_name"], groups["group_value"], strict=True)]
    fig = figure("Who has bought again so far? Share of buyers with a second purchase"
                 + (", by the rating of their first visit" if rated else "")
                 + " (n = buyers)", height=380)
    fig.add_trace(trace("bar", 
        x=groups["label"], y=groups["share"],
        marker=dict(color=[OKABE_ITO["green"] if g == "all" else _rating_color(v)
                           for g, v in zip(groups["group_name"], groups["group_value"],
                                           strict=True)],
                    opacity=[0.35 if small(n) else 1.0 for n in groups["purchasers"]]),
        text=[_bar_label(v, n) for v, n in zip(groups["share"], groups["purchasers"],
                                               strict=True)],
        textposition="outside", cliponaxis=False, showlegend=False,
        customdata=list(zip(groups["repeat_purchasers"], groups["purchasers"], strict=True)),
        hovertemplate="%{x}: %{y:.1%}<br>%{customdata[0]:,d} of %{customdata[1]:,d} buyers "
                      "bought again<extra></extra>"))
    fig.update_yaxes(title_text="buyers with a 2nd purchase so far", tickformat=".0%",
                     rangemode="tozero")
    fig.update_xaxes(title_text="buyers, by the rating of their first purchase" if rated
                     else "buyers")
    page.figures += 1
    parts: list[Safe] = [paragraph(
        f"No buyer has been observed for {horizon} days after the first purchase yet, so the "
        "repeat rates by horizon are not available. Below: who has bought again so far, which "
        "is not horizon-controlled (recent buyers had less time).", cls="note")]
    low = groups[groups["group_value"].astype(str).str.startswith("low")]
    high = groups[groups["group_value"].astype(str).str.startswith("high")]
    if not low.empty and not high.empty:
        n_low, n_high = low["purchasers"].iloc[0], high["purchasers"].iloc[0]
        sentence = (f"So far {fmt.pct(low['share'].iloc[0])} of customers who rated their first "
                    f"visit low bought again, against {fmt.pct(high['share'].iloc[0])} of those "
                    f"who rated it high. (n = {fmt.count(n_low)} and {fmt.count(n_high)} "
                    "buyers.)")
        if small(n_low) or small(n_high):
            parts.append(paragraph(f"No finding: too few buyers (small n: fewer than {MIN_N} in "
                                   f"a group). {sentence}", cls="muted"))
        else:
            parts.append(paragraph(sentence))
    elif not rated:
        parts.append(_no_ratings_sentence(ctx))
    parts.append(to_div(fig, ctx.div_id(SLUG, "repeat-so-far")))
    return section(title, *parts)


# --- repeat by the experience of the first journey ----------------------------------------

TESTS = {"z-test": "two-proportion z-test", "fisher exact": "Fisher's exact test"}
SHORT_TESTS = {"z-test": "z-test", "fisher exact": "Fisher exact"}


def _nowrap(text: str) -> str:
    return text.replace(" ", "\u00a0")


def _experience_labels(df: pd.DataFrame) -> list[str]:
    """'channel: paid_social'; a path is numbered by how common it is among buyers ('path 1:
    Discovery → … → Purchase', middle cut when long), so two long paths never look alike."""
    paths = df[df["experience"] == "first_path"]
    order = (paths[paths["value"] != "other"].groupby("value")["purchasers"].max()
             .reset_index().sort_values(["purchasers", "value"], ascending=[False, True]))
    number = {v: i for i, v in enumerate(order["value"], start=1)}
    labels = []
    for e, v in zip(df["experience"], df["value"], strict=True):
        if e == "first_path" and v in number:
            labels.append(f"path {number[v]}: {_middle_cut(str(v))}")
        else:
            labels.append(f"{EXPERIENCES.get(e, e)}: {v}")
    return labels


def _middle_cut(path: str, limit: int = 48) -> str:
    """A long path keeps its first two and last two stages: 'A → B → … → Y → Z'."""
    steps = path.split(" → ")
    if len(path) <= limit or len(steps) <= 4:
        return path
    return " → ".join([*steps[:2], "…", *steps[-2:]])


def _experience_horizon(df: pd.DataFrame) -> tuple[int, int]:
    """The longest horizon with at least MIN_N buyers observed that long (else the one with
    the most), and its number of buyers."""
    per_h = df.groupby(["horizon_days", "experience"])["customers"].sum().groupby(
        level=0).max()
    enough = per_h[per_h >= MIN_N]
    h = int(enough.index.max()) if not enough.empty else int(per_h.idxmax())
    return h, int(per_h[h])


def _experiences(ctx: Context, page: Page) -> Safe:
    title = "Which experiences of the first journey stop customers coming back?"
    what = "Repeat by first-journey experience"
    if not ctx.wh.has("repeat_by_experience"):
        return section(title, not_available(what, ctx.wh.missing("repeat_by_experience")))
    df = ctx.wh.df("select * from repeat_by_experience")
    if df.empty:
        return section(title, paragraph("No purchases yet."))
    h, buyers = _experience_horizon(df)
    df = df[df["horizon_days"] == h].copy()
    alpha = ctx.setting("significance_level") or 0.05
    df["label"] = _experience_labels(df)
    df["rankable"] = [not small(n) and not small(r) and pd.notna(p) for n, r, p in
                      zip(df["customers"], df["rest_customers"], df["p_value"], strict=True)]
    ranked = df[df["rankable"]].sort_values(["rate_diff", "label"])
    rest = df[~df["rankable"]].sort_values(["experience", "value"])
    lead = (f"Buyers observed {h} days after their first purchase (n = {fmt.count(buyers)}), "
            "grouped by what happened in the journey up to that purchase and by the journey's "
            "segments at entry. Each group's rate of buying again within "
            f"{h} days is compared with all other buyers (two-proportion z-test, or Fisher's "
            f"exact test when a group has fewer than 5 repeaters or non-repeaters); significant "
            f"= p < {alpha}. Groups or rests of fewer than {MIN_N} buyers are greyed (small n) "
            "and not ranked.")
    parts: list[Safe] = []
    if buyers < MIN_N:
        parts.append(paragraph(
            f"Only {fmt.count(buyers)} buyers have been observed for {h} days after their first "
            f"purchase: too few to compare experiences yet (small n; at least {MIN_N} needed).",
            cls="note"))
    absent = [why for exp, why in ABSENT.items() if exp not in set(df["experience"])]
    if absent:
        parts.append(paragraph("Not compared: the data has " + "; ".join(absent) + ".",
                               cls="muted"))
    worst = ranked[ranked["significant"].astype(bool) & (ranked["rate_diff"] < 0)]
    if not worst.empty:
        w = worst.iloc[0]
        what = (f"the path to the first purchase {w['value']}"
                if w["experience"] == "first_path" else
                f"{EXPERIENCES.get(w['experience'], w['experience'])} = {w['value']}")
        parts.append(paragraph(
            f"Lowest against the rest: buyers with {what} — "
            f"{with_n(w['repeat_rate'], w['customers'])} bought again within {h} days, against "
            f"{with_n(w['rest_repeat_rate'], w['rest_customers'])} of all other buyers "
            f"({TESTS.get(w['test'], w['test'])}, p = {fmt.p_value(w['p_value'])})."))
    elif not ranked.empty:
        parts.append(paragraph(
            f"No experience of the first journey goes with a significantly lower repeat rate "
            f"(p < {alpha}) among groups of at least {MIN_N} buyers."))
    if not ranked.empty:
        parts.append(_experience_chart(ctx, ranked.head(MAX_EXPERIENCE_BARS), h))
        page.figures += 1
        tests = len(ranked)
        parts.append(paragraph(
            f"{tests} comparisons at p < {alpha}: about {fmt.number(tests * float(alpha), 0)} "
            "of them would be flagged by chance alone, so a single significant group is a lead "
            "to check, not proof.", cls="muted"))
    parts.append(_experience_table(ranked, rest, h))
    return section(title, *parts, lead=lead)


def _experience_chart(ctx: Context, ranked: pd.DataFrame, h: int) -> Safe:
    ranked = ranked.iloc[::-1]  # plotly draws the first row at the bottom
    colors = [(OKABE_ITO["vermillion"] if d < 0 else OKABE_ITO["blue"]) if sig else GREY
              for d, sig in zip(ranked["rate_diff"], ranked["significant"].astype(bool),
                                strict=True)]
    labels = [f"{lab} · {with_n(r, n)}" for lab, r, n in
              zip(ranked["label"], ranked["repeat_rate"], ranked["customers"], strict=True)]
    text = [f"{fmt.pp(d)}, p = {fmt.p_value(p)}"
            for d, p in zip(ranked["rate_diff"], ranked["p_value"], strict=True)]
    hover = [f"{lab}<br>{with_n(r, n)} bought again within {h} days<br>rest: "
             f"{with_n(o, m)}<br>{fmt.pp(d)}; {TESTS.get(t, t)}, p = {fmt.p_value(p)}"
             f"{' (significant)' if sig else ''}"
             for lab, r, n, o, m, d, t, p, sig in zip(
                 ranked["label"], ranked["repeat_rate"], ranked["customers"],
                 ranked["rest_repeat_rate"], ranked["rest_customers"], ranked["rate_diff"],
                 ranked["test"], ranked["p_value"], ranked["significant"].astype(bool),
                 strict=True)]
    fig = figure(f"Who comes back less? Repeat rate within {h} days minus all other buyers' "
                 "(vermillion / blue: significantly lower / higher)",
                 height=150 + 30 * len(ranked))
    fig.add_trace(trace("bar", 
        x=ranked["rate_diff"], y=labels, orientation="h", marker_color=colors, text=text,
        textposition="outside", cliponaxis=False, showlegend=False, customdata=hover,
        hovertemplate="%{customdata}<extra></extra>"))
    span = float(ranked["rate_diff"].abs().max() or 0.1)
    fig.update_xaxes(title_text="repeat rate minus the rest's (pp)",
                     tickformat="+.0%", range=[-span * 3, span * 3], zeroline=True,
                     zerolinecolor="#444444")
    fig.update_yaxes(type="category", automargin=True)
    fig.update_layout(margin=dict(l=20, r=20, t=105, b=60))
    return to_div(fig, ctx.div_id(SLUG, "repeat-by-experience"))


def _experience_table(ranked: pd.DataFrame, rest: pd.DataFrame, h: int) -> Safe:
    headers = ["rank", "first journey", "value", f"bought again within {h} days",
               "all other buyers", "difference", "p", "test", "significant"]
    rows: list[list[object]] = []
    flags: list[int] = []
    for i, r in enumerate(ranked.itertuples(), start=1):
        if bool(r.significant):
            flags.append(len(rows))
        rows.append([str(i), EXPERIENCES.get(r.experience, r.experience), r.value,
                     _nowrap(with_n(r.repeat_rate, r.customers)),
                     _nowrap(with_n(r.rest_repeat_rate, r.rest_customers)),
                     _nowrap(fmt.pp(r.rate_diff)), fmt.p_value(r.p_value),
                     SHORT_TESTS.get(r.test, r.test), "yes" if r.significant else "no"])
    out = table(headers, rows, numeric=(0, 3, 4, 5, 6), flag_rows=flags,
                caption="Ranked from the lowest repeat rate against the rest; highlighted: "
                        "significant.") if rows else Safe("")
    if rest.empty:
        return out
    small_rows = [[_muted(EXPERIENCES.get(r.experience, r.experience)), _muted(str(r.value)),
                   _muted(_nowrap(with_n(r.repeat_rate, r.customers))),
                   _muted(_nowrap(with_n(r.rest_repeat_rate, r.rest_customers))),
                   _muted(_nowrap(fmt.pp(r.rate_diff))), _muted(fmt.p_value(r.p_value)),
                   _muted(SHORT_TESTS.get(r.test, r.test) if pd.notna(r.test)
                          else fmt.NO_VALUE)]
                  for r in rest.itertuples()]
    summary = (f"{len(rest)} more groups, not ranked: fewer than {MIN_N} buyers in the group "
               "or in the rest (small n), or no test possible")
    return Safe(out + f"<details><summary>{esc(summary)}</summary>" + table(
        headers[1:-1], small_rows, numeric=(2, 3, 4, 5)) + "</details>")


# --- timing and frequency -----------------------------------------------------------------

def _timing(ctx: Context, page: Page) -> Safe:
    title = "How soon do they come back, and how often do they buy?"
    wh = ctx.wh
    parts: list[Safe] = []
    if wh.has("repeat_gaps"):
        gaps = wh.df("select days_to_second as days from repeat_gaps")
        if not gaps.empty:
            n = len(gaps)
            width = 1 if gaps["days"].max() < 42 else 7
            gaps = (gaps.assign(bin=(gaps["days"] // width).astype(int))
                    .groupby("bin", as_index=False).size().rename(columns={"size": "customers"}))
            median = None
            if wh.has("repeat_purchase"):
                median = wh.scalar("select max(median_days_to_second) from repeat_purchase "
                                   "where group_name = 'all'")
            unit = "day" if width == 1 else "week"
            fig = figure(f"How long until the second purchase? Customers per {unit} from "
                         f"the first to the second purchase (n = {fmt.count(n)})", height=380)
            fig.add_trace(trace("bar", 
                x=gaps["bin"] * width + width / 2, y=gaps["customers"], width=width * 0.95,
                marker_color=OKABE_ITO["blue"], showlegend=False,
                customdata=list(zip(gaps["bin"] * width, gaps["bin"] * width + width,
                                    strict=True)),
                hovertemplate="%{customdata[0]:.0f}–%{customdata[1]:.0f} days: %{y:,d} "
                              "customers<extra></extra>"))
            if median is not None and pd.notna(median):
                fig.add_vline(x=float(median), line_dash="dash", line_color=OKABE_ITO["orange"],
                              annotation_text=f"median {fmt.number(median)} days",
                              annotation_position="top right")
            fig.update_xaxes(title_text="days from first to second purchase", tickformat=",~f",
                             rangemode="tozero")
            fig.update_yaxes(title_text="customers", tickformat=",~f")
            parts.append(to_div(fig, ctx.div_id(SLUG, "time-to-second")))
            page.figures += 1
    else:
        parts.append(not_available("Time to second purchase", ctx.wh.missing("repeat_gaps")))
    if wh.has("purchase_frequency"):
        freq = wh.df("select purchases, customers, share from purchase_frequency "
                     "order by purchases")
        if not freq.empty:
            total = int(freq["customers"].sum())
            fig = figure("How many times does a customer buy? Purchases per customer "
                         f"(n = {fmt.count(total)} buyers)", height=380)
            fig.add_trace(trace("bar", 
                x=freq["purchases"].astype(str), y=freq["customers"],
                marker_color=OKABE_ITO["green"], showlegend=False,
                text=[f"{fmt.count(c)}<br>({fmt.pct(v)} of {fmt.count(total)})"
                      for c, v in zip(freq["customers"], freq["share"], strict=True)],
                textposition="outside", cliponaxis=False,
                customdata=freq["share"],
                hovertemplate="%{x} purchase(s): %{y:,d} customers (%{customdata:.1%} of "
                              f"{total:,d})<extra></extra>"))
            fig.update_xaxes(title_text="purchases per customer", type="category")
            fig.update_yaxes(title_text="customers", tickformat=",~f")
            parts.append(to_div(fig, ctx.div_id(SLUG, "frequency")))
            page.figures += 1
    else:
        parts.append(not_available("Purchases per customer", ctx.wh.missing("purchase_frequency")))
    return section(title, ROW, *parts, END,
                   lead="Recent first-time buyers have had little time to come back, so long "
                        "gaps are under-represented at the end of the data.")


# --- cohorts and lifecycle ----------------------------------------------------------------

def _cohort_label(cohort: object, size: object) -> str:
    """'06 Oct 2026 (n = 52)', with ', small n' below MIN_N."""
    mark = ", small n" if small(size) else ""
    return f"{pd.Timestamp(cohort):%d %b %Y} (n = {fmt.count(size)}{mark})"


def _heatmap(ctx: Context, df: pd.DataFrame, column: str, count_column: str, title: str,
             name: str) -> Safe:
    cohorts = sorted(df["cohort_start"].unique())[-MAX_PERIODS:]
    df = df[df["cohort_start"].isin(cohorts) & (df["period_number"] < MAX_PERIODS)]
    periods = sorted(df["period_number"].unique())
    size = df.groupby("cohort_start")["cohort_size"].max()
    ylabels = [_cohort_label(c, size[c]) for c in cohorts]
    full, part, grey, text, hover, dark = [], [], [], [], [], []
    for c in cohorts:
        fr, pr, gr, tr, hr, dr = [], [], [], [], [], []
        few = small(size[c])
        for p in periods:
            cell = df[(df["cohort_start"] == c) & (df["period_number"] == p)]
            if cell.empty:
                fr.append(None)
                pr.append(None)
                gr.append(None)
                tr.append("")
                hr.append("")
                dr.append(False)
                continue
            v = float(cell[column].iloc[0])
            done = bool(cell["complete"].iloc[0])
            fr.append(v if done and not few else None)
            pr.append(v if not done and not few else None)
            gr.append(v if few else None)
            tr.append(fmt.pct(v, 0) + ("" if done else "*"))
            hr.append(f"{fmt.count(cell[count_column].iloc[0])} of {fmt.count(size[c])} "
                      f"customers ({fmt.pct(v)})"
                      f"{'' if done else ' — period not over yet (incomplete)'}"
                      f"{' — small cohort (small n)' if few else ''}")
            # Cividis is dark below ~60 %: white labels there; washed-out and grey cells are
            # light whatever their share
            dr.append(done and not few and v < 0.6)
        full.append(fr)
        part.append(pr)
        grey.append(gr)
        text.append(tr)
        hover.append(hr)
        dark.append(dr)
    fig = figure(title, height=max(360, 140 + 26 * len(cohorts)))
    xlabels = [str(p) for p in periods]
    common = dict(x=xlabels, y=ylabels, zmin=0, zmax=1, xgap=1, ygap=1, customdata=hover,
                  hovertemplate="cohort %{y}, period %{x}<br>%{customdata}<extra></extra>")
    fig.add_trace(trace("heatmap", z=full, colorscale=SEQUENTIAL, name="complete",
                             colorbar=dict(title=dict(text="share"),
                                           tickformat=".0%", tickvals=[0, 0.25, 0.5, 0.75, 1]),
                             **common))
    # Incomplete cells: the same scale washed out, marked with *.
    fig.add_trace(trace("heatmap", z=part, colorscale=SEQUENTIAL, opacity=0.35, showscale=False,
                             name="incomplete", **common))
    # Cohorts of fewer than MIN_N customers: grey, whatever their share.
    fig.add_trace(trace("heatmap", z=grey, colorscale=SMALL_N_SCALE, showscale=False,
                             name="small n", **common))
    cell_labels(fig, xlabels, ylabels, text, dark)
    fig.update_xaxes(title_text="periods since the first purchase", type="category",
                     showgrid=False)
    fig.update_yaxes(title_text="cohort (n = buyers)", autorange="reversed",
                     type="category", showgrid=False)
    return to_div(fig, ctx.div_id(SLUG, name))


def _period_type(ctx: Context, table: str, start_col: str) -> tuple[str, int] | None:
    """Weekly periods when the table has 4 to MAX_PERIODS of them, else monthly when it has
    months (a long history would make weekly charts unreadable; a short one, monthly charts
    empty); with the number of periods. None when the table is empty. `table` and `start_col`
    are names from this module, not data."""
    types = ctx.wh.df(f"select period_type, count(distinct {start_col}) as n from {table} "
                      "group by period_type")
    if types.empty:
        return None
    n = dict(zip(types["period_type"], types["n"], strict=True))
    weeks, months = int(n.get("week", 0)), int(n.get("month", 0))
    if months and (weeks < 4 or weeks > MAX_PERIODS):
        return "month", months
    return ("week", weeks) if weeks else ("month", months)


def _cohorts(ctx: Context, page: Page) -> Safe:
    title = "Do cohorts of new buyers keep buying?"
    if not ctx.wh.has("retention_cohorts"):
        return section(title, not_available(
            "Cohort retention", ctx.wh.missing("retention_cohorts")))
    chosen = _period_type(ctx, "retention_cohorts", "cohort_start")
    if chosen is None:
        return section(title, paragraph("No purchase cohorts yet."))
    period_type, count = chosen
    df = ctx.wh.df("select * from retention_cohorts where period_type = ? "
                   "order by cohort_start, period_number", [period_type])
    on = _heatmap(ctx, df, "share_on", "customers_on",
                  f"Who buys in each {period_type} after their first? Share of the cohort "
                  f"purchasing in that {period_type} (“on”)", "retention-on")
    after = _heatmap(ctx, df, "share_on_or_after", "customers_on_or_after",
                     f"Who is still buying? Share of the cohort purchasing in that "
                     f"{period_type} or later (“on or after”)", "retention-on-or-after")
    page.figures += 2
    notes: list[Safe] = []
    if period_type == "month" and ctx.wh.scalar(
            "select count(distinct cohort_start) from retention_cohorts "
            "where period_type = 'week'") > MAX_PERIODS:
        notes.append(paragraph(f"Monthly cohorts: the data spans more than {MAX_PERIODS} "
                               "weeks, too many for weekly rows to read.", cls="muted"))
    if count > MAX_PERIODS:
        notes.append(paragraph(f"Showing the latest {MAX_PERIODS} of {count} cohorts and their "
                               f"first {MAX_PERIODS} {period_type}s.", cls="muted"))
    return section(title, *notes, on, after,
                   lead=f"Cohort = {period_type} of first purchase (UTC, weeks start on Monday), "
                        f"n = its buyers; period 0 is the cohort's own {period_type}. Colours "
                        "run from 0 % to 100 % of the cohort. Washed-out cells marked * belong "
                        "to periods that have not ended yet: their shares will still grow. "
                        f"Grey rows: cohorts of fewer than {MIN_N} buyers (small n).")


def _lifecycle(ctx: Context, page: Page) -> Safe:
    title = "Is the customer base growing? New, returning, resurrecting and dormant buyers"
    if not ctx.wh.has("lifecycle"):
        return section(title, not_available("Lifecycle", ctx.wh.missing("lifecycle")))
    chosen = _period_type(ctx, "lifecycle", "period_start")
    if chosen is None:
        return section(title, paragraph("No purchases yet."))
    period_type = chosen[0]
    df = ctx.wh.df("select * from lifecycle where period_type = ? order by period_start",
                   [period_type])
    fig = figure(f"Who bought each {period_type}? Buyers by lifecycle status "
                 "(dormant drawn below zero)", height=400)
    statuses = [s for s in LIFECYCLE_COLORS if s in set(df["status"])] + sorted(
        set(df["status"]) - set(LIFECYCLE_COLORS))
    for i, status in enumerate(statuses):
        part = df[df["status"] == status]
        sign = -1 if status == "dormant" else 1
        complete = part["complete"].astype(bool)
        fig.add_trace(trace("bar", 
            x=part["period_start"], y=sign * part["customers"], name=status,
            marker=dict(color=LIFECYCLE_COLORS.get(status, COLORWAY[i % len(COLORWAY)]),
                        pattern=dict(shape=["" if c else "/" for c in complete],
                                     fillmode="overlay", fgcolor="white", solidity=0.4),
                        opacity=[1.0 if c else 0.6 for c in complete]),
            customdata=list(zip(part["customers"], ["" if c else " (period not over)"
                                                    for c in complete], strict=True)),
            hovertemplate="%{x|%d %b %Y}%{customdata[1]}<br>%{fullData.name}: "
                          "%{customdata[0]:,d} customers<extra></extra>"))
    fig.update_layout(barmode="relative")
    fig.update_yaxes(title_text="customers (dormant negative)", tickformat=",~f")
    fig.update_xaxes(title_text=f"{period_type} (start date)")
    page.figures += 1
    return section(title, to_div(fig, ctx.div_id(SLUG, "lifecycle")),
                   lead="Hatched, lighter bars: the period has not ended yet.")
