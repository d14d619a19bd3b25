#!/usr/bin/env bash
# Puts hl7.fhir.r4.core#4.0.1 in the FHIR package cache (~/.fhir/packages) for SUSHI, built from
# the npm package hl7.fhir.r4.examples@4.0.1: the npm registry this project reaches lists
# hl7.fhir.r4.core with no versions, but the examples package carries the same conformance
# resources (StructureDefinitions, ValueSets, CodeSystems, SearchParameters) of FHIR 4.0.1.
set -euo pipefail
CACHE="${FHIR_PACKAGE_CACHE:-$HOME/.fhir/packages}"
DEST="$CACHE/hl7.fhir.r4.core#4.0.1/package"
if [ -f "$DEST/StructureDefinition-CareTeam.json" ]; then exit 0; fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent hl7.fhir.r4.examples@4.0.1 >/dev/null && tar xzf hl7.fhir.r4.examples-4.0.1.tgz)
mkdir -p "$DEST"
for kind in StructureDefinition ValueSet CodeSystem SearchParameter ConceptMap NamingSystem OperationDefinition CompartmentDefinition CapabilityStatement; do
  find "$WORK/package" -maxdepth 1 -name "$kind-*.json" -exec cp {} "$DEST/" \;
done
cat > "$DEST/package.json" <<'JSON'
{
  "name": "hl7.fhir.r4.core",
  "version": "4.0.1",
  "fhirVersions": ["4.0.1"],
  "type": "fhir.core",
  "canonical": "http://hl7.org/fhir",
  "description": "FHIR R4 core conformance resources, assembled from hl7.fhir.r4.examples 4.0.1"
}
JSON
echo "hl7.fhir.r4.core#4.0.1 assembled in $DEST ($(ls "$DEST" | wc -l) files)"
