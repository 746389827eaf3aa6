#!/usr/bin/env bash
# classproof set-up for Debian 12, as root. Idempotent: a second run only checks and rebuilds
# what changed.
#
#   deploy/setup.sh          install (or just verify) what the box, the tests, benches and
#                            demo need, check the test cameras' GStreamer elements, and build
#                            target/release/classproof
#   deploy/setup.sh check    only verify: name every missing package and GStreamer element,
#                            exit 1 if anything is missing; installs and builds nothing
#   deploy/setup.sh demo     … then run the daemon on deploy/demo.toml (a generated video camera,
#                            and an entrance camera checking a demo trainee in by face)
#   deploy/setup.sh test     … then run the whole test suite (what CI runs, via .ci/run)
#   deploy/setup.sh deb      … then build target/debian/classproof_<version>_amd64.deb with
#                            cargo-deb (installed with `cargo install --locked` when missing)
#                            and check it with lintian (no error allowed)
#   deploy/setup.sh service  … then install the binary, a `classproof` user, /etc/classproof and
#                            the systemd unit (docs/operations.md); on a classroom box this
#                            installs only the build and runtime packages
#
# It installs: Debian packages (build + runtime + test tools; `service` only build + runtime),
# the ONNX Runtime shared library from the onnxruntime wheel on PyPI (checked by sha256), the
# Rust build, and the face models of models/manifest.toml (checked by sha256) from a local mirror when present
# (CLASSPROOF_MODEL_MIRROR, default ../shared/models beside the repository), else upstream.
set -euo pipefail

mode=${1:-install}
case "$mode" in install | demo | test | service | check | deb) ;; *)
    echo "usage: $0 [install|demo|test|service|check|deb]" >&2
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

if [ "$(id -u)" -ne 0 ] && [ "$mode" != check ]; then
    echo "$0: run as root (it installs Debian packages and /usr/local files)" >&2
    exit 2
fi

