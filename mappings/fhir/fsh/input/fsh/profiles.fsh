// The product's FHIR shape for fixed contacts: what `translate` and `sync` write, and what
// `validate` holds a vendor's data to (src/fhir/inbound.rs enforces the same constraints).

Alias: $typ = https://fhir.inera.se/ig/careteam/CodeSystem/typ-av-careteam-cs
Alias: $kv = https://terminologitjansten.inera.se/inera-kodverksforvaltning/kodverk/kv_typ_av_fast_kontakt
Alias: $kategori = https://fhir.fastkontakt.example/CodeSystem/careteam-kategori
Alias: $roll = https://fhir.fastkontakt.example/CodeSystem/behandlande-roll
Alias: $erbjudande = https://fhir.fastkontakt.example/CodeSystem/erbjudande
Alias: $deltagarroll = https://fhir.fastkontakt.example/ValueSet/fast-kontakt-deltagarroll
Alias: $steg = https://fhir.fastkontakt.example/ValueSet/erbjudande-steg

Invariant: fk-status
Description: "A fixed contact is active or ended (inactive)."
Expression: "status = 'active' or status = 'inactive'"
Severity: #error

Invariant: fk-period
Description: "A relation that has ended has an end date no earlier than its start."
Expression: "period.end.empty() or period.end >= period.start"
Severity: #error

Extension: BefolkningsregisterAndring
Id: befolkningsregister-andring
Title: "Befolkningsregistrets ändring"
Description: "When, and by whom (HSA-id), the population register last changed the relation."
Context: CareTeam, Task
* extension contains tidpunkt 0..1 and av 0..1
* extension[tidpunkt].value[x] only dateTime
* extension[av].value[x] only Identifier

Extension: EjLegitimerad
Id: ej-legitimerad
Title: "Ej legitimerad"
Description: "The staff member is known not to hold a licence (legitimation); absent, the licence is unknown or given by a qualification."
Context: Practitioner
* value[x] only boolean

Profile: FastKontaktCareTeam
Parent: CareTeam
Id: fast-kontakt-careteam
Title: "Fast vårdkontakt eller fast läkarkontakt"
Description: "One named fixed contact (FVK, coordinating FVK or FLK) of one patient, as one CareTeam with one participant."
* obeys fk-status and fk-period
* extension contains BefolkningsregisterAndring named registerAndring 0..1
* status 1..1
* category 1..*
* category = $typ#fast-kontakt
* subject 1..1
* subject only Reference(Patient)
* period 1..1
* period.start 1..1
* participant 1..1
* participant.role 1..*
* participant.role from $deltagarroll (required)
* participant.member 1..1
* participant.member only Reference(PractitionerRole)

Profile: BehandlandeRollCareTeam
Parent: CareTeam
Id: behandlande-roll-careteam
Title: "Behandlande roll"
Description: "One treating role (a contact nurse, a responsible physiotherapist …) of one patient, as one CareTeam with one participant."
* obeys fk-status and fk-period
* extension contains BefolkningsregisterAndring named registerAndring 0..1
* status 1..1
* category 1..*
* category = $kategori#behandlande-roll
* subject 1..1
* subject only Reference(Patient)
* period 1..1
* period.start 1..1
* participant 1..1
* participant.role 1..*
* participant.role.coding 1..*
* participant.role.coding.system = $roll
* participant.member 1..1
* participant.member only Reference(PractitionerRole)

Profile: ErbjudandeTask
Parent: Task
Id: erbjudande-task
Title: "Erbjudande om fast kontakt"
Description: "A step of the offer of a fixed contact: the patient informed of the right to one (Örebro §1.1.1; status completed), the patient's request (Örebro §7.3, Gävleborg §2.1; status requested, answered when the register no longer lists it), or the patient's decline (Gävleborg §2.1; status completed)."
* extension contains BefolkningsregisterAndring named registerAndring 0..1
* code 1..1
* code = $erbjudande#erbjudande-fast-kontakt
* businessStatus 1..1
* businessStatus from $steg (required)
* for 1..1
* for only Reference(Patient)
* executionPeriod 1..1
* executionPeriod.start 1..1
* requester 1..1
* requester only Reference(Organization or PractitionerRole)
* input 1..*
* input.value[x] only CodeableConcept
* input.valueCodeableConcept from $deltagarroll (required)

Profile: AvbojtErbjudandeTask
Parent: ErbjudandeTask
Id: avbojt-erbjudande-task
Title: "Avböjt erbjudande om fast kontakt"
Description: "The patient declined the offer of a fixed contact (Gävleborg §2.1): the offer, its kind and its unit."
* businessStatus = $erbjudande#avbojt

Profile: FastKontaktPractitionerRole
Parent: PractitionerRole
Id: fast-kontakt-practitionerrole
Title: "Fast kontakts roll i en enhet"
Description: "The staff member of a fixed contact in its care unit: the Practitioner (with HSA-id) and the Organization (with HSA-id)."
* practitioner 1..1
* practitioner only Reference(Practitioner)
* organization 1..1
* organization only Reference(Organization)
