"""Rules: which planner appointments reach Outlook, and how they look there. Pure, no I/O.

Dime.Scheduler's own Exchange connector has a rule engine since 2022.2.0 (docs.dimescheduler.com,
Exchange connector, "Rule Engine"): expressions over the category name, the time marker name and
task fields decide whether an appointment reaches the calendars ("temporary appointments or
placeholders … add no value and should stay out"). Ours is data, not code: an ordered list of
rules, each a condition and an outcome, read from JSON into frozen values and evaluated without
`eval`. The first rule whose condition holds wins; with no match the behaviour is the default
(place the event as today).

A rule, as stored and as the management API takes it:

    {"name": "Sick days are out of office",
     "when": {"any": [{"field": "category", "op": "equals", "value": "SICK"},
                      {"field": "timeMarker", "op": "in", "value": ["ABSENT", "HOLIDAY"]}]},
     "then": {"action": "place", "showAs": "oof", "sensitivity": "private",
              "categories": ["Absence"], "subject": "{Subject} · {JobNo}", "reminder": false}}

Conditions: `{"field", "op", "value"}`, or groups `{"all": [...]}`, `{"any": [...]}`, `{"not": {...}}`;
an absent `when` always holds. Fields are named in `FIELDS`; `field:<name>` reads a free field
(`AppointmentFieldValues`, task fields). Text compares case-insensitively, as planners type
category names in any case. On a missing field every operator is false except `isEmpty` (true):
a rule never matches by accident on a value the payload did not carry.

Evaluation is per (appointment, resource), so a rule may single out a resource number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_RULES = 200
MAX_DEPTH = 8  # nested groups; deeper is refused (a rule is read by people)
MAX_CONDITIONS = 100  # per rule

FIELDS: dict[str, str] = {
    "sourceApp": "text",
    "jobNo": "text",
    "taskNo": "text",
    "appointmentNo": "text",
    "category": "text",
    "timeMarker": "text",
    "subject": "text",
    "importance": "number",  # Dime.Scheduler: 0 normal, 1 high, 2 low
    "resourceNo": "text",
    "duration": "duration",  # minutes
}
FREE_FIELD_PREFIX = "field:"

OPERATORS: dict[str, frozenset[str]] = {
    "equals": frozenset({"text", "number", "duration", "free"}),
    "notEquals": frozenset({"text", "number", "duration", "free"}),
    "in": frozenset({"text", "number", "duration", "free"}),
    "startsWith": frozenset({"text", "free"}),
    "contains": frozenset({"text", "free"}),
    "isEmpty": frozenset({"text", "number", "duration", "free"}),
    "greaterThan": frozenset({"number", "duration", "free"}),
    "lessThan": frozenset({"number", "duration", "free"}),
}

SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere")
SENSITIVITIES = ("normal", "personal", "private", "confidential")
ACTIONS = ("place", "skip")

TEMPLATE_NAMES = {
    "Subject": "subject",
    "JobNo": "jobNo",
    "TaskNo": "taskNo",
    "AppointmentNo": "appointmentNo",
    "Category": "category",
    "TimeMarker": "timeMarker",
    "ResourceNo": "resourceNo",
    "SourceApp": "sourceApp",
}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*$", re.IGNORECASE)
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$", re.IGNORECASE)


class RuleError(ValueError):
    """A rule that cannot be read; the message names where (`rules[2].when.any[0].op`)."""


# Values -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any  # normalised: casefolded text, float, or a tuple of those for `in`
    typed: Any = None  # as the administrator wrote it (shown and saved)

    def holds(self, facts: Mapping[str, Any]) -> bool:
        kind = _kind(self.field)
        have = _fact(facts, self.field)
        if self.op == "isEmpty":
            return have is None
        if have is None:
            return False
        if self.op in ("greaterThan", "lessThan"):
            number = _as_number(have, kind)
            if number is None:
                return False
            return number > self.value if self.op == "greaterThan" else number < self.value
        if self.op in ("startsWith", "contains"):
            text = _as_text(have)
            return text.startswith(self.value) if self.op == "startsWith" else self.value in text
        wanted = self.value if self.op == "in" else (self.value,)
        found = any(_same(have, kind, w) for w in wanted)
        return not found if self.op == "notEquals" else found


@dataclass(frozen=True)
class Group:
    mode: str  # "all" | "any" | "not"
    parts: tuple[Condition | Group, ...]

    def holds(self, facts: Mapping[str, Any]) -> bool:
        if self.mode == "all":
            return all(p.holds(facts) for p in self.parts)
        if self.mode == "any":
            return any(p.holds(facts) for p in self.parts)
        return not self.parts[0].holds(facts)


@dataclass(frozen=True)
class Outcome:
    action: str  # "place" | "skip"
    show_as: str | None = None
    sensitivity: str | None = None
    categories: tuple[str, ...] | None = None
    subject: str | None = None  # template
    body: str | None = None  # template
    reminder: bool | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    when: Condition | Group | None
    then: Outcome
    enabled: bool = True

    def matches(self, facts: Mapping[str, Any]) -> bool:
        return self.enabled and (self.when is None or self.when.holds(facts))


@dataclass(frozen=True)
class Verdict:
    """What the rules say of one (appointment, resource): the outcome and the rule that chose it."""

    outcome: Outcome
    rule: str | None = None  # None: no rule matched, today's behaviour

    @property
    def skipped(self) -> bool:
        return self.outcome.action == "skip"


DEFAULT = Verdict(Outcome("place"))


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def evaluate(self, facts: Mapping[str, Any]) -> Verdict:
        """The first enabled rule whose condition holds, else the default."""
        for rule in self.rules:
            if rule.matches(facts):
                return Verdict(rule.then, rule.name)
        return DEFAULT


# Reading rules from JSON --------------------------------------------------------------------------


def read_rules(document: Any) -> RuleSet:
    """A JSON list of rules (or `{"rules": [...]}`) → a RuleSet; RuleError names what is wrong."""
    if isinstance(document, Mapping) and set(document) == {"rules"}:
        document = document["rules"]
    if not isinstance(document, list):
        raise RuleError("rules: expected a list of rules")
    if len(document) > MAX_RULES:
        raise RuleError(f"rules: at most {MAX_RULES} rules")
    rules = tuple(_rule(item, f"rules[{n}]") for n, item in enumerate(document))
    names = [r.name.casefold() for r in rules]
    for n, name in enumerate(names):
        if name in names[:n]:
            raise RuleError(f"rules[{n}].name: {rules[n].name!r} is used twice; names identify rules in reports")
    return RuleSet(rules)


def write_rules(rules: RuleSet) -> list[dict[str, Any]]:
    """The JSON form of a RuleSet (what `read_rules` reads back to an equal RuleSet)."""
    return [_rule_json(r) for r in rules.rules]


def _rule(item: Any, where: str) -> Rule:
    doc = _object(item, where, {"name", "when", "then", "enabled"})
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise RuleError(f"{where}.name: a name of 1 to 100 characters is required")
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"{where}.enabled: true or false")
    when = None if doc.get("when") is None else _condition(doc["when"], f"{where}.when", 1, [0])
    if "then" not in doc:
        raise RuleError(f"{where}.then: an outcome is required ({{'action': 'place'}} or {{'action': 'skip'}})")
    return Rule(name.strip(), when, _outcome(doc["then"], f"{where}.then"), enabled)


def _condition(item: Any, where: str, depth: int, count: list[int]) -> Condition | Group:
    count[0] += 1
    if count[0] > MAX_CONDITIONS:
        raise RuleError(f"{where}: at most {MAX_CONDITIONS} conditions in one rule")
    if depth > MAX_DEPTH:
        raise RuleError(f"{where}: groups nest at most {MAX_DEPTH} deep")
    if not isinstance(item, Mapping):
        raise RuleError(f"{where}: expected a condition object")
    groups = [k for k in ("all", "any", "not") if k in item]
    if groups:
        if len(item) != 1:
            raise RuleError(f"{where}: a group has exactly one of 'all', 'any' or 'not', and nothing else")
        mode = groups[0]
        if mode == "not":
            return Group("not", (_condition(item["not"], f"{where}.not", depth + 1, count),))
        parts = item[mode]
        if not isinstance(parts, list) or not parts:
            raise RuleError(f"{where}.{mode}: a non-empty list of conditions")
        return Group(mode, tuple(_condition(p, f"{where}.{mode}[{n}]", depth + 1, count) for n, p in enumerate(parts)))
    doc = _object(item, where, {"field", "op", "value"})
    name = doc.get("field")
    if not isinstance(name, str) or not _known_field(name):
        known = ", ".join([*FIELDS, FREE_FIELD_PREFIX + "<name>"])
        raise RuleError(f"{where}.field: {str(name)[:40]!r} is not a field; use one of {known}")
    kind = _kind(name)
    op = doc.get("op")
    if op not in OPERATORS:
        raise RuleError(f"{where}.op: {str(op)[:40]!r} is not an operator; use one of {', '.join(OPERATORS)}")
    if kind not in OPERATORS[op]:
        raise RuleError(f"{where}.op: {op!r} does not apply to {name} (a {kind})")
    if op == "isEmpty":
        if doc.get("value") not in (None, True):
            raise RuleError(f"{where}.value: isEmpty takes no value")
        return Condition(name, op, None)
    if "value" not in doc:
        raise RuleError(f"{where}.value: {op!r} needs a value")
    value = doc["value"]
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > 100:
            raise RuleError(f"{where}.value: 'in' takes a list of 1 to 100 values")
        values = tuple(_operand(v, kind, op, f"{where}.value[{n}]") for n, v in enumerate(value))
        return Condition(name, op, values, tuple(value))
    return Condition(name, op, _operand(value, kind, op, f"{where}.value"), value)


def _operand(value: Any, kind: str, op: str, where: str) -> Any:
    numeric = op in ("greaterThan", "lessThan") or kind in ("number", "duration")
    if numeric:
        number = _as_number(value, "duration" if kind == "duration" else "number")
        if number is None:
            expected = "minutes or a duration such as '2h', '90m', 'PT1H30M'" if kind == "duration" else "a number"
            raise RuleError(f"{where}: {str(value)[:40]!r} is not {expected}")
        return number
    if not isinstance(value, str | int | float):  # a bool is an int: a task flag compares as true/false
        raise RuleError(f"{where}: expected text")
    if len(str(value)) > 255:
        raise RuleError(f"{where}: at most 255 characters")
    return _as_text(value)


def _outcome(item: Any, where: str) -> Outcome:
    doc = _object(item, where, {"action", "showAs", "sensitivity", "categories", "subject", "body", "reminder"})
    action = doc.get("action")
    if action not in ACTIONS:
        raise RuleError(f"{where}.action: 'place' or 'skip', not {str(action)[:40]!r}")
    if action == "skip":
        extra = sorted(set(doc) - {"action"})
        if extra:
            raise RuleError(f"{where}: a skipped appointment has no look; remove {', '.join(extra)}")
        return Outcome("skip")
    show_as = _choice(doc.get("showAs"), SHOW_AS, f"{where}.showAs")
    sensitivity = _choice(doc.get("sensitivity"), SENSITIVITIES, f"{where}.sensitivity")
    categories = doc.get("categories")
    if categories is not None:
        if not isinstance(categories, list) or len(categories) > 25:
            raise RuleError(f"{where}.categories: a list of at most 25 names")
        for n, c in enumerate(categories):
            if not isinstance(c, str) or not c.strip() or len(c) > 255:
                raise RuleError(f"{where}.categories[{n}]: a name of 1 to 255 characters")
        categories = tuple(c.strip() for c in categories)
    subject = _template(doc.get("subject"), f"{where}.subject", 255)
    body = _template(doc.get("body"), f"{where}.body", 10_000)
    reminder = doc.get("reminder")
    if reminder is not None and not isinstance(reminder, bool):
        raise RuleError(f"{where}.reminder: true or false")
    return Outcome("place", show_as, sensitivity, categories, subject, body, reminder)


def _choice(value: Any, allowed: Sequence[str], where: str) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise RuleError(f"{where}: one of {', '.join(allowed)}, not {str(value)[:40]!r}")
    return str(value)


def _template(value: Any, where: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise RuleError(f"{where}: text of at most {limit} characters")
    for match in _PLACEHOLDER.finditer(value):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise RuleError(f"{where}: a lone {token!r}; write {token * 2!r} for the character itself")
        if name not in TEMPLATE_NAMES and not (name.startswith(FREE_FIELD_PREFIX) and name[len(FREE_FIELD_PREFIX) :]):
            names = ", ".join("{" + n + "}" for n in TEMPLATE_NAMES)
            raise RuleError(f"{where}: unknown field {{{name[:40]}}}; use {names} or {{field:<name>}}")
    return value


def _object(item: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise RuleError(f"{where}: expected an object")
    unknown = sorted(str(k) for k in item if k not in allowed)
    if unknown:
        raise RuleError(f"{where}: unknown key {unknown[0][:40]!r}; allowed: {', '.join(sorted(allowed))}")
    return item


def _rule_json(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"name": rule.name}
    if not rule.enabled:
        out["enabled"] = False
    if rule.when is not None:
        out["when"] = _condition_json(rule.when)
    then: dict[str, Any] = {"action": rule.then.action}
    for key, value in (
        ("showAs", rule.then.show_as),
        ("sensitivity", rule.then.sensitivity),
        ("categories", list(rule.then.categories) if rule.then.categories is not None else None),
        ("subject", rule.then.subject),
        ("body", rule.then.body),
        ("reminder", rule.then.reminder),
    ):
        if value is not None:
            then[key] = value
    out["then"] = then
    return out


def _condition_json(part: Condition | Group) -> dict[str, Any]:
    if isinstance(part, Group):
        if part.mode == "not":
            return {"not": _condition_json(part.parts[0])}
        return {part.mode: [_condition_json(p) for p in part.parts]}
    if part.op == "isEmpty":
        return {"field": part.field, "op": part.op}
    value = list(part.typed) if isinstance(part.typed, tuple) else part.typed
    return {"field": part.field, "op": part.op, "value": value}


# Facts and templates --------------------------------------------------------------------------------


def render(template: str, facts: Mapping[str, Any]) -> str:
    """`{Subject} · {JobNo}` with the appointment's values; a missing value renders empty.

    Substitution by name only (no attribute or index access, unlike `str.format`), so a template
    can never reach into the program."""

    def value(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name is None:
            return token
        key = TEMPLATE_NAMES.get(name, name)
        found = _fact(facts, key)
        return "" if found is None else str(found)

    return _PLACEHOLDER.sub(value, template).strip()


def _known_field(name: str) -> bool:
    return name in FIELDS or (name.startswith(FREE_FIELD_PREFIX) and len(name) > len(FREE_FIELD_PREFIX))


def _kind(name: str) -> str:
    return FIELDS.get(name, "free")


def _fact(facts: Mapping[str, Any], name: str) -> Any:
    """A fact by field name; free fields case-insensitively; "" and [] count as missing."""
    if name.startswith(FREE_FIELD_PREFIX):
        wanted = name[len(FREE_FIELD_PREFIX) :].casefold()
        free = facts.get("fields") or {}
        value = next((v for k, v in free.items() if str(k).casefold() == wanted), None)
    else:
        value = facts.get(name)
    if value is None or (isinstance(value, str) and not value.strip()) or value == []:
        return None
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().casefold()


def _as_number(value: Any, kind: str) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if kind not in ("duration", "free"):
        return None
    iso = _ISO_DURATION.match(text)
    if iso and any(iso.groups()):
        days, hours, minutes, seconds = (float(g or 0) for g in iso.groups())
        return days * 1440 + hours * 60 + minutes + seconds / 60
    short = _DURATION.match(text)
    if short and any(short.groups()):
        return float(short.group(1) or 0) * 60 + float(short.group(2) or 0)
    return None


def _same(have: Any, kind: str, wanted: Any) -> bool:
    if isinstance(wanted, float):
        number = _as_number(have, kind)
        return number is not None and number == wanted
    return _as_text(have) == wanted
