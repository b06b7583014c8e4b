"""Faster equivalents of three validators ``fhir_core`` runs on every FHIR element, installed before any
``fhir.resources`` model class is built.

Strict validation of a payload is most of what ingestion costs, and most of that is Python that
``fhir_core`` (the base of ``fhir.resources`` 8) runs once per element, not pydantic's compiled core:

- ``FHIRAbstractModel.__init__`` pops ``resourceType`` and checks it. Because it is a custom ``__init__``,
  pydantic validates every element twice over: once to call ``__init__`` and once inside it.
- ``reject_null_complex_elements`` looks at every field of the class, list or not, asking the type
  annotations each time whether it is a list of complex types.
- ``validate_after_model_construction`` looks for required primitives and choice types also in the
  (most) classes that have neither.
- ``FhirBase.fhir_model_validator`` validates every nested element (each Coding, each Reference, ...)
  through ``model_validate`` and then checks the class and resource type of what that built, which for a
  dict are those of the class asked for.

The replacements give the same answers: the ``resourceType`` check moves into the "before" validator
(pydantic then calls ``BaseModel.__init__`` and validates each element once), the fields a class must
check are worked out once per class, and classes with nothing to check after construction return at
once, and a nested element given as a dict goes straight to its class's validator (anything else, or a
result of another class, still takes upstream's path). ``tests/patients/test_fhir_validation.py`` runs
the shipped FHIR examples and mutations of them (wrong types, nulls in lists, missing elements) through
validation with and without the replacements and requires the same problems, message for message.

Validation for problems only (``patients.fhir.resource_validation_problems``) also runs ``memoized()``:
a nested element equal to one that validated before (a coding, a reference, a quantity: most recur from
resource to resource) is not validated again, which took about a third off validating Synthea bundles.

They are installed only when the upstream functions are the ones they were written against (a
fingerprint of their source) and no model class exists yet; otherwise upstream validation runs as it
is, and the log says why. ``CONCORD_FHIR_FAST_VALIDATION=false`` turns them off.
"""

import hashlib
import inspect
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fhir_core import fhirabstractmodel, types
from fhir_core.utils import is_list_type, is_primitive_type
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

logger = logging.getLogger(__name__)

Model = fhirabstractmodel.FHIRAbstractModel
ElementBase = types.FhirBase

# sha256 of the source of each replaced function, in fhir_core 1.1.12.
_UPSTREAM_SOURCES = {
    "__init__": "10ecd87d1be2cc85",
    "reject_null_complex_elements": "d0d0200524d20d33",
    "validate_after_model_construction": "016ab95ff060a75a",
}
_UPSTREAM_ELEMENT_SOURCE = "6a4912d3f8b15f04"  # FhirBase.fhir_model_validator

_nothing_after_by_class: dict[type, bool] = {}


@dataclass(frozen=True)
class _BeforeChecks:
    """What the "before" validator checks on a class, worked out once."""

    type_key_allowed: bool  # "resourceType" is not one of the class's fields, so it is the type marker
    complex_list_keys: tuple[tuple[str, str], ...]  # (alias, name) of the fields holding lists of elements


_before_checks_by_class: dict[type, _BeforeChecks] = {}


def _before_checks_build(cls: Any) -> _BeforeChecks:
    """The class's checks, kept for its next element (the caller looks in the dict first: a hot path)."""
    fields = cls.model_fields
    found = _before_checks_by_class[cls] = _BeforeChecks(
        type_key_allowed="resourceType" not in fields,
        complex_list_keys=tuple(
            (field.alias or name, name)
            for name, field in fields.items()
            if is_list_type(field) and not is_primitive_type(field) and not name.endswith("__ext")
        ),
    )
    return found


_ABSENT = object()


def _wrong_resource_type(cls: Any, resource_type: Any) -> ValidationError:
    """Upstream's error, word for word."""
    error_type = PydanticCustomError(
        "fhir-validation-wrong-resource-type",
        """``{module_name}.{class_name}`` expects resource type ``{expected_resource_type}``,
                    but got ``{resource_type}``. Make sure resource type name is correct and right
                    ModelClass has been chosen.""",
        {
            "module_name": cls.__module__,
            "class_name": cls.__name__,
            "expected_resource_type": cls.__resource_type__,
            "resource_type": resource_type,
        },
    )
    error: InitErrorDetails = {"type": error_type, "loc": ("resource_type",), "input": resource_type}
    return ValidationError.from_exception_data(cls.__name__, [error])


def _before(cls: Any, data: Any) -> Any:
    """Upstream ``__init__``'s resource type check, then ``reject_null_complex_elements``."""
    if not isinstance(data, dict):
        return data
    checks = _before_checks_by_class.get(cls) or _before_checks_build(cls)
    type_given = checks.type_key_allowed and "resourceType" in data
    if type_given or "resource_type" in data:
        data = dict(data)  # the caller's dict is left as it was, as upstream's ``**data`` did
        resource_type = data.pop("resource_type", None)
        if type_given:
            resource_type = data.pop("resourceType", None)
        if resource_type is not None and resource_type != cls.__resource_type__:
            raise _wrong_resource_type(cls, resource_type)
    errors: list[InitErrorDetails] = []
    for alias, name in checks.complex_list_keys:
        key, value = alias, data.get(alias, _ABSENT)
        if value is _ABSENT:
            key, value = name, data.get(name)
        if isinstance(value, list) and None in value:  # JSON values: None equals nothing but None
            errors.append(
                {
                    "type": PydanticCustomError(
                        "list_type", "None is not allowed as an element of {field}", {"field": key}
                    ),
                    "loc": (key,),
                    "input": value,
                }
            )
    if errors:
        raise ValidationError.from_exception_data(cls.__name__, errors)
    return data


