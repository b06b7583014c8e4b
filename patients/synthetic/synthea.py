"""Volume from Synthea: clones of its patient Bundles with new ids and perturbed demographics.

A clone is a different person for every purpose a benchmark cares about: new resource ids, new
Synthea/SSN/driver's licence/passport/MRN identifier values, another given name, a birth date a few
days earlier, another street line and phone. Shared entities stay reachable: conditional references
(``Organization?identifier=...``) are left as they are, and the ``hospitalInformation*`` and
``practitionerInformation*`` bundles they resolve against are passed through unmodified.
"""

import gc
import json
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from faker import Faker

JSON = dict[str, Any]

SHARED_BUNDLE_PREFIXES = ("hospitalInformation", "practitionerInformation")

# Fixed, so that clone ids depend only on seed, clone index and original id.
_CLONE_NAMESPACE = uuid.UUID("4b0f3c52-9d7e-5a61-8c2b-0e1d6f7a9b34")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_URN_UUID = "urn:uuid:"
_PERSONAL_IDENTIFIER_TYPES = frozenset({"MR", "SS", "DL", "PPN"})
_SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
_DRIVERS_LICENCE_SYSTEM_PREFIX = "urn:oid:2.16.840.1.113883.4.3."  # one OID per US state
_KEPT_LEADING_DIGITS = 3  # 999 of Synthea's SSNs and licences, 555 of its phones: they mark data as fake

_thread_state = threading.local()


def thread_faker() -> Faker:
    """This thread's Faker (en_US), to be reseeded by the caller."""
    # Creating a Faker costs about 20 ms, more than a whole clone: one per thread, reseeded per clone.
    faker: Faker | None = getattr(_thread_state, "faker", None)
    if faker is None:
        faker = Faker("en_US")
        _thread_state.faker = faker
    return faker


def _identifier_is_personal(identifier: JSON) -> bool:
    system = identifier.get("system")
    if isinstance(system, str) and (
        "synthea" in system
        or system == _SSN_SYSTEM
        or system.startswith(_DRIVERS_LICENCE_SYSTEM_PREFIX)
        or "passport" in system.lower()
    ):
        return True
    identifier_type = identifier.get("type")
    if isinstance(identifier_type, dict):
        for coding in identifier_type.get("coding") or ():
            if isinstance(coding, dict) and coding.get("code") in _PERSONAL_IDENTIFIER_TYPES:
                return True
    return False


