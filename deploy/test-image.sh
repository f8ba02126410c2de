#!/usr/bin/env bash
# Builds formbridge's container image from the Dockerfile, unchanged, with podman, and checks what
# a deployment relies on (issue 19): uid 10001, /data on a named volume (mode 700), production
# refusing a development secret and a placeholder, healthy through its own HEALTHCHECK, a signed
# delivery stored and kept when the container is recreated, SIGTERM ending it with exit 0 inside
# the grace, /metrics and /admin only on the ops port, `check-config` on a mounted mapping, and two
# replicas on PostgreSQL sending each delivery to the GHL sandbox exactly once. Prints the image
# size(s).
#
#   bash deploy/test-image.sh            # the lean (production) image; .ci/run runs this
#   bash deploy/test-image.sh --full     # also builds the full image (FEATURES=sandbox) and sizes it
#   bash deploy/test-image.sh --rebuild-bases   # re-create the two base images first
#
# Needs root (podman with the runc runtime and the cgroupfs manager; apt-get installs podman, runc
# and debootstrap when missing), the PostgreSQL server at 127.0.0.1:5432 (trust auth, user
# postgres; .ci/run starts it) and target/release/formbridge for the GHL sandbox (built if missing).
# Images cannot be pulled here, so the two base images the Dockerfile names are made locally and
# kept in podman's store for the next run: debian:<release>-slim by debootstrap from the machine's
# apt mirror, and rust:<version>-slim-<release> from it plus gcc, libc6-dev, pkg-config and the
# machine's own Rust toolchain. Each check prints PASS or FAIL; the exit status is non-zero on any
# failure. Containers, volumes, the sandbox and the test database are removed on exit.
set -eEuo pipefail
cd "$(dirname "$0")/.."

full=0
rebuild_bases=0
for arg in "$@"; do
  case "$arg" in
    --full) full=1 ;;
    --rebuild-bases) rebuild_bases=1 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (see --help)" >&2; exit 2 ;;
  esac
done

started=$SECONDS
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: PASS when COMMAND succeeds, FAIL otherwise.
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
# wait_until SECONDS COMMAND...: runs COMMAND until it succeeds; fails once SECONDS have passed.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
phase() { echo "== image: $* ($((SECONDS - started)) s)"; }
random_hex() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# free_ports N: N distinct free TCP ports on 127.0.0.1, space-separated.
free_ports() {
  python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

if [[ $(id -u) != 0 ]]; then
  echo "deploy/test-image.sh runs podman as root (the only setup that works on these machines)" >&2
  exit 2
fi

phase "tools"
missing=()
for tool in podman runc debootstrap curl python3 psql; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  packages=()
  for tool in "${missing[@]}"; do
    case "$tool" in
      psql) packages+=(postgresql-client) ;;
      python3) packages+=(python3-minimal) ;;
      *) packages+=("$tool") ;;
    esac
  done
  echo "installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "${packages[@]}" || { apt-get update && apt-get install -y "${packages[@]}"; }
fi

