"""The project's Spark dialect: DuckDB SQL as the transforms write it, rewritten for Spark SQL.

`to_spark(sql)` parses a DuckDB statement with sqlglot, applies the rules below to the tree and
writes it as Spark SQL. sqlglot's own DuckDB -> Spark translation gives the same numbers for most
statements but not for all; each rule here fixes one case where it gives *different numbers
without an error* (hand-checked in tests/engine/test_spark_transpile.py):

- `list(x ORDER BY k)`: sqlglot writes `collect_list(x)`, which drops the order (and the NULLs).
  Written `transform(array_sort(collect_list(named_struct(k.., x)), <comparator>), s -> s.v)`,
  the comparator honouring each key's direction and NULLS FIRST/LAST. `list(x)` keeps its NULLs
  the same way (`collect_list` of a struct).
- `x[i]`: DuckDB counts from 1 and from the end for negative i; sqlglot shifts literal indexes
  only (and `-1` to `-2`). Written `try_element_at(x, i)` (1-based, negative from the end, NULL
  when out of range, as DuckDB); slices `x[a:b]` become `slice(...)`.
- `a / b`: DuckDB divides as DOUBLE; Spark divides DECIMALs (`x / 86400.0`) as DECIMAL, rounded
  to 6 places. Both operands are cast to DOUBLE.
- `avg(x)`: DuckDB's avg is DOUBLE, Spark's avg of a DECIMAL a rounded DECIMAL: `avg(double)`.
- `quantile_cont(x, q)` / `median(x)`: Spark's `percentile` (same linear interpolation).
- `epoch(t)` (seconds with microseconds; of `a - b` the seconds between): sqlglot's
  `unix_timestamp` truncates to whole seconds; written with `unix_micros(...) / 1e6`.
  `epoch_us`, `epoch_ms` likewise; `to_timestamp(s)` keeps its microseconds.
- `date - date`: an integer in DuckDB, an INTERVAL in Spark: `datediff(a, b)` (the column types
  come from `column_types`, casts and the statement's own aliases).
- the definition macros of transforms/sql/definitions.sql are inlined (Spark has no macros).
- `name AS [NOT] MATERIALIZED (...)`: DuckDB's CTE hint, which Spark's parser refuses, is left
  out (the rows are the same); `TRY_CAST` is Spark syntax, as `CAST`, not in its function list.
- `?` and `$name` parameters become Spark's named markers `:p0`, `:name` (`spark_args` turns the
  DuckDB parameters into the `args=` of `spark.sql`).

After the rewrite the tree is checked against Spark's real function list
(transforms/spark_functions.py) and a list of DuckDB-only constructs (ASOF JOIN, LATERAL over
VALUES, `* REPLACE`, information_schema, DuckDB's table functions, transactions,
several `unnest` in one select); anything left raises `NotPortable`: a statement either runs with
the same meaning on Spark or does not run at all.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.spark import Spark
from sqlglot.tokens import TokenType

from transforms.definitions import SQL as DEFINITIONS_SQL
from transforms.spark_functions import SPARK_FUNCTIONS


class NotPortable(Exception):
    """A statement uses something Spark does not have (or would compute differently)."""

    def __init__(self, function: str, caller: str | None = None, detail: str = "") -> None:
        self.function = function
        self.caller = caller
        self.detail = detail
        where = f" (in {caller})" if caller else ""
        more = f": {detail}" if detail else ""
        super().__init__(f"{function} does not run on Spark{more}{where}")


class DuckDBAsWritten(DuckDB):
    """DuckDB, with list indexes kept as written (sqlglot's own DuckDB dialect shifts literal
    indexes to 0-based while parsing; the bracket rule needs the 1-based index)."""

    INDEX_OFFSET = 0


# --- parameters ------------------------------------------------------------------------------

def _name_placeholders(sql: str) -> tuple[str, int]:
    """`sql` with each `?` written `$p<n>` (n from 0), and how many there were. sqlglot's tokenizer
    finds them, so a `?` inside a string or a comment stays."""
    tokens = DuckDBAsWritten().tokenize(sql)
    # `?::TYPE` is one token to sqlglot (QDCOLON), a parameter and a cast to DuckDB
    spots = [t for t in tokens if (t.token_type == TokenType.PLACEHOLDER and t.text == "?")
             or t.token_type == TokenType.QDCOLON]
    out, pos = [], 0
    for i, tok in enumerate(spots):
        out.append(sql[pos:tok.start])
        out.append(f"$p{i}" + ("::" if tok.token_type == TokenType.QDCOLON else ""))
        pos = tok.end + 1
    out.append(sql[pos:])
    return "".join(out), len(spots)


def spark_args(params: Sequence[object] | Mapping[str, object] | None) -> dict[str, object]:
    """The `args=` of `spark.sql` for DuckDB parameters: `?` -> `p0, p1, ...`, `$name` -> `name`."""
    if params is None:
        return {}
    if isinstance(params, Mapping):
        return dict(params)
    return {f"p{i}": v for i, v in enumerate(params)}


# --- the definition macros -------------------------------------------------------------------

_MACRO = re.compile(r"create\s+or\s+replace\s+temp\s+macro\s+(\w+)\s*\(([^)]*)\)\s+as\s+(.*?);",
                    re.IGNORECASE | re.DOTALL)


@functools.cache
def macros() -> dict[str, tuple[tuple[str, ...], exp.Expression]]:
    """{name: (parameter names, body)} of transforms/sql/definitions.sql."""
    text = re.sub(r"--[^\n]*", "", DEFINITIONS_SQL.read_text(encoding="utf-8"))
    out = {}
    for name, params, body in _MACRO.findall(text):
        names = tuple(p.strip().lower() for p in params.split(",") if p.strip())
        out[name.lower()] = (names, sqlglot.parse_one(body, read=DuckDBAsWritten))
    return out


def _inline_macros(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and node.name.lower() in macros():
        names, body = macros()[node.name.lower()]
        args = node.expressions
        if len(args) != len(names):
            raise NotPortable(node.name, detail=f"takes {len(names)} arguments")
        bound = dict(zip(names, args, strict=True))

        def bind(n: exp.Expression) -> exp.Expression:
            if isinstance(n, exp.Column) and not n.table and n.name.lower() in bound:
                return exp.paren(bound[n.name.lower()].copy(), copy=False)
            return n

        return exp.paren(body.copy().transform(bind), copy=False)
    return node


# --- types, as far as the statement shows them -----------------------------------------------

def _type_of(node: exp.Expression, types: Mapping[str, str], aliases: Mapping[str, str]
             ) -> str | None:
    """'date', 'int', 'interval', 'timestamp' or None (unknown) for an expression."""
    if isinstance(node, exp.Paren):
        return _type_of(node.this, types, aliases)
    if isinstance(node, exp.Cast | exp.TryCast):
        t = node.to.this
        if t == exp.DataType.Type.DATE:
            return "date"
        if t in exp.DataType.INTEGER_TYPES:
            return "int"
        if t in exp.DataType.TEMPORAL_TYPES:
            return "timestamp"
        if t == exp.DataType.Type.INTERVAL:
            return "interval"
        if t in (exp.DataType.Type.ARRAY, exp.DataType.Type.LIST):
            return "list"
        return None
    if isinstance(node, exp.CurrentDate):
        return "date"
    if isinstance(node, exp.Interval):
        return "interval"
    if isinstance(node, exp.Literal):
        return "int" if node.is_int else None
    if isinstance(node, exp.Neg):
        return _type_of(node.this, types, aliases)
    if isinstance(node, exp.Window):
        return _type_of(node.this, types, aliases)
    if isinstance(node, exp.Filter):
        return _type_of(node.this, types, aliases)
    if isinstance(node, exp.Min | exp.Max | exp.AnyValue | exp.First | exp.Last | exp.Lead
                  | exp.Lag | exp.FirstValue | exp.LastValue | exp.ArgMax | exp.ArgMin):
        return _type_of(node.this, types, aliases)
    if isinstance(node, exp.Coalesce | exp.Greatest | exp.Least):
        for arg in [node.this, *node.expressions]:
            t = _type_of(arg, types, aliases)
            if t:
                return t
        return None
    if isinstance(node, exp.ArrayAgg | exp.Array | exp.Transform | exp.ArrayFilter | exp.Split
                  | exp.ArraySort | exp.ArrayDistinct | exp.ArrayConcat):
        return "list"
    if isinstance(node, exp.Bracket) and isinstance(node.expressions[0], exp.Slice):
        return "list"
    if isinstance(node, exp.Placeholder):
        return aliases.get(f"${node.name.lower()}")
    if isinstance(node, exp.Mul | exp.IntDiv | exp.Mod):
        sides = (_type_of(node.this, types, aliases), _type_of(node.expression, types, aliases))
        return "interval" if "interval" in sides else "int"  # a date cannot be multiplied
    if isinstance(node, exp.Add | exp.Sub):
        left = _type_of(node.this, types, aliases)
        right = _type_of(node.expression, types, aliases)
        if isinstance(node, exp.Sub) and left == "date" and right == "date":
            return "int"
        if "date" in (left, right) and "int" in (left, right):
            return "date"
        if "timestamp" in (left, right) or {left, right} == {"date", "interval"}:
            return "timestamp"
        if left == right and left in ("int", "interval"):
            return left
        return None
    if isinstance(node, exp.Column):
        name = node.name.lower()
        if name in aliases:
            return aliases[name]
        t = types.get(name)
        if t is None:
            return None
        t = t.upper()
        if t == "DATE":
            return "date"
        if t in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT"}:
            return "int"
        if t.startswith("TIMESTAMP"):
            return "timestamp"
        if t == "INTERVAL":
            return "interval"
        if t.endswith("]"):
            return "list"
    return None


def _value_type(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return "int"
    if isinstance(value, dt.datetime):
        return "timestamp"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.timedelta):
        return "interval"
    if isinstance(value, list | tuple):
        return "list"
    return None


def _statement_aliases(tree: exp.Expression, types: Mapping[str, str],
                       params: Mapping[str, object]) -> dict[str, str]:
    """Types of the names a statement defines itself (`expr AS name`) and of its parameters
    (`$name`, from their values), to a fixed point."""
    aliases: dict[str, str] = {}
    for name, value in params.items():
        t = _value_type(value)
        if t:
            aliases[f"${name.lower()}"] = t
    pairs = [(a.alias.lower(), a.this) for a in tree.find_all(exp.Alias) if a.alias]
    for _ in range(4):
        changed = False
        for name, expr in pairs:
            t = _type_of(expr, types, aliases)
            if t and aliases.get(name) != t:
                if name in aliases:  # two meanings for one name: unknown
                    continue
                aliases[name] = t
                changed = True
        if not changed:
            break
    return aliases


# --- the rules -------------------------------------------------------------------------------

def _double(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.DOUBLE:
        return node
    return exp.cast(node, exp.DataType.Type.DOUBLE)


def _micros(node: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="unix_micros",
                         expressions=[exp.cast(node, exp.DataType.Type.TIMESTAMP)])


def _epoch_rule(types: Mapping[str, str], aliases: Mapping[str, str]):
    def rule(node: exp.Expression) -> exp.Expression:
        name = node.name.lower() if isinstance(node, exp.Anonymous) else None
        if isinstance(node, exp.TimeToUnix) or name == "epoch":
            arg = node.this if isinstance(node, exp.TimeToUnix) else node.expressions[0]
            inner = arg.this if isinstance(arg, exp.Paren) else arg
            if isinstance(inner, exp.Sub) and "interval" not in (
                    _type_of(inner.this, types, aliases),
                    _type_of(inner.expression, types, aliases)):
                micros = exp.Sub(this=_micros(inner.this), expression=_micros(inner.expression))
            else:
                micros = _micros(arg)
            return exp.Div(this=exp.paren(micros, copy=False),
                           expression=exp.Literal.number("1e6"))
        if name == "epoch_us":
            return _micros(node.expressions[0])
        if name == "epoch_ms":
            return exp.Anonymous(this="unix_millis", expressions=[
                exp.cast(node.expressions[0], exp.DataType.Type.TIMESTAMP)])
        if isinstance(node, exp.UnixToTime) and node.args.get("scale") is None:
            scaled = exp.Mul(this=_double(node.this), expression=exp.Literal.number("1000000"))
            rounded = exp.Anonymous(this="bround", expressions=[scaled])
            return exp.Anonymous(this="timestamp_micros",
                                 expressions=[exp.cast(rounded, exp.DataType.Type.BIGINT)])
        if isinstance(node, exp.ToDays) or name == "to_days":
            days = node.this if isinstance(node, exp.ToDays) else node.expressions[0]
            zero = exp.Literal.number(0)
            return exp.Anonymous(this="make_dt_interval",
                                 expressions=[days, zero, zero.copy(), zero.copy()])
        if name == "to_seconds":
            zero = exp.Literal.number(0)
            return exp.Anonymous(this="make_dt_interval",
                                 expressions=[zero, zero.copy(), zero.copy(),
                                              node.expressions[0]])
        return node
    return rule


def _date_sub_rule(types: Mapping[str, str], aliases: Mapping[str, str]):
    def rule(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Sub):
            left = _type_of(node.this, types, aliases)
            right = _type_of(node.expression, types, aliases)
            if left == "date" and right not in ("int", "interval") or (
                    right == "date" and left not in ("int", "interval")):
                if left != "date" or right != "date":
                    # date - unknown: only a date gives DuckDB's integer days; say so loudly
                    # when the other side cannot be shown to be one
                    if None in (left, right):
                        raise NotPortable("date - ?", detail=f"cannot tell the type of "
                                          f"{node.sql(dialect=DuckDBAsWritten)}")
                return exp.Anonymous(this="datediff", expressions=[node.this, node.expression])
        return node
    return rule


def _length_rule(types: Mapping[str, str], aliases: Mapping[str, str]):
    """DuckDB's length()/len() of a list is Spark's size() (Spark's length is of strings)."""
    def rule(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Length) and _type_of(node.this, types, aliases) == "list":
            return exp.ArraySize(this=node.this)
        return node
    return rule


_QUOTED_KEY = sqlglot.parse_one(
    """CASE WHEN LEFT(__p, 1) = '$' THEN REGEXP_REPLACE(__p, '\\\\."([^"]*)"', '[\\'$1\\']')
    ELSE CONCAT('$[\\'', __p, '\\']') END""", read=Spark)


def _json_path_rule(node: exp.Expression) -> exp.Expression:
    """A JSON path given as a parameter: DuckDB reads `$."key"` and bare keys, Spark's
    get_json_object neither; written `$['key']` at run time (literal paths sqlglot converts)."""
    if isinstance(node, exp.JSONExtract | exp.JSONExtractScalar):
        path = node.expression
        if isinstance(path, exp.JSONPath) or path is None:
            return node
        if isinstance(path, exp.Cast) and path.to.is_type(exp.DataType.Type.ARRAY):
            raise NotPortable("json_extract with a list of paths")
        out = node.copy()
        out.set("expression", _QUOTED_KEY.copy().transform(
            lambda n: path.copy() if isinstance(n, exp.Column) and n.name == "__p" else n))
        return out
    return node


def _zipped_unnest_rule(node: exp.Expression) -> exp.Expression:
    """`select unnest(a) as x, unnest(b) as y ... from t`: DuckDB zips the lists (the shorter
    padded with NULL), Spark allows one generator per select. Written
    `... from t LATERAL VIEW inline(arrays_zip(a, b)) __z AS __u0, __u1` (arrays_zip pads with
    NULL too), when the select neither groups nor aggregates."""
    if not isinstance(node, exp.Select):
        return node
    found = [e.find(exp.Explode) for e in node.expressions]
    if sum(f is not None for f in found) < 2:
        return node
    if node.args.get("group") or node.args.get("laterals") or any(
            e.find(exp.AggFunc) for e in node.expressions):
        raise NotPortable("several unnest() in one select", detail="with aggregates")
    out = node.copy()
    lists, n = [], 0
    for item in out.expressions:
        for gen in list(item.find_all(exp.Explode)):
            if gen.find_ancestor(exp.Explode) is not None or gen.find(exp.Explode) is not gen:
                raise NotPortable("nested unnest()")
            lists.append(gen.this)
            gen.replace(exp.column(f"__u{n}", table="__z"))
            n += 1
    out.set("laterals", [exp.Lateral(
        this=exp.Inline(this=exp.ArraysZip(expressions=lists)), view=True, outer=False,
        alias=exp.TableAlias(this=exp.to_identifier("__z"),
                             columns=[exp.to_identifier(f"__u{i}") for i in range(n)]))])
    if out.args.get("from_") is None:
        out.set("from_", exp.From(this=exp.select(exp.Literal.number(1).as_("__one"))
                                  .subquery("__one")))
    return out


def _window_operand_rule(node: exp.Expression) -> exp.Expression:
    """`lag(x) OVER w - x`: Spark reads `w-x` as one (invalid) name; parenthesise."""
    if isinstance(node, exp.Window) and isinstance(node.parent, exp.Binary):
        return exp.paren(node.copy(), copy=False)
    return node


def _cte_hint_rule(node: exp.Expression) -> exp.Expression:
    """`name AS [NOT] MATERIALIZED (...)`: a DuckDB planner hint Spark's parser refuses; the
    CTE's rows are the same either way."""
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        out = node.copy()
        out.set("materialized", None)
        return out
    return node


def _json_type_rule(node: exp.Expression) -> exp.Expression:
    """DuckDB's JSON type is JSON text; Spark has no JSON type: STRING (the same text)."""
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.JSON:
        return exp.DataType.build("STRING")
    return node


def _avg_rule(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Avg) and not isinstance(node.this, exp.Distinct):
        return exp.Avg(this=_double(node.this))
    return node


def _quantile_rule(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.PercentileCont) and node.args.get("expression") is not None:
        return exp.Anonymous(this="percentile", expressions=[node.this, node.expression])
    if isinstance(node, exp.Median):
        return exp.Anonymous(this="percentile", expressions=[node.this, exp.Literal.number(0.5)])
    if isinstance(node, exp.Anonymous) and node.name.lower() in ("quantile_cont", "quantile"):
        return exp.Anonymous(this="percentile", expressions=node.expressions)
    return node


def _div_rule(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Div):
        return exp.Div(this=_double(node.this), expression=_double(node.expression))
    return node


def _int_value(node: exp.Expression) -> int | None:
    if isinstance(node, exp.Literal) and node.is_int:
        return int(node.this)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and node.this.is_int:
        return -int(node.this.this)
    return None


def _bracket_rule(node: exp.Expression) -> exp.Expression:
    if not isinstance(node, exp.Bracket) or len(node.expressions) != 1:
        return node
    idx = node.expressions[0]
    if isinstance(idx, exp.Literal) and idx.is_string:
        return node  # struct field or map key: Spark's x['k'] is the same
    if isinstance(idx, exp.Slice):
        return _slice(node.this, idx.this, idx.expression)
    if _int_value(idx) == 0:
        return exp.Null()
    return exp.Anonymous(this="try_element_at", expressions=[node.this, idx])


def _slice(arr: exp.Expression, start: exp.Expression | None, end: exp.Expression | None
           ) -> exp.Expression:
    """DuckDB's x[a:b] (1-based, both ends included, negative from the end, either end may be
    left out) as Spark's slice(x, start, length)."""
    size = exp.Anonymous(this="size", expressions=[arr.copy()])

    def position(bound: exp.Expression | None, default: exp.Expression) -> exp.Expression:
        if bound is None:
            return default
        value = _int_value(bound)
        if value is not None and value > 0:
            return bound
        if value is not None and value < 0:
            return exp.Add(this=size.copy(), expression=exp.Literal.number(value + 1))
        bound = exp.paren(bound, copy=False)
        negative = exp.LT(this=bound.copy(), expression=exp.Literal.number(0))
        from_end = exp.Add(this=exp.Add(this=size.copy(), expression=bound),
                           expression=exp.Literal.number(1))
        return exp.Case(ifs=[exp.If(this=negative, true=from_end)],
                        default=exp.Greatest(this=bound.copy(),
                                             expressions=[exp.Literal.number(1)]))

    first = position(start, exp.Literal.number(1))
    last = position(end, size.copy())
    # sqlglot writes the tree as built: the operands need their own parentheses
    span = exp.Sub(this=exp.paren(last, copy=False), expression=exp.paren(first.copy(), copy=False))
    length = exp.Greatest(this=exp.Add(this=span, expression=exp.Literal.number(1)),
                          expressions=[exp.Literal.number(0)])
    return exp.Anonymous(this="slice", expressions=[arr, first, length])


_SORTED = sqlglot.parse_one("transform(array_sort(__list, (l, r) -> __cmp), s -> s.v)",
                            read=Spark)
_UNSORTED = sqlglot.parse_one("transform(__list, s -> s.v)", read=Spark)


def _comparator(keys: list[exp.Ordered]) -> exp.Expression:
    one, minus = exp.Literal.number(1), exp.Neg(this=exp.Literal.number(1))
    ifs = []
    for i, key in enumerate(keys):
        lk = exp.column(f"k{i}", table="l")
        rk = exp.column(f"k{i}", table="r")
        nulls_first = bool(key.args.get("nulls_first"))
        desc = bool(key.args.get("desc"))
        ifs += [
            exp.If(this=exp.and_(lk.is_(exp.null()), exp.not_(rk.is_(exp.null()))),
                   true=(minus if nulls_first else one).copy()),
            exp.If(this=exp.and_(exp.not_(lk.is_(exp.null())), rk.is_(exp.null())),
                   true=(one if nulls_first else minus).copy()),
            exp.If(this=exp.LT(this=lk.copy(), expression=rk.copy()),
                   true=(one if desc else minus).copy()),
            exp.If(this=exp.GT(this=lk.copy(), expression=rk.copy()),
                   true=(minus if desc else one).copy()),
        ]
    return exp.Case(ifs=ifs, default=exp.Literal.number(0))


def _list_rule(node: exp.Expression) -> exp.Expression:
    """list(x [ORDER BY ..]) [FILTER (..)] [OVER (..)] keeping DuckDB's order and NULLs."""
    if isinstance(node, exp.ArrayAgg) and isinstance(node.parent, exp.Filter | exp.Window):
        return node  # rewritten with its FILTER/OVER wrapper
    if isinstance(node, exp.Filter) and isinstance(node.parent, exp.Window):
        return node
    chain, core = [], node
    while isinstance(core, exp.Filter | exp.Window):
        chain.append(core)
        core = core.this
    if not isinstance(core, exp.ArrayAgg):
        return node
    value, keys = core.this, []
    if isinstance(value, exp.Order):
        keys = list(value.expressions)
        value = value.this
    distinct = isinstance(value, exp.Distinct)
    if distinct:  # list(DISTINCT x [ORDER BY x]): a set of structs keeps one NULL too
        if len(value.expressions) != 1:
            raise NotPortable("list(DISTINCT a, b)")
        value = value.expressions[0]
    fields: list[exp.Expression] = []
    for i, key in enumerate(keys):
        fields += [exp.Literal.string(f"k{i}"), key.this.copy()]
    fields += [exp.Literal.string("v"), value.copy()]
    agg: exp.Expression = exp.Anonymous(
        this="collect_set" if distinct else "collect_list",
        expressions=[exp.Anonymous(this="named_struct", expressions=fields)])
    for wrapper in reversed(chain):
        wrapped = wrapper.copy()
        wrapped.set("this", agg)
        agg = wrapped
    template = _SORTED if keys else _UNSORTED
    cmp = _comparator(keys) if keys else None

    def fill(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column) and n.name == "__list":
            return agg
        if isinstance(n, exp.Column) and n.name == "__cmp":
            return cmp
        return n

    return template.copy().transform(fill)


# --- what Spark does not have ----------------------------------------------------------------

TABLE_FUNCTIONS_DUCKDB = ("read_", "duckdb_", "glob", "parquet_", "pragma_", "sniff_csv")
_READERS = tuple(getattr(exp, n) for n in ("ReadCSV", "ReadParquet", "ReadJSON") if hasattr(exp, n))


def _check_duckdb_tree(tree: exp.Expression, caller: str | None) -> None:
    if isinstance(tree, exp.Transaction | exp.Commit | exp.Rollback):
        raise NotPortable("transaction", caller, "Spark SQL has no transactions")
    if isinstance(tree, exp.Set | exp.Pragma):
        raise NotPortable("SET", caller, "DuckDB settings")
    if isinstance(tree, exp.Describe):
        raise NotPortable("DESCRIBE", caller, "DuckDB's DESCRIBE columns")
    if isinstance(tree, exp.Command):
        raise NotPortable(tree.name.upper() or "command", caller, "not parsed as SQL")
    for node in tree.walk():
        if isinstance(node, exp.Join) and (node.args.get("method") or "").upper() == "ASOF":
            raise NotPortable("ASOF JOIN", caller)
        if isinstance(node, exp.Lateral) and node.find(exp.Values):
            raise NotPortable("LATERAL (VALUES ...)", caller)
        # `* EXCLUDE (..)` is Spark's `* EXCEPT (..)`; Spark has no `* REPLACE` / `* RENAME`
        if isinstance(node, exp.Star) and any(node.args.get(k) for k in ("replace", "rename")):
            raise NotPortable("* REPLACE", caller)
        if isinstance(node, exp.Table) and node.db.lower() in ("information_schema", "pg_catalog"):
            raise NotPortable(f"{node.db}.{node.name}", caller)
        if isinstance(node, exp.Func):
            name = node.name.lower() if isinstance(node, exp.Anonymous) else ""
            if name.startswith(TABLE_FUNCTIONS_DUCKDB):
                raise NotPortable(name, caller, "a DuckDB table function")
        if isinstance(node, _READERS):
            raise NotPortable(type(node).__name__, caller, "a DuckDB reader")


_CALL = re.compile(r"\s*`?([A-Za-z_][A-Za-z0-9_]*)`?\s*\(")


def spark_function_names(tree: exp.Expression) -> set[str]:
    """The names of the functions a Spark tree calls, as Spark will see them."""
    names = set()
    for node in tree.walk():
        if isinstance(node, exp.Anonymous):
            names.add(node.name.lower())
        elif isinstance(node, exp.Cast):
            # CAST / TRY_CAST (x AS type) are Spark syntax (try_cast is not in its function list)
            names.add("cast")
        elif isinstance(node, exp.Func) and not isinstance(node, exp.Connector | exp.Binary):
            m = _CALL.match(node.sql(dialect=Spark))
            if m:
                names.add(m.group(1).lower())
    return names


def _check_spark_tree(tree: exp.Expression, caller: str | None) -> None:
    unknown = sorted(n for n in spark_function_names(tree) if n not in SPARK_FUNCTIONS)
    if unknown:
        raise NotPortable(unknown[0], caller, "Spark has no such function"
                          + (f" (also {', '.join(unknown[1:])})" if len(unknown) > 1 else ""))


def _bottom_up(tree: exp.Expression, rule) -> exp.Expression:
    """Apply `rule` to every node, children before their parent (sqlglot's `transform` does not
    descend into a node it replaced, so a nested match would be missed)."""
    for node in reversed(list(tree.dfs())):
        new = rule(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


# --- the entry points ------------------------------------------------------------------------

def to_spark_tree(sql: str, *, caller: str | None = None,
                  column_types: Mapping[str, str] | None = None,
                  params: Sequence[object] | Mapping[str, object] | None = None
                  ) -> exp.Expression:
    """The rewritten tree of one DuckDB statement, to be written with `.sql(dialect=Spark)`
    (raises NotPortable). `column_types` (column
    name -> DuckDB type) and `params` (the statement's parameter values) tell the types the
    `date - date` rule needs."""
    types = {k.lower(): v for k, v in (column_types or {}).items()}
    text, _ = _name_placeholders(sql)
    try:
        trees = [t for t in sqlglot.parse(text, read=DuckDBAsWritten) if t is not None]
    except sqlglot.errors.SqlglotError as e:
        raise NotPortable("unparsed SQL", caller, str(e).splitlines()[0]) from None
    if len(trees) != 1:
        raise NotPortable(f"{len(trees)} statements", caller, "give one statement at a time")
    tree = trees[0]
    _check_duckdb_tree(tree, caller)
    try:
        tree = _bottom_up(tree, _inline_macros)
        aliases = _statement_aliases(tree, types, spark_args(params))
        tree = _bottom_up(tree, _epoch_rule(types, aliases))
        tree = _bottom_up(tree, _date_sub_rule(types, aliases))
        tree = _bottom_up(tree, _length_rule(types, aliases))
        for rule in (_cte_hint_rule, _json_type_rule, _avg_rule, _quantile_rule, _div_rule,
                     _bracket_rule, _list_rule, _json_path_rule, _zipped_unnest_rule,
                     _window_operand_rule):
            tree = _bottom_up(tree, rule)
    except NotPortable as e:
        raise NotPortable(e.function, caller, e.detail) from None
    # the check reads the Spark text back (what Spark will see); the tree returned is the
    # rewritten one, written as Spark SQL once (a second sqlglot round trip through Spark's
    # parser can change meaning: date_trunc(unit_column, t) becomes date_trunc('UNIT_COLUMN', t))
    _check_spark_tree(sqlglot.parse_one(tree.sql(dialect=Spark), read=Spark), caller)
    return tree


def to_spark(sql: str, *, caller: str | None = None,
             column_types: Mapping[str, str] | None = None,
             params: Sequence[object] | Mapping[str, object] | None = None) -> str:
    """One DuckDB statement as Spark SQL with the same meaning, or NotPortable."""
    return to_spark_tree(sql, caller=caller, column_types=column_types,
                         params=params).sql(dialect=Spark)
