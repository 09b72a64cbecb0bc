"""Clinic: doctors, patients, appointments and prescriptions; visiting rules live in the documents."""
from toolorch.synth.domain import (
    Arg,
    Col,
    DbTool,
    Domain,
    Fact,
    Table,
    between,
    day,
    money,
    person,
    pick,
)

SPECIALTIES = ("cardiology", "dermatology", "pediatrics", "neurology", "orthopedics", "general practice")
DRUGS = ("amoxicillin", "ibuprofen", "lisinopril", "metformin", "atorvastatin", "omeprazole", "cetirizine")

TABLES = (
    Table("doctors", (Col("name", "TEXT", lambda f, r: "Dr. " + person(f, r), unique=True),
                      Col("specialty", "TEXT", pick(*SPECIALTIES)),
                      Col("room", "TEXT", lambda f, r: f"{r.choice('ABC')}-{r.randint(100, 399)}"))),
    Table("patients", (Col("name", "TEXT", person, unique=True),
                       Col("city", "TEXT", lambda f, r: f.city()), Col("birth_year", "INTEGER", between(1940, 2020)))),
    Table("appointments", (Col("patient_id", "INTEGER", ref="patients"), Col("doctor_id", "INTEGER", ref="doctors"),
                           Col("date", "TEXT", day("2024-01-01", 365)), Col("minutes", "INTEGER", pick(15, 20, 30, 45)),
                           Col("fee", "REAL", money(40, 400)))),
    Table("prescriptions", (Col("appointment_id", "INTEGER", ref="appointments"), Col("drug", "TEXT", pick(*DRUGS)),
                            Col("dose_mg", "INTEGER", pick(5, 10, 20, 40, 250, 500)), Col("days", "INTEGER", between(3, 90)))),
)

DOCTOR = Arg("doctor", "doctors.name")
PATIENT = Arg("patient", "patients.name")
DRUG = Arg("drug", "prescriptions.drug")
VISITS = "FROM appointments a JOIN patients p ON p.id = a.patient_id JOIN doctors d ON d.id = a.doctor_id"

TOOLS = (
    DbTool("get_doctor_specialty", "Specialty of a doctor.", "SELECT specialty FROM doctors WHERE name = :doctor",
           (DOCTOR,), "the specialty of {doctor}"),
    DbTool("get_doctor_room", "Consulting room of a doctor.", "SELECT room FROM doctors WHERE name = :doctor",
           (DOCTOR,), "the consulting room of {doctor}"),
    DbTool("get_patient_birth_year", "Birth year of a patient.", "SELECT birth_year FROM patients WHERE name = :patient",
           (PATIENT,), "the birth year of patient {patient}", answer_type="number"),
    DbTool("get_patient_city", "City a patient lives in.", "SELECT city FROM patients WHERE name = :patient",
           (PATIENT,), "the home city of patient {patient}"),
    DbTool("get_last_doctor", "Doctor a patient saw most recently.",
           f"SELECT d.name {VISITS} WHERE p.name = :patient ORDER BY a.date DESC, a.id DESC LIMIT 1", (PATIENT,),
           "the name of the doctor {patient} saw most recently", returns="doctors.name",
           entity="the doctor {patient} saw most recently"),
    DbTool("list_specialty_doctors", "Names of all doctors of a specialty, comma-separated.",
           "SELECT group_concat(name, ', ') FROM doctors WHERE specialty = :specialty HAVING count(*) > 0",
           (Arg("specialty", "doctors.specialty"),), "the doctors specialised in {specialty}", role="list",
           answer_type="list"),
    DbTool("count_doctor_appointments", "Number of appointments a doctor has had.",
           f"SELECT count(*) {VISITS} WHERE d.name = :doctor", (DOCTOR,), "the number of appointments of {doctor}",
           role="aggregate", answer_type="number"),
    DbTool("avg_doctor_fee", "Average appointment fee of a doctor (2 decimals).",
           f"SELECT round(avg(a.fee), 2) {VISITS} WHERE d.name = :doctor", (DOCTOR,),
           "the average appointment fee charged by {doctor}", role="aggregate", answer_type="number"),
    DbTool("sum_patient_fees", "Total fees a patient has been charged.",
           f"SELECT round(sum(a.fee), 2) {VISITS} WHERE p.name = :patient", (PATIENT,),
           "the total fees charged to {patient}", role="aggregate", answer_type="number"),
    DbTool("count_drug_prescriptions", "Number of prescriptions of a drug.",
           "SELECT count(*) FROM prescriptions WHERE drug = :drug", (DRUG,), "the number of prescriptions of {drug}",
           role="aggregate", answer_type="number"),
    DbTool("max_drug_days", "Longest prescription, in days, of a drug.",
           "SELECT max(days) FROM prescriptions WHERE drug = :drug", (DRUG,),
           "the longest prescription of {drug} in days", role="aggregate", answer_type="number"),
    DbTool("list_patient_appointments", "A patient's appointments: date, doctor and fee, newest first.",
           f"SELECT a.date, d.name AS doctor, a.fee {VISITS} WHERE p.name = :patient ORDER BY a.date DESC",
           (PATIENT,), "the appointments of {patient}", role="rows", value_col="fee"),
)

FACTS = (
    Fact("cancel", "Cancellations", "Appointments cancelled less than {v} hours ahead are charged in full.",
         ("12", "24", "48"), "How many hours ahead must an appointment be cancelled to avoid a charge?", "number"),
    Fact("copay", "Co-payment", "The standard co-payment at {org} is ${v} per visit.", ("15", "20", "30"),
         "What is the standard co-payment per visit?", "number"),
    Fact("walkin", "Walk-in hours", "Walk-in patients are seen from {v} on weekdays.", ("7 am", "8 am", "9 am"),
         "From what time are walk-in patients seen on weekdays?"),
    Fact("refill", "Prescription refills", "Refill requests are processed within {v} business days.",
         ("1", "2", "3"), "Within how many business days are refill requests processed?", "number"),
    Fact("records", "Medical records", "Copies of medical records cost ${v} per request.", ("5", "10", "25"),
         "How much does a copy of one's medical records cost?", "number"),
    Fact("vaccines", "Flu vaccines", "Flu vaccines are offered free of charge to patients over {v}.",
         ("50", "60", "65"), "Above what age are flu vaccines free?", "number"),
    Fact("parking", "Parking", "Patients park free for the first {v} minutes in the clinic garage.",
         ("60", "90", "120"), "How many minutes of free parking do patients get?", "number"),
    Fact("telehealth", "Telehealth", "Video visits with {org} use the {v} app.", ("CareLink", "MedMeet", "VisitNow"),
         "Which app is used for video visits?"),
    Fact("lab", "Lab results", "Lab results are posted to the patient portal within {v} days.", ("2", "3", "5"),
         "Within how many days are lab results posted?", "number"),
    Fact("arrival", "Arrival", "Please arrive {v} minutes before your appointment to check in.", ("10", "15", "20"),
         "How many minutes early should patients arrive?", "number"),
)

DOMAIN = Domain("clinic", "Doctors, patients, appointments and prescriptions of {org}.",
                lambda f, r: f"{f.city()} Family Clinic", TABLES, TOOLS, FACTS)
