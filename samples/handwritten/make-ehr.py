#!/usr/bin/env python3
"""Builds samples/handwritten/ehr/ from register.csv: the EHR's copy of the contacts (with the
deviations each r08/r09/r12/r07/r10 case needs) translated by fastkontakt with ehr-target.toml,
plus hand-written context resources (context.ndjson). Run from the repository root:

    python3 samples/handwritten/make-ehr.py

The output is committed; this script is the recipe, kept so the sample can be changed."""
import csv, io, json, subprocess, uuid, pathlib

HERE = pathlib.Path(__file__).parent
NS = uuid.UUID("6f1d2c7a-0b3e-4d59-8a61-5e2f9c0d4b17")  # ehr-target.toml id_namespace
KS = "https://fhir.fastkontakt.example/CodeSystem/"
PNR = "urn:oid:1.2.752.129.2.1.3.1"

def rid(kind, key):
    return str(uuid.uuid5(NS, f"{kind}|{key}"))

rows = list(csv.reader(open(HERE / "register.csv", encoding="utf-8"), delimiter=";"))
header, body = rows[0], rows[1:]
pnr = {r[0].rsplit("-", 1)[0]: r[1] for r in body}
ehr = []
for r in body:
    case, n = r[0].rsplit("-", 1)
    r = list(r)
    if case in ("r08-ehr-missing", "r12-declined-not-in-ehr", "r16-bad-checksum"):
        continue  # the EHR never got these
    if case == "r08-ehr-other-staff":
        r[8], r[9] = "SE2321000016-N005", "Frida Nyström"  # another nurse at the same unit
    if case == "r09-ended-only-register":
        r[5], r[7] = "Aktiv", ""  # still active in the EHR
    r[0] = "ehr-" + r[0]
    r[17], r[18] = "", ""  # the register's change stamp is not the EHR's
    ehr.append(r)
VC1 = ["SE2321000016-V0001", "Vårdcentralen Norr", "Vårdcentral"]
VC2 = ["SE2321000016-V0002", "Vårdcentralen Söder", "Vårdcentral"]
def extra(row_id, case, kind, staff, unit, start, coord=""):
    ehr.append([row_id, pnr[case], kind, "", coord, "Aktiv", start, "", *staff, "", *unit, unit[0], "", ""])
extra("ehr-extra-fvk", "r08-ehr-extra", "FVK", ["SE2321000016-N001", "Erik Berg", "Sjuksköterska", "J"], VC1, "2025-03-01")
extra("ehr-discharge-fvk", "r07-discharge-fvk-ehr-only", "FVK", ["SE2321000016-N002", "Sara Holm", "Sjuksköterska", "J"], VC2, "2026-05-20", coord="J")
buf = io.StringIO()
w = csv.writer(buf, delimiter=";", lineterminator="\n")
w.writerow(header)
w.writerows(ehr)
tmp = HERE / "ehr-contacts.tmp.csv"
tmp.write_text(buf.getvalue(), encoding="utf-8")
out = subprocess.run(["cargo", "run", "-q", "--", "--target", str(HERE / "ehr-target.toml"), "translate", str(tmp), "--ndjson"],
                     check=True, capture_output=True).stdout.decode()
tmp.unlink()
lines = []
for line in out.splitlines():
    res = json.loads(line)
    ident = [i["value"] for i in res.get("identifier", [])]
    if res["resourceType"] == "CareTeam" and "ehr-discharge-fvk" in ident:
        res["reasonCode"] = [{"coding": [{"system": KS + "fast-kontakt-grund", "code": "utskrivning-slutenvard", "display": "Utsedd vid utskrivning från sluten vård"}]}]
    if res["resourceType"] == "PractitionerRole" and "SE2321000016-N009|SE2321000016-V0001" in ident:
        res["active"] = False  # r10: no longer selectable at the unit
    if res["resourceType"] == "Patient" and res["identifier"][0]["value"] == pnr["r20-deceased"].replace("-", ""):
        res["deceasedDateTime"] = "2026-04-02"
    lines.append(json.dumps(res, ensure_ascii=False, separators=(",", ":")))
(HERE / "ehr" / "contacts.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")

def subject(case):
    return {"identifier": {"system": PNR, "value": pnr[case].replace("-", "")}}
def cc(system, code, display=None):
    c = {"system": system if system.startswith("http") else KS + system, "code": code}
    if display: c["display"] = display
    return {"coding": [c]}
