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

The replacements give the same answers: the ``resourceType`` check moves into the "before" validator
(pydantic then calls ``BaseModel.__init__`` and validates each element once), the fields a class must
check are worked out once per class, and classes with nothing to check after construction return at
once. ``tests/patients/test_fhir_validation.py`` runs the shipped FHIR examples and mutations of them
(wrong types, nulls in lists, missing elements) through validation with and without the replacements
and requires the same problems, message for message.

They are installed only when the upstream functions are the ones they were written against (a
fingerprint of their source) and no model class exists yet; otherwise upstream validation runs as it
is, and the log says why. ``CONCORD_FHIR_FAST_VALIDATION=false`` turns them off.
"""

import hashlib
import inspect
import logging
import os
from typing import Any

from fhir_core import fhirabstractmodel
from fhir_core.utils import is_list_type, is_primitive_type
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

logger = logging.getLogger(__name__)

Model = fhirabstractmodel.FHIRAbstractModel

# sha256 of the source of each replaced function, in fhir_core 1.1.12.
_UPSTREAM_SOURCES = {
    "__init__": "10ecd87d1be2cc85",
    "reject_null_complex_elements": "d0d0200524d20d33",
    "validate_after_model_construction": "016ab95ff060a75a",
}

_complex_list_keys_by_class: dict[type, tuple[tuple[str, str], ...]] = {}
_nothing_after_by_class: dict[type, bool] = {}


def _complex_list_keys(cls: Any) -> tuple[tuple[str, str], ...]:
    """(alias, name) of the fields of ``cls`` that hold a list of complex elements."""
    found = _complex_list_keys_by_class.get(cls)
    if found is None:
        found = tuple(
            (field.alias or name, name)
            for name, field in cls.model_fields.items()
            if is_list_type(field) and not is_primitive_type(field) and not name.endswith("__ext")
        )
        _complex_list_keys_by_class[cls] = found
    return found


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
    type_given = "resourceType" in data and "resourceType" not in cls.model_fields
    if type_given or "resource_type" in data:
        data = dict(data)  # the caller's dict is left as it was, as upstream's ``**data`` did
        resource_type = data.pop("resource_type", None)
        if type_given:
            resource_type = data.pop("resourceType", None)
        if resource_type is not None and resource_type != cls.__resource_type__:
            raise _wrong_resource_type(cls, resource_type)
    errors: list[InitErrorDetails] = []
    for alias, name in _complex_list_keys(cls):
        key = alias if alias in data else name
        value = data.get(key)
        if isinstance(value, list) and any(item is None for item in value):
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


def _fingerprint(name: str) -> str:
    source = inspect.getsource(getattr(Model, name))
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
    _installed = True
    return True


def installed() -> bool:
    return _installed
