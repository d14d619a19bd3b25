#!/usr/bin/env python3
"""Makes the golden cases: one folder per patient of samples/handwritten/register.csv (every
contact kind, status and code the hand-written register covers), named after its first row.
Then `fastkontakt mapping test samples/golden --bless` writes each case's expected.ndjson and
findings.json; review the diff before committing, as with any golden file.
    make-cases.py [REGISTER.csv OUT_DIR]   (benches/golden.sh makes 500 cases this way)"""
import csv, io, os, re, sys

# Cases of rules that have a basis only in Örebro's guideline (off under Gävleborg, the default).
REGION_RULES = {"r02-": "orebro", "r05-": "orebro", "r06-": "orebro", "r11-": "orebro",
                "r14-": "orebro", "r15-": "orebro", "r18-": "orebro"}
here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "handwritten", "register.csv")
if len(sys.argv) == 3:
    src, here = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8", newline="") as f:
    text = f.read()
rows = list(csv.reader(io.StringIO(text), delimiter=";"))
header, body = rows[0], rows[1:]
pcol = header.index("Personnummer")
by_patient = {}
for r in body:
    by_patient.setdefault(r[pcol], []).append(r)
# The EHR-only facts of each patient (Flags, Conditions, Observations, Encounters, episodes,
# plans with their Consents and principals, the Patient resource itself): a case's
# context.ndjson, read beside the mapping's FHIR when its findings are computed.
ehr_dir = os.path.join(os.path.dirname(src), "ehr")
context = {}
if os.path.isdir(ehr_dir) and len(sys.argv) != 3:
    import json
    res = []
    for name in ("contacts.ndjson", "context.ndjson"):
        with open(os.path.join(ehr_dir, name), encoding="utf-8") as f:
            res += [json.loads(l) for l in f if l.strip()]
    by_id = {f"{r['resourceType']}/{r.get('id')}": r for r in res}
    def pnr_of(r):
        for k in ("subject", "patient", "for"):
            ref = r.get(k) or {}
            if "identifier" in ref:
                return ref["identifier"].get("value")
            target = by_id.get(ref.get("reference", ""))
            if target and target.get("identifier"):
                return target["identifier"][0]["value"]
        return None
    for r in res:
        t = r["resourceType"]
        if t == "Patient":
            ids = r.get("identifier") or [{}]
            context.setdefault(ids[0].get("value", "").replace("-", ""), []).append(r)
        elif t in ("Flag", "Condition", "Observation", "Encounter", "Communication", "EpisodeOfCare", "CarePlan") or (
                t == "Task" and "patientuppgift" in json.dumps(r.get("code", {}))):
            p = (pnr_of(r) or "").replace("-", "")
            group = context.setdefault(p, [])
            group.append(r)
            if t == "CarePlan":
                refs = json.dumps(r)
                for key, other in by_id.items():
                    if other["resourceType"] in ("Consent", "Organization") and f'"{key}"' in refs and other not in group:
                        group.append(other)
for n, (patient, rs) in enumerate(by_patient.items(), start=1):
    name = re.sub(r"-\d+$", "", rs[0][0]) or "case"
    d = os.path.join(here, f"{n:02d}-{name}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "register.csv"), "w", encoding="utf-8", newline="") as out:
        w = csv.writer(out, delimiter=";", lineterminator="\n")
        w.writerow(header)
        w.writerows(rs)
    # A rule that is one region's runs under that region's profile (a file `profile`).
    region = [p for rule, p in REGION_RULES.items() if name.startswith(rule)]
    if region:
        with open(os.path.join(d, "profile"), "w", encoding="utf-8") as out:
            out.write(region[0] + "\n")
    facts = context.get(patient.replace("-", ""), [])
    if facts:
        with open(os.path.join(d, "context.ndjson"), "w", encoding="utf-8") as out:
            out.write("\n".join(json.dumps(r, ensure_ascii=False) for r in facts) + "\n")
print(f"{len(by_patient)} cases in {here}", file=sys.stderr)
