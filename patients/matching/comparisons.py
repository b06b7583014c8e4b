"""The Fellegi-Sunter comparisons, written once for both engines.

Each comparison level has a SQL condition (what Splink evaluates in DuckDB for training and bulk
re-linking) and a Python predicate (what online matching evaluates for one new record). Both read the same
stored features (see ``features``); ``tests/patients/test_matching_scoring.py`` checks on real pairs that
the two always pick the same level, so that batch and online decisions agree.

Levels are tried in order; the first that holds is the outcome. The first level of every comparison is
its null level (a value is missing: no evidence either way), the last its "else" level.
"""

from collections.abc import Callable
from dataclasses import dataclass

import jellyfish

from patients.matching.features import Features

Predicate = Callable[[Features, Features], bool]


@dataclass(frozen=True)
class Level:
    label: str
    sql: str
    test: Predicate
    is_null: bool = False
    # Exact-match levels on names are adjusted by how common the value is (a rare surname counts more).
    tf_column: str = ""


@dataclass(frozen=True)
class Comparison:
    name: str
    description: str
    levels: tuple[Level, ...]

    def level_of(self, left: Features, right: Features) -> int:
        """Index of the first level that holds for this pair."""
        for index, level in enumerate(self.levels):
            if level.test(left, right):
                return index
        return len(self.levels) - 1


def _missing(*names: str) -> Predicate:
    return lambda a, b: any(not a[name] or not b[name] for name in names)


def _null_sql(*names: str) -> str:
    return " OR ".join(f"{name}_l IS NULL OR {name}_r IS NULL" for name in names)


def _equal(name: str) -> Predicate:
    return lambda a, b: a[name] == b[name]


def _share(name: str) -> Predicate:
    return lambda a, b: bool(set(a[name]) & set(b[name]))


def _jaro_winkler(name: str, threshold: float) -> Predicate:
    return lambda a, b: jellyfish.jaro_winkler_similarity(a[name], b[name]) >= threshold


def _edits_at_most(name: str, edits: int) -> Predicate:
    return lambda a, b: jellyfish.damerau_levenshtein_distance(a[name], b[name]) <= edits


def _always(a: Features, b: Features) -> bool:
    return True


def _else() -> Level:
    return Level("different", "ELSE", _always)


def _names_swapped(a: Features, b: Features) -> bool:
    return bool(a["given"]) and a["family"] == b["given"] and a["given"] == b["family"]


# Swapped with a typo on either side: "Huxley Claudia" for "Claudia Huxlee". A first name is rarely this
# close to somebody else's family name, so twins and siblings (different first names) never get here.
SWAPPED_NAMES_SIMILARITY = 0.88


def _names_swapped_close(a: Features, b: Features) -> bool:
    return (
        bool(a["given"])
        and bool(b["given"])
        and jellyfish.jaro_winkler_similarity(a["family"], b["given"]) >= SWAPPED_NAMES_SIMILARITY
        and jellyfish.jaro_winkler_similarity(a["given"], b["family"]) >= SWAPPED_NAMES_SIMILARITY
    )


def _given_is_other_given(a: Features, b: Features) -> bool:
    """One record's first name is the other's middle name (a person known by their middle name)."""
    return a["given"] in b["given_others"] or b["given"] in a["given_others"]


def _same_street_address(a: Features, b: Features) -> bool:
    if not a["street"] or a["street"] != b["street"]:
        return False
    return a["postal_code"] == b["postal_code"] or not a["postal_code"] or not b["postal_code"]


def _similar_street_same_postal_code(a: Features, b: Features) -> bool:
    return (
        bool(a["street"])
        and bool(b["street"])
        and bool(a["postal_code"])
        and a["postal_code"] == b["postal_code"]
        and jellyfish.jaro_winkler_similarity(a["street"], b["street"]) >= 0.88
    )


def _no_address(a: Features, b: Features) -> bool:
    return (not a["street"] and not a["postal_code"]) or (not b["street"] and not b["postal_code"])


def _no_shared_identifier_system(a: Features, b: Features) -> bool:
    return not set(a["identifier_systems"]) & set(b["identifier_systems"])