class _BundleCloner:
    """One clone of one bundle. The constructor reads entries only; ``clone`` walks the tree once."""

    def __init__(self, bundle: JSON, *, clone_index: int, seed: int) -> None:
        self.salt = f"{seed}:{clone_index}:"
        self.new_ids: dict[str, str] = {}
        patient_keys: list[str] = []
        entries = bundle.get("entry") or []
        if isinstance(bundle.get("id"), str):
            self.new_id(bundle["id"])
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            resource = entry.get("resource")
            resource_id = resource.get("id") if isinstance(resource, dict) else None
            if isinstance(resource_id, str):
                self.new_id(resource_id)
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str) and full_url.startswith(_URN_UUID):
                self.new_id(full_url.removeprefix(_URN_UUID))
            if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
                patient_keys.append(str(resource_id or full_url))
        # Only ids defined in this bundle are remapped; a reference to anything else is left alone.
        self.bundle_ids = frozenset(self.new_ids)
        self.randomness = random.Random(f"concord-synthea-clone:{self.salt}{','.join(patient_keys)}")
        # reference string -> (old given name, new given name), for displays such as "Mr. Abdul Koepp"
        self.patient_references: dict[str, tuple[str, str]] = {}
        self.patient_changes: dict[int, tuple[str, str]] = {}
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
                self._given_name_choose(entry, resource)
        self._copy_dict, self._copy_list = self._copiers()

    def new_id(self, old: str) -> str:
        new = self.new_ids.get(old)
        if new is None:
            new = str(uuid.uuid5(_CLONE_NAMESPACE, self.salt + old))
            self.new_ids[old] = new
        return new

    def _given_name_choose(self, entry: JSON, patient: JSON) -> None:
        old_given = ""
        for name in patient.get("name") or ():
            if isinstance(name, dict) and name.get("given"):
                old_given = str(name["given"][0])
                break
        faker = thread_faker()
        faker.seed_instance(self.randomness.getrandbits(64))
        draw = {"female": faker.first_name_female, "male": faker.first_name_male}.get(
            str(patient.get("gender")), faker.first_name
        )
        new_given = draw()
        while new_given == old_given:
            new_given = draw()
        change = (old_given, new_given)
        self.patient_changes[id(patient)] = change
        keys = [entry.get("fullUrl"), f"Patient/{patient.get('id')}"]
        for key in keys:
            if isinstance(key, str) and key:
                self.patient_references[key] = change

    def reference(self, value: str) -> str:
        if value.startswith(_URN_UUID):
            old = value.removeprefix(_URN_UUID)
            return _URN_UUID + self.new_ids[old] if old in self.bundle_ids else value
        if "?" in value or value.startswith("#") or "/" not in value:
            return value  # conditional, contained or bare: not an id of this bundle
        # Type/id, Type/id/_history/version, or an absolute URL ending the same way.
        parts = value.split("/")
        position = len(parts) - 3 if len(parts) >= 4 and parts[-2] == "_history" else len(parts) - 1
        if position >= 1 and parts[position] in self.bundle_ids and parts[position - 1][:1].isupper():
            parts[position] = self.new_ids[parts[position]]
            return "/".join(parts)
        return value

    def replacement_value(self, value: str) -> str:
        if _UUID.fullmatch(value):
            return self.new_id(value)  # Synthea's identifiers repeat resource ids; keep them equal
        digits_seen = 0
        characters = []
        for character in value:
            if character.isdigit():
                digits_seen += 1
                if digits_seen > _KEPT_LEADING_DIGITS:
                    character = str(self.randomness.randrange(10))
            characters.append(character)
        new = "".join(characters)
        return new if new != value else f"{value}-{self.randomness.randrange(1000, 10000)}"

    def copy(self, node: Any) -> Any:
        """A deep copy of ``node`` with references and personal identifiers rewritten."""
        if type(node) is dict:
            return self._copy_dict(node)
        if type(node) is list:
            return self._copy_list(node)
        return node

    def _copiers(self) -> tuple[Callable[[JSON], JSON], Callable[[list[Any]], list[Any]]]:
        """The hot loop of cloning, as closures over locals: about a third faster than methods.

        Exact ``type() is`` tests are used because parsed JSON only holds plain dicts, lists and
        scalars, and they are markedly faster than ``isinstance``.
        """
        reference_rewrite = self.reference
        replacement_value = self.replacement_value
        patient_references = self.patient_references
        bundle_ids, new_ids = self.bundle_ids, self.new_ids

        def copy_dict(node: JSON) -> JSON:
            result: JSON = {}
            reference = None
            has_string_value = False
            for key, value in node.items():
                value_type = type(value)
                if value_type is str:
                    if key == "reference":
                        reference = value
                        value = reference_rewrite(value)
                    elif key == "value":
                        has_string_value = True
                    result[key] = value
                elif value_type is dict:
                    result[key] = copy_dict(value)
                elif value_type is list:
                    result[key] = copy_list(value)
                else:
                    result[key] = value
            # An Identifier, or a ContactPoint (which never counts as personal here).
            if has_string_value:
                if _identifier_is_personal(result):
                    result["value"] = replacement_value(result["value"])
                elif result["value"] in bundle_ids and "system" in result:
                    # It names a resource of this bundle (each ExplanationOfBenefit's clm_id is its Claim's
                    # id): it names the clone's, or every clone would carry the original's claim numbers.
                    result["value"] = new_ids[result["value"]]
            if reference is not None and reference in patient_references:
                old_given, new_given = patient_references[reference]
                display = result.get("display")
                if type(display) is str and old_given:
                    result["display"] = display.replace(old_given, new_given)
            return result

        def copy_list(node: list[Any]) -> list[Any]:
            return [
                copy_dict(item) if type(item) is dict else copy_list(item) if type(item) is list else item
                for item in node
            ]

        return copy_dict, copy_list

    def request(self, request: JSON) -> JSON:
        copied: JSON = self.copy(request)
        if isinstance(copied.get("url"), str):
            copied["url"] = self.reference(copied["url"])
        condition = copied.get("ifNoneExist")
        if isinstance(condition, str) and condition.startswith("identifier="):
            system, separator, value = condition.removeprefix("identifier=").rpartition("|")
            if separator and _identifier_is_personal({"system": system}):
                copied["ifNoneExist"] = f"identifier={system}|{self.replacement_value(value)}"
        return copied

    def patient_perturb(self, original: JSON, patient: JSON) -> None:
        old_given, new_given = self.patient_changes[id(original)]
        for name in patient.get("name") or ():
            given = name.get("given") if isinstance(name, dict) else None
            if given:
                given[0] = new_given
            if isinstance(name, dict) and isinstance(name.get("text"), str) and old_given:
                name["text"] = name["text"].replace(old_given, new_given)
        birth_date = patient.get("birthDate")
        if isinstance(birth_date, str) and len(birth_date) == 10:
            # Earlier, never later, so that no encounter of the clone comes before its birth.
            shifted = date.fromisoformat(birth_date) - timedelta(days=self.randomness.randint(1, 10))
            patient["birthDate"] = shifted.isoformat()
        faker = thread_faker()
        faker.seed_instance(self.randomness.getrandbits(64))
        street = str(faker.street_address())
        for address in patient.get("address") or ():
            if isinstance(address, dict) and "line" in address:
                address["line"] = [street]
        for contact_point in patient.get("telecom") or ():
            if isinstance(contact_point, dict) and contact_point.get("system") == "phone":
                value = contact_point.get("value")
                if isinstance(value, str):
                    contact_point["value"] = self.replacement_value(value)

    def clone(self, bundle: JSON) -> JSON:
        result: JSON = {}
        for key, value in bundle.items():
            if key == "entry" and isinstance(value, list):
                result[key] = [self.entry(entry) if isinstance(entry, dict) else entry for entry in value]
            elif key == "id" and isinstance(value, str):
                result[key] = self.new_ids[value]
            else:
                result[key] = self.copy(value)
        return result

    def entry(self, entry: JSON) -> JSON:
        result: JSON = {}
        for key, value in entry.items():
            if key == "fullUrl" and isinstance(value, str):
                result[key] = self.reference(value)
            elif key == "request" and isinstance(value, dict):
                result[key] = self.request(value)
            elif key == "resource" and isinstance(value, dict):
                resource: JSON = self.copy(value)
                if isinstance(value.get("id"), str):
                    resource["id"] = self.new_ids[value["id"]]
                if value.get("resourceType") == "Patient":
                    self.patient_perturb(value, resource)
                result[key] = resource
            else:
                result[key] = self.copy(value)
        return result


