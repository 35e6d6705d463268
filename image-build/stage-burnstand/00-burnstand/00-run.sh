#!/bin/bash -e
# pi-gen sub-stage: install burnstand with the same customize.sh the local image test runs.
# pi-gen runs this on the build host with ROOTFS_DIR set and on_chroot defined; the burnstand
# checkout is the one this stage lives in, unless BURNSTAND_SRC (in the pi-gen config) says else.
BURNSTAND_SRC=${BURNSTAND_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
if [ ! -f "${BURNSTAND_SRC}/pyproject.toml" ]; then
    echo "burnstand stage: ${BURNSTAND_SRC} is not a burnstand checkout; set BURNSTAND_SRC" >&2
    exit 1
fi
BURNSTAND_COORDINATOR=${BURNSTAND_COORDINATOR:-https://coordinator.invalid}

rm -rf "${ROOTFS_DIR}/opt/burnstand/src"
install -d "${ROOTFS_DIR}/opt/burnstand/src"
(cd "${BURNSTAND_SRC}" && tar --exclude=__pycache__ --exclude='*.egg-info' -cf - \
    pyproject.toml README.md wire coordinator appliance systemd image-build docs) \
    | tar -C "${ROOTFS_DIR}/opt/burnstand/src" -xf -

on_chroot << CHROOT
BURNSTAND_IMAGE_BUILD=1 bash /opt/burnstand/src/image-build/customize.sh / --coordinator "${BURNSTAND_COORDINATOR}"
CHROOT
