#!/usr/bin/env bash
# classproof set-up for Debian 12, as root. Idempotent: a second run only checks and rebuilds
# what changed.
#
#   deploy/setup.sh          install what the box needs and build target/release/classproof
#   deploy/setup.sh demo     … then run the daemon on deploy/demo.toml (a generated video camera)
#   deploy/setup.sh test     … then run the whole test suite (what CI runs, via .ci/run)
#   deploy/setup.sh service  … then install the binary, a `classproof` user, /etc/classproof and
#                            the systemd unit (docs/operations.md)
#
# It installs: Debian packages (build + runtime, and test tools for `test`), the ONNX Runtime
# shared library from the onnxruntime wheel on PyPI (checked by sha256), the Rust build, and the
# face models of models/manifest.toml (checked by sha256) from a local mirror when present
# (CLASSPROOF_MODEL_MIRROR, default ../shared/models beside the repository), else upstream.
set -euo pipefail

mode=${1:-install}
case "$mode" in install | demo | test | service) ;; *)
    echo "usage: $0 [install|demo|test|service]" >&2
    exit 2
    ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

ORT_VERSION=1.31.1
ORT_SHA256=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
ORT_DIR=/usr/local/lib/classproof
ORT_LIB=$ORT_DIR/libonnxruntime.so.$ORT_VERSION
MODELS_DIR=${CLASSPROOF_MODELS_DIR:-/usr/local/share/classproof/models}
MIRROR=${CLASSPROOF_MODEL_MIRROR:-$repo/../shared/models}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    echo "$0: run as root (it installs Debian packages and /usr/local files)" >&2
    exit 2
fi

# --- Debian packages --------------------------------------------------------------------------
packages=(
    # build: FFmpeg 5.1 -dev packages come with libopencv-dev; clang for the opencv crate
    build-essential pkg-config clang libopencv-dev libavdevice-dev libavfilter-dev
    # runtime and set-up tools
    ca-certificates curl unzip python3-pip ffmpeg
)
if [ "$mode" = test ]; then
    packages+=(
        # tests: a real MQTT broker and a real RTSP server (gst-rtsp-server via python3-gi)
        mosquitto mosquitto-clients python3-gi gir1.2-gst-rtsp-server-1.0
        gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
        gstreamer1.0-plugins-ugly
    )
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Rust -------------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] || {
        say "installing Rust with rustup"
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    }
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# --- ONNX Runtime -----------------------------------------------------------------------------
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
if [ ! -f "$ORT_LIB" ] || [ "$(sha256_of "$ORT_LIB")" != "$ORT_SHA256" ]; then
    say "installing ONNX Runtime $ORT_VERSION into $ORT_DIR"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
        "onnxruntime==$ORT_VERSION" -d "$tmp"
    unzip -q -o -j "$tmp"/onnxruntime-"$ORT_VERSION"-*.whl \
        "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$tmp"
    got=$(sha256_of "$tmp/libonnxruntime.so.$ORT_VERSION")
    if [ "$got" != "$ORT_SHA256" ]; then
        echo "$0: libonnxruntime.so.$ORT_VERSION has sha256 $got, expected $ORT_SHA256" >&2
        exit 1
    fi
    install -D -m 0644 "$tmp/libonnxruntime.so.$ORT_VERSION" "$ORT_LIB"
fi

# --- build ------------------------------------------------------------------------------------
say "building target/release/classproof"
cargo build --release --locked --quiet

# --- models -----------------------------------------------------------------------------------
fetch=(target/release/classproof models fetch --dir "$MODELS_DIR")
[ -d "$MIRROR" ] && fetch+=(--mirror "$MIRROR")
"${fetch[@]}"

case "$mode" in
install)
    say "installed: target/release/classproof (see docs/operations.md to run it as a service)"
    ;;
service)
    install -m 0755 target/release/classproof /usr/local/bin/classproof
    if ! id classproof >/dev/null 2>&1; then
        say "creating the system user classproof"
        useradd --system --home-dir /var/lib/classproof --no-create-home --shell /usr/sbin/nologin classproof
    fi
    getent group video >/dev/null && usermod -a -G video classproof
    install -d -m 0750 -o classproof -g classproof /var/lib/classproof
    install -d -m 0755 /etc/classproof
    if [ ! -f /etc/classproof/classproof.toml ]; then
        install -m 0640 -g classproof deploy/classproof.example.toml /etc/classproof/classproof.toml
        fresh=1
    fi
    install -d /usr/local/share/doc/classproof
    install -m 0644 docs/*.md /usr/local/share/doc/classproof/
    install -m 0644 systemd/classproof.service /etc/systemd/system/classproof.service
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable classproof >/dev/null
        if [ -z "${fresh:-}" ] && classproof check-config --config /etc/classproof/classproof.toml; then
            systemctl restart classproof
            say "classproof is running: systemctl status classproof; journalctl -u classproof -f"
        else
            say "edit /etc/classproof/classproof.toml, then: systemctl restart classproof"
        fi
    else
        say "installed; this machine does not run systemd, start it with:"
        echo "  classproof run --config /etc/classproof/classproof.toml"
    fi
    ;;
demo)
    demo_dir=$repo/var/demo
    mkdir -p "$demo_dir"
    if [ ! -s "$demo_dir/testsrc.mp4" ]; then
        say "generating the demo camera's video: $demo_dir/testsrc.mp4"
        # 60 s of 640x360 H.264 at 25 fps, a keyframe every second, like a classroom camera.
        ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=25" -t 60 \
            -vf "drawtext=text='classproof demo %{pts\:hms}':x=10:y=10:fontsize=24:fontcolor=white" \
            -c:v libx264 -preset veryfast -profile:v main -bf 0 -g 25 -pix_fmt yuv420p \
            "$demo_dir/testsrc.mp4.tmp.mp4" 2>/dev/null ||
            ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=25" -t 60 \
                -c:v libx264 -preset veryfast -profile:v main -bf 0 -g 25 -pix_fmt yuv420p \
                "$demo_dir/testsrc.mp4.tmp.mp4"
        mv "$demo_dir/testsrc.mp4.tmp.mp4" "$demo_dir/testsrc.mp4"
    fi
    target/release/classproof check-config --config deploy/demo.toml
    say "running the daemon on deploy/demo.toml (Ctrl-C stops it cleanly)"
    exec target/release/classproof run --config deploy/demo.toml
    ;;
test)
    say "cargo fmt --check"
    cargo fmt --check
    say "cargo clippy"
    cargo clippy --release --locked --all-targets --quiet -- -D warnings
    say "cargo test"
    CLASSPROOF_MODELS_DIR=$MODELS_DIR cargo test --release --locked
    ;;
esac
