"""Synthetic clinical-style notes for the PII demo and its accuracy tests.

Written for this project: every name, date, number, address and contact in them is invented
(phone numbers in the 555-01xx fiction range, example.org/.com domains). No real patient.
"""

NOTES = [
    (
        "Patient: Maria Gonzalez, DOB 04/12/1958, MRN 00482913.\n"
        "Seen on 2024-03-18 at Riverside Clinic, 1450 Oak Street, Springfield, IL 62704.\n"
        "Chief complaint: intermittent chest pain for 3 days. History of hypertension and type 2 "
        "diabetes. Lives with her daughter, Ana Gonzalez, who can be reached at (555) 010-4432 or "
        "ana.gonzalez@example.org.\n"
        "Plan: ECG, troponin, follow-up with Dr. Samuel Okafor next week."
    ),
    (
        "Discharge summary for John A. Whitfield (SSN 123-45-6789), admitted 01/05/2023 and "
        "discharged 01/09/2023. Address on file: 88 Harbor View Road, Apt 4B, Portland, OR 97201. "
        "Insurance member ID XJ-44819-220. Driver's license D1234567. Contact: "
        "john.whitfield@example.com, phone 555-0199. Primary care: Dr. Emily Chen."
    ),
    (
        "Pt is a 67 y/o male, Mr. Haruto Tanaka, referred by Dr. Fatima Al-Sayed from "
        "Lakeside Family Practice in Madison, Wisconsin. He reports dizziness since Tuesday. "
        "Wife Keiko Tanaka present. Call back number +1 555 010 7788. Passport number on the "
        "intake form: 548213977."
    ),
    (
        "Nursing note 11:40 - Olivia Brown (room 312) refused breakfast. Son Michael Brown "
        "visited and left his number, 555-010-2231. Please send the lab results to "
        "https://portal.example.org/patients/olivia-brown and to her home at 27 Elm Court, "
        "Austin, TX 73301. Bank account for billing: 000123456789, routing 021000021."
    ),
    (
        "Telehealth visit with Priya Raghavan, 34, on June 2nd. Complains of migraines. "
        "Takes sumatriptan as needed. Employer: Northwind Analytics, Seattle. Emergency contact "
        "Arjun Raghavan, arjun.r@example.net. Next appointment 2024-07-15 at 9:30."
    ),
]
