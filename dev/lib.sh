# Shared helpers for the dev/ shell scripts (sourced, not executed).
# Every wait here is bounded: a script that cannot get what it needs says which dependency and which
# command failed, and exits non-zero.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV_STATE="$REPO_ROOT/.dev"
DEV_ENV_FILE="$DEV_STATE/env"

# die DEPENDENCY MESSAGE...
die() {
    local dep="$1"
    shift
    echo "ERROR [$dep]: $*" >&2
    exit 1
}

info() {
    echo "[$1] ${*:2}"
}

# port_open HOST PORT: true when something accepts TCP connections there (1 s at most).
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# wait_port DEPENDENCY HOST PORT SECONDS
wait_port() {
    local dep="$1" host="$2" port="$3" seconds="$4"
    local deadline=$((SECONDS + seconds))
    until port_open "$host" "$port"; do
        if ((SECONDS >= deadline)); then
            die "$dep" "nothing answers on $host:$port after ${seconds}s"
        fi
        sleep 0.5
    done
}

is_root() {
    [[ "$(id -u)" == 0 ]]
}

# apt_install DEPENDENCY PACKAGE...: install Debian packages non-interactively (root only).
apt_install() {
    local dep="$1"
    shift
    is_root || die "$dep" "'$*' is not installed and installing it needs root (apt-get install $*)"
    command -v apt-get >/dev/null || die "$dep" "'$*' is not installed and apt-get is not available"
    export DEBIAN_FRONTEND=noninteractive
    info "$dep" "apt-get update"
    timeout 600 apt-get -o DPkg::Lock::Timeout=120 update -q </dev/null \
        || die "$dep" "command failed: apt-get update"
    info "$dep" "apt-get install $*"
    if ! timeout 1200 apt-get -o DPkg::Lock::Timeout=120 install -y -q --no-install-recommends "$@" \
        </dev/null; then
        # Without an init system a package's own start can fail its configuration step; the
        # files are there and this script starts the server itself.
        local pkg
        for pkg in "$@"; do
            dpkg -s "$pkg" >/dev/null 2>&1 || die "$dep" "command failed: apt-get install -y $*"
        done
        info "$dep" "apt-get install reported an error after unpacking (the package's own start?): continuing"
    fi
}

# set_dev_env KEY VALUE: record KEY=VALUE in .dev/env (mode 600), replacing an older value.
set_dev_env() {
    local key="$1" value="$2" tmp
    mkdir -p "$DEV_STATE"
    chmod 700 "$DEV_STATE"
    tmp="$(mktemp "$DEV_STATE/env.XXXXXX")"
    if [[ -f "$DEV_ENV_FILE" ]]; then
        grep -v "^$key=" "$DEV_ENV_FILE" >"$tmp" || true
    fi
    printf '%s=%s\n' "$key" "$value" >>"$tmp"
    chmod 600 "$tmp"
    mv "$tmp" "$DEV_ENV_FILE"
}

# Secrets shared by every checkout of this user on this machine (a CI clone, a second worktree):
# the database role is shared too, so its password must be. (The demo's databases and vhost are
# each checkout's own, see dev/platform.py; so are its admin password and secret key.)
SHARED_STATE="${RYAX_DEV_SHARED_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/ryax-dev}"

# secret_file PATH: print the secret stored in PATH (mode 600). The first time, it is taken from
# the machine-wide copy in $SHARED_STATE, or generated and stored there too; a checkout that has
# one and finds no machine-wide copy provides it.
secret_file() {
    local path="$1" shared
    shared="$SHARED_STATE/$(basename "$path")"
    mkdir -p "$(dirname "$path")"
    if [[ -s "$path" && ! -s "$shared" ]]; then
        (umask 077 && mkdir -p "$SHARED_STATE" && cp "$path" "$shared")
    fi
    if [[ ! -s "$path" ]]; then
        if [[ ! -s "$shared" ]]; then
            (umask 077 && mkdir -p "$SHARED_STATE" \
                && python3 -c 'import secrets; print(secrets.token_hex(16))' >"$shared")
        fi
        (umask 077 && cp "$shared" "$path")
    fi
    chmod 600 "$path"
    tr -d '\n' <"$path"
}
