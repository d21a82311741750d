#!/bin/sh
# Entrypoint of the moodgif images (also runs as is outside Docker: tests/test_deploy.py).
#
#   <image> serve                 -> moodgif serve            (any moodgif subcommand)
#   <image> retrain --schedule    -> moodgif retrain --schedule
#   <image> healthcheck [PATH]    -> exit 0 if GET http://127.0.0.1:$MOODGIF_HTTP_PORT$PATH
#                                    answers 2xx (PATH defaults to /readyz)
#   <image> sh | bash | python | ray ... | /abs/path ... -> runs that program instead
set -eu

if [ "$#" -eq 0 ]; then
    set -- serve
fi

case "$1" in
    healthcheck)
        path="${2:-/readyz}"
        exec python - "$path" <<'PY'
import os, sys, urllib.request
port = os.environ.get("MOODGIF_HTTP_PORT", "8080")
url = f"http://127.0.0.1:{port}{sys.argv[1]}"
try:
    with urllib.request.urlopen(url, timeout=4) as resp:
        sys.exit(0 if 200 <= resp.status < 300 else 1)
except Exception as exc:  # refused, timeout, or an HTTP error status such as 503
    print(f"healthcheck {url}: {exc}", file=sys.stderr)
    sys.exit(1)
PY
        ;;
    -*)
        # options only (e.g. `-v serve`): they belong to moodgif
        exec moodgif "$@"
        ;;
esac

# Other programs run as they are; everything else is a moodgif subcommand.
case "$1" in
    /*|sh|bash|python|python3|pip|ray|alembic)
        exec "$@"
        ;;
    moodgif)
        shift
        ;;
esac
exec moodgif "$@"
