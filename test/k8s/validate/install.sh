#!/usr/bin/env bash
# kubernetes-validate (PyPI; it ships Kubernetes' own JSON schemas, so validating needs no
# download) in its own venv beside this script (.venv/, git-ignored), pinned with its
# dependencies in requirements.txt. `.ci/run` calls this; test/k8s/schemas.test.ts runs
# .venv/bin/kubernetes-validate and fails, naming this script, when it is missing.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