def role(staff, unit):
    return {"reference": "PractitionerRole/" + rid("PractitionerRole", f"{staff}|{unit}")}
def careteam(row):
    return {"reference": "CareTeam/" + rid("CareTeam", row)}
def act(code, text=None, **kw):
    d = {"code": cc("planaktivitet", code), "status": "scheduled"}
    if text: d["description"] = text
    d.update(kw)
    return {"detail": d}
ctx = [
    {"resourceType": "Organization", "id": "huvudman-region", "name": "Region Örebro län", "type": [cc("huvudman-typ", "region")]},
    {"resourceType": "Organization", "id": "huvudman-kommun", "name": "Örebro kommun", "type": [cc("huvudman-typ", "kommun")]},
    {"resourceType": "Observation", "id": "grupp-ok-all", "status": "final", "code": cc("patientkontext", "patientgrupp"), "subject": subject("ok-all"), "valueCodeableConcept": cc("patientgrupp", "enkelt")},
    {"resourceType": "Encounter", "id": "utskrivning-ok", "status": "in-progress", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}, "subject": subject("r07-discharge-fvk-ehr-only"), "hospitalization": {"dischargeDisposition": {"text": "hem med hemsjukvård"}}},
    {"resourceType": "Encounter", "id": "utskrivning-utan-fvk", "status": "in-progress", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}, "subject": subject("r07-discharge-no-fvk"), "hospitalization": {"dischargeDisposition": {"text": "hem"}}},
    # Admission notices (inskrivningsmeddelande) to Vårdcentralen Söder: its FVK is due before discharge.
    {"resourceType": "Communication", "id": "inskrivning-ok", "status": "completed", "category": [cc("patientkontext", "inskrivningsmeddelande")], "subject": subject("r07-discharge-fvk-ehr-only"), "sent": "2026-05-18T10:00:00+02:00", "recipient": [{"identifier": {"system": "urn:oid:1.2.752.129.2.1.4.1", "value": "SE2321000016-V0002"}}]},
    {"resourceType": "Communication", "id": "inskrivning-utan-fvk", "status": "completed", "category": [cc("patientkontext", "inskrivningsmeddelande")], "subject": subject("r07-discharge-no-fvk"), "sent": "2026-05-25T10:00:00+02:00", "recipient": [{"identifier": {"system": "urn:oid:1.2.752.129.2.1.4.1", "value": "SE2321000016-V0002"}}]},
    {"resourceType": "Encounter", "id": "utskrivning-annan-enhet", "status": "in-progress", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}, "subject": subject("r07-notice-other-unit"), "hospitalization": {"dischargeDisposition": {"text": "hem"}}},
    {"resourceType": "Communication", "id": "inskrivning-annan-enhet", "status": "completed", "category": [cc("patientkontext", "inskrivningsmeddelande")], "subject": subject("r07-notice-other-unit"), "sent": "2026-05-26T10:00:00+02:00", "recipient": [{"identifier": {"system": "urn:oid:1.2.752.129.2.1.4.1", "value": "SE2321000016-V0002"}}]},
    # An open task to tell the patient that the FVK ended (Örebro §7.4), as a sync writes it.
    {"resourceType": "Task", "id": "informera-r24", "status": "requested", "intent": "order", "code": cc("patientuppgift", "informera-om-fast-vardkontakt"), "for": subject("r24-inform-open"), "focus": careteam("ehr-r24-inform-open-1"), "authoredOn": "2026-05-16", "owner": {"identifier": {"system": "urn:oid:1.2.752.129.2.1.4.1", "value": "SE2321000016-V0001"}}},
    {"resourceType": "Flag", "id": "livshotande-1", "status": "active", "code": cc("patientkontext", "livshotande-tillstand"), "subject": subject("r03-life-threatening-nurse")},
    {"resourceType": "Condition", "id": "livshotande-2", "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"), "category": [cc("patientkontext", "livshotande-tillstand")], "code": {"text": "Metastaserad cancer"}, "subject": subject("r03-life-threatening-physician-ok")},
    {"resourceType": "Observation", "id": "kommunal-1", "status": "final", "code": cc("patientkontext", "kommunal-vardform"), "subject": subject("r06-municipal-no-flk"), "valueCodeableConcept": cc("kommunal-vardform", "hemsjukvard")},
    {"resourceType": "EpisodeOfCare", "id": "kommunal-2", "status": "active", "type": [cc("kommunal-vardform", "sarskilt-boende")], "patient": subject("r06-municipal-flk-ok")},
    {"resourceType": "Flag", "id": "utflyttad-1", "status": "active", "code": cc("patientkontext", "utflyttad"), "subject": subject("r20-moved")},
    {"resourceType": "Observation", "id": "grupp-komplext", "status": "final", "code": cc("patientkontext", "patientgrupp"), "subject": subject("r18-komplext-no-fvk"), "valueCodeableConcept": cc("patientgrupp", "komplext")},
]
def sip(case, consent):
    cp = {"resourceType": "CarePlan", "id": "sip-" + case, "status": "active", "intent": "plan", "category": [cc("plantyp", "sip"), cc("http://snomed.info/sct", "734163000", "Care plan")],
          "subject": subject(case), "created": "2025-11-01", "author": {"reference": "Organization/huvudman-region"}, "contributor": [{"reference": "Organization/huvudman-kommun"}],
          "activity": [act("insats", "Hemsjukvård två gånger dagligen", performer=[{"reference": "Organization/huvudman-kommun"}]),
                       act("insats", "Uppföljning på vårdcentralen", performer=[{"reference": "Organization/huvudman-region"}]),
                       act("atgard-annan", "Dottern handlar och följer med på besök")]}
    if consent:
        ctx.append({"resourceType": "Consent", "id": "samtycke-" + case, "status": "active", "scope": cc("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
                    "category": [cc("http://loinc.org", "59284-0", "Patient Consent")], "patient": subject(case), "dateTime": "2025-10-30",
                    "policy": [{"uri": "https://www.visamregionorebro.se/"}]})
        cp["supportingInfo"] = [{"reference": "Consent/samtycke-" + case}]
    ctx.append(cp)
sip("r13-sip-no-consent", False)
sip("r13-sip-ok", True)
L2, L1, VC1H, VC2H = "SE2321000016-L002", "SE2321000016-L001", "SE2321000016-V0001", "SE2321000016-V0002"
ctx.append({"resourceType": "CarePlan", "id": "mvp-ofullstandig", "status": "active", "intent": "plan", "category": [cc("plantyp", "medicinsk-vardplan")], "subject": subject("r14-mvp-incomplete"),
            "author": role(L2, VC2H), "activity": [act("prognos", "God på kort sikt")]})
ctx.append({"resourceType": "CarePlan", "id": "mvp-komplett", "status": "active", "intent": "plan", "category": [cc("plantyp", "medicinsk-vardplan")], "subject": subject("r14-mvp-ok"),
            "author": role(L1, VC1H), "activity": [
                act("prognos", "Kronisk hjärtsvikt, stabil"), act("vardniva-vid-forsamring", "Vård i hemmet, ej intensivvård"),
                act("direktkontakt", "Ring vårdcentralens sjuksköterska direkt, 019-00 00 00"), act("atgardsplan-vid-forsamring", "Öka diuretika enligt ordination, kontakta FLK"),
                act("uppfoljning", "Årlig uppföljning", scheduledPeriod={"start": "2026-09-01"}, performer=[role(L1, VC1H)]),
                act("behandlingsbegransning", "Ingen hjärt-lungräddning, beslutat 2026-01-10")]})
def agreement(case, cid, next_contact):
    acts = [act("patientens-atagande", "Väger sig varje morgon"), act("vardens-atagande", "Sjuksköterskan ringer varannan vecka")]
    if next_contact:
        acts.append(act("nasta-kontakt", "Telefonsamtal", scheduledPeriod={"start": "2026-07-01"}))
    ctx.append({"resourceType": "CarePlan", "id": cid, "status": "active", "intent": "plan", "category": [cc("plantyp", "dokumenterad-overenskommelse")], "subject": subject(case),
                "careTeam": [careteam(f"ehr-{case}-1"), careteam(f"ehr-{case}-2")], "activity": acts})
agreement("r15-agreement-no-next-contact", "overenskommelse-utan-tid", False)
agreement("r15-agreement-ok", "overenskommelse-komplett", True)
(HERE / "ehr" / "context.ndjson").write_text("\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in ctx) + "\n", encoding="utf-8")
print(f"wrote {len(lines)} contact resources and {len(ctx)} context resources")
