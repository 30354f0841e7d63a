#!/usr/bin/env bash
# Make sure RabbitMQ answers on 127.0.0.1:5672 (installing and starting Debian's rabbitmq-server if
# nothing does). guest/guest is allowed from loopback by RabbitMQ's defaults.
# Writes RYAX_TEST_AMQP_URL into .dev/env. Idempotent.
# It never stops anything: epmd and the broker are shared with whatever else runs on the machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEP=rabbitmq
AMQP_HOST=127.0.0.1
AMQP_PORT="${RYAX_DEV_AMQP_PORT:-5672}"
START_TIMEOUT=120

if ! port_open "$AMQP_HOST" "$AMQP_PORT"; then
    info "$DEP" "nothing answers on $AMQP_HOST:$AMQP_PORT: installing/starting rabbitmq-server"
    if ! command -v rabbitmq-server >/dev/null; then
        apt_install "$DEP" rabbitmq-server
        # The package may start the broker itself: give it a moment before starting another one.
        for _ in $(seq 1 10); do port_open "$AMQP_HOST" "$AMQP_PORT" && break; sleep 1; done
    fi
    if ! port_open "$AMQP_HOST" "$AMQP_PORT"; then
        is_root || die "$DEP" "nothing answers on $AMQP_HOST:$AMQP_PORT and starting RabbitMQ needs root"
        info "$DEP" "rabbitmq-server -detached"
        timeout 60 rabbitmq-server -detached </dev/null \
            || die "$DEP" "command failed: rabbitmq-server -detached (see /var/log/rabbitmq/)"
    fi
    deadline=$((SECONDS + START_TIMEOUT))
    until port_open "$AMQP_HOST" "$AMQP_PORT"; do
        if ((SECONDS >= deadline)); then
            die "$DEP" "nothing answers on $AMQP_HOST:$AMQP_PORT ${START_TIMEOUT}s after" \
                "'rabbitmq-server -detached' (see /var/log/rabbitmq/ and 'rabbitmqctl status')"
        fi
        sleep 1
    done
    if command -v rabbitmqctl >/dev/null; then
        timeout "$START_TIMEOUT" rabbitmqctl -q await_startup </dev/null \
            || die "$DEP" "command failed: rabbitmqctl await_startup (timeout ${START_TIMEOUT}s)"
    fi
fi

# Fail early with a clear message when guest cannot log in (only checkable where rabbitmqctl works).
if is_root && command -v rabbitmqctl >/dev/null \
    && timeout 30 rabbitmqctl -q list_vhosts >/dev/null 2>&1 </dev/null; then
    timeout 30 rabbitmqctl -q authenticate_user guest guest >/dev/null </dev/null \
        || die "$DEP" "command failed: rabbitmqctl authenticate_user guest guest" \
            "(the tests and the demo log in as guest/guest from loopback)"
fi

set_dev_env RYAX_TEST_AMQP_URL "amqp://guest:guest@$AMQP_HOST:$AMQP_PORT/"
info "$DEP" "ok: $AMQP_HOST:$AMQP_PORT (RYAX_TEST_AMQP_URL in .dev/env)"
