#!/bin/sh
# The example auth service as built by `cargo build` (debug) or `cargo build
# --release`, whichever is newer, so the quickstart runs after either.
here=$(dirname "$0")
debug="$here/../../target/debug/auth-service"
release="$here/../../target/release/auth-service"
if [ -x "$release" ] && { [ ! -x "$debug" ] || [ "$release" -nt "$debug" ]; }; then
    exec "$release" "$@"
fi
if [ -x "$debug" ]; then
    exec "$debug" "$@"
fi
echo "auth-service is not built: run \`cargo build\` (or \`cargo build --release\`) in the repository first" >&2
exit 127
