"""The fixed code lists of ``bench/population.py`` (LOINC, SNOMED CT, RxNorm, CVX).

Codes and displays as Synthea emits them; kept short on purpose: a population drawn
from a few dozen codes has the skew of real data (a handful of codes on most rows).
"""

from __future__ import annotations

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
SYNTHEA = "https://github.com/synthetichealth/synthea"
NPI = "http://hl7.org/fhir/sid/us-npi"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

#: Hemoglobin A1c: measured for diabetic patients at most encounters (the query mix's
#: selective lab code).
HBA1C = "4548-4"

#: Vital signs taken at every encounter: (LOINC, display, unit, low, high).
VITALS: tuple[tuple[str, str, str, float, float], ...] = (
    ("8302-2", "Body Height", "cm", 150.0, 195.0),
    ("29463-7", "Body Weight", "kg", 50.0, 120.0),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 18.0, 38.0),
    ("8867-4", "Heart rate", "/min", 55.0, 100.0),
    ("9279-1", "Respiratory rate", "/min", 12.0, 20.0),
)
#: The blood pressure panel and its two components.
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
BP_PARTS = (("8480-6", "Systolic blood pressure", 100.0, 160.0),
            ("8462-4", "Diastolic blood pressure", 60.0, 100.0))
#: Laboratory results, drawn as panels of a few: (LOINC, display, unit, low, high).
LABS: tuple[tuple[str, str, str, float, float], ...] = (
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 65.0, 180.0),
    ("38483-4", "Creatinine [Mass/volume] in Blood", "mg/dL", 0.6, 1.4),
    ("49765-1", "Calcium [Mass/volume] in Blood", "mg/dL", 8.5, 10.5),
    ("2947-0", "Sodium [Moles/volume] in Blood", "mmol/L", 135.0, 145.0),
    ("6298-4", "Potassium [Moles/volume] in Blood", "mmol/L", 3.5, 5.1),
    ("2069-3", "Chloride [Moles/volume] in Blood", "mmol/L", 98.0, 107.0),
    ("20565-8", "Carbon dioxide, total [Moles/volume] in Blood", "mmol/L", 22.0, 29.0),
    ("6299-2", "Urea nitrogen [Mass/volume] in Blood", "mg/dL", 7.0, 20.0),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 150.0, 260.0),
    ("2571-8", "Triglycerides", "mg/dL", 80.0, 250.0),
    ("18262-6", "LDL Cholesterol", "mg/dL", 70.0, 190.0),
    ("2085-9", "HDL Cholesterol", "mg/dL", 35.0, 80.0),
)
LAB_PANEL = ("51990-0", "Basic metabolic panel - Blood")
HBA1C_DISPLAY = "Hemoglobin A1c/Hemoglobin.total in Blood"
SMOKING = ("72166-2", "Tobacco smoking status")
SMOKING_VALUES = (("266919005", "Never smoked tobacco (finding)"),
                  ("8517006", "Ex-smoker (finding)"),
                  ("449868002", "Smokes tobacco daily (finding)"))

#: Chronic conditions: (SNOMED, display, share of patients, RxNorm med, med display).
CHRONIC: tuple[tuple[str, str, float, str, str], ...] = (
    ("44054006", "Diabetes mellitus type 2 (disorder)", 0.12,
     "860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ("38341003", "Essential hypertension (disorder)", 0.25,
     "314076", "lisinopril 10 MG Oral Tablet"),
    ("55822004", "Hyperlipidemia (disorder)", 0.15,
     "312961", "Simvastatin 20 MG Oral Tablet"),
    ("195967001", "Asthma (disorder)", 0.08,
     "895994", "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"),
    ("35489007", "Depressive disorder (disorder)", 0.07,
     "312938", "Sertraline 100 MG Oral Tablet"),
)
#: Encounter diagnoses (acute, resolved).
ACUTE: tuple[tuple[str, str], ...] = (
    ("444814009", "Viral sinusitis (disorder)"),
    ("195662009", "Acute viral pharyngitis (disorder)"),
    ("10509002", "Acute bronchitis (disorder)"),
    ("43878008", "Streptococcal sore throat (disorder)"),
    ("314529007", "Medication review due (situation)"),
    ("162864005", "Body mass index 30+ - obesity (finding)"),
    ("65363002", "Otitis media (disorder)"),
    ("283371005", "Laceration of forearm (disorder)"),
)
#: Acute medications: (RxNorm, display).
ACUTE_MEDS: tuple[tuple[str, str], ...] = (
    ("198405", "Ibuprofen 100 MG Oral Tablet"),
    ("313782", "Acetaminophen 325 MG Oral Tablet"),
    ("834061", "Penicillin V Potassium 250 MG Oral Tablet"),
    ("308182", "Amoxicillin 250 MG Oral Capsule"),
)
PROCEDURES: tuple[tuple[str, str], ...] = (
    ("430193006", "Medication reconciliation (procedure)"),
    ("710824005", "Assessment of health and social care needs (procedure)"),
    ("428211000124100", "Assessment of substance use (procedure)"),
    ("171207006", "Depression screening (procedure)"),
    ("454711000124102", "Depression screening using PHQ-2 (procedure)"),
    ("868187001", "Assessment using Car, Relax, Alone (procedure)"),
    ("23426006", "Measurement of respiratory function (procedure)"),
    ("76601001", "Intramuscular injection (procedure)"),
)
ENCOUNTER_TYPES: tuple[tuple[str, str, str], ...] = (
    ("162673000", "General examination of patient (procedure)", "AMB"),
    ("185349003", "Encounter for check up (procedure)", "AMB"),
    ("185345009", "Encounter for symptom (procedure)", "AMB"),
    ("50849002", "Emergency room admission (procedure)", "EMER"),
    ("390906007", "Follow-up encounter (procedure)", "AMB"),
)
VACCINES: tuple[tuple[str, str], ...] = (
    ("140", "Influenza, seasonal, injectable, preservative free"),
    ("113", "Td (adult) preservative free"),
    ("115", "Tdap"),
    ("133", "Pneumococcal conjugate PCV 13"),
    ("08", "Hep B, adolescent or pediatric"),
    ("208", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, PF, 30 mcg/0.3mL"),
)
FAMILIES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
            "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
            "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson",
            "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker",
            "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill",
            "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell",
            "Mitchell", "Carter", "Roberts", "Bins", "Daniel", "Schimmel", "Kuhn", "Mayer",
            "Kessler", "Runolfsdottir", "Hintz", "Wuckert", "Ziemann")
GIVENS = ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
          "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph",
          "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Augustina", "Lorenzo",
          "Marcelino", "Delia", "Rosendo", "Shirley", "Hershel", "Tamika", "Milo", "Ivy")
CITIES = (("Boston", "02108"), ("Worcester", "01601"), ("Springfield", "01101"),
          ("Cambridge", "02138"), ("Lowell", "01850"), ("Brockton", "02301"),
          ("Quincy", "02169"), ("Lynn", "01901"), ("Newton", "02458"), ("Salem", "01970"))
