#!/usr/bin/env bash
# OpenAPI-driven fuzzing of the running edge (`just up`) with Schemathesis: every documented
# operation gets generated valid and invalid requests; the run fails on any 5xx.
#
# Health probes are excluded (503 is their documented answer when a dependency is down), and
# so is logout (it would revoke the fuzzer's own token mid-run). Set FUZZ_EXAMPLES to go deeper.
set -euo pipefail
cd "$(dirname "$0")/.."

API="${API_URL:-http://127.0.0.1:${PORT:-8787}}"
EXAMPLES="${FUZZ_EXAMPLES:-25}"
TOOLS=.data/tools
VENV="$TOOLS/venv-fuzz"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "installing schemathesis into $VENV"
  mkdir -p "$TOOLS"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis>=4,<5"
fi

curl -fsS "$API/health" >/dev/null || { echo "no edge at $API: run \`just up\` first" >&2; exit 1; }

# A user of our own for the authenticated routes.
name="fuzz_$(date +%s)_$$"
token="$(curl -fsS -X POST "$API/api/v1/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"$name@fuzz.example\",\"username\":\"$name\",\"password\":\"fuzz-password-123\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth"]["token"])')"

"$VENV/bin/schemathesis" run "$API/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error \
  --exclude-path-regex '^/health' \
  --exclude-path '/api/v1/auth/logout' \
  --max-examples "$EXAMPLES" \
  --suppress-health-check all
