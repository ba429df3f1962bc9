#!/usr/bin/env bash
# Builds SPIRE v1.13.3's spire-server and spire-agent from the Go module proxy into a cache
# outside the repository (default ~/.cache/mayfly-peers/spire-1.13.3/bin), once: a second
# run with the binaries present does nothing. The interop tests that run SPIRE's own
# binaries against Mayfly (test/interop/spire/*.ts) find them there, or at $MAYFLY_SPIRE_BIN.
set -euo pipefail
version=v1.13.3
bin="${MAYFLY_SPIRE_BIN:-${HOME}/.cache/mayfly-peers/spire-${version#v}/bin}"
if [ -x "$bin/spire-agent" ] && [ -x "$bin/spire-server" ]; then
  echo "== SPIRE $version already built in $bin"
  exit 0
fi
work="${HOME}/.cache/mayfly-peers/spire-build"
mkdir -p "$work" "$bin"
cd "$work"
[ -f go.mod ] || go mod init mayfly-spire-build >/dev/null 2>&1
go get -tool "github.com/spiffe/spire/cmd/spire-agent@$version"
go get -tool "github.com/spiffe/spire/cmd/spire-server@$version"
GOBIN="$bin" go install github.com/spiffe/spire/cmd/spire-agent github.com/spiffe/spire/cmd/spire-server
echo "== SPIRE $version built in $bin"
