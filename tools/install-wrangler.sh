#!/usr/bin/env bash
# Install Cloudflare's wrangler, pinned, into .cache/wrangler (git-ignored), for the export test's
# `wrangler deploy --dry-run` and `dolab export --check`. Idempotent: does nothing when that
# version is already there. Needs Node.js 20.3+ and npm (it reaches only the npm registry).
#
# 4.86.0 is the last wrangler that runs on Node.js 20; keep it equal to dolab/export.py's
# WRANGLER_VERSION (tests/test_export.py checks that they agree).
set -euo pipefail
VERSION="4.86.0"
cd "$(dirname "$0")/.."
DIR=.cache/wrangler
PACKAGE="$DIR/node_modules/wrangler/package.json"

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install-wrangler: Node.js and npm are needed (wrangler $VERSION runs on Node.js 20.3+)" >&2
  exit 1
fi
if [ -f "$PACKAGE" ] && [ "$(node -p "require('./$PACKAGE').version")" = "$VERSION" ]; then
  exit 0
fi
mkdir -p "$DIR"
[ -f "$DIR/package.json" ] || echo '{"private": true, "description": "wrangler for dolab tests"}' > "$DIR/package.json"
echo "install-wrangler: installing wrangler@$VERSION into $DIR"
npm install --prefix "$DIR" --save-exact --no-audit --no-fund --loglevel=error "wrangler@$VERSION"
"$DIR/node_modules/.bin/wrangler" --version
