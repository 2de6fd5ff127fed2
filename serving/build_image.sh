#!/usr/bin/env bash
# Build the scoring container image from the packaged bento with podman, without any container registry.
#
#   bash serving/build_image.sh            # after `dvc repro package` (reads models/bento.json)
#
# 1. Base image: a Debian bookworm root file system made with debootstrap (from Debian's package
#    mirror) and `podman import`ed as $BASE_IMAGE; made once and reused.
# 2. Build context: BentoML's own containerfile for the bento (env/docker/Dockerfile), with the
#    bento's models copied in (bentoml's construct_containerfile), FROM rewritten to $BASE_IMAGE and
#    the compiler toolchain dropped from its apt line (every dependency ships as a wheel).
# 3. `podman build --isolation chroot` (works without a daemon or user namespaces). Python packages
#    are installed from the package index during the build.
# Environment: IMAGE, BASE_IMAGE, BENTO (tag), DEBIAN_MIRROR, PYTHON, WORK (scratch directory).
set -euo pipefail
cd "$(dirname "$0")/.."

export BENTOML_HOME="${BENTOML_HOME:-$PWD/.bentoml}"
export BENTOML_DO_NOT_TRACK=true
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
BASE_IMAGE="${BASE_IMAGE:-localhost/scoring-base:bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WORK="${WORK:-$(mktemp -d)}"
BENTO="${BENTO:-$("$PYTHON" -c 'import json; print(json.load(open("models/bento.json"))["bento"])')}"
IMAGE="${IMAGE:-localhost/${BENTO%%:*}:${BENTO##*:}}"

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "build_image: $tool is missing (apt-get install -y podman debootstrap)" >&2; exit 2; }
done

if ! podman image exists "$BASE_IMAGE"; then
  echo "build_image: making base image $BASE_IMAGE with debootstrap"
  rootfs="$WORK/rootfs"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates,passwd \
    bookworm "$rootfs" "$DEBIAN_MIRROR"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE"
  rm -rf "$rootfs"
fi

context="$WORK/context"
rm -rf "$context"
"$PYTHON" - "$BENTO" "$context" <<'PY'
import shutil, sys
import bentoml
from bentoml._internal.container import construct_containerfile

bento = bentoml.get(sys.argv[1])
with construct_containerfile(bento, enable_buildkit=False) as (build_ctx, dockerfile):
    shutil.copytree(build_ctx, sys.argv[2])
    print(f"build_image: context for {bento.tag} in {sys.argv[2]} ({dockerfile})")
PY
dockerfile="$context/env/docker/Dockerfile"
sed -i -E "s|^FROM [^ ]+ AS base-container|FROM $BASE_IMAGE AS base-container|" "$dockerfile"
sed -i -E 's/ build-essential git$//' "$dockerfile"
# Extra certificate authorities (a TLS-intercepting proxy in front of the package index, as on this
# build machine): copied into the image before the first download and trusted by pip and uv.
EXTRA_CA_DIR="${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
if compgen -G "$EXTRA_CA_DIR/*.crt" >/dev/null; then
  mkdir -p "$context/env/docker/extra-ca"
  cp "$EXTRA_CA_DIR"/*.crt "$context/env/docker/extra-ca/"
  sed -i "/^FROM .* AS base-container/a COPY ./env/docker/extra-ca/ /usr/local/share/ca-certificates/\\nRUN update-ca-certificates\\nENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt" "$dockerfile"
fi
grep -q "^FROM $BASE_IMAGE" "$dockerfile" || { echo "build_image: could not set the base image in $dockerfile" >&2; exit 1; }

echo "build_image: podman build $IMAGE"
podman build --isolation chroot --pull=never -t "$IMAGE" -f "$dockerfile" "$context"
podman image inspect "$IMAGE" --format 'build_image: built {{.Id}} size={{.Size}}'
echo "$IMAGE"