pg() { psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
work=$(mktemp -d /tmp/formbridge-image.XXXXXX)
prefix="fbimg-$$"
containers=()
volumes=()
sandbox_pid=""
pg_db=""
cleanup() {
  local status=$?
  set +e
  trap - ERR
  for c in "${containers[@]}"; do podman rm -f -v -t 0 "$c" >/dev/null 2>&1; done
  for v in "${volumes[@]}"; do podman volume rm -f "$v" >/dev/null 2>&1; done
  if [[ -n $sandbox_pid ]]; then
    kill "$sandbox_pid" 2>/dev/null
    wait "$sandbox_pid" 2>/dev/null
  fi
  [[ -z $pg_db ]] || pg -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1
  # debootstrap mounts /proc and /sys in its target while it runs: never delete through a mount.
  findmnt -rn -o TARGET | grep -F "$work/" | sort -r | xargs -r umount -l 2>/dev/null
  rm -rf --one-file-system "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'echo "deploy/test-image.sh: line $LINENO: a command failed (status $?)" >&2' ERR
trap 'exit 130' INT TERM

# podman as it runs here: runc (crun fails), cgroupfs (no systemd manager), no limit above the
# host's hard limits (runc cannot raise them; nproc also no higher than kernel.pid_max), events in
# a file (no journald). One file for every podman call below, the builds included.
hard_nofile=$(ulimit -Hn)
hard_nproc=$(ulimit -Hu)
[[ $hard_nofile == unlimited ]] && hard_nofile=1048576
[[ $hard_nproc == unlimited ]] && hard_nproc=4194304
pid_max=$(cat /proc/sys/kernel/pid_max)
((hard_nproc <= pid_max)) || hard_nproc=$pid_max
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=${hard_nofile}:${hard_nofile}", "nproc=${hard_nproc}:${hard_nproc}"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$work/containers.conf"
# podman runs a container's HEALTHCHECK on a systemd timer; with no systemd it logs an error on
# every container start and removal, and the check still runs on demand (`podman healthcheck
# run`, below): those lines are dropped, everything else podman says is kept.
podman() {
  local status=0
  command podman "$@" 2> >(grep -v 'unable to get systemd connection' >&2 || true) || status=$?
  return "$status"
}
podman --version

# ---- base images -------------------------------------------------------------------------------
# The names the Dockerfile's FROM lines resolve to, from its ARG defaults.
dockerfile_arg() { sed -n "s/^ARG $1=//p" Dockerfile | head -n1 | tr -d '"'; }
rust_version=$(dockerfile_arg RUST_VERSION)
debian_release=$(dockerfile_arg DEBIAN_RELEASE)
host_rust=$(rustc --version | awk '{print $2}')
build_args=()
if [[ ${host_rust%.*} != "$rust_version" && $host_rust != "$rust_version" ]]; then
  echo "note: the Dockerfile names Rust $rust_version, this machine has $host_rust: the build" \
    "image is made from it as rust:${host_rust%.*} and the build gets --build-arg RUST_VERSION"
  rust_version=${host_rust%.*}
  build_args+=(--build-arg "RUST_VERSION=$rust_version")
fi
debian_image="debian:${debian_release}-slim"
rust_image="rust:${rust_version}-slim-${debian_release}"
# Both carry this label, and so does every layer built on them: how leftovers of earlier builds
# are told from other images when they are pruned (below).
base_label="io.formbridge.image-test=base"

# The machine's Debian mirror for the release (one-line or deb822 sources), else deb.debian.org.
debian_mirror() {
  local f found
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    found=$(awk -v r="$debian_release" '$1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      if ($(i + 1) == r) { print $i; exit } }' "$f")
    [[ -z $found ]] || { echo "$found"; return; }
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    found=$(awk -v r="$debian_release" 'BEGIN { RS = ""; FS = "\n" } {
      types = ""; uris = ""; suites = ""; enabled = "yes"
      for (j = 1; j <= NF; j++) {
        if ($j ~ /^Types:/) types = $j; else if ($j ~ /^URIs:/) uris = $j
        else if ($j ~ /^Suites:/) suites = $j; else if ($j ~ /^Enabled:/) enabled = $j
      }
      if (types ~ /[ \t]deb([ \t]|$)/ && (" " suites " ") ~ ("[ \t]" r "[ \t]") && enabled !~ /no/) {
        split(uris, u, /[ \t]+/); print u[2]; exit } }' "$f")
    [[ -z $found ]] || { echo "$found"; return; }
  done
  echo "http://deb.debian.org/debian"
}

build_bases() {
  local need_debian=1 need_rust=1
  if ((!rebuild_bases)) && podman image exists "$debian_image"; then need_debian=0; fi
  if ((!rebuild_bases)) && podman image exists "$rust_image"; then need_rust=0; fi
  if ((!need_debian && !need_rust)); then
    echo "base images $debian_image and $rust_image: cached"
    return
  fi
  local mirror rootfs="$work/rootfs" rustfs="$work/rustfs"
  mirror=$(debian_mirror)
  echo "debootstrap --variant=minbase $debian_release from $mirror"
  debootstrap --variant=minbase "$debian_release" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log"; return 1; }
  # Slim as Docker's debian:*-slim: no documentation, manuals or translations (now and in what
  # apt installs later), no apt lists or package cache.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/*
  if ((need_rust)); then
    cp -a "$rootfs" "$rustfs"
  fi
  slim_apt "$rootfs"
  if ((need_debian)); then
    import_rootfs "$rootfs" "$debian_image" --change 'CMD ["bash"]'
  fi
  if ((need_rust)); then
    # The machine's toolchain folder itself (not rustup's proxies), documentation left out.
    local sysroot toolchain
    sysroot=$(rustc --print sysroot)
    [[ -x $sysroot/bin/cargo && -d $sysroot/lib/rustlib ]] || {
      echo "$sysroot holds no cargo and rustlib: need a rustup toolchain" >&2
      return 1
    }
    toolchain="$host_rust-$(rustc -vV | sed -n 's/^host: //p')"
    chroot "$rustfs" apt-get install -y --no-install-recommends gcc libc6-dev pkg-config \
      >"$work/rust-apt.log" 2>&1 || { tail -n 30 "$work/rust-apt.log"; return 1; }
    mkdir -p "$rustfs/usr/local/rustup/toolchains/$toolchain" "$rustfs/usr/local/cargo/bin"
    tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$rustfs/usr/local/rustup/toolchains/$toolchain" -x
    slim_apt "$rustfs"
    import_rootfs "$rustfs" "$rust_image" \
      --change "ENV PATH=/usr/local/cargo/bin:/usr/local/rustup/toolchains/$toolchain/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
      --change 'ENV CARGO_HOME=/usr/local/cargo' \
      --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
      --change "ENV RUST_VERSION=$host_rust" \
      --change 'CMD ["bash"]'
  fi
  rm -rf --one-file-system "$rootfs" "$rustfs"
}
slim_apt() {
  rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb
  : >"$1/etc/resolv.conf"
}
import_rootfs() {
  local dir=$1 name=$2
  shift 2
  tar -C "$dir" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
    podman import --quiet --change "LABEL $base_label" "$@" - "$name" >/dev/null
  echo "made $name ($(podman image inspect --format '{{.Size}}' "$name" | awk '{printf "%.0f MB", $1 / 1e6}'))"
}

phase "base images"
build_bases

# ---- the image ---------------------------------------------------------------------------------
image_size() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.1f MB (%d bytes)", $1 / 1e6, $1}'; }
# build_image TAG [BUILD ARGS...]: the Dockerfile unchanged; the host's CAs so cargo reaches the
# registry; docker format keeps HEALTHCHECK; never a pull. The build stage is tagged too
# (formbridge-test-build:*), so the dependency layer stays cached when leftovers are pruned.
build_image() {
  local tag=$1 log="$work/build-${1##*:}.log"
  shift
  local args=(--pull=never --format docker -v /etc/ssl/certs:/etc/ssl/certs:ro "${build_args[@]}" "$@" -f Dockerfile)
  local t0=$SECONDS
  # The steps that matter (and whether they came from the cache) here, the whole output in $log.
  if ! podman build "${args[@]}" -t "$tag" . 2>&1 | tee "$log" |
    { grep --line-buffered -E 'STEP [0-9]+/[0-9]+: (FROM|RUN)|^--> Using cache|^Error' || true; }; then
    tail -n 60 "$log"
    return 1
  fi
  podman build --quiet "${args[@]}" --target build -t "formbridge-test-build:${tag##*:}" . >/dev/null
  echo "built $tag in $((SECONDS - t0)) s: $(image_size "$tag")"
}
phase "build (lean: the Dockerfile's defaults)"
image=localhost/formbridge-test:lean
if build_image "$image"; then
  pass "the image builds from the Dockerfile unchanged: $(image_size "$image")"
else
  fail "the image builds from the Dockerfile unchanged"
  exit 1
fi
if ((full)); then
  phase "build (full: --build-arg FEATURES=sandbox)"
  if build_image localhost/formbridge-test:full --build-arg FEATURES=sandbox; then
    pass "the full image builds: $(image_size localhost/formbridge-test:full)"
    check "the full image has \`sandbox-ghl\` and \`demo\`" bash -c \
      "timeout 30 podman run --rm localhost/formbridge-test:full sandbox-ghl --help >/dev/null 2>&1 &&
       timeout 30 podman run --rm localhost/formbridge-test:full demo --help >/dev/null 2>&1"
  else
    fail "the full image builds"
  fi
fi
# Layers of earlier builds on the bases that no tag uses any more (each source change leaves a
# few hundred MB): removed, so a kept machine does not fill up. Only images carrying the bases'
# label, i.e. built on them; a pass removes the leaves, so repeat until nothing is left.
for _ in $(seq 1 20); do
  [[ -n $(podman image prune -f --filter "label=$base_label" 2>/dev/null) ]] || break
done

# ---- checks on SQLite --------------------------------------------------------------------------
admin_token=$(random_hex)
jotform_secret=$(random_hex)
ghl_token="pit-$(random_hex)"
fixture=tests/fixtures/jotform/enterprise_consent-widget.ASSEMBLED
fixture_type=$(sed -n 's/^Content-Type: //p' "$fixture.meta" | head -n1 | tr -d '\r')
fixture_submission=$(grep -a -A2 'name="submissionID"' "$fixture.multipart" | tail -n1 | tr -d '\r')
# The secrets of a production container (long random values, as production requires).
secrets=(-e "FORMBRIDGE__ADMIN__TOKEN=$admin_token" -e "FORMBRIDGE__SOURCES__JOTFORM__SECRET=$jotform_secret"
  -e "FORMBRIDGE__GHL__TOKEN=$ghl_token")
# On SQLite the GHL API is unreachable (deliveries are stored and wait).
no_ghl=(-e FORMBRIDGE__GHL__LOCATION_ID=imageTestLocation001 -e FORMBRIDGE__GHL__BASE_URL=http://127.0.0.1:9)

phase "lean image: no sandbox"
for command in sandbox-ghl demo; do
  check "the lean image has no \`$command\` command" \
    bash -c "! timeout 30 podman run --rm $image $command --help >/dev/null 2>&1"
done

# refused NAME VALUE: a production container with sources.jotform.secret=VALUE exits non-zero,
# naming the key, before it serves anything.
refused() {
  local name="$prefix-refuse-$1" code
  containers+=("$name")
  podman run -d --name "$name" -e "FORMBRIDGE__ADMIN__TOKEN=$admin_token" \
    -e "FORMBRIDGE__SOURCES__JOTFORM__SECRET=$2" "${no_ghl[@]}" "$image" >/dev/null
  code=$(timeout 30 podman wait "$name") || { echo "  still running after 30 s"; return 1; }
  podman logs "$name" >"$work/$name.log" 2>&1
  sed 's/^/  | /' "$work/$name.log" | tail -n 3
  [[ $code != 0 ]] && grep -q 'sources\.jotform\.secret' "$work/$name.log"
}
phase "production refusals"
check "FORMBRIDGE_ENV=production refuses a development secret (local-jotform-secret), naming sources.jotform.secret" \
  refused dev local-jotform-secret
check "FORMBRIDGE_ENV=production refuses a placeholder (change-me), naming sources.jotform.secret" \
  refused placeholder change-me

phase "serve on SQLite"
volume="$prefix-data"
volumes+=("$volume")
podman volume create "$volume" >/dev/null
read -r public_port ops_port < <(free_ports 2)
public="http://127.0.0.1:$public_port"
ops="http://127.0.0.1:$ops_port"
# run_sqlite NAME: the image's own defaults, ports 8080 and 9090 published on the loopback.
run_sqlite() {
  containers+=("$1")
  podman run -d --name "$1" -v "$volume:/data" -p "127.0.0.1:$public_port:8080" \
    -p "127.0.0.1:$ops_port:9090" "${secrets[@]}" "${no_ghl[@]}" "$image" >/dev/null
  wait_until 60 curl -fs -o /dev/null "$public/readyz" || {
    podman logs "$1" 2>&1 | tail -n 20
    return 1
  }
}
status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
event_stored() {
  curl -fsS -H "Authorization: Bearer $admin_token" "$ops/admin/events/$event_id" -o "$work/event.json" &&
    grep -q "$fixture_submission" "$work/event.json"
}
first="$prefix-sqlite-1"
if check "the container starts and answers /readyz on the public port" run_sqlite "$first"; then
  check "it runs as uid 10001" test "$(podman exec "$first" id -u)" = 10001
  check "/data is the named volume $volume" test "$(podman inspect --format \
    '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Type}}:{{.Name}}{{end}}{{end}}' "$first")" = "volume:$volume"
  check "/data is private to uid 10001 (mode 700, the image's, taken by the new volume)" \
    test "$(podman exec "$first" stat -c '%a %u' /data)" = "700 10001"
  check "the image carries its HEALTHCHECK (docker format)" \
    bash -c "podman image inspect --format '{{json .Config.Healthcheck}}' $image | grep -q healthcheck"
  check "healthy through its own HEALTHCHECK (podman healthcheck run)" \
    wait_until 60 podman healthcheck run "$first"
  code=$(curl -sS -o "$work/receipt.json" -w '%{http_code}' -H "Content-Type: $fixture_type" \
    --data-binary "@$fixture.multipart" "$public/hooks/jotform?token=$jotform_secret") || true
  event_id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("event_id", ""))' \
    "$work/receipt.json" 2>/dev/null || true)
  check "a signed Jotform delivery ($fixture.multipart) is answered 200 with its event id" \
    test "$code" = 200 -a -n "$event_id"
  check "the delivery is stored (admin API on the ops port)" event_stored
  check "a delivery with a wrong token is refused 401" test "$(status_of -H "Content-Type: $fixture_type" \
    --data-binary "@$fixture.multipart" "$public/hooks/jotform?token=wrong")" = 401
  check "/metrics is not on the public port (404)" test "$(status_of "$public/metrics")" = 404
  check "/admin is not on the public port (404)" test "$(status_of \
    -H "Authorization: Bearer $admin_token" "$public/admin/events")" = 404
  check "/metrics is on the ops port" bash -c "curl -fsS $ops/metrics | grep -q '^formbridge_'"
  check "/admin is on the ops port, behind the token" test \
    "$(status_of -H "Authorization: Bearer $admin_token" "$ops/admin/events"),$(status_of "$ops/admin/events")" \
    = "200,401"
  t0=$(date +%s.%N)
  podman stop -t 40 "$first" >/dev/null || true
  stop_secs=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }')
  check "SIGTERM (podman stop -t 40) ends it with exit 0 in ${stop_secs} s" test \
    "$(podman inspect --format '{{.State.ExitCode}}' "$first")" = 0
  podman rm -v "$first" >/dev/null
  second="$prefix-sqlite-2"
  if check "a new container on the same volume starts" run_sqlite "$second"; then
    check "the delivery is still there after the container was recreated" event_stored
  fi
  podman rm -f -v -t 0 "$second" >/dev/null
fi

# ---- check-config on a mounted mapping ---------------------------------------------------------
phase "check-config on a mapping mounted at /config"
mkdir -p "$work/config" "$work/broken"
cat >"$work/config/production.toml" <<'EOF'
[[sources.jotform.mapping.tasks]]
title = "Call {{first_name}} about the image test"
due_in = "1d"
EOF
cat >"$work/broken/production.toml" <<'EOF'
[[sources.jotform.mapping.tasks]]
title = "Call {{first_name}}"
due_within = "1d"
EOF
# check_config DIR: `check-config` in the image with DIR mounted read-only at /config.
check_config() {
  podman run --rm -v "$1:/config:ro" "${secrets[@]}" "${no_ghl[@]}" "$image" check-config >"$work/check.log" 2>&1
}
check "check-config accepts the mounted mapping (exit 0)" check_config "$work/config"
check "check-config shows the mounted task rule" grep -q 'Call {{first_name}} about the image test' "$work/check.log"
if check_config "$work/broken"; then
  fail "check-config refuses a mapping with an unknown key (exited 0)"
else
  tail -n 2 "$work/check.log" | sed 's/^/  | /'
  check "check-config refuses a mapping with an unknown key, naming it (due_within)" grep -q due_within "$work/check.log"
fi

# ---- PostgreSQL, two replicas ------------------------------------------------------------------
phase "two replicas on PostgreSQL"
if ! target/release/formbridge sandbox-ghl --help >/dev/null 2>&1; then
  echo "building target/release/formbridge with its default features (the GHL sandbox runs from it)"
  cargo build --locked --release --bin formbridge
fi
pg_db="formbridge_img_$$"
if ! pg -c "CREATE DATABASE $pg_db"; then
  fail "PostgreSQL at 127.0.0.1:5432 (user postgres, trust) takes a database of the test's own (.ci/run starts the server)"
  pg_db=""
  exit 1
fi
read -r r1_addr r1_ops r2_addr r2_ops < <(free_ports 4)
# The sandbox binds port 0 and prints the port it got: a port picked here and bound later could
# be taken in between ("Address already in use" once in CI).
target/release/formbridge sandbox-ghl --addr 127.0.0.1:0 >"$work/sandbox.log" 2>&1 &
sandbox_pid=$!
sandbox_listening() { grep -q '^GHL sandbox listening on http://' "$work/sandbox.log"; }
sandbox=""
if wait_until 30 sandbox_listening; then
  sandbox=$(sed -n 's|^GHL sandbox listening on \(http://[^/]*\)/.*$|\1|p' "$work/sandbox.log")
fi
if [[ -z "$sandbox" ]] || ! wait_until 30 curl -fs -o /dev/null "$sandbox/_sandbox/state"; then
  cat "$work/sandbox.log"
  fail "the GHL sandbox (target/release/formbridge sandbox-ghl) answers"
  exit 1
fi
location=$(sed -n 's/^ *location id: *//p' "$work/sandbox.log")
# A token of the script's own (production refuses short or public ones), valid for the location.
curl -fsS -X POST -H 'Content-Type: application/json' \
  -d "{\"token\":\"$ghl_token\",\"locations\":[\"$location\"]}" "$sandbox/_sandbox/tokens"
# replica NAME ADDR_PORT OPS_PORT: the image on the host network, as compose runs a replica, with
# the mapping above (a task for every lead) mounted read-only at /config as compose mounts it.
replica() {
  containers+=("$1")
  podman run -d --name "$1" --network host "${secrets[@]}" -v "$work/config:/config:ro" \
    -e "FORMBRIDGE__STORE__URL=postgres://postgres@127.0.0.1:5432/$pg_db" \
    -e "FORMBRIDGE__GHL__BASE_URL=$sandbox" -e "FORMBRIDGE__GHL__LOCATION_ID=$location" \
    -e "FORMBRIDGE__SERVER__ADDR=127.0.0.1:$2" -e "FORMBRIDGE__SERVER__OPS_ADDR=127.0.0.1:$3" \
    "$image" >/dev/null
}
replica "$prefix-pg-1" "$r1_addr" "$r1_ops"
replica "$prefix-pg-2" "$r2_addr" "$r2_ops"
replicas_ready() { curl -fs -o /dev/null "http://127.0.0.1:$r1_addr/readyz" && curl -fs -o /dev/null "http://127.0.0.1:$r2_addr/readyz"; }
if ! check "both replicas start on the one database" wait_until 60 replicas_ready; then
  podman logs "$prefix-pg-1" 2>&1 | tail -n 10
  podman logs "$prefix-pg-2" 2>&1 | tail -n 10
else
  # deliver PORT N: a Jotform delivery of its own (submission id, email) to one replica.
  deliver() {
    local raw
    raw="{\"q3_name\":{\"first\":\"Replica$2\",\"last\":\"Test\"},\"q4_email\":\"replica$2-$$@example.com\"}"
    printf -- '--b\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' \
      submissionID "52600000$$$2" formTitle "Image test" rawRequest "$raw" >"$work/delivery-$2"
    printf -- '--b--\r\n' >>"$work/delivery-$2"
    test "$(status_of -H 'Content-Type: multipart/form-data; boundary=b' --data-binary "@$work/delivery-$2" \
      "http://127.0.0.1:$1/hooks/jotform?token=$jotform_secret")" = 200
  }
  check "replica 1 stores its delivery (200)" deliver "$r1_addr" 1
  check "replica 2 stores its delivery (200)" deliver "$r2_addr" 2
  both_done() {
    curl -fsS -H "Authorization: Bearer $admin_token" "http://127.0.0.1:$r1_ops/admin/events?status=done" |
      python3 -c 'import json, sys; sys.exit(len(json.load(sys.stdin)["events"]) != 2)'
  }
  check "both deliveries are done (within 60 s)" wait_until 60 both_done
  curl -fsS "$sandbox/_sandbox/state" >"$work/state.json"
  for n in 1 2; do
    check "replica$n-$$@example.com: one contact, created by one upsert, with one note and the mapping's one task" \
      python3 - "$work/state.json" "replica$n-$$@example.com" "Call Replica$n about the image test" <<'EOF'
import json, sys
state, email, title = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
contacts = [c for c in state["contacts"] if c.get("emailLowerCase") == email]
upserts = [r for r in state["requests"] if r["method"] == "POST" and r["path"] == "/contacts/upsert"
           and (r.get("body") or {}).get("email") == email]
ids = {c["id"] for c in contacts}
notes = [n for n in state["notes"] if n.get("contactId") in ids]
tasks = [t for t in state["tasks"] if t.get("contactId") in ids]
print(f"  {email}: {len(contacts)} contact(s), {len(upserts)} upsert(s), {len(notes)} note(s), "
      f"tasks {[t.get('title') for t in tasks]}")
sys.exit(not (len(contacts) == 1 and len(upserts) == 1 and len(notes) == 1
              and [t.get("title") for t in tasks] == [title]))
EOF
  done
  # The admin page: on the ops address (compose publishes it on 127.0.0.1 only), not the public.
  admin_page_on_ops_only() {
    # The whole page is read before grep looks at it: `curl | grep -q` fails under pipefail
    # once the page outgrows a pipe's buffer (grep exits at the first match, curl gets EPIPE).
    local page
    page=$(curl -fsS "http://127.0.0.1:$r1_ops/admin/ui") && grep -qi '<html' <<<"$page" &&
      test "$(status_of "http://127.0.0.1:$r1_addr/admin/ui")" = 404
  }
  check "the admin page is served on the ops address, not on the public one" admin_page_on_ops_only
fi

# ---- sizes -------------------------------------------------------------------------------------
phase "done"
echo "image $image: $(image_size "$image")"
if ((full)); then echo "image localhost/formbridge-test:full: $(image_size localhost/formbridge-test:full)"; fi
echo "deploy/test-image.sh: $failures check(s) failed, $((SECONDS - started)) s"
if ((failures)); then exit 1; fi
