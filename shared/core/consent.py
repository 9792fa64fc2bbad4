"""Each person's consent: which of their Outlook events may reach the planning board."""

from __future__ import annotations

from dataclasses import dataclass

# As Graph spells them (event.showAs / event.sensitivity).
SHOW_AS_VALUES = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
SENSITIVITY_VALUES = ("normal", "personal", "private", "confidential")


class ConsentError(ValueError):
    """An invalid consent value; the message lists the allowed values."""


def _parse_values(kind: str, raw: str | list[str] | tuple[str, ...], allowed: tuple[str, ...]) -> frozenset[str]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    by_lower = {value.lower(): value for value in allowed}
    parsed = set()
    for item in items:
        if not isinstance(item, str):
            raise ConsentError(f"{kind} values must be strings; allowed: {', '.join(allowed)}")
        item = item.strip()
        if not item:
            continue
        if item.lower() not in by_lower:
            raise ConsentError(f"unknown {kind} value {item!r}; allowed: {', '.join(allowed)}")
        parsed.add(by_lower[item.lower()])
    return frozenset(parsed)


@dataclass(frozen=True)
class Consent:
    enabled: bool
    show_as: frozenset[str]
    sensitivities: frozenset[str]

    @classmethod
    def parse(
        cls,
        enabled: bool,
        show_as: str | list[str] | tuple[str, ...],
        sensitivities: str | list[str] | tuple[str, ...],
    ) -> Consent:
        """Build from user input (comma-separated or lists, any casing); raise ConsentError."""
        return cls(
            enabled=bool(enabled),
            show_as=_parse_values("show-as", show_as, SHOW_AS_VALUES),
            sensitivities=_parse_values("sensitivity", sensitivities, SENSITIVITY_VALUES),
        )

    def refusal(self, show_as: str, sensitivity: str) -> str | None:
        """Why an event with these values may not be synchronised, or None when it may."""
        if not self.enabled:
            return "mailbox-disabled"
        if show_as not in self.show_as:
            return "show-as-not-consented"
        if sensitivity not in self.sensitivities:
            return "sensitivity-not-consented"
        return None

    def as_csv(self) -> tuple[str, str]:
        """Stable text forms for storage (sorted in Graph's order)."""
        return (
            ",".join(v for v in SHOW_AS_VALUES if v in self.show_as),
            ",".join(v for v in SENSITIVITY_VALUES if v in self.sensitivities),
        )
