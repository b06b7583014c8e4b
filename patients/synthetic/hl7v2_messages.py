"""Synthetic HL7 v2 admissions of distinct made-up people, for volume tests and the MLLP benchmark.

Each message is a different person (name, birth date, address, phone drawn by Faker from the message
number), as a real admission feed is: a thousand copies of one person under a thousand record numbers
would measure the patient index's worst case instead of the listener.
"""

from datetime import date, timedelta

from patients.synthetic.synthea import thread_faker

_EARLIEST_BIRTH = date(1930, 1, 1)


def admission_message(
    *,
    number: int,
    control_id: str,
    medical_record_number: str,
    sending_facility: str = "SYNTH-HOSP",
    processing_id: str = "P",
) -> bytes:
    """An ADT^A01 (admission, inpatient) for made-up person ``number``, the same bytes for the same number."""
    faker = thread_faker()
    faker.seed_instance(number)
    sex = "F" if number % 2 else "M"
    given = faker.first_name_female() if sex == "F" else faker.first_name_male()
    family = faker.last_name()
    birth_date = _EARLIEST_BIRTH + timedelta(days=faker.random_int(0, 365 * 80))
    street = faker.street_address().replace("^", " ")
    city = faker.city()
    state = faker.state_abbr(include_territories=False)
    postal_code = faker.zipcode()
    area, exchange, line = faker.random_int(201, 989), faker.random_int(200, 999), faker.random_int(0, 9999)
    return (
        f"MSH|^~\\&|SYNTH-EHR|{sending_facility}|CONCORD|CONCORD|20240302093000||ADT^A01^ADT_A01|"
        f"{control_id}|{processing_id}|2.5.1\r"
        "EVN|A01|20240302093000\r"
        f"PID|1||{medical_record_number}^^^{sending_facility}^MR||{family}^{given}||"
        f"{birth_date:%Y%m%d}|{sex}|||{street}^^{city}^{state}^{postal_code}||"
        f"^PRN^PH^^1^{area}^{exchange}{line:04d}\r"
        "PV1|1|I|4N^401^A\r"
    ).encode()
