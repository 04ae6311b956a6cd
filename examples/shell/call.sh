#!/bin/sh
# Call the Azərsu billing-statement service with curl.
#
# `azersu-statement call --dump-request` signs a fresh request (WS-Security:
# a Timestamp and the Body, RSA-SHA256, the caller's certificate as a
# BinarySecurityToken) and writes it without sending it; curl posts it.  A
# signed request is taken once and only while its Timestamp is fresh, so the
# script signs a new one for every call.
#
#   examples/shell/call.sh [URL]        (default http://127.0.0.1:8080/soap)
#
# Settings (environment): CODE and FIN (the subscriber code and the citizen's
# FIN; default the demo database's 100000000 and X9SCKS7), KEY and CERT (the
# caller's key and certificate; default the development portal's in
# var/pki/), TRUST (the CA bundle; default var/pki/ca.pem), STATEMENT_COMMAND
# (the command; default .venv/bin/azersu-statement, else the one on PATH).
#
# The answer goes to standard output; the exit status is curl's (22 for a
# SOAP Fault, which is posted with HTTP status 500).  curl does not check the
# answer's signature: `azersu-statement call` does.
set -eu

url=${1:-http://127.0.0.1:8080/soap}
code=${CODE:-100000000}
fin=${FIN:-X9SCKS7}
key=${KEY:-var/pki/portal.key}
cert=${CERT:-var/pki/portal.pem}
trust=${TRUST:-var/pki/ca.pem}
if [ -z "${STATEMENT_COMMAND:-}" ]; then
  if [ -x .venv/bin/azersu-statement ]; then
    STATEMENT_COMMAND=.venv/bin/azersu-statement
  else
    STATEMENT_COMMAND=azersu-statement
  fi
fi

request=$(mktemp)
trap 'rm -f "$request"' EXIT

"$STATEMENT_COMMAND" call --url "$url" --code "$code" --fin "$fin" \
  --key "$key" --cert "$cert" --trust "$trust" --dump-request "$request"

curl --silent --show-error --fail-with-body \
  --header 'Content-Type: text/xml; charset=utf-8' \
  --header 'SOAPAction: "GetBillingStatement"' \
  --data-binary "@$request" \
  "$url"
echo
