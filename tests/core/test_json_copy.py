from decimal import Decimal
from typing import Any

from core.json_copy import json_copy


def test_a_copy_shares_no_dict_or_list_with_the_original() -> None:
    original: dict[str, Any] = {
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "value": [1, 2.5, None],
    }
    copied = json_copy(original)
    assert copied == original
    copied["code"]["coding"][0]["code"] = "changed"
    copied["code"]["coding"].append({})
    copied["value"].append(True)
    assert original == {
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "value": [1, 2.5, None],
    }


def test_values_that_are_not_plain_json_are_deep_copied() -> None:
    tags = {"a"}
    original: dict[str, Any] = {"tags": tags, "amount": Decimal("1.50"), "pair": (1, [2])}
    copied = json_copy(original)
    assert copied == original
    assert copied["tags"] is not tags
    copied["pair"][1].append(3)
    assert original["pair"] == (1, [2])
