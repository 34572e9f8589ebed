# Shared helpers for the project's scripts (.ci/test, .ci/dev). Source it; do not run it.
# Each helper installs what is missing on a Debian/Ubuntu machine, or stops with a message
# naming exactly what to install.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through sudo when it is there.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1
  fi
}

APT_UPDATED=0
# need_apt PKG... installs the Debian packages that are not installed yet.
need_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "install these system packages: ${missing[*]}"
  log "installing system packages: ${missing[*]}"
  if [ "$APT_UPDATED" = 0 ]; then
    as_root apt-get update -qq || die "cannot run apt-get as root; install: ${missing[*]}"
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed; install: ${missing[*]}"
}

# The toolchains and system libraries every build of the workspace needs.
ensure_build_deps() {
  command -v cargo >/dev/null 2>&1 || die "install Rust (https://rustup.rs): cargo is missing"
  need_apt build-essential pkg-config libwebkit2gtk-4.1-dev
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt 2>/dev/null || true
}

ensure_node() {
  command -v node >/dev/null 2>&1 || need_apt nodejs npm
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || die "Node.js 20 or newer is needed (found $(node --version))"
}

# Starts a throwaway PostgreSQL cluster on loopback for this run and exports its URL in
# POINTS_LEDGER_PG_URL. The cluster is removed when the calling shell exits.
start_throwaway_postgres() {
  local bindir
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    need_apt postgresql postgresql-contrib
    bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  local run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    run=(runuser -u postgres --)
  fi
  PG_DIR="$(mktemp -d -t points-pg.XXXXXX)"
  chmod 755 "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)"
  "${run[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U points --auth=trust -E UTF8 >/dev/null
  # Throwaway means no flush to disk, unless THROWAWAY_PG_DURABLE=1 (a benchmark of a durable
  # server: fsync=on, synchronous_commit=on).
  local durability="-c fsync=off -c synchronous_commit=off"
  [ "${THROWAWAY_PG_DURABLE:-0}" = 1 ] && durability="-c fsync=on -c synchronous_commit=on"
  "${run[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c max_connections=300 $durability" start >/dev/null
  PG_STOP=("${run[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -m fast stop)
  trap 'stop_throwaway_postgres' EXIT
  "${run[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U points points
  export POINTS_LEDGER_PG_URL="postgres://points@127.0.0.1:$port/points"
  export PG_BINDIR="$bindir"
  log "PostgreSQL on $POINTS_LEDGER_PG_URL"
}

stop_throwaway_postgres() {
  if [ -n "${PG_DIR:-}" ]; then
    "${PG_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=
  fi
}

# Turns TLS on in the cluster of start_throwaway_postgres, with a self-signed certificate made by
# openssl, and exports POINTS_LEDGER_PG_TLS_URL (the same database, `sslmode=require`).
enable_throwaway_postgres_tls() {
  [ -n "${PG_DIR:-}" ] || die "enable_throwaway_postgres_tls: call start_throwaway_postgres first"
  command -v openssl >/dev/null 2>&1 || need_apt openssl
  local run=()
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
    -keyout "$PG_DIR/server.key" -out "$PG_DIR/server.crt" >/dev/null 2>&1 \
    || die "openssl could not make a self-signed certificate"
  chmod 600 "$PG_DIR/server.key"
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR/server.key" "$PG_DIR/server.crt"; fi
  printf "ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\n" \
    "$PG_DIR/server.crt" "$PG_DIR/server.key" >> "$PG_DIR/data/postgresql.conf"
  "${run[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" reload >/dev/null
  local tries=0
  until "$PG_BINDIR/psql" "$POINTS_LEDGER_PG_URL?sslmode=require" -Atqc 'SELECT 1' >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || die "PostgreSQL did not turn TLS on (see $PG_DIR/log)"
    sleep 0.1
  done
  export POINTS_LEDGER_PG_TLS_URL="$POINTS_LEDGER_PG_URL?sslmode=require"
  log "PostgreSQL with TLS on $POINTS_LEDGER_PG_TLS_URL"
}

# --- The example app (examples/tauri-app) and its end-to-end tests ---

TOOLS_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tauri-plugin-points/tools"

# The directory cargo builds into (honours CARGO_TARGET_DIR and .cargo/config.toml).
cargo_target_dir() {
  cargo metadata --format-version 1 --no-deps \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))'
}

# What running a Tauri window without a display and driving it through WebDriver needs.
ensure_gui_deps() {
  need_apt xvfb xauth webkit2gtk-driver imagemagick
}

# tauri-driver (the WebDriver server of Tauri apps), installed once into the cache directory.
ensure_tauri_driver() {
  export PATH="$TOOLS_DIR/bin:$PATH"
  command -v tauri-driver >/dev/null 2>&1 && return 0
  log "installing tauri-driver into $TOOLS_DIR"
  CARGO_INSTALL_ROOT="$TOOLS_DIR" cargo install tauri-driver --locked --quiet
}

# Builds guest-js, the app's front end and the app (debug); sets EXAMPLE_APP_BIN.
build_example_app() {
  ensure_node
  log "guest-js (the app uses it by path)"
  (cd "$ROOT/guest-js" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build >/dev/null)
  log "example app: front end"
  (cd "$ROOT/examples/tauri-app" && npm ci --no-audit --no-fund >/dev/null && npm run check && npm run build)
  log "example app: Rust (cargo build -p points-example-app)"
  cargo build --locked -p points-example-app
  EXAMPLE_APP_BIN="$(cargo_target_dir)/debug/points-example-app"
  [ -x "$EXAMPLE_APP_BIN" ] || die "the app binary is not where cargo said: $EXAMPLE_APP_BIN"
}

# xvfb-run with a screen large enough for the app's windows.
run_in_xvfb() {
  xvfb-run -a -s "-screen 0 1280x1024x24" "$@"
}