def _after(self: Any) -> Any:
    cls = self.__class__
    nothing = _nothing_after_by_class.get(cls)
    if nothing is None:
        nothing = not self.get_required_fields() and not self.get_one_of_many_fields()
        _nothing_after_by_class[cls] = nothing
    if not nothing:
        self._validate_required_primitive_elements()
        self._validate_one_of_many()
    return self


_upstream_element_validator = ElementBase.__dict__["fhir_model_validator"].__func__


def _element(cls: Any, value: Any, model_klass: Any) -> Any:
    """Upstream ``fhir_model_validator`` for a nested element, with a dict validated by its class at once."""
    if type(value) is dict:
        if _memo.on:
            return _element_memoized(cls, value, model_klass)
        value = model_klass.__pydantic_validator__.validate_python(value)
        if type(value) is model_klass:  # what upstream's class and resource type checks accept
            return value
    return _upstream_element_validator(cls, value, model_klass)


# Validated elements kept per thread: the most a memo holds before it starts again, and the longest JSON
# of an element it keeps (the ones that recur, codings, references, quantities, are short). 1,000
# entries took about 5 MB and gave nearly all of the gain on Synthea bundles.
MEMO_ENTRIES = 2048
MEMO_KEY_BYTES = 1024
# Anything but plain JSON values makes orjson raise, and the element is validated without the memo.
_KEY_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
)


class _Memo(threading.local):
    def __init__(self) -> None:
        self.on = False
        self.built: dict[tuple[type, bytes], Any] = {}


_memo = _Memo()


@contextmanager
def memoized() -> Iterator[None]:
    """Inside, a nested element equal to one validated before (same class, same JSON text) is not
    validated again: the element built then is used.

    For validating decoded JSON whose models are thrown away (an element built once may then sit in
    several of them). An element's validity depends only on its class and its JSON, and only elements
    that validated are kept, so the problems found are the same.
    """
    was_on = _memo.on
    _memo.on = True
    try:
        yield
    finally:
        _memo.on = was_on


def _memo_key(value: dict[str, Any]) -> bytes | None:
    try:
        key = orjson.dumps(value, option=_KEY_OPTIONS)
    except TypeError:
        return None
    # orjson writes NaN and the infinities as null, which FHIR JSON hardly ever holds: no memo for those.
    if len(key) > MEMO_KEY_BYTES or b"null" in key:
        return None
    return key


def _element_memoized(cls: Any, value: dict[str, Any], model_klass: Any) -> Any:
    key = _memo_key(value)
    if key is not None:
        built = _memo.built.get((model_klass, key))
        if built is not None:
            return built
    built = model_klass.__pydantic_validator__.validate_python(value)
    if type(built) is not model_klass:
        return _upstream_element_validator(cls, built, model_klass)
    if key is not None:
        if len(_memo.built) >= MEMO_ENTRIES:
            _memo.built.clear()
        _memo.built[(model_klass, key)] = built
    return built


def _fingerprint(name: str, owner: Any = Model) -> str:
    source = inspect.getsource(getattr(owner, name))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


_installed = False


def install() -> bool:
    """Put the replacements in place; True when they are (now or already)."""
    global _installed
    if _installed:
        return True
    if os.environ.get("CONCORD_FHIR_FAST_VALIDATION", "true").strip().lower() in {"0", "false", "no", "off"}:
        return False
    changed = [name for name, digest in _UPSTREAM_SOURCES.items() if _fingerprint(name) != digest]
    if _fingerprint("fhir_model_validator", ElementBase) != _UPSTREAM_ELEMENT_SOURCE:
        changed.append("FhirBase.fhir_model_validator")
    if changed:
        logger.warning(
            "fhir_core's %s changed upstream: validation runs unaccelerated", ", ".join(sorted(changed))
        )
        return False
    if Model.__subclasses__():
        # A class built already bound upstream's validators; mixing the two would break it.
        logger.warning("FHIR model classes were built before the validators could be replaced")
        return False
    # Assigned through setattr: the class attributes are pydantic's descriptors to the type checker.
    setattr(Model, "__init__", BaseModel.__init__)  # noqa: B010
    setattr(Model, "reject_null_complex_elements", classmethod(_before))  # noqa: B010
    setattr(Model, "validate_after_model_construction", _after)  # noqa: B010
    # Looked up on each call by the element schemas' wrap validator, so built classes use it too.
    setattr(ElementBase, "fhir_model_validator", classmethod(_element))  # noqa: B010
    _installed = True
    return True


def installed() -> bool:
    return _installed
