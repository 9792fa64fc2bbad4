"""Consent: parsing user input and deciding which events may be synchronised."""

from __future__ import annotations

import itertools

import pytest

from shared.core.consent import SENSITIVITY_VALUES, SHOW_AS_VALUES, Consent, ConsentError

# Written out by hand from Graph's documentation (not imported), so a typo in the module shows up.
GRAPH_SHOW_AS = ["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]
GRAPH_SENSITIVITY = ["normal", "personal", "private", "confidential"]


def test_value_lists_match_graph_spelling_and_order() -> None:
    assert list(SHOW_AS_VALUES) == GRAPH_SHOW_AS
    assert list(SENSITIVITY_VALUES) == GRAPH_SENSITIVITY


def test_parse_comma_separated_with_spaces() -> None:
    consent = Consent.parse(True, " busy, tentative ,oof", "normal, personal")
    assert consent.enabled is True
    assert consent.show_as == frozenset({"busy", "tentative", "oof"})
    assert consent.sensitivities == frozenset({"normal", "personal"})


def test_parse_lists_and_tuples() -> None:
    consent = Consent.parse(False, ["free", "workingElsewhere"], ("private",))
    assert consent.enabled is False
    assert consent.show_as == frozenset({"free", "workingElsewhere"})
    assert consent.sensitivities == frozenset({"private"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BUSY", "busy"),
        ("Busy", "busy"),
        ("workingelsewhere", "workingElsewhere"),
        ("WORKINGELSEWHERE", "workingElsewhere"),
        ("OoF", "oof"),
        ("Unknown", "unknown"),
    ],
)
def test_show_as_casing_normalised_to_graph_spelling(raw: str, expected: str) -> None:
    assert Consent.parse(True, raw, "normal").show_as == frozenset({expected})


@pytest.mark.parametrize(("raw", "expected"), [("CONFIDENTIAL", "confidential"), ("Personal", "personal")])
def test_sensitivity_casing_normalised(raw: str, expected: str) -> None:
    assert Consent.parse(True, "busy", raw).sensitivities == frozenset({expected})


def test_empty_items_and_duplicates_ignored() -> None:
    consent = Consent.parse(True, "busy,,BUSY, ,busy", "")
    assert consent.show_as == frozenset({"busy"})
    assert consent.sensitivities == frozenset()


def test_enabled_coerced_to_bool() -> None:
    assert Consent.parse(1, "", "").enabled is True  # type: ignore[arg-type]
    assert Consent.parse(0, "", "").enabled is False  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["busy,maybe", ["busy", "away"], "workingelsewhere2", "busy;tentative"])
def test_unknown_show_as_value_lists_all_allowed(bad: str | list[str]) -> None:
    with pytest.raises(ConsentError) as caught:
        Consent.parse(True, bad, "normal")
    message = str(caught.value)
    for value in GRAPH_SHOW_AS:
        assert value in message


def test_unknown_sensitivity_value_lists_all_allowed() -> None:
    with pytest.raises(ConsentError) as caught:
        Consent.parse(True, "busy", "normal,secret")
    message = str(caught.value)
    assert "secret" in message
    for value in GRAPH_SENSITIVITY:
        assert value in message


def test_non_string_list_item_is_a_consent_error() -> None:
    with pytest.raises(ConsentError) as caught:
        Consent.parse(True, ["busy", 3], "normal")  # type: ignore[list-item]
    for value in GRAPH_SHOW_AS:
        assert value in str(caught.value)


def test_consent_error_is_a_value_error() -> None:
    assert issubclass(ConsentError, ValueError)


CONSENTED_SHOW_AS = frozenset({"tentative", "busy"})
CONSENTED_SENSITIVITY = frozenset({"normal", "personal"})
ALL_PAIRS = list(itertools.product(GRAPH_SHOW_AS, GRAPH_SENSITIVITY))


@pytest.mark.parametrize(("show_as", "sensitivity"), ALL_PAIRS)
def test_refusal_table(show_as: str, sensitivity: str) -> None:
    consent = Consent(True, CONSENTED_SHOW_AS, CONSENTED_SENSITIVITY)
    if show_as not in CONSENTED_SHOW_AS:
        expected = "show-as-not-consented"
    elif sensitivity not in CONSENTED_SENSITIVITY:
        expected = "sensitivity-not-consented"
    else:
        expected = None
    assert consent.refusal(show_as, sensitivity) == expected


@pytest.mark.parametrize("show_as", GRAPH_SHOW_AS)
@pytest.mark.parametrize("consented", [True, False])
def test_refusal_per_show_as_value(show_as: str, consented: bool) -> None:
    allowed = {show_as} if consented else set(GRAPH_SHOW_AS) - {show_as}
    consent = Consent(True, frozenset(allowed), frozenset(GRAPH_SENSITIVITY))
    assert consent.refusal(show_as, "normal") == (None if consented else "show-as-not-consented")


@pytest.mark.parametrize("sensitivity", GRAPH_SENSITIVITY)
@pytest.mark.parametrize("consented", [True, False])
def test_refusal_per_sensitivity_value(sensitivity: str, consented: bool) -> None:
    allowed = {sensitivity} if consented else set(GRAPH_SENSITIVITY) - {sensitivity}
    consent = Consent(True, frozenset(GRAPH_SHOW_AS), frozenset(allowed))
    assert consent.refusal("busy", sensitivity) == (None if consented else "sensitivity-not-consented")


@pytest.mark.parametrize(("show_as", "sensitivity"), ALL_PAIRS)
def test_disabled_refuses_everything(show_as: str, sensitivity: str) -> None:
    consent = Consent(False, frozenset(GRAPH_SHOW_AS), frozenset(GRAPH_SENSITIVITY))
    assert consent.refusal(show_as, sensitivity) == "mailbox-disabled"


def test_refusal_is_case_sensitive_on_event_values() -> None:
    # Graph always sends its own spelling; anything else is not a consented value.
    consent = Consent(True, frozenset({"busy"}), frozenset({"normal"}))
    assert consent.refusal("BUSY", "normal") == "show-as-not-consented"


def test_as_csv_in_graph_order_regardless_of_input_order() -> None:
    consent = Consent.parse(True, "unknown,free,OOF,busy", "confidential,normal")
    assert consent.as_csv() == ("free,busy,oof,unknown", "normal,confidential")


def test_as_csv_all_and_none() -> None:
    everything = Consent.parse(True, list(reversed(GRAPH_SHOW_AS)), list(reversed(GRAPH_SENSITIVITY)))
    assert everything.as_csv() == (",".join(GRAPH_SHOW_AS), ",".join(GRAPH_SENSITIVITY))
    assert Consent.parse(True, "", "").as_csv() == ("", "")


def test_as_csv_round_trips_through_parse() -> None:
    original = Consent.parse(True, "workingElsewhere,tentative", "private,personal")
    show_as, sensitivity = original.as_csv()
    assert Consent.parse(True, show_as, sensitivity) == original
