# Fynden i klartext på svenska (standard; `--lang en` ger engelska). Varje meddelande finns
# också i en.ftl; produkten vägrar starta om de två skiljer sig. Argument skrivs { $namn }.

## Ord i meddelandena
no-one = ingen
none-recorded = inga registrerade
status-active = aktiv
status-ended = avslutad { $date }
status-ended-undated = avslutad (inget slutdatum)
status-declined = avböjd
status-requested = begärd
status-informed = informerad om rätten till en
contact = { $kind } { $who } vid { $unit }, från { $start }, { $status }
field-coordinating = samordningsansvar
field-start = startdatum
field-end = slutdatum
why-group = patientgrupp { $group }
why-large-care-needs = stort vård- och omvårdnadsbehov
why-deceased = avliden
why-moved-out = utflyttad från regionen
tier-red = prioritera
tier-yellow = prioriteras vid behov
plan-sip = SIP:en
plan-medical = den medicinska vårdplanen
plan-agreement = den dokumenterade överenskommelsen

## Reglerna
fk-r01-per-patient = { $count } aktiva fasta vårdkontakter; profilen tillåter { $max } per patient
fk-r01-per-unit = { $count } aktiva fasta vårdkontakter vid { $unit }; profilen tillåter { $max } per enhet
fk-r02-none = aktiva fasta vårdkontakter i { $units } enheter och ingen har samordningsansvar
fk-r02-several = { $count } fasta vårdkontakter är markerade med samordningsansvar; det ska vara exakt en
fk-r03-declined = livshotande tillstånd; patienten avböjde fast vårdkontakt { $date }
fk-r03-unknown = inte bedömt för patienten: livshotande tillstånd, och om den fasta vårdkontakten är legitimerad läkare är inte känt (yrke eller legitimation saknas)
fk-r03-no-fvk = livshotande tillstånd och ingen aktiv fast vårdkontakt; en legitimerad läkare ska vara fast vårdkontakt
fk-r03-no-physician = livshotande tillstånd, men ingen fast vårdkontakt är legitimerad läkare
fk-r04-profession = den fasta läkarkontakten är { $profession }, inte läkare
fk-r04-unit = den fasta läkarkontakten arbetar vid { $unit }, en enhet av typen { $kind }, inte en vårdcentral
fk-r05 = den fasta läkarkontaktens specialiteter ({ $specialties }) är inte allmänmedicinsk kompetens
fk-r06 = kommunal hälso- och sjukvård ({ $forms }) men ingen fast läkarkontakt vid en vårdcentral
fk-r07-unit = ett inskrivningsmeddelande gick till { $unit } och utskrivning är beslutad, men enheten har inte utsett någon fast vårdkontakt
fk-r07-coordinating = utskrivning är beslutad, men ingen fast vårdkontakt i regionens öppenvård har samordningsansvaret
fk-r08-missing = journalen saknar registrets { $kind }
fk-r08-other-person = journalen anger en annan person som { $kind }
fk-r08-extra = journalen har en { $kind } som registret saknar
fk-r08-field = { $field }: registret { $register }, journalen { $ehr }
fk-r08-differs = { $kind } skiljer sig: { $what }
fk-r09-register-ended = registret har avslutat { $kind }, journalen har den fortfarande aktiv
fk-r09-ehr-ended = journalen har avslutat { $kind }, registret har den fortfarande aktiv
fk-r10 = { $who } har inget aktivt uppdrag vid { $unit } för { $kind }
fk-r11 = den fasta vårdkontakten är administrativ personal; profilen kräver hälso- och sjukvårdspersonal
fk-r12 = patienten avböjde erbjudande om { $kind }; journalen dokumenterar det inte
fk-r16-rejected = raden i registret avvisades: { $problems }
fk-r17 = samma person är { $kind } två gånger under överlappande perioder
fk-r18 = { $why }: prioriteringsmodellen anger { $needs } ({ $tier }), och patienten har ingen; bedömningen ligger hos verksamheten
fk-r18-declined = { $why }: patienten avböjde fast vårdkontakt { $date }
fk-r19-several = { $count } aktiva fasta läkarkontakter; en patient har en
fk-r19-listing = den fasta läkarkontakten arbetar vid { $unit } men patienten är listad vid { $listing }
fk-r20 = patienten är { $why } men har { $count } aktiva kontakter
fk-r21-profession = yrket '{ $word }' finns inte i regionens kodverk yrke (mappings/fhir/CodeSystem-yrke.json): lägg till det där, eller rätta raden
fk-r21-role = den behandlande rollen '{ $word }' finns inte i regionens kodverk behandlande-roll (mappings/fhir/CodeSystem-behandlande-roll.json): lägg till den där, eller rätta raden
fk-r21-mismatch = den behandlande rollen { $role } innehas av yrket { $held } (kodverket anger den för { $expected })
fk-r22 = patienten begärde { $kind } { $date }; ingen är utsedd efter { $waited } dagar (profilen medger { $days })
fk-r23 = den fasta vårdkontakten är oförändrad sedan { $date }, mer än { $months } månader: utvärdera och ompröva behovet tillsammans med patienten
fk-r24 = patienten har ännu inte informerats om att den fasta vårdkontakten avslutats eller ändrats: uppgiften är öppen sedan { $since }, ägare { $unit }
fk-in01 = inte inläst: { $what }

## Planer (FK-R13..R15): "{ $plan } saknar { $missing }"
plan-lacks = { $plan } saknar { $missing }
lacks-consent = patientens samtycke
lacks-active-consent = ett giltigt samtycke ({ $consent } är inte aktivt)
lacks-interventions = vilka insatser som behövs
lacks-responsible = vilken huvudman som ansvarar för { $count } insats(er)
lacks-overall = huvudmannen med det övergripande ansvaret
lacks-overall-principal = en huvudman med det övergripande ansvaret (regionen eller kommunen; 'annan' kan inte ha det)
lacks-prognosis = en prognos
lacks-care-level = vårdnivå och inriktning vid allvarlig försämring
lacks-direct-contact = direktkontakt vid försämring
lacks-action-plan = en åtgärdsplan vid försämring
lacks-follow-up = när och av vem den följs upp
lacks-author = dess upprättare
lacks-author-role = en upprättare som är den fasta läkarkontakten eller behandlande läkare ({ $author } finns varken bland patientens kontakter eller som läkare i specialistvården)
lacks-patient-commitments = patientens åtaganden
lacks-care-commitments = vårdens åtaganden
lacks-named = { $kind } bland dess kontakter
lacks-next-contact = överenskommen tid för nästa kontakt
