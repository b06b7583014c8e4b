"""Medication terminology policy: RxNorm products, brand and generic names to ingredients.

The table is the project's own `data/medications.csv`, three kinds of rows:
- `ingredient`: an ingredient (RxNorm term type IN) with its RxNorm code and other names it goes by;
- `product`: an RxNorm product code (SCD, SBD, pack, or the older component codes Synthea sends) with its
  ingredients, strength per ingredient and dose form;
- `brand`: a brand name and the ingredients of the products sold under it (Tylenol, Lipitor, Humulin).
Facts come from the RxNorm codes Synthea sends (shared terminology data) and well-known brand/generic
pairs. `code_checked` says whether an ingredient code was cross-checked against a published list; the
others are RxNorm ingredient codes as recalled and left for a data steward to confirm.

Resolution never guesses silently. In order: an RxNorm code of the table; an RxNorm code from the source's
terminology maps (done by the caller); then names: the ingredient, synonym and brand names found in the
concept's text and displays; only when no name is found at all, a fuzzy match of each word against the
known names. A fuzzy match is accepted only when the word is one typing error away from a known name
(Damerau-Levenshtein distance 1, words of 6 letters or more) and its Jaro-Winkler similarity, which is
recorded as the confidence, is at least FUZZY_THRESHOLD (0.90) and better than any other candidate's:
"Simvistatin" is simvastatin at 0.94, while "prednisolone" is two edits from prednisone (a different drug)
and is not matched.
"""

import copy
import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jellyfish

RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MATCH_EXTENSION_URL = "https://concord.example.org/fhir/StructureDefinition/terminology-match"
TABLE_PATH = Path(__file__).resolve().parent / "data" / "medications.csv"

FUZZY_THRESHOLD = 0.90
FUZZY_MIN_LENGTH = 6

METHOD_PRODUCT_CODE = "rxnorm-product"
METHOD_INGREDIENT_CODE = "rxnorm-ingredient"
METHOD_NAME = "name"
METHOD_FUZZY = "fuzzy-name"

