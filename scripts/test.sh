#!/usr/bin/env bash
# Run the whole test suite (or the pytest arguments given) in the project's .venv.
#   bash scripts/test.sh                  # everything: tests/unit, tests/nodes, tests/e2e (starts the real host)
#   bash scripts/test.sh -m "not e2e"     # skip the server tests
# Pytest's exit code 5 ("no tests collected") is turned into a failure so CI never passes on an empty run.
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
  echo "test.sh: .venv missing; run: bash scripts/quickstart.sh --install-only" >&2
  exit 1
fi
.venv/bin/python -m pytest -q "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "test.sh: pytest collected no tests (exit 5); treating it as a failure" >&2
  exit 1
fi
exit $rc
