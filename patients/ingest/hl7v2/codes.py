"""HL7 v2 code tables and their FHIR R4 counterparts.

Coding-system ids (HL7 table 0396) follow the facts of LinuxForHealth's CodingSystemMapping.yml and
the HL7 v2-to-FHIR concept maps; the tables are the project's own, limited to what mapping uses.
"""

from urllib.parse import quote

# HL7 table 0396 coding-system id -> FHIR system URI.
CODING_SYSTEMS = {
    "LN": "http://loinc.org",
    "LOINC": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNOMED": "http://snomed.info/sct",
    "SNOMEDCT": "http://snomed.info/sct",
    "I10": "http://hl7.org/fhir/sid/icd-10-cm",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD10": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD-10": "http://hl7.org/fhir/sid/icd-10-cm",
    "I10P": "http://www.cms.gov/Medicare/Coding/ICD10",
    "I9": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "ICD9": "http://hl7.org/fhir/sid/icd-9-cm",
    "ICD-9": "http://hl7.org/fhir/sid/icd-9-cm",
    "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "RXN": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPTM": "http://www.ama-assn.org/go/cpt",
    "HCPCS": "http://terminology.hl7.org/CodeSystem/HCPCS",
    "HPC": "http://terminology.hl7.org/CodeSystem/HCPCS",
    "UCUM": "http://unitsofmeasure.org",
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "MVX": "http://terminology.hl7.org/CodeSystem/MVX",
    "NDC": "http://hl7.org/fhir/sid/ndc",
    "NPI": "http://hl7.org/fhir/sid/us-npi",
    "SS": "http://hl7.org/fhir/sid/us-ssn",
    "MDC": "urn:iso:std:iso:11073:10101",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
    "CDCREC": "urn:oid:2.16.840.1.113883.6.238",
    "ACR": "http://terminology.hl7.org/CodeSystem/ACR",
    "AS4": "http://terminology.hl7.org/CodeSystem/AS4",
    "CAS": "http://terminology.hl7.org/CodeSystem/CAS",
    "ICDO": "http://terminology.hl7.org/CodeSystem/icd-o",
}

V2_TABLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-{table}"


def coding_system(identifier: str) -> str:
    """The FHIR system of a v2 coding-system id: table 0396, a v2 table (HL70078), an OID, or as given."""
    if not identifier:
        return ""
    known = CODING_SYSTEMS.get(identifier.upper())
    if known:
        return known
    upper = identifier.upper()
    if upper.startswith("HL7") and upper[3:].isdigit():
        return V2_TABLE_SYSTEM.format(table=upper[3:].zfill(4))
    if all(part.isdigit() for part in identifier.split(".")) and identifier.count(".") >= 2:
        return f"urn:oid:{identifier}"
    # A local coding system keeps its v2 name: it is how the source names it, and no URI is known for it.
    return local_name_uri(identifier)


def local_name_uri(name: str) -> str:
    """A source's own name for a system or authority, usable as a FHIR uri: a uri has no white space, so
    "CITY HOSP" is percent-encoded, never altered."""
    return quote(name, safe=":/.-_~") if any(character.isspace() for character in name) else name


# Table 0001 administrative sex -> FHIR administrative-gender.
GENDERS = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}

