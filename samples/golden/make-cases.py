#!/usr/bin/env python3
"""Makes the golden cases: one folder per patient of samples/handwritten/register.csv (every
contact kind, status and code the hand-written register covers), named after its first row.
Then `fastkontakt mapping test samples/golden --bless` writes each case's expected.ndjson and
findings.json; review the diff before committing, as with any golden file.
    make-cases.py [REGISTER.csv OUT_DIR]   (benches/golden.sh makes 500 cases this way)"""
import csv, io, os, re, sys

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
for n, (patient, rs) in enumerate(by_patient.items(), start=1):
    name = re.sub(r"-\d+$", "", rs[0][0]) or "case"
    d = os.path.join(here, f"{n:02d}-{name}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "register.csv"), "w", encoding="utf-8", newline="") as out:
        w = csv.writer(out, delimiter=";", lineterminator="\n")
        w.writerow(header)
        w.writerows(rs)
print(f"{len(by_patient)} cases in {here}", file=sys.stderr)