# Longest first, so "Extended Release Oral Tablet" wins over "Oral Tablet".
DOSE_FORMS = tuple(
    sorted(
        (
            "Oral Tablet", "Chewable Tablet", "Extended Release Oral Tablet", "Delayed Release Oral Tablet",
            "Sublingual Tablet", "Oral Capsule", "Extended Release Oral Capsule", "Injectable Suspension",
            "Injectable Solution", "Injection", "Oral Solution", "Oral Suspension", "Oral Gel",
            "Inhalation Solution", "Metered Dose Inhaler", "Dry Powder Inhaler", "Transdermal System",
            "Topical Cream", "Topical Ointment", "Ophthalmic Solution", "Mucosal Spray", "Auto-Injector",
            "Prefilled Syringe", "Drug Implant", "Intrauterine System", "Vaginal System",
            "Granules for Oral Solution", "Pack", "Rectal Suppository", "Suppository", "Tablet", "Capsule",
            "Patch", "Inhaler", "Solution", "Suspension", "Ointment", "Cream",
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip
_DOSE_FORM_PATTERNS = tuple(
    (form, re.compile(r"\b" + re.escape(form).replace(r"\ ", r"\s+") + r"s?\b", re.IGNORECASE))
    for form in DOSE_FORMS
)
_STRENGTH = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)\s*(mg|mcg|µg|ug|g|unt|units?|iu|meq|ml|%)(?:\s*/\s*(ml|mg|actuat|hr|h|l))?\b",
    re.IGNORECASE,
)
# Words that describe a product rather than name a substance: never fuzzy-matched to a drug name.
_PRODUCT_WORDS = frozenset(
    {
        "tablet", "tablets", "capsule", "capsules", "injection", "injectable", "solution", "suspension",
        "inhaler", "inhalation", "metered", "powder", "transdermal", "system", "topical", "cream",
        "ointment", "ophthalmic", "mucosal", "spray", "prefilled", "syringe", "implant", "intrauterine",
        "vaginal", "granules", "chewable", "extended", "release", "delayed", "sublingual", "actuat",
        "hydrochloride", "bitartrate", "phosphate", "sulfate", "sodium", "potassium", "maleate",
        "succinate", "acetate", "propionate", "furoate", "fumarate", "monohydrate", "macrocrystals",
        "product", "vial", "film", "coated", "daily", "suppository", "patch", "water", "retention",
        "medication", "hydrobromide", "bromide", "porcine", "human", "inert", "ingredients",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Ingredient:
    name: str
    rxnorm_code: str  # "" when the table does not know the ingredient's code


@dataclass(frozen=True)
class MedicationMatch:
    ingredients: tuple[Ingredient, ...]
    method: str
    confidence: float
    strength: str = ""
    dose_form: str = ""
    matched_text: str = ""


@dataclass(frozen=True)
class Product:
    ingredients: tuple[str, ...]
    strength: str
    dose_form: str


@dataclass(frozen=True)
class MedicationTable:
    ingredients: dict[str, Ingredient]
    products: dict[str, Product]
    # Normalized name (ingredient, synonym or brand) -> ingredient names, longest names first.
    names: dict[str, tuple[str, ...]]
    ingredient_by_code: dict[str, Ingredient]
    longest_name_words: int


def name_normalize(text: str) -> str:
    """Lower case, brackets and punctuation as spaces, single spaces ("insulin isophane, human" -> ...)."""
    return " ".join(re.sub(r"[^a-z0-9/.\-]+", " ", text.lower()).replace("/", " / ").split())


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


def medication_table_load(path: Path = TABLE_PATH) -> MedicationTable:
    ingredients: dict[str, Ingredient] = {}
    products: dict[str, Product] = {}
    names: dict[str, tuple[str, ...]] = {}

    def name_add(name: str, targets: tuple[str, ...]) -> None:
        key = name_normalize(name)
        if key in names and names[key] != targets:
            raise ValueError(f"Medication name {name!r} names both {names[key]} and {targets}.")
        names[key] = targets

    with path.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if not row["kind"].startswith("#")]
    for row in rows:
        if row["kind"] == "ingredient":
            ingredient = Ingredient(name=row["name"].strip(), rxnorm_code=row["rxnorm_code"].strip())
            ingredients[ingredient.name] = ingredient
            name_add(ingredient.name, (ingredient.name,))
            for synonym in _split(row["synonyms"]):
                name_add(synonym, (ingredient.name,))
    for row in rows:
        if row["kind"] == "ingredient":
            continue
        targets = tuple(_split(row["ingredients"]))
        unknown = [name for name in targets if name not in ingredients]
        if unknown:
            raise ValueError(f"{row['kind']} {row['name']!r} names unknown ingredients {unknown}.")
        if row["kind"] == "product":
            products[row["rxnorm_code"].strip()] = Product(
                ingredients=targets, strength=row["strength"].strip(), dose_form=row["dose_form"].strip()
            )
        elif row["kind"] == "brand":
            name_add(row["name"], targets)
            for synonym in _split(row["synonyms"]):
                name_add(synonym, targets)
        else:
            raise ValueError(f"Unknown row kind {row['kind']!r} in {path.name}.")
    return MedicationTable(
        ingredients=ingredients,
        products=products,
        names=names,
        ingredient_by_code={item.rxnorm_code: item for item in ingredients.values() if item.rxnorm_code},
        longest_name_words=max(len(name.split()) for name in names),
    )


@cache
def medication_table() -> MedicationTable:
    return medication_table_load()


def strength_parse(text: str) -> str:
    """The strengths written in a medication name, as "325 MG / 10 MG"; "" when none is written."""
    found = []
    for number, unit, per in _STRENGTH.findall(text):
        if unit.lower() == "ml" and not per:
            continue  # a package volume ("10 ML vancomycin 5 MG/ML"), not a strength
        unit_text = {"µg": "MCG", "ug": "MCG", "units": "UNT", "unit": "UNT"}.get(unit.lower(), unit.upper())
        found.append(f"{number} {unit_text}" + (f"/{per.upper()}" if per else ""))
    return " / ".join(found)


def dose_form_parse(text: str) -> str:
    for form, pattern in _DOSE_FORM_PATTERNS:
        if pattern.search(text):
            return form
    return ""


def _names_in(text: str, table: MedicationTable) -> tuple[list[str], list[str]]:
    """(ingredient names found by exact name, the words left unmatched), longest names first."""
    words = name_normalize(text).split()
    found: list[str] = []
    leftover: list[str] = []
    index = 0
    while index < len(words):
        for size in range(min(table.longest_name_words, len(words) - index), 0, -1):
            targets = table.names.get(" ".join(words[index : index + size]))
            if targets is not None:
                found.extend(name for name in targets if name not in found)
                index += size
                break
        else:
            leftover.append(words[index])
            index += 1
    return found, leftover


def _fuzzy_candidates(phrase: str, table: MedicationTable) -> list[tuple[float, tuple[str, ...], str]]:
    size = phrase.count(" ") + 1
    candidates = []
    for name, targets in table.names.items():
        if name.count(" ") + 1 != size or abs(len(name) - len(phrase)) > 1:
            continue
        if jellyfish.damerau_levenshtein_distance(phrase, name) != 1:
            continue
        candidates.append((jellyfish.jaro_winkler_similarity(phrase, name), targets, name))
    return sorted(candidates, reverse=True)


def _fuzzy_match(words: list[str], table: MedicationTable) -> tuple[list[str], float, str]:
    """Ingredients of the words (or runs of words) one typo from a known name, with the lowest confidence."""
    found: list[str] = []
    confidence = 1.0
    matched: list[str] = []
    index = 0
    while index < len(words):
        for size in range(min(table.longest_name_words, len(words) - index), 0, -1):
            window = words[index : index + size]
            phrase = " ".join(window)
            if len(phrase) < FUZZY_MIN_LENGTH or not all(word.isalpha() for word in window):
                continue
            if all(word in _PRODUCT_WORDS for word in window):
                continue
            candidates = _fuzzy_candidates(phrase, table)
            if not candidates or candidates[0][0] < FUZZY_THRESHOLD:
                continue
            best_score, targets, name = candidates[0]
            if any(other[1] != targets and other[0] >= best_score for other in candidates[1:]):
                continue  # two different drugs are equally close: ambiguous
            found.extend(target for target in targets if target not in found)
            confidence = min(confidence, round(best_score, 3))
            matched.append(f"{phrase}->{name}")
            index += size
            break
        else:
            index += 1
    return found, confidence, ", ".join(matched)


def _concept_texts(concept: dict[str, Any]) -> list[str]:
    texts = [concept.get("text")]
    texts += [coding.get("display") for coding in concept.get("coding") or [] if isinstance(coding, dict)]
    return [text for text in texts if isinstance(text, str) and text.strip()]


def medication_resolve(
    concept: dict[str, Any] | None,
    *,
    extra_rxnorm_codes: tuple[str, ...] = (),
    table: MedicationTable | None = None,
) -> MedicationMatch | None:
    """The ingredients a medication CodeableConcept names, or None when it cannot be told without a guess.

    ``extra_rxnorm_codes`` are RxNorm codes the source's terminology maps give for its local codings.
    """
    table = table or medication_table()
    concept = concept or {}
    texts = _concept_texts(concept)
    codes = [
        str(coding.get("code"))
        for coding in concept.get("coding") or []
        if isinstance(coding, dict) and coding.get("system") == RXNORM_SYSTEM and coding.get("code")
    ]
    all_codes = [*codes, *extra_rxnorm_codes]
    for code in all_codes:
        product = table.products.get(code)
        if product is not None:
            return MedicationMatch(
                ingredients=tuple(table.ingredients[name] for name in product.ingredients),
                method=METHOD_PRODUCT_CODE,
                confidence=1.0,
                strength=product.strength,
                dose_form=product.dose_form,
            )
    # Every ingredient code counts: a combination product normalized earlier carries one per ingredient.
    by_code = tuple(
        dict.fromkeys(
            table.ingredient_by_code[code] for code in all_codes if code in table.ingredient_by_code
        )
    )
    if by_code:
        return MedicationMatch(
            ingredients=by_code,
            method=METHOD_INGREDIENT_CODE,
            confidence=1.0,
            strength=next((strength_parse(text) for text in texts if strength_parse(text)), ""),
            dose_form=next((dose_form_parse(text) for text in texts if dose_form_parse(text)), ""),
        )
    for text in texts:
        found, leftover = _names_in(text, table)
        if found:
            return MedicationMatch(
                ingredients=tuple(table.ingredients[name] for name in found),
                method=METHOD_NAME,
                confidence=1.0,
                strength=strength_parse(text),
                dose_form=dose_form_parse(text),
                matched_text=text,
            )
    for text in texts:
        _, leftover = _names_in(text, table)
        found, confidence, matched = _fuzzy_match(leftover, table)
        if found:
            return MedicationMatch(
                ingredients=tuple(table.ingredients[name] for name in found),
                method=METHOD_FUZZY,
                confidence=confidence,
                strength=strength_parse(text),
                dose_form=dose_form_parse(text),
                matched_text=matched,
            )
    return None


def _match_extension(match: MedicationMatch) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "method", "valueCode": match.method},
        {"url": "confidence", "valueDecimal": match.confidence},
    ]
    if match.matched_text and match.method == METHOD_FUZZY:
        parts.append({"url": "matched", "valueString": match.matched_text})
    if match.strength:
        parts.append({"url": "strength", "valueString": match.strength})
    if match.dose_form:
        parts.append({"url": "doseForm", "valueString": match.dose_form})
    return {"url": MATCH_EXTENSION_URL, "extension": parts}


def medication_concept_normalize(
    concept: dict[str, Any], *, extra_rxnorm_codes: tuple[str, ...] = (), table: MedicationTable | None = None
) -> tuple[dict[str, Any], MedicationMatch | None]:
    """A copy of the concept with one ingredient-level RxNorm coding per ingredient added (source codings kept).

    Each added coding carries the match extension (method, confidence, strength, dose form), so a fuzzy
    match is visible to every reader. Ingredients whose code the table does not know add no coding.
    """
    match = medication_resolve(concept, extra_rxnorm_codes=extra_rxnorm_codes, table=table)
    if match is None:
        return concept, None
    present = {
        str(coding.get("code"))
        for coding in concept.get("coding") or []
        if isinstance(coding, dict) and coding.get("system") == RXNORM_SYSTEM
    }
    added = [
        {
            "extension": [_match_extension(match)],
            "system": RXNORM_SYSTEM,
            "code": ingredient.rxnorm_code,
            "display": ingredient.name,
        }
        for ingredient in match.ingredients
        if ingredient.rxnorm_code and ingredient.rxnorm_code not in present
    ]
    if not added:
        return concept, match
    result = copy.copy(concept)
    result["coding"] = [*(concept.get("coding") or []), *added]
    return result, match
