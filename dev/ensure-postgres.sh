#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1 (installing and starting Debian's postgresql-15 if
# nothing does) and that the tests and the demo can log in over TCP as the role ryax_dev.
# Writes RYAX_TEST_PG_DSN into .dev/env. Idempotent: run it as often as you like.
#
# The role ryax_dev is created the same way everywhere (trust, peer or scram machines) so that
# every machine ends up with the same DSN shape. It is a SUPERUSER with a random password kept in
# .dev/pg-password (and in the machine-wide copy every checkout shares, see dev/lib.sh): a
# developer database on loopback, nothing else.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEP=postgresql
PG_HOST=127.0.0.1
PG_PORT="${RYAX_DEV_PG_PORT:-5432}"
PG_VERSION=15
PG_CLUSTER="${RYAX_DEV_PG_CLUSTER:-main}"
ROLE=ryax_dev
PASSWORD_FILE="$DEV_STATE/pg-password"

start_server() {
    if [[ ! -x /usr/lib/postgresql/$PG_VERSION/bin/postgres ]] || ! command -v pg_ctlcluster >/dev/null; then
        apt_install "$DEP" "postgresql-$PG_VERSION" "postgresql-client-$PG_VERSION"
    fi
    is_root || die "$DEP" "nothing answers on $PG_HOST:$PG_PORT and starting PostgreSQL needs root"
    if [[ ! -d /etc/postgresql/$PG_VERSION/$PG_CLUSTER ]]; then
        info "$DEP" "pg_createcluster $PG_VERSION $PG_CLUSTER --port $PG_PORT"
        timeout 120 pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" </dev/null \
            || die "$DEP" "command failed: pg_createcluster $PG_VERSION $PG_CLUSTER"
    fi
    # The package's own start may already be under way (it is when apt-get just installed it).
    if ! port_open "$PG_HOST" "$PG_PORT"; then
        info "$DEP" "pg_ctlcluster --skip-systemctl-redirect $PG_VERSION $PG_CLUSTER start"
        local rc=0
        timeout 120 pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start </dev/null || rc=$?
        # 2 means "already running", which is fine if the port answers below.
        if ((rc != 0 && rc != 2)); then
            die "$DEP" "command failed (exit $rc): pg_ctlcluster --skip-systemctl-redirect $PG_VERSION $PG_CLUSTER start" \
                "(see /var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log)"
        fi
    fi
    wait_port "$DEP" "$PG_HOST" "$PG_PORT" 60
}

if ! port_open "$PG_HOST" "$PG_PORT"; then
    info "$DEP" "nothing answers on $PG_HOST:$PG_PORT: installing/starting PostgreSQL $PG_VERSION"
    start_server
fi
if ! command -v psql >/dev/null; then
    apt_install "$DEP" "postgresql-client-$PG_VERSION"
fi

PASSWORD="$(secret_file "$PASSWORD_FILE")"

# A superuser session: over TCP where loopback is trusted, else over the socket as the postgres
# OS user (peer authentication, Debian's default).
export PGCONNECT_TIMEOUT=10
if timeout 20 psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -w -Atqc 'SELECT 1' \
    >/dev/null 2>&1 </dev/null; then
    admin=(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -w)
    how="psql -h $PG_HOST -p $PG_PORT -U postgres"
elif is_root && id postgres >/dev/null 2>&1; then
    admin=(runuser -u postgres -- psql -p "$PG_PORT" -d postgres -w)
    how="runuser -u postgres -- psql -p $PG_PORT"
else
    die "$DEP" "no superuser session: 'psql -h $PG_HOST -p $PG_PORT -U postgres' is refused and" \
        "'runuser -u postgres -- psql' needs root; create role $ROLE yourself with the password" \
        "in $PASSWORD_FILE"
fi

# admin_sql SQL: run SQL (psql variable :pw holds the password) in the superuser session.
admin_sql() {
    # cd /: psql run as postgres cannot read the caller's working directory and would warn.
    (cd / && timeout 30 "${admin[@]}" -v ON_ERROR_STOP=1 -v pw="$PASSWORD" -q >/dev/null <<<"$1") \
        || die "$DEP" "command failed: $how ($2)"
}

role_login_works() {
    timeout 20 psql "$DSN" -w -Atqc 'SELECT 1' >/dev/null 2>&1 </dev/null
}

admin_sql "SELECT 'CREATE ROLE $ROLE' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') \\gexec
ALTER ROLE $ROLE WITH LOGIN SUPERUSER;" "creating role $ROLE"

DSN="postgresql://$ROLE:$PASSWORD@$PG_HOST:$PG_PORT/postgres"
# The password is set only when it does not work yet: other checkouts on this machine share the
# role (and its password, see SHARED_STATE in dev/lib.sh) and must keep working.
if ! role_login_works; then
    admin_sql "ALTER ROLE $ROLE WITH PASSWORD :'pw';" "setting the password of role $ROLE"
fi
if ! role_login_works; then
    die "$DEP" "command failed: psql postgresql://$ROLE:***@$PG_HOST:$PG_PORT/postgres" \
        "(role $ROLE cannot log in over TCP: check pg_hba.conf allows host connections from $PG_HOST)"
fi
set_dev_env RYAX_TEST_PG_DSN "$DSN"
info "$DEP" "ok: $ROLE@$PG_HOST:$PG_PORT (RYAX_TEST_PG_DSN in .dev/env)"
