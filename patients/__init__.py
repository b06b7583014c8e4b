# Strict FHIR validation is most of what ingestion costs: faster, equivalent validators go in before any
# fhir.resources model class is built (see patients/fhir_validation.py).
from patients.fhir_validation import install as _fhir_validation_install

_fhir_validation_install()
