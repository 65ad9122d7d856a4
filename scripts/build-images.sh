#!/usr/bin/env bash
# Builds the operator image and the CPU trainer image without a Docker engine (buildah, vfs storage, chroot
# isolation, as root on Debian bookworm), then smoke-runs both inside the images. Slow (minutes to tens of minutes);
# not part of CI. docs/images.md says what it does, what it needs and what it printed here.
#
#   scripts/build-images.sh                 # cargo build --release, base images when missing, both images, smoke tests
#   SKIP_CARGO=1 scripts/build-images.sh    # use the binaries already in target/release
#
# Images (the default containers-storage, driver vfs: `buildah --storage-driver vfs images` lists them):
#   localhost/seedsweep/operator:<version>      operator/Dockerfile
#   localhost/seedsweep/trainer:<version>-cpu   trainer/Dockerfile --target cpu --build-arg WITH_MINILM=1
# <version> is [workspace.package] version in Cargo.toml.
#
# Base images, created locally when missing, named as the Dockerfiles expect (no container registry is needed; an
# image of that name already in the store, pulled from its registry, is used as it is):
#   docker.io/library/debian:bookworm-slim        mmdebstrap --variant=minbase bookworm, docs/man/locales excluded
#   docker.io/library/python:3.11-slim-bookworm   that + Debian's python3 (3.11), python3-venv, python-is-python3
#   gcr.io/distroless/cc-debian12:nonroot         a stand-in assembled as distroless assembles it: Debian 12 packages
#                                                 (libc6, libgcc-s1, libgomp1, libstdc++6, libssl3, base-files, netbase,
#                                                 tzdata, CA certificates) unpacked without dpkg, no shell, user 65532
# pip inside the build uses the host's CA bundle and pip.conf, bind-mounted for RUN steps only (nothing of them stays
# in the images), so that a TLS-intercepting proxy the host trusts works.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
start=$(date +%s)

DEBIAN_BASE=docker.io/library/debian:bookworm-slim
PYTHON_BASE=docker.io/library/python:3.11-slim-bookworm
DISTROLESS_BASE=gcr.io/distroless/cc-debian12:nonroot
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
version=$(awk -F'"' '/^\[workspace.package\]/ {p = 1} p && /^version *=/ {print $2; exit}' Cargo.toml)
[[ -n $version ]] || { echo "build-images: no [workspace.package] version in Cargo.toml" >&2; exit 1; }
OPERATOR_IMAGE=seedsweep/operator:$version
TRAINER_IMAGE=seedsweep/trainer:$version-cpu