# --- Debian packages --------------------------------------------------------------------------
# The one list of the system packages classproof, its tests, benches and demo need. A package
# goes here with the reason it is needed; nothing is ever to be installed by hand.
packages=(
    # build: FFmpeg 5.1 -dev packages come with libopencv-dev; clang for the opencv crate
    build-essential pkg-config clang libopencv-dev libavdevice-dev libavfilter-dev
    # runtime (the recorder links FFmpeg's libraries); the ffmpeg/ffprobe CLIs make the demo
    # video and the tests' clips, probe recorded segments, and are the bench's reference
    ffmpeg
    # set-up: rustup, the ONNX Runtime wheel and model downloads
    ca-certificates curl unzip python3-pip
)
if [ "$mode" != service ]; then
    packages+=(
        # the test cameras (tests/support/rtsp_server.py, also the bench's camera): gst-rtsp-server
        # from /usr/bin/python3 …
        python3 python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0
        # … and the GStreamer plugins of their pipelines (`rtsp_server.py --check` names the
        # element each one brings): videotestsrc, videoconvert, appsrc/appsink (base);
        # rtph26xpay, qtdemux, rtpbin, udpsrc/udpsink (good); h264parse, h265parse, x265enc
        # (bad); x264enc (ugly); timeoverlay (x: the Pango overlay plugins)
        gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
        gstreamer1.0-plugins-ugly gstreamer1.0-x
        # tests: a real MQTT broker and its clients; openssl makes the test PKI (CA, server and
        # client certificates, an expired one)
        mosquitto mosquitto-clients openssl
        # tests: unshare and mount -t tmpfs (small real file systems), mkfs.ext4 and e2fsck for
        # ext4 loop devices (a file system that turns read-only); in a minimal image too
        util-linux mount e2fsprogs
        # benches/vision/compare.sh builds its Python reference in a venv
        python3-venv
        # issue 12: the status page is tested in a real headless browser (with a CJK font for
        # the zh-CN page and its screenshot); faketime steps the wall clock of one daemon for
        # the clock_step test; lintian checks the .deb (`setup.sh deb`)
        chromium fonts-wqy-microhei faketime lintian
    )
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "$mode" = check ]; then
    [ ${#missing[@]} -eq 0 ] || echo "$0: missing Debian packages: ${missing[*]} (deploy/setup.sh installs them)" >&2
elif [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    missing=()
fi

# Every GStreamer element the test cameras use exists (a second): fails here, naming the
# missing element and its Debian package, rather than as camera tests that time out.
check_elements() {
    say "checking the test cameras' GStreamer elements"
    if [ ! -x /usr/bin/python3 ]; then
        echo "$0: no /usr/bin/python3 (Debian package python3)" >&2
        return 1
    fi
    /usr/bin/python3 tests/support/rtsp_server.py --check
}
if [ "$mode" = check ]; then
    ok=1
    [ ${#missing[@]} -eq 0 ] || ok=0
    check_elements || ok=0
    if [ $ok = 1 ]; then
        say "this box has everything classproof's build, tests, benches and demo need"
        exit 0
    fi
    exit 1
fi
[ "$mode" = service ] || check_elements

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
    /usr/bin/python3 -m pip download --quiet --no-deps --only-binary=:all: \
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

# cargo-deb builds the Debian package (`deb`; the test suite builds one too).
install_cargo_deb() {
    if ! cargo deb --version >/dev/null 2>&1; then
        say "installing cargo-deb"
        cargo install --locked --quiet cargo-deb
    fi
}

case "$mode" in
install)
    say "installed: target/release/classproof (see docs/operations.md to run it as a service)"
    ;;
deb)
    install_cargo_deb
    # The package installs the binary in /usr/bin (the unit of `service` mode names /usr/local).
    target_dir=${CARGO_TARGET_DIR:-$repo/target}
    mkdir -p "$repo/target/deb"
    sed -e 's#/usr/local/bin/classproof#/usr/bin/classproof#g' \
        -e 's#file:///usr/local/share/doc/classproof#file:///usr/share/doc/classproof#' \
        systemd/classproof.service >"$repo/target/deb/classproof.service"
    say "building the Debian package"
    deb=$(cargo deb --no-build --strip --locked --quiet --output "$target_dir/debian" | tail -n1)
    say "lintian $deb"
    lintian --fail-on error --suppress-tags binary-without-manpage "$deb"
    say "built $deb"
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
    # The status page first, so a newcomer opens it while the rest starts.
    demo_listen=$(sed -n '/^\[status\]/,/^\[/s/^listen *= *"\(.*\)"/\1/p' deploy/demo.toml | head -n1)
    say "status page: http://${demo_listen:-127.0.0.1:8480}/ (metrics: /metrics, JSON: /api/status)"
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
    # issue 9: an entrance camera playing a real video of one person (faces-dev), who is
    # enrolled as a trainee of the demo class from a frame of that video: a check-in with its
    # snapshot shows within a minute.
    faces_dev=${FACES_DEV:-$repo/../shared/faces-dev}
    if [ ! -s "$demo_dir/door.mp4" ]; then
        if [ ! -s "$faces_dev/videos/liveportrait_d9.mp4" ]; then
            echo "setup.sh: $faces_dev/videos/liveportrait_d9.mp4 not found (set FACES_DEV to the faces-dev folder)" >&2
            exit 1
        fi
        say "the demo entrance camera's video: $demo_dir/door.mp4 (faces-dev videos/liveportrait_d9.mp4)"
        cp "$faces_dev/videos/liveportrait_d9.mp4" "$demo_dir/door.mp4"
        ffmpeg -loglevel error -y -ss 2 -i "$demo_dir/door.mp4" -frames:v 1 "$demo_dir/door-person.jpg"
    fi
    target/release/classproof check-config --config deploy/demo.toml
    if ! target/release/classproof roster list --config deploy/demo.toml | grep -q demo-trainee; then
        say "enrolling the demo trainee (class demo-class) from $demo_dir/door-person.jpg"
        target/release/classproof enroll --config deploy/demo.toml --person demo-trainee \
            --name "Demo Trainee" --role trainee --class demo-class "$demo_dir/door-person.jpg"
    fi
    say "the check-in: target/release/classproof events --config deploy/demo.toml --type check_in"
    say "             target/release/classproof attendance --config deploy/demo.toml --session demo"
    say "running the daemon on deploy/demo.toml (Ctrl-C stops it cleanly)"
    exec target/release/classproof run --config deploy/demo.toml
    ;;
test)
    install_cargo_deb
    say "cargo fmt --check"
    cargo fmt --check
    say "cargo clippy"
    cargo clippy --release --locked --all-targets --quiet -- -D warnings
    say "cargo test"
    CLASSPROOF_MODELS_DIR=$MODELS_DIR cargo test --release --locked
    ;;
esac
