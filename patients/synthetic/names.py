"""Name tables and name damage: nicknames, common names, one-character typos, stripped diacritics."""

import random
import string
import unicodedata

# Formal given name -> the informal forms people give at a front desk or on a web form.
NICKNAMES: dict[str, tuple[str, ...]] = {
    # English
    "William": ("Bill", "Will", "Billy"),
    "Robert": ("Bob", "Rob", "Bobby"),
    "James": ("Jim", "Jimmy"),
    "Richard": ("Dick", "Rick", "Rich"),
    "Michael": ("Mike",),
    "Joseph": ("Joe",),
    "Thomas": ("Tom", "Tommy"),
    "Christopher": ("Chris",),
    "Daniel": ("Dan", "Danny"),
    "Matthew": ("Matt",),
    "Anthony": ("Tony",),
    "Charles": ("Charlie", "Chuck"),
    "Edward": ("Ed", "Ted"),
    "Alexander": ("Alex",),
    "Margaret": ("Peggy", "Maggie", "Meg"),
    "Elizabeth": ("Liz", "Beth", "Betty"),
    "Katherine": ("Kate", "Kathy", "Katie"),
    "Jennifer": ("Jen", "Jenny"),
    "Patricia": ("Pat", "Patty"),
    "Susan": ("Sue",),
    "Deborah": ("Debbie", "Deb"),
    "Rebecca": ("Becky",),
    "Victoria": ("Vicky",),
    "Christine": ("Chris", "Chrissy"),
    # Spanish
    "José": ("Pepe",),
    "Francisco": ("Paco", "Pancho"),
    "Jesús": ("Chuy",),
    "Ignacio": ("Nacho",),
    "Manuel": ("Manolo",),
    "Guadalupe": ("Lupe",),
    "Dolores": ("Lola",),
    "Rosario": ("Charo",),
    "Concepción": ("Concha",),
}

# Formal names to draw from, by (language, sex), so that nicknames have something to act on.
FORMAL_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("en", "male"): (
        "William",
        "Robert",
        "James",
        "Richard",
        "Michael",
        "Joseph",
        "Thomas",
        "Christopher",
        "Daniel",
        "Matthew",
        "Anthony",
        "Charles",
        "Edward",
        "Alexander",
    ),
    ("en", "female"): (
        "Margaret",
        "Elizabeth",
        "Katherine",
        "Jennifer",
        "Patricia",
        "Susan",
        "Deborah",
        "Rebecca",
        "Victoria",
        "Christine",
    ),
    ("es", "male"): ("José", "Francisco", "Jesús", "Ignacio", "Manuel"),
    ("es", "female"): ("Guadalupe", "Dolores", "Rosario", "Concepción"),
}

# (given, family, sex, language): names common enough that two different people share them.
COMMON_NAMES: tuple[tuple[str, str, str, str], ...] = (
    ("Maria", "Garcia", "female", "es"),
    ("James", "Smith", "male", "en"),
    ("Jose", "Hernandez", "male", "es"),
    ("Mary", "Johnson", "female", "en"),
    ("Michael", "Brown", "male", "en"),
    ("Linh", "Nguyen", "female", "vi"),
    ("Wei", "Chen", "male", "zh"),
    ("Jennifer", "Williams", "female", "en"),
)

# The name a cluster of many different people shares: among the commonest full names in the US.
SAME_NAME: tuple[str, str, str, str] = ("Maria", "Garcia", "female", "es")

# Keys next to each other on a QWERTY keyboard: most real typos hit a neighbour.
_KEYBOARD_NEIGHBOURS: dict[str, str] = {
    "a": "qwsz",
    "b": "vghn",
    "c": "xdfv",
    "d": "serfcx",
    "e": "wsdr",
    "f": "drtgvc",
    "g": "ftyhbv",
    "h": "gyujnb",
    "i": "ujko",
    "j": "huikmn",
    "k": "jiolm",
    "l": "kop",
    "m": "njk",
    "n": "bhjm",
    "o": "iklp",
    "p": "ol",
    "q": "wa",
    "r": "edft",
    "s": "awedxz",
    "t": "rfgy",
    "u": "yhji",
    "v": "cfgb",
    "w": "qase",
    "x": "zsdc",
    "y": "tghu",
    "z": "asx",
}

# Letters NFKD does not decompose into a base letter plus a combining mark.
_UNDECOMPOSABLE = str.maketrans({"đ": "d", "Đ": "D", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss"})


def nicknames_for(given: str) -> tuple[str, ...]:
    return NICKNAMES.get(given, ())


def _neighbour(character: str, *, randomness: random.Random) -> str:
    neighbours = _KEYBOARD_NEIGHBOURS.get(character.lower(), string.ascii_lowercase)
    replacement = randomness.choice(neighbours)
    return replacement.upper() if character.isupper() else replacement


def one_character_typo(name: str, *, randomness: random.Random) -> str:
    """The name with one substitution, deletion, insertion or adjacent transposition.

    The first letter is kept: clerks rarely mistype it, and matchers that block on it would otherwise
    never see the pair at all, which would test blocking rather than scoring.
    """
    if len(name) < 2:
        return name + _neighbour(name or "a", randomness=randomness)
    for _attempt in range(20):
        position = randomness.randrange(1, len(name))
        operation = randomness.choice(("substitute", "delete", "insert", "transpose"))
        if operation == "substitute":
            candidate = (
                name[:position] + _neighbour(name[position], randomness=randomness) + name[position + 1 :]
            )
        elif operation == "delete" and len(name) > 3:
            candidate = name[:position] + name[position + 1 :]
        elif operation == "insert":
            candidate = (
                name[:position] + _neighbour(name[position - 1], randomness=randomness) + name[position:]
            )
        elif operation == "transpose" and position < len(name) - 1:
            candidate = name[:position] + name[position + 1] + name[position] + name[position + 2 :]
        else:
            continue
        if candidate != name:
            return candidate
    return name[:1] + _neighbour(name[1], randomness=randomness) + name[2:]


def without_diacritics(text: str) -> str:
    """Text as a system limited to ASCII would store it: "José Nguyễn" -> "Jose Nguyen"."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_UNDECOMPOSABLE))
    return "".join(character for character in decomposed if not unicodedata.combining(character))


def has_diacritics(text: str) -> bool:
    return without_diacritics(text) != text
