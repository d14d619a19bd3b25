#!/usr/bin/env bash
# Compiles the product's FHIR shape (mappings/fhir/fsh, FSH) with SUSHI and copies the
# StructureDefinitions into mappings/fhir/, beside the CodeSystems, ValueSets and ConceptMaps.
# Run it after editing the FSH; tests/profiles.rs fails while the copies are out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
SUSHI="${FASTKONTAKT_SUSHI_DIR:-$HOME/.cache/fastkontakt/sushi}/node_modules/.bin/sushi"
[ -x "$SUSHI" ] || { echo "SUSHI is not installed: run scripts/install-test-deps.sh" >&2; exit 2; }
./scripts/fhir-core-package.sh >/dev/null
rm -rf mappings/fhir/fsh/fsh-generated
"$SUSHI" build mappings/fhir/fsh >/dev/null
rm -f mappings/fhir/StructureDefinition-*.json
cp mappings/fhir/fsh/fsh-generated/resources/StructureDefinition-*.json mappings/fhir/
rm -rf mappings/fhir/fsh/fsh-generated
ls mappings/fhir/StructureDefinition-*.json