# Table 0004 patient class -> v3 ActCode.
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ENCOUNTER_CLASSES = {
    "E": ("EMER", "emergency"),
    "I": ("IMP", "inpatient encounter"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "pre-admission"),
    "R": ("AMB", "ambulatory"),
    "B": ("IMP", "inpatient encounter"),
}
# Used when PV1-2 is absent or unknown: FHIR requires a class, v3 NullFlavor says why there is none.
UNKNOWN_ENCOUNTER_CLASS = ("http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "UNK", "unknown")
# Table 0004 patient class -> FHIR encounter-status, for an event that does not convey the status (A08,
# a result message): the HL7 v2-to-FHIR PatientClass[EncounterStatus] concept map. An absent class gives
# "unknown", as the map's "U".
ENCOUNTER_STATUSES_BY_CLASS = {
    "E": "in-progress",
    "I": "in-progress",
    "O": "in-progress",
    "P": "planned",
    "R": "in-progress",
    "B": "in-progress",
    "C": "in-progress",
    "N": "in-progress",
    "U": "unknown",
}

# Table 0085 observation result status -> FHIR observation-status.
OBSERVATION_STATUSES = {
    "C": "corrected",
    "D": "entered-in-error",
    "F": "final",
    "I": "registered",
    "N": "cancelled",  # "not asked": the observation was never made
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "U": "final",
    "W": "entered-in-error",
    "X": "cancelled",
    "A": "amended",
}

# Table 0123 result status (OBR-25) -> FHIR diagnostic-report-status.
REPORT_STATUSES = {
    "O": "registered",
    "I": "registered",
    "S": "registered",
    "A": "partial",
    "P": "preliminary",
    "R": "preliminary",
    "N": "preliminary",
    "C": "corrected",
    "M": "corrected",
    "F": "final",
    "X": "cancelled",
    "Y": "final",
    "Z": "final",
}

# Table 0203 identifier type: the codes are FHIR's v2-0203 codes as they are.
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"

# Table 0002 marital status -> v3 MaritalStatus (the codes that differ are mapped, the others kept).
MARITAL_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
MARITAL_STATUSES = {
    "A": "L",  # separated -> legally separated
    "B": "U",  # unmarried
    "C": "C",
    "D": "D",
    "E": "L",  # legally separated
    "G": "T",  # living together -> domestic partner
    "I": "I",
    "M": "M",
    "N": "A",  # annulled
    "O": "UNK",
    "P": "T",
    "R": "T",  # registered domestic partner
    "S": "S",
    "T": "UNK",
    "U": "UNK",
    "W": "W",
}

# Table 0190 address type -> FHIR address-use / address-type.
ADDRESS_USES = {"H": "home", "B": "work", "O": "work", "C": "temp", "BA": "old", "BDL": "old", "TMP": "temp"}
ADDRESS_TYPES = {"M": "postal", "SH": "physical"}

# Table 0201 telecom use and 0202 equipment -> FHIR contact-point use and system.
TELECOM_USES = {"PRN": "home", "ORN": "home", "VHN": "home", "WPN": "work", "PRS": "mobile", "EMR": "home"}
TELECOM_SYSTEMS = {
    "PH": "phone",
    "CP": "phone",
    "FX": "fax",
    "BP": "pager",
    "Internet": "email",
    "X.400": "email",
    "MD": "other",
    "TDD": "other",
    "TTY": "other",
}

# Table 0078 abnormal flags -> v3 ObservationInterpretation (same codes for the usual flags).
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
INTERPRETATIONS = {
    "L",
    "H",
    "LL",
    "HH",
    "N",
    "A",
    "AA",
    "S",
    "R",
    "I",
    "NEG",
    "POS",
    "IND",
    "U",
    "D",
    "B",
    "W",
}

# Table 0112 discharge disposition.
DISCHARGE_DISPOSITION_SYSTEM = V2_TABLE_SYSTEM.format(table="0112")

# Table 0278 filler status (SCH-25) -> FHIR appointment status, for when the trigger does not decide it.
APPOINTMENT_STATUSES = {
    "Booked": "booked",
    "Cancelled": "cancelled",
    "Complete": "fulfilled",
    "Dc": "cancelled",
    "Deleted": "entered-in-error",
    "Noshow": "noshow",
    "Pending": "pending",
    "Waitlist": "waitlist",
    "Started": "arrived",
}

# The time units of SCH-9/TQ durations -> minutes.
MINUTES_PER_UNIT = {"S": 1 / 60, "M": 1, "MIN": 1, "H": 60, "HR": 60, "D": 1440}
