"""Filters on pin fields, applied in the first stage of every backend, so the rescore window fills with pins
that pass.

Two forms, as users write them:

- `field=value` (repeatable): the pin's `field` equals `value`, or, for a list field such as `annotations`, holds
  it. Several on the same field are OR-ed, different fields AND-ed (`--filter board=kitchen --filter
  annotations=red --filter annotations=blue`: kitchen pins with a red or a blue annotation).
- raw query DSL (`--filter-json '{...}'`) for the engines, passed through as a `bool.filter` clause. The local
  backend evaluates the same subset every engine understands identically: `term`, `terms`, `ids`, `exists`,
  `range` (numbers and strings) and `bool` (`must`/`filter`/`should`/`must_not`, `minimum_should_match`);
  anything else there is refused with the clause named. Every backend refuses a raw clause that carries a script
  or a `wrapper` (base64 DSL) at any depth (`code_carrying_key`): a filter is data, never code run on the engine.

Filters only on fields the index maps as keyword (`id`, `board`, `annotations`, and the pin's other keyword fields):
text fields are analyzed, so an exact match on them would differ between the engines and the local oracle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Fields a `field=value` filter may name: the keyword fields of mappings/pins.json.
FILTERABLE_FIELDS = ("id", "board", "annotations", "link")
# A filter is data: a raw clause may not run code on the engine (`script`, `script_score`, a `terms_set`'s
# `minimum_should_match_script`, ...) nor hide a query from this check (`wrapper` holds base64 DSL), at any depth.
HIDDEN_QUERY_KEYS = ("wrapper",)
# Lucene's longest term: no keyword holds a longer value (Elasticsearch refuses a term query for one with a 400).
MAX_TERM_BYTES = 32_766


class FilterError(ValueError):
    """A filter that cannot be applied; the message names the part at fault."""


@dataclass(frozen=True)
class Filters:
    """The filters of one search: `field=value` terms (OR within a field, AND across) and raw DSL clauses."""

    terms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    raw: tuple[dict, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.terms or self.raw)

    @classmethod
    def parse(cls, pairs: Sequence[str] = (), raw_json: Sequence[str] = ()) -> "Filters":
        """From `--filter field=value` strings and `--filter-json` texts."""
        by_field: dict[str, list[str]] = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            name = name.strip()
            if not sep or not name or value == "":
                raise FilterError(f"filter {pair!r}: want field=value (e.g. board=kitchen)")
            if name not in FILTERABLE_FIELDS:
                raise FilterError(f"filter {pair!r}: field {name!r} cannot be filtered on (keyword fields: "
                                  f"{', '.join(FILTERABLE_FIELDS)}; use --filter-json for other clauses)")
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > MAX_TERM_BYTES:
                raise FilterError(f"filter {name}={value[:20]!r}...: a value of {size:,} bytes, longer than any "
                                  f"keyword ({MAX_TERM_BYTES:,} bytes at most): no pin can match it")
            values = by_field.setdefault(name, [])
            if value not in values:
                values.append(value)
        clauses = []
        for text in raw_json:
            try:
                clause = json.loads(text)
            except json.JSONDecodeError as error:
                raise FilterError(f"--filter-json: not valid JSON ({error})") from None
            if not isinstance(clause, dict) or len(clause) != 1:
                raise FilterError("--filter-json: want one query clause, like {\"term\": {\"board\": \"kitchen\"}}")
            refused = code_carrying_key(clause)
            if refused is not None:
                raise FilterError(f"--filter-json: {refused!r} is not allowed in a filter (a filter may not run a "
                                  f"script or hide a query); filter on field values instead")
            clauses.append(clause)
        return cls(tuple((name, tuple(values)) for name, values in by_field.items()), tuple(clauses))

    def clauses(self) -> list[dict]:
        """The `bool.filter` clauses every engine gets (a `terms` per field: OR within it)."""
        found: list[dict] = [{"terms": {name: list(values)}} for name, values in self.terms]
        return found + [json.loads(json.dumps(clause)) for clause in self.raw]

    def matches(self, doc: dict) -> bool:
        """Whether a stored pin passes (the local backend's evaluation of `clauses()`)."""
        return all(evaluate(clause, doc) for clause in self.clauses())

    def to_dict(self) -> dict:
        return {"terms": {name: list(values) for name, values in self.terms}, "raw": list(self.raw)}


NO_FILTERS = Filters()


def is_script_key(key: str) -> bool:
    return key == "script" or key.startswith("script_") or key.endswith("_script")


def code_carrying_key(value: Any) -> str | None:
    """The first key in a DSL clause that carries a script or a hidden query (see HIDDEN_QUERY_KEYS), or None."""
    if isinstance(value, dict):
        for key, item in value.items():
            if is_script_key(key) or key in HIDDEN_QUERY_KEYS:
                return str(key)
            found = code_carrying_key(item)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = code_carrying_key(item)
            if found is not None:
                return found
    return None


def _values(doc: dict, name: str) -> list[Any]:
    """A field's values: a list field as is, a scalar as one value, a missing field as none."""
    value = doc.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _same(stored: Any, wanted: Any) -> bool:
    """Keyword equality as the engines see it: values compare as strings (a number in a keyword field is text)."""
    return str(stored) == str(wanted)


def evaluate(clause: dict, doc: dict) -> bool:
    """One DSL filter clause against a stored pin (the subset the module docstring lists)."""
    if not isinstance(clause, dict) or len(clause) != 1:
        raise FilterError(f"filter clause {json.dumps(clause)}: want exactly one clause type")
    (kind, body), = clause.items()
    handler = _CLAUSES.get(kind)
    if handler is None:
        raise FilterError(f"filter clause {kind!r} is not supported by the local backend (it evaluates "
                          f"{', '.join(sorted(_CLAUSES))})")
    if not isinstance(body, dict):
        raise FilterError(f"filter clause {kind!r}: its body must be an object")
    return handler(body, doc)


def _field_and_spec(kind: str, body: dict) -> tuple[str, Any]:
    names = [key for key in body if key != "boost"]
    if len(names) != 1:
        raise FilterError(f"filter clause {kind!r}: want one field, got {names}")
    return names[0], body[names[0]]


def _term(body: dict, doc: dict) -> bool:
    name, spec = _field_and_spec("term", body)
    wanted = spec.get("value") if isinstance(spec, dict) else spec
    if name == "_id":
        name = "id"
    return any(_same(value, wanted) for value in _values(doc, name))


def _terms(body: dict, doc: dict) -> bool:
    name, wanted = _field_and_spec("terms", body)
    if not isinstance(wanted, list):
        raise FilterError("filter clause 'terms': want a list of values")
    if name == "_id":
        name = "id"
    return any(_same(value, choice) for value in _values(doc, name) for choice in wanted)


def _ids(body: dict, doc: dict) -> bool:
    values = body.get("values", [])
    if not isinstance(values, list):
        raise FilterError("filter clause 'ids': want {\"values\": [ID, ...]}")
    return str(doc.get("id")) in {str(value) for value in values}


def _exists(body: dict, doc: dict) -> bool:
    name = body.get("field")
    if not isinstance(name, str):
        raise FilterError("filter clause 'exists': want {\"field\": NAME}")
    return any(value not in ("", None) for value in _values(doc, name)) or (
        isinstance(doc.get(name), (int, float)) and not isinstance(doc.get(name), bool))


def _range(body: dict, doc: dict) -> bool:
    name, spec = _field_and_spec("range", body)
    if not isinstance(spec, dict):
        raise FilterError("filter clause 'range': want {FIELD: {gte|gt|lte|lt: VALUE}}")
    checks = {"gte": lambda a, b: a >= b, "gt": lambda a, b: a > b, "lte": lambda a, b: a <= b,
              "lt": lambda a, b: a < b}
    unknown = [key for key in spec if key not in checks and key not in ("boost", "format")]
    if unknown:
        raise FilterError(f"filter clause 'range': unsupported keys {unknown}")

    def passes(value: Any) -> bool:
        for key, check in checks.items():
            if key in spec:
                bound = spec[key]
                if isinstance(bound, (int, float)) and not isinstance(value, (int, float)):
                    try:
                        value = float(value)
                    except (TypeError, ValueError):
                        return False
                elif not isinstance(bound, (int, float)):
                    value, bound = str(value), str(bound)
                if not check(value, bound):
                    return False
        return True

    return any(passes(value) for value in _values(doc, name))


def _bool(body: dict, doc: dict) -> bool:
    def listed(key: str) -> list[dict]:
        clauses = body.get(key, [])
        if not isinstance(clauses, (dict, list)):
            raise FilterError(f"filter clause 'bool': {key!r} must be a clause or a list of clauses")
        return [clauses] if isinstance(clauses, dict) else clauses

    unknown = [key for key in body if key not in ("must", "filter", "should", "must_not", "minimum_should_match",
                                                  "boost")]
    if unknown:
        raise FilterError(f"filter clause 'bool': unsupported keys {unknown}")
    required = listed("must") + listed("filter")
    if not all(evaluate(clause, doc) for clause in required):
        return False
    if any(evaluate(clause, doc) for clause in listed("must_not")):
        return False
    should = listed("should")
    if not should:
        return True
    # As Lucene: with no must/filter clause, at least one should must match; with one, should is optional
    # unless minimum_should_match says otherwise.
    minimum = _whole_number(body.get("minimum_should_match", 0 if required else 1))
    return sum(evaluate(clause, doc) for clause in should) >= minimum


def _whole_number(value: Any) -> int:
    """A bool's minimum_should_match as the local backend takes it: a whole number (the engines' percentages and
    combinations are theirs alone)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdecimal():
        return int(value)
    raise FilterError(f"filter clause 'bool': the local backend takes a whole number as minimum_should_match, "
                      f"got {value!r}")


_CLAUSES = {"term": _term, "terms": _terms, "ids": _ids, "exists": _exists, "range": _range, "bool": _bool}
