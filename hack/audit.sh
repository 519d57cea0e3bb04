#!/usr/bin/env bash
# Dependency audit: every pinned package in requirements/*.txt checked against a
# vulnerability database with pip-audit, installed in its own venv (build/audit-venv)
# so its dependencies never mix with the project's. Idempotent.
#
# Exit codes: 0 every package audited, no known vulnerability (except the ones listed
# with a reason in hack/audit-ignore.txt); 1 vulnerabilities found; 3 some packages
# could not be audited because no vulnerability database answered. pip-audit itself
# exits 0 in that last case, having audited nothing; this script does not.
#
# pip-audit asks PyPI's JSON API (default) or api.osv.dev (AUDIT_SERVICE=osv) per
# package. A machine that reaches only a package index (pip install works, the JSON
# API does not) gets exit 3: docs/security.md says what to do there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=build/audit-venv
PIP_AUDIT_VERSION=2.10.1
SERVICE=${AUDIT_SERVICE:-pypi}
REPORT=build/audit.json

if [ ! -x "$VENV/bin/pip-audit" ] || \
        [ "$("$VENV/bin/pip-audit" --version 2>/dev/null)" != "pip-audit $PIP_AUDIT_VERSION" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "pip-audit==$PIP_AUDIT_VERSION"
fi

ignores=()
while read -r id _; do
    [ -n "$id" ] && [ "${id:0:1}" != "#" ] && ignores+=(--ignore-vuln "$id")
done < <(cat hack/audit-ignore.txt 2>/dev/null || true)

rm -f "$REPORT"
set +e
"$VENV/bin/pip-audit" --no-deps --disable-pip --progress-spinner off \
    --vulnerability-service "$SERVICE" --format json --output "$REPORT" \
    -r requirements/runtime.txt -r requirements/dev.txt "${ignores[@]}" 2>build/audit.log
status=$?
set -e

"$VENV/bin/python" - "$REPORT" "$status" "$SERVICE" <<'EOF'
import json, sys

report_path, status, service = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    report = json.load(open(report_path))
except (OSError, ValueError):
    print(f"pip-audit wrote no report (exit {status}); see build/audit.log")
    sys.exit(3)
deps = report["dependencies"]
skipped = [d for d in deps if d.get("skip_reason")]
vulnerable = [d for d in deps if d.get("vulns")]
print(f"pip-audit ({service}): {len(deps)} pinned packages, "
      f"{len(deps) - len(skipped)} audited, {len(skipped)} not audited, "
      f"{sum(len(d['vulns']) for d in vulnerable)} vulnerabilities in "
      f"{len(vulnerable)} packages")
for d in vulnerable:
    for v in d["vulns"]:
        print(f"  {d['name']} {d['version']}: {v['id']} (fixed in "
              f"{', '.join(v.get('fix_versions') or ['no release'])})")
if vulnerable:
    sys.exit(1)
if skipped:
    print(f"  not audited, e.g. {skipped[0]['name']}: {skipped[0]['skip_reason']}")
    print("No vulnerability database answered, so this is NOT a clean audit. "
          "Run it where PyPI's JSON API or api.osv.dev is reachable "
          "(docs/security.md, 'Dependency audit').")
    sys.exit(3)
EOF