@contextmanager
def _cyclic_garbage_collection_paused() -> Iterator[None]:
    """Pause the cyclic collector while building or reading large JSON trees.

    Those trees have no reference cycles, yet allocating a million dicts and lists triggers full
    collections that rescan every live container: with a few Synthea bundles in memory, that is
    half of the time of a clone. Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _bundle_read(path: Path) -> JSON:
    with _cyclic_garbage_collection_paused():
        bundle: JSON = json.loads(path.read_bytes())
    return bundle


def clone_synthea_bundle(bundle: JSON, *, clone_index: int, seed: int = 0) -> JSON:
    """A deep copy of a Synthea patient Bundle as another person; the same arguments give the same clone.

    Every resource id and ``urn:uuid`` full URL gets a new uuid (uuid5 of seed, clone index and old
    id), and every reference to them (``urn:uuid:...`` and ``Type/id``) follows. An Organization or
    Practitioner that several Synthea bundles share thus stays shared among clones of one index.
    Conditional and contained references are untouched. The input is not modified.
    """
    with _cyclic_garbage_collection_paused():
        return _BundleCloner(bundle, clone_index=clone_index, seed=seed).clone(bundle)


def _patient_id(bundle: JSON) -> str | None:
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            patient_id = resource.get("id")
            return patient_id if isinstance(patient_id, str) else None
    return None


def is_shared_bundle(path: Path) -> bool:
    return path.name.startswith(SHARED_BUNDLE_PREFIXES)


def iter_synthea_clones(source_dir: Path, *, copies: int, seed: int = 0) -> Iterator[tuple[str, JSON]]:
    """(file name, bundle) pairs: the shared hospital/practitioner bundles once and unmodified, first;
    then ``copies`` clones of every patient bundle in ``source_dir``, each bundle read once."""
    if copies < 0:
        raise ValueError("copies must be zero or more")
    paths = sorted(source_dir.glob("*.json"))
    for path in paths:
        if is_shared_bundle(path):
            yield path.name, _bundle_read(path)
    for path in paths:
        if is_shared_bundle(path):
            continue
        bundle = _bundle_read(path)
        for clone_index in range(copies):
            clone = clone_synthea_bundle(bundle, clone_index=clone_index, seed=seed)
            patient_id = _patient_id(clone) or str(
                uuid.uuid5(_CLONE_NAMESPACE, f"{seed}:{clone_index}:{path.name}")
            )
            yield f"clone-{clone_index:03d}-{patient_id}.json", clone


def write_synthea_clones(source_dir: Path, out_dir: Path, *, copies: int, seed: int = 0) -> dict[str, int]:
    """Write the shared bundles and ``copies`` clones of every patient bundle into ``out_dir``; return counts.

    Stale ``*.json`` files in ``out_dir`` are removed first, so a smaller rerun leaves nothing behind.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.json"):
        stale.unlink()
    counts = {"shared_bundles": 0, "patient_bundles": 0, "resources": 0}
    for name, bundle in iter_synthea_clones(source_dir, copies=copies, seed=seed):
        # dumps() then one write: json.dump() streams through the slow pure-Python encoder.
        (out_dir / name).write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
        counts["shared_bundles" if name.startswith(SHARED_BUNDLE_PREFIXES) else "patient_bundles"] += 1
        counts["resources"] += len(bundle.get("entry") or ())
    return counts