COMPARISONS: tuple[Comparison, ...] = (
    Comparison(
        "given_name",
        "First given name",
        (
            Level("missing", _null_sql("given"), _missing("given"), is_null=True),
            Level("exact", "given_l = given_r", _equal("given"), tf_column="given"),
            Level("nickname", "list_has_any(given_groups_l, given_groups_r)", _share("given_groups")),
            Level(
                "jaro-winkler >= 0.92",
                "jaro_winkler_similarity(given_l, given_r) >= 0.92",
                _jaro_winkler("given", 0.92),
            ),
            Level(
                "one character different",
                "damerau_levenshtein(given_l, given_r) <= 1",
                _edits_at_most("given", 1),
            ),
            Level(
                "first name is the other's middle name",
                "list_contains(given_others_r, given_l) OR list_contains(given_others_l, given_r)",
                _given_is_other_given,
            ),
            Level(
                "jaro-winkler >= 0.80",
                "jaro_winkler_similarity(given_l, given_r) >= 0.80",
                _jaro_winkler("given", 0.80),
            ),
            _else(),
        ),
    ),
    Comparison(
        "family_name",
        "Family name",
        (
            Level("missing", _null_sql("family"), _missing("family"), is_null=True),
            Level("exact", "family_l = family_r", _equal("family"), tf_column="family"),
            Level(
                "shares a name part",
                "list_has_any(family_tokens_l, family_tokens_r)",
                _share("family_tokens"),
            ),
            Level(
                "jaro-winkler >= 0.92",
                "jaro_winkler_similarity(family_l, family_r) >= 0.92",
                _jaro_winkler("family", 0.92),
            ),
            Level(
                "one character different",
                "damerau_levenshtein(family_l, family_r) <= 1",
                _edits_at_most("family", 1),
            ),
            Level(
                "given and family names swapped",
                "family_l = given_r AND given_l = family_r",
                _names_swapped,
            ),
            Level(
                "given and family names swapped, with typos",
                f"jaro_winkler_similarity(family_l, given_r) >= {SWAPPED_NAMES_SIMILARITY} "
                f"AND jaro_winkler_similarity(given_l, family_r) >= {SWAPPED_NAMES_SIMILARITY}",
                _names_swapped_close,
            ),
            Level(
                "jaro-winkler >= 0.80",
                "jaro_winkler_similarity(family_l, family_r) >= 0.80",
                _jaro_winkler("family", 0.80),
            ),
            _else(),
        ),
    ),
    Comparison(
        "birth_date",
        "Birth date",
        (
            Level("missing", _null_sql("birth_date"), _missing("birth_date"), is_null=True),
            Level("exact", "birth_date_l = birth_date_r", _equal("birth_date")),
            Level(
                "one digit wrong or two swapped",
                "damerau_levenshtein(birth_date_l, birth_date_r) <= 1",
                _edits_at_most("birth_date", 1),
            ),
            Level(
                "day and month swapped",
                "birth_date_sorted_l = birth_date_sorted_r",
                _equal("birth_date_sorted"),
            ),
            Level(
                "two digits wrong",
                "damerau_levenshtein(birth_date_l, birth_date_r) <= 2",
                _edits_at_most("birth_date", 2),
            ),
            _else(),
        ),
    ),
    Comparison(
        "sex",
        "Administrative sex",
        (
            Level("missing", _null_sql("sex"), _missing("sex"), is_null=True),
            Level("exact", "sex_l = sex_r", _equal("sex")),
            _else(),
        ),
    ),
    Comparison(
        "phone",
        "Phone numbers",
        (
            Level("missing", _null_sql("phones"), _missing("phones"), is_null=True),
            Level("shares a number", "list_has_any(phones_l, phones_r)", _share("phones")),
            _else(),
        ),
    ),
    Comparison(
        "email",
        "E-mail addresses",
        (
            Level("missing", _null_sql("emails"), _missing("emails"), is_null=True),
            Level("shares an address", "list_has_any(emails_l, emails_r)", _share("emails")),
            _else(),
        ),
    ),
    Comparison(
        "address",
        "Home address",
        (
            Level(
                "missing",
                "(street_l IS NULL AND postal_code_l IS NULL) OR (street_r IS NULL AND postal_code_r IS NULL)",
                _no_address,
                is_null=True,
            ),
            Level(
                "same street address",
                "street_l = street_r AND (postal_code_l = postal_code_r OR postal_code_l IS NULL "
                "OR postal_code_r IS NULL)",
                _same_street_address,
            ),
            Level(
                "similar street, same postal code",
                "postal_code_l = postal_code_r AND jaro_winkler_similarity(street_l, street_r) >= 0.88",
                _similar_street_same_postal_code,
            ),
            Level(
                "same postal code",
                "postal_code_l = postal_code_r",
                lambda a, b: bool(a["postal_code"]) and a["postal_code"] == b["postal_code"],
            ),
            Level("same city", "city_l = city_r", lambda a, b: bool(a["city"]) and a["city"] == b["city"]),
            _else(),
        ),
    ),
    Comparison(
        "identifier",
        "Identifiers (MRN and others) in a system both records have",
        (
            Level(
                "no shared identifier system",
                "identifier_systems_l IS NULL OR identifier_systems_r IS NULL "
                "OR NOT list_has_any(identifier_systems_l, identifier_systems_r)",
                _no_shared_identifier_system,
                is_null=True,
            ),
            Level("same identifier", "list_has_any(identifiers_l, identifiers_r)", _share("identifiers")),
            _else(),
        ),
    ),
    Comparison(
        "ssn",
        "Social security number",
        (
            Level("missing", _null_sql("ssn"), _missing("ssn"), is_null=True),
            Level("exact", "ssn_l = ssn_r", _equal("ssn")),
            Level("one digit wrong", "damerau_levenshtein(ssn_l, ssn_r) <= 1", _edits_at_most("ssn", 1)),
            _else(),
        ),
    ),
)

# The feature columns the comparisons read; lists become DuckDB lists, "" and [] become NULL.
COMPARED_COLUMNS: tuple[str, ...] = (
    "given",
    "given_groups",
    "given_others",
    "family",
    "family_tokens",
    "birth_date",
    "birth_date_sorted",
    "sex",
    "phones",
    "emails",
    "street",
    "postal_code",
    "city",
    "identifiers",
    "identifier_systems",
    "ssn",
)
