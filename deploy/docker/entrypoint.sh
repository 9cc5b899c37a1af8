#!/bin/sh
# Container entrypoint: for `serve`, build the engines into the mounted cache (or find them
# there: a cached build is only checked, not redone), then replace this shell with the service
# so that it receives SIGTERM directly (tini is PID 1 and forwards it).
# Any other command (`events`, `engines list`, ...) runs as given.
set -eu

config_args=""
if [ -n "${SCENESTREAM_CONFIG:-}" ]; then
    config_args="--config ${SCENESTREAM_CONFIG}"
fi

if [ "${1:-serve}" = "serve" ]; then
    [ "$#" -gt 0 ] && shift
    if [ "${SCENESTREAM_SKIP_ENGINE_BUILD:-0}" != "1" ]; then
        echo "scenestream: building or loading engines in ${SCENESTREAM_ENGINES__CACHE_DIR:-the default cache}"
        # shellcheck disable=SC2086  # config_args is empty or two words on purpose
        scenestream engines build $config_args
    fi
    # shellcheck disable=SC2086
    exec scenestream serve $config_args "$@"
fi
exec scenestream "$@"
