#!/usr/bin/env bash
# Trains the zstd dictionary that SQLite's stored documents are packed with
# (gateway/src/document_codec.rs). Its samples are the Kanta-style documents of the mapping
# fixtures and profile examples, written as the gateway writes documents (compact, keys in
# order). The decision the load benchmark sends (positive, approved) is left out, so the
# benchmark measures a document the dictionary has not seen.
#
# The same samples give the same dictionary. A new dictionary needs a new id, and the old one
# kept for reading what it packed: run with DICT_ID set to the next id, and append the new file
# to DICTIONARIES in gateway/src/document_codec.rs (the last one packs new documents).
# Needs python3 and zstd.
set -euo pipefail
cd "$(dirname "$0")/.."
DICT_ID="${DICT_ID:-32769}" # ids below 32768 are reserved for a registrar (RFC 8878, 5)
OUT="gateway/src/document_codec/kanta-documents-${DICT_ID}.zdict"
samples="$(mktemp -d)"
trap 'rm -rf "$samples"' EXIT
for file in mappings/fixtures/*.kanta.json profiles/examples/kanta/*/valid/*.json; do
    case "$file" in
    *decision-positive-approved* | */PAATOS_SOSKU/valid/positive-final.json) continue ;;
    esac
    python3 -c '
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    document = json.load(f)
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write(json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False))
' "$file" "$samples/$(echo "$file" | tr / _)"
done
zstd --train "$samples"/* --maxdict=8192 --dictID="$DICT_ID" -o "$OUT"
echo "wrote $OUT"
