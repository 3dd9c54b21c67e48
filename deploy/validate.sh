#!/usr/bin/env bash
# Static validation of deploy/: no container engine, no cluster, and no network
# except the Go module proxy (for deploy/tools' pinned dependencies).
#
#   bash deploy/validate.sh                 # static checks (about 10 s warm)
#   FULL_BUILD=1 bash deploy/validate.sh    # also build the three static binaries
#                                           # (minutes on a cold build cache)
#
# Checks:
#   1. deploy/nats/nats.conf passes `nats-server -t` (the server's own check,
#      warnings are errors; nats-server at the version of the main go.mod, so
#      it is compiled once for the tests too) and has JetStream,
#      sync_interval: always, a store_dir, 3 cluster routes with mutual TLS
#      (certificates from crmctl certs, generated for the check), and users with
#      least privilege: api, projector, reader, each with permissions; only
#      the api may publish customer events; nobody may delete or purge a
#      stream or delete a message.
#   2. docker-compose.yml: `docker compose config -q` when the compose plugin is
#      installed; always the compose-go loader (the library `docker compose`
#      uses: schema, interpolation, anchors, references) plus the wiring
#      checks of deploy/tools (3 NATS nodes, rs0, w=majority, replicas 3, the
#      same settings in every crm process, depends_on, grace periods, lb).
#   3. deploy/k8s: `kustomize build` (kustomize's library, pinned in
#      deploy/tools/go.mod), every object strictly decoded into its k8s.io/api
#      type (unknown/duplicate fields are errors), references between objects
#      (ConfigMap/Secret keys, Service/PDB selectors and ports, volumes),
#      probes, resources and the restricted security profile.
#   4. mongo/init-replica-set.js: JavaScript syntax, when node is installed.
#   5. Dockerfile: BuildKit's parser and linter (the parse-time rules of
#      `docker build --check`; warnings are errors), its .dockerignore keeps
#      what the build needs, the image contract (multi-stage, cache mounts,
#      CGO_ENABLED=0 -trimpath -ldflags "-s -w", the three binaries, distroless
#      non-root final stage, api entrypoint, EXPOSE 8080), and its ./cmd/...
#      packages resolve with CGO_ENABLED=0. FULL_BUILD=1 also links the
#      binaries as the Dockerfile does and checks they are static.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export GOWORK=off
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
step() { printf '== %s\n' "$*"; }

# The NATS passwords of deploy/secrets.env (nats.conf and the compose file
# refuse to load without them): placeholders for the checks.
export NATS_API_PASSWORD="${NATS_API_PASSWORD:-validate-api}" NATS_PROJECTOR_PASSWORD="${NATS_PROJECTOR_PASSWORD:-validate-projector}" \
  NATS_READER_PASSWORD="${NATS_READER_PASSWORD:-validate-reader}"

# The route TLS files nats.conf names (crmctl certs writes them; compose
# mounts deploy/certs): generated into the temp dir for the checks.
(cd "$root" && go run ./cmd/crmctl certs "$tmp/certs" >/dev/null)
export NATS_ROUTE_CERT="$tmp/certs/route.pem" NATS_ROUTE_KEY="$tmp/certs/route-key.pem" NATS_ROUTE_CA="$tmp/certs/ca.pem"

step "build deploy/tools (deploycheck): go vet + go build"
(cd "$here/tools" && go vet . && go build -o "$tmp/deploycheck" .)
check="$tmp/deploycheck"

step "nats: deploy/nats/nats.conf"
(cd "$root" && go run github.com/nats-io/nats-server/v2 -t -c "$here/nats/nats.conf" 2>&1)
"$check" nats "$here/nats/nats.conf"
echo "durability settings and permissions: ok"

step "compose: deploy/docker-compose.yml"
if docker compose version >/dev/null 2>&1; then
  docker compose -f "$here/docker-compose.yml" --profile '*' config -q
  echo "docker compose config -q: ok ($(docker compose version --short 2>/dev/null || echo '?'))"
else
  echo "docker compose plugin not installed: validating with compose-go (the loader of docker compose) only"
fi
"$check" compose "$here/docker-compose.yml"
echo "compose-go load + wiring checks: ok"

step "kubernetes: kustomize build deploy/k8s + strict k8s.io/api decoding"
"$check" k8s "$here/k8s" -o "$tmp/k8s.yaml"
echo "$(grep -c '^kind:' "$tmp/k8s.yaml") objects: $(grep '^kind:' "$tmp/k8s.yaml" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=", "}')"

step "mongo: init-replica-set.js syntax"
if command -v node >/dev/null 2>&1; then
  node --check "$here/mongo/init-replica-set.js"
  echo "node --check: ok"
else
  echo "node not installed: skipped"
fi

step "Dockerfile: BuildKit parser + linter, .dockerignore, image contract"
"$check" dockerfile "$here/Dockerfile" "$root"
pkgs=$(grep -o '\./cmd/[a-z]*' "$here/Dockerfile" | sort -u | tr '\n' ' ')
# shellcheck disable=SC2086 # word splitting of the package list is intended
(cd "$root" && CGO_ENABLED=0 go list -deps $pkgs >/dev/null)
echo "Dockerfile: ok; packages resolve without cgo: $pkgs"
if [ "${FULL_BUILD:-}" = 1 ]; then
  # shellcheck disable=SC2086
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/bin/" $pkgs)
  for b in "$tmp"/bin/*; do
    if out=$(file "$b" 2>/dev/null) && ! grep -q 'statically linked' <<<"$out"; then
      echo "$b is not statically linked: $out"; exit 1
    fi
  done
  echo "static binaries built: $pkgs"
else
  echo "(FULL_BUILD=1 also links the static binaries)"
fi

echo "deploy/validate.sh: all checks passed in $((SECONDS - start)) s"
