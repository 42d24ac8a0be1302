#!/usr/bin/env bash
# Builds the test services into .cache/ (idempotent; each step skips when done):
#   .cache/vcsim                        govmomi vCenter simulator (GOPATH mode, Debian's govmomi)
#   .cache/azurite/node_modules/...     Azurite, the Azure Blob emulator, from npm
#   .cache/guestfs/                     libguestfs appliance cache (checked by a real launch in tests)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache

src=tests/infra/vcsim/main.go
if [ ! -x .cache/vcsim ] || [ "$src" -nt .cache/vcsim ]; then
  echo "building vCenter simulator (.cache/vcsim)"
  GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local \
    GOCACHE="$PWD/.cache/gocache" go build -o .cache/vcsim.tmp "$src"
  mv .cache/vcsim.tmp .cache/vcsim
fi

azurite_version=3.35.0
if [ ! -x .cache/azurite/node_modules/.bin/azurite-blob ] \
   || ! grep -q "\"version\": \"$azurite_version\"" .cache/azurite/node_modules/azurite/package.json; then
  echo "installing Azurite $azurite_version (.cache/azurite)"
  mkdir -p .cache/azurite
  (cd .cache/azurite && npm install --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >/dev/null)
fi
echo "test services built"
