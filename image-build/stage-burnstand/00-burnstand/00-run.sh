#!/bin/bash -e
# pi-gen sub-stage: install burnstand with the same customize.sh the local image test runs.
# pi-gen runs this on the build host with ROOTFS_DIR set and on_chroot defined; the burnstand
# checkout is the one this stage lives in, unless BURNSTAND_SRC (in the pi-gen config) says else.
# The pi-gen config must export BURNSTAND_COORDINATOR_URL and BURNSTAND_SHOW_ID (and may export
# BURNSTAND_KIOSK_NAME); customize.sh checks them and writes them into agent.toml.
BURNSTAND_SRC=${BURNSTAND_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
if [ ! -f "${BURNSTAND_SRC}/pyproject.toml" ]; then
    echo "burnstand stage: ${BURNSTAND_SRC} is not a burnstand checkout; set BURNSTAND_SRC" >&2
    exit 1
fi
# The older name of the URL variable still works.
BURNSTAND_COORDINATOR_URL=${BURNSTAND_COORDINATOR_URL:-${BURNSTAND_COORDINATOR:-}}
# Fail before copying anything, with customize.sh's own message, rather than inside the chroot.
for var in BURNSTAND_COORDINATOR_URL BURNSTAND_SHOW_ID; do
    if [ -z "${!var:-}" ]; then
        echo "burnstand stage: ${var} is not set; add 'export ${var}=…' to the pi-gen config" \
            "(see image-build/stage-burnstand/README.md)" >&2
        exit 1
    fi
done

rm -rf "${ROOTFS_DIR}/opt/burnstand/src"
install -d "${ROOTFS_DIR}/opt/burnstand/src"
(cd "${BURNSTAND_SRC}" && tar --exclude=__pycache__ --exclude='*.egg-info' -cf - \
    pyproject.toml README.md requirements wire plumbing coordinator appliance systemd image-build docs) \
    | tar -C "${ROOTFS_DIR}/opt/burnstand/src" -xf -

# printf %q: the values reach the chroot's shell quoted, whatever they hold (customize.sh then
# refuses anything that is not a plain URL, show id or name).
on_chroot << CHROOT
BURNSTAND_IMAGE_BUILD=1 \
BURNSTAND_COORDINATOR_URL=$(printf '%q' "${BURNSTAND_COORDINATOR_URL}") \
BURNSTAND_SHOW_ID=$(printf '%q' "${BURNSTAND_SHOW_ID}") \
BURNSTAND_KIOSK_NAME=$(printf '%q' "${BURNSTAND_KIOSK_NAME:-burnstand kiosk}") \
bash /opt/burnstand/src/image-build/customize.sh /
CHROOT