log() { printf 'build-images: [%4d s] %s\n' "$(( $(date +%s) - start ))" "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

work=$(mktemp -d)
containers=()
cleanup() {
    local c
    for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# Every buildah and podman call (also in the sh -c below): the vfs driver in the default store, chroot isolation,
# Docker-format images (the OCI format drops SHELL, which trainer/Dockerfile's RUN steps rely on).
printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' \
    > "$work/storage.conf"
export CONTAINERS_STORAGE_CONF=$work/storage.conf BUILDAH_ISOLATION=chroot BUILDAH_FORMAT=docker

# ---- 1. tools ----------------------------------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || fail "run as root (buildah with chroot isolation and vfs storage)"
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v podman >/dev/null || missing+=(podman)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if [[ ${#missing[@]} -gt 0 ]]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
log "$(buildah --version), $(podman --version), mmdebstrap $(mmdebstrap --version | awk '{print $2}')"

# ---- 2. the binaries ---------------------------------------------------------------------------------------------
if [[ ${SKIP_CARGO:-0} != 1 ]]; then
    scripts/setup-libtorch.sh >/dev/null
    log "cargo build --release --locked -p seedsweep-operator -p seedsweep-trainer"
    cargo build --release --locked -p seedsweep-operator -p seedsweep-trainer
fi
for bin in seedsweep seedsweep-trainer; do
    [[ -x target/release/$bin ]] || fail "target/release/$bin is missing (cargo build --release first)"
done
# The images' glibc is bookworm's (2.36): a binary linked against a newer one would not start there.
if ! grep -q '^VERSION_ID="12"' /etc/os-release 2>/dev/null; then
    log "warning: this is not Debian 12; the binaries may need a newer glibc than the images have"
fi

# ---- 3. base images ----------------------------------------------------------------------------------------------
have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

if have_image "$DEBIAN_BASE"; then
    log "$DEBIAN_BASE: present"
else
    log "$DEBIAN_BASE: mmdebstrap --variant=minbase bookworm (several minutes)"
    # As debian:bookworm-slim is made: minbase, merged /usr without the usrmerge package, no docs/man/info/locales.
    mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        bookworm "$work/debian.tar" "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
        "deb $SECURITY_MIRROR bookworm-security main"
    podman import --change 'CMD ["bash"]' "$work/debian.tar" "$DEBIAN_BASE" >/dev/null
    rm -f "$work/debian.tar"
fi

if have_image "$PYTHON_BASE"; then
    log "$PYTHON_BASE: present"
else
    log "$PYTHON_BASE: Debian's python3 3.11 on $DEBIAN_BASE"
    cat > "$work/Containerfile.python" <<EOF
FROM $DEBIAN_BASE
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
        python3 python3-venv python-is-python3 ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
EOF
    buildah bud --pull=never --quiet -f "$work/Containerfile.python" -t "$PYTHON_BASE" "$work" >/dev/null
fi

if have_image "$DISTROLESS_BASE"; then
    log "$DISTROLESS_BASE: present"
else
    log "$DISTROLESS_BASE: stand-in from Debian 12 packages"
    # distroless's cc-debian12 is Debian 12's .debs unpacked (no dpkg, no shell) plus passwd/group with nonroot=65532
    # and a CA bundle; this does the same with apt-get download + dpkg-deb -x in a throwaway stage.
    cat > "$work/Containerfile.distroless" <<EOF
FROM $DEBIAN_BASE AS fetch
RUN apt-get update \\
    && mkdir -p /debs /rootfs && chown _apt /debs && cd /debs \\
    && apt-get download base-files netbase tzdata ca-certificates libc6 libssl3 libgcc-s1 gcc-12-base libgomp1 \\
        libstdc++6 \\
    && for deb in *.deb; do dpkg-deb -x "\$deb" /rootfs; done \\
    && mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/home/nonroot /rootfs/root \\
    && cat /rootfs/usr/share/ca-certificates/mozilla/*.crt > /rootfs/etc/ssl/certs/ca-certificates.crt \\
    && printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \\
        'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > /rootfs/etc/passwd \\
    && printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' > /rootfs/etc/group \\
    && printf '%s\n' 'passwd: files' 'group: files' 'shadow: files' 'hosts: files dns' 'networks: files' \\
        'protocols: files' 'services: files' > /rootfs/etc/nsswitch.conf \\
    && chmod 1777 /rootfs/tmp && chmod 700 /rootfs/root && chown 65532:65532 /rootfs/home/nonroot \\
    && rm -rf /rootfs/usr/share/doc/*/changelog* /rootfs/usr/share/man /rootfs/usr/share/info \\
        /rootfs/usr/share/lintian /rootfs/usr/share/locale /rootfs/usr/sbin /rootfs/usr/bin /rootfs/bin /rootfs/sbin
FROM scratch
COPY --from=fetch /rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
EOF
    buildah bud --pull=never --quiet -f "$work/Containerfile.distroless" -t "$DISTROLESS_BASE" "$work" >/dev/null
fi

# ---- 4. the images -----------------------------------------------------------------------------------------------
# pip in the build: the host's CA bundle and pip.conf (which points at it), for RUN steps only.
pip_mounts=()
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    printf '[global]\ncert = /run/host-ca-certificates.crt\n' > "$work/pip.conf"
    pip_mounts=(--volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca-certificates.crt:ro
        --volume "$work/pip.conf:/etc/pip.conf:ro")
fi
# The build context: only what .dockerignore lets through (the two binaries), hard-linked into a folder of its own.
# buildah walks the whole context to apply .dockerignore; the repository's target/ holds tens of GB.
context=$work/context
mkdir -p "$context/target/release"
cp .dockerignore "$context/"
for bin in seedsweep seedsweep-trainer; do
    cp -l "target/release/$bin" "$context/target/release/" 2>/dev/null || cp "target/release/$bin" "$context/target/release/"
done
t0=$(date +%s)
log "buildah bud -f operator/Dockerfile -t $OPERATOR_IMAGE"
buildah bud --pull=never --layers -f operator/Dockerfile -t "$OPERATOR_IMAGE" "$context"
operator_s=$(( $(date +%s) - t0 ))
t0=$(date +%s)
log "buildah bud -f trainer/Dockerfile --target cpu --build-arg WITH_MINILM=1 -t $TRAINER_IMAGE"
buildah bud --pull=never --layers "${pip_mounts[@]}" -f trainer/Dockerfile --target cpu --build-arg WITH_MINILM=1 \
    -t "$TRAINER_IMAGE" "$context"
trainer_s=$(( $(date +%s) - t0 ))

# ---- 5. smoke tests inside the images ----------------------------------------------------------------------------
passed=0
# ok NAME CMD...: runs CMD with its output in $work/out; prints the output and fails the script when CMD fails.
ok() {
    local name=$1; shift
    if "$@" > "$work/out" 2>&1; then
        passed=$((passed + 1)); log "ok    $name"
    else
        sed 's/^/      /' "$work/out" | tail -60 >&2
        fail "$name"
    fi
}
new_container() {  # NAME IMAGE: a working container of IMAGE, removed on exit
    buildah rm "$1" >/dev/null 2>&1 || true
    buildah from --quiet --pull=never --name "$1" "$2" >/dev/null
    containers+=("$1")
}
no_missing_libs() {  # the loader's --list (what ldd runs) of each file, checked for "not found"
    local ctr=$1 loader=$2 f; shift 2
    for f in "$@"; do
        buildah run "$ctr" -- "$loader" --list "$f" > "$work/ldd" 2>&1 || { cat "$work/ldd"; return 1; }
        cat "$work/ldd"
        if grep -q 'not found' "$work/ldd"; then echo "missing libraries for $f"; return 1; fi
    done
}

op=seedsweep-smoke-operator
new_container "$op" "$OPERATOR_IMAGE"
# No shell in the operator image: every command is run directly; ldd is the dynamic loader's --list.
ok "operator: seedsweep --version" buildah run "$op" -- /usr/local/bin/seedsweep --version
log "      $(cat "$work/out")"
ok "operator: runs as 65532 with no shell" sh -c "
    [ \"\$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' '$OPERATOR_IMAGE')\" = 65532:65532 ] &&
    ! buildah run '$op' -- /bin/sh -c true"
ok "operator: ldd seedsweep (no library not found)" \
    no_missing_libs "$op" /lib64/ld-linux-x86-64.so.2 /usr/local/bin/seedsweep
ok "operator: seedsweep crd starts with apiVersion (after its comment line)" sh -c "
    buildah run '$op' -- /usr/local/bin/seedsweep crd > '$work/crd.yaml' && grep -v '^#' '$work/crd.yaml' | head -n1 | grep -q '^apiVersion:' &&
    cmp '$work/crd.yaml' crds/seedsweep.yaml && wc -l < '$work/crd.yaml'"
ok "operator: seedsweep validate examples/mrpc-sweep.yaml" \
    buildah run --volume "$repo/examples:/examples:ro" "$op" -- /usr/local/bin/seedsweep validate /examples/mrpc-sweep.yaml
log "      $(tail -n1 "$work/out")"
ok "operator: seedsweep validate rejects a bad manifest (exit 1)" sh -c "
    sed 's/keepFraction: .*/keepFraction: 1.5/' examples/mrpc-sweep.yaml > '$work/bad.yaml'
    grep -q 'keepFraction: 1.5' '$work/bad.yaml' || { echo 'no keepFraction to break'; exit 1; }
    buildah run --volume '$work/bad.yaml:/bad.yaml:ro' '$op' -- /usr/local/bin/seedsweep validate /bad.yaml; rc=\$?
    [ \$rc = 1 ]"

tr=seedsweep-smoke-trainer
new_container "$tr" "$TRAINER_IMAGE"
ok "trainer: seedsweep-trainer --version" buildah run "$tr" -- /usr/local/bin/seedsweep-trainer --version
log "      $(cat "$work/out")"
# shellcheck disable=SC2016 # expanded by the image's sh
ok "trainer: ldd seedsweep-trainer and libtorch (no library not found)" \
    buildah run "$tr" -- sh -c 'for f in /usr/local/bin/seedsweep-trainer /opt/torch/torch/lib/libtorch_cpu.so; do
        ldd "$f" | tee /dev/stderr | grep -q "not found" && { echo "missing libraries for $f"; exit 1; }; done; true'
ok "trainer: MiniLM at /opt/models/minilm-l6" buildah run "$tr" -- ls /opt/models/minilm-l6/config.json
# A few real training steps of MiniLM on 16 MRPC examples, as a trial pod runs: uid 65532 and a writable /scratch
# volume (the pod's emptyDir), the data mounted read-only.
mkdir -p "$work/scratch" && chown 65532:65532 "$work/scratch"
t0=$(date +%s)
ok "trainer: MiniLM fine-tuning, 16 MRPC examples, 1 epoch (loss, evaluation, summary)" \
    buildah run --volume "$repo/examples/local/data/MRPC:/data/MRPC:ro" --volume "$work/scratch:/scratch" "$tr" -- \
    /usr/local/bin/seedsweep-trainer --task mrpc --data-dir /data/MRPC --model-dir /opt/models/minilm-l6 \
    --train-subset 16 --dev-subset 16 --epochs 1 --batch-size 4 --max-seq-length 32 --evals-per-epoch 2 --log-every 1 \
    --wi-seed 1 --do-seed 2 --device cpu --metrics-addr 127.0.0.1:0 \
    --output /scratch/summary.json --termination-log /scratch/termination-log
train_s=$(( $(date +%s) - t0 ))
cp "$work/out" "$work/train.out"
sed 's/^/      /' "$work/train.out" | tail -n 20 >&2
ok "trainer: output shows the loss and an evaluation" sh -c "
    grep -E '^step [0-9]+/4 epoch [0-9]+ loss [0-9.]+ ' '$work/train.out' &&
    grep -E '^eval [0-9]+ at step [0-9]+: accuracy ' '$work/train.out'"
ok "trainer: summary.json written by uid 65532 with evaluations" sh -c "
    [ \"\$(stat -c %u '$work/scratch/summary.json')\" = 65532 ] && grep -q 'acc_and_f1' '$work/scratch/summary.json' &&
    head -c 600 '$work/scratch/summary.json'"

# ---- 6. sizes ----------------------------------------------------------------------------------------------------
log "all $passed smoke tests passed"
log "build times: operator ${operator_s} s, trainer ${trainer_s} s; training smoke run ${train_s} s"
buildah images --format '{{.Name}}:{{.Tag}}  {{.Size}}' | grep -E "seedsweep/|distroless|debian|python" \
    | sed 's/^/build-images:   /' >&2
log "done"
