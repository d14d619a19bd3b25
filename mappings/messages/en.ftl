# The findings' messages in English (`--lang en`). Every message here is also in sv.ftl; the
# product refuses to start if the two differ. Arguments are { $name }.

## Words inside messages
no-one = no one
none-recorded = none recorded
status-active = active
status-ended = ended { $date }
status-ended-undated = ended (no end date)
status-declined = declined
status-requested = requested
status-informed = informed of the right to one
contact = { $kind } { $who } at { $unit }, from { $start }, { $status }
field-coordinating = coordinating
field-start = start
field-end = end
why-group = patient group { $group }
why-large-care-needs = large care needs
why-deceased = deceased
why-moved-out = moved out of the region
tier-red = prioritise
tier-yellow = prioritise when needed
plan-sip = the SIP
plan-medical = the medical care plan
plan-agreement = the documented agreement

## Rules
fk-r01-per-patient = { $count } active FVKs; the profile allows { $max } per patient
fk-r01-per-unit = { $count } active FVKs at { $unit }; the profile allows { $max } per unit
fk-r02-none = active FVKs in { $units } units and none coordinates
fk-r02-several = { $count } FVKs are marked coordinating; exactly one should be
fk-r03-declined = life-threatening condition; the patient declined an FVK on { $date }
fk-r03-unknown = not evaluated for this patient: a life-threatening condition, and whether the FVK is a licensed physician is not known (profession or licence missing)
fk-r03-no-fvk = life-threatening condition and no active FVK; a licensed physician must be FVK
fk-r03-no-physician = life-threatening condition, but no FVK is a licensed physician
fk-r04-profession = the FLK is { $profession }, not a physician
fk-r04-unit = the FLK works at { $unit }, a { $kind } unit, not a primary-care centre
fk-r05 = the FLK's specialties ({ $specialties }) are not general-practice competence
fk-r06 = municipal care ({ $forms }) but no FLK at a primary-care centre
fk-r07-unit = an admission notice went to { $unit } and discharge is decided, but the unit has appointed no FVK
fk-r07-coordinating = discharge is decided, but no FVK in the region's outpatient care has the coordinating responsibility
fk-r08-missing = the EHR lacks the register's { $kind }
fk-r08-other-person = the EHR names another person as { $kind }
fk-r08-extra = the EHR has a { $kind } the register lacks
fk-r08-field = { $field }: register { $register }, EHR { $ehr }
fk-r08-differs = { $kind } differs: { $what }
fk-r09-register-ended = the register ended the { $kind }, the EHR still has it active
fk-r09-ehr-ended = the EHR ended the { $kind }, the register still has it active
fk-r10 = { $who } holds no active role at { $unit } for { $kind }
fk-r11 = the FVK is administrative staff; the profile requires health-care staff
fk-r12 = the patient declined an { $kind } offer; the EHR does not record it
fk-r16-rejected = register row rejected: { $problems }
fk-r17 = the same person is { $kind } twice over overlapping periods
fk-r18 = { $why }: the prioritisation model indicates { $needs } ({ $tier }), and the patient has none; the assessment is the unit's
fk-r18-declined = { $why }: the patient declined an FVK on { $date }
fk-r19-several = { $count } active FLKs; a patient has one
fk-r19-listing = the FLK works at { $unit } but the patient is listed at { $listing }
fk-r20 = the patient is { $why } but has { $count } active contacts
fk-r21-profession = profession '{ $word }' is not in the region's CodeSystem yrke (mappings/fhir/CodeSystem-yrke.json): add it there, or correct the row
fk-r21-role = treating role '{ $word }' is not in the region's CodeSystem behandlande-roll (mappings/fhir/CodeSystem-behandlande-roll.json): add it there, or correct the row
fk-r21-mismatch = treating role { $role } is held by a { $held } (the CodeSystem names it for { $expected })
fk-r22 = the patient asked for a { $kind } on { $date }; none is appointed after { $waited } days (the profile allows { $days })
fk-r23 = the FVK is unchanged since { $date }, over { $months } months: evaluate the need again together with the patient
fk-r24 = the patient is still to be told that the FVK ended or changed: the task is open since { $since }, owned by { $unit }
fk-in01 = not read: { $what }

## Plans (FK-R13..R15): "{ $plan } lacks { $missing }"
plan-lacks = { $plan } lacks { $missing }
lacks-consent = the patient's consent
lacks-active-consent = an active consent ({ $consent } is not active)
lacks-interventions = the interventions needed
lacks-responsible = which principal answers for { $count } intervention(s)
lacks-overall = the principal with overall responsibility
lacks-overall-principal = a principal with overall responsibility (the region or the municipality; 'annan' cannot hold it)
lacks-prognosis = a prognosis
lacks-care-level = care level and direction on serious deterioration
lacks-direct-contact = direct contact on deterioration
lacks-action-plan = an action plan on deterioration
lacks-follow-up = when and by whom it is followed up
lacks-author = its author
lacks-author-role = an author who is the FLK or a treating physician ({ $author } is neither among the patient's contacts nor a physician in specialist care)
lacks-patient-commitments = the patient's commitments
lacks-care-commitments = the care's commitments
lacks-named = the { $kind } among its contacts
lacks-next-contact = the agreed time of the next contact
