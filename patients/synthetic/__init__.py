"""Concord's own synthetic multi-source patient data, and volume cloned from Synthea.

``generate_population`` draws people and their records in a hospital EHR and a clinic EHR (FHIR R4
transaction Bundles) and a CRM (CSV rows), the records disagreeing with the truth the way real
systems do, with look-alike people (twins, common names, Jr and Sr, households sharing one phone,
many Maria Garcias) listed as hard negatives; ``write_population`` writes them with the ground truth
beside them.
``clone_synthea_bundle`` and ``iter_synthea_clones`` turn Synthea's patients into many more;
``write_synthea_crm_export`` gives Synthea's patients a CRM export that disagrees with them.
Everything is deterministic for a given seed and uses no database.
"""

from patients.synthetic.csv_export import CRM_COLUMNS, CRM_MAPPING
from patients.synthetic.disagreements import PERSON_EVENT_RATES, RECORD_RATES, Disagreement
from patients.synthetic.names import NICKNAMES
from patients.synthetic.people import (
    Address,
    HardNegative,
    HardNegativeCounts,
    Person,
    hard_negative_counts,
)
from patients.synthetic.population import (
    Population,
    SourceRecord,
    TruthRow,
    generate_population,
    read_truth,
    write_population,
)
from patients.synthetic.records import CLINIC_EHR, CRM, HOSPITAL_EHR, MRN_SYSTEMS, SOURCES
from patients.synthetic.synthea import clone_synthea_bundle, iter_synthea_clones, write_synthea_clones
from patients.synthetic.synthea_crm import write_synthea_crm_export

__all__ = [
    "CLINIC_EHR",
    "CRM",
    "CRM_COLUMNS",
    "CRM_MAPPING",
    "HOSPITAL_EHR",
    "MRN_SYSTEMS",
    "NICKNAMES",
    "PERSON_EVENT_RATES",
    "RECORD_RATES",
    "SOURCES",
    "Address",
    "Disagreement",
    "HardNegative",
    "HardNegativeCounts",
    "Person",
    "Population",
    "SourceRecord",
    "TruthRow",
    "clone_synthea_bundle",
    "generate_population",
    "hard_negative_counts",
    "iter_synthea_clones",
    "read_truth",
    "write_population",
    "write_synthea_clones",
    "write_synthea_crm_export",
]
