#!/bin/sh
# Run by host-check.service in the arm64 guest (tests/support/armvm.py), once the system is up:
# says what the guest sees on the results port, as a transcript ("$ command", its output, its
# exit status) and `RESULT key value` lines that the test reads. `boots` beside this script
# says how many boots the host wants: each boot but the last ends with a reboot.
here=$(dirname "$0")
port=/dev/virtio-ports/io.github.multiarchd.results
udevadm wait --timeout=120 "$port"  # its name comes from udev, maybe after this unit starts
exec >"$port" 2>&1
state=/var/lib/host-check
mkdir -p "$state"
boot=$(( $(cat "$state/boot" 2>/dev/null || echo 0) + 1 ))
echo "$boot" >"$state/boot"
show() {
    echo "\$ $*"
    "$@" 2>&1
    echo "[exit $?]"
}
result() { echo "RESULT $*"; }
# Microseconds since boot at which a unit or target reached a state (systemctl show).
when() { systemctl show -P "$2" "$1"; }

echo "=== boot $boot"
result boot "$boot"
result uname "$(uname -m)"
result cpu "$(sed -n 's/^CPU part[^:]*: //p' /proc/cpuinfo | sort -u | tr '\n' ' ')"

# The early unit: finished before sysinit.target, and on a later boot replayed the boot record.
result early-result "$(systemctl show -P Result multiarchd-early)"
result early-exit-status "$(systemctl show -P ExecMainStatus multiarchd-early)"
early=$(when multiarchd-early ExecMainExitTimestampMonotonic)
sysinit=$(when sysinit.target ActiveEnterTimestampMonotonic)
result early-before-sysinit "$([ "$early" -gt 0 ] && [ "$early" -le "$sysinit" ] && echo yes || echo "no ($early > $sysinit)")"
result early-replayed "$(journalctl -b -u multiarchd-early -p debug -o cat | grep -c '^boot record replayed')"
result service "$(systemctl is-active multiarchd)"

# The table: each entry of ours, and the machine its interpreter file is built for
# (ELF e_machine: 183 aarch64, 62 x86-64, 3 i386, 40 arm).
for e in /proc/sys/fs/binfmt_misc/multiarch-*; do
    interp=$(sed -n 's/^interpreter //p' "$e")
    result entry "${e##*/}" "$interp" "$(od -An -tu2 -j18 -N2 "$interp" | tr -d ' ')"
done

show uname -m
show multiarchctl status
multiarchctl status --json >"$state/status.json"
python3 -c '
import json, sys
for a in json.load(open(sys.argv[1]))["architectures"]:
    print("RESULT state", a["name"], a["state"])
' "$state/status.json"
show multiarchctl test
result test-exit "$?"
show busctl get-property io.github.multiarchd1 /io/github/multiarchd1 io.github.multiarchd1.Manager State
result dbus-state "$(busctl get-property io.github.multiarchd1 /io/github/multiarchd1 io.github.multiarchd1.Manager State)"

# Foreign programs, run directly: Debian's busybox-static of each architecture.
for a in amd64 i386 armhf; do
    result busybox "$a" "$("$here/busybox-$a" uname -m 2>&1)"
done
show "$here/busybox-amd64" uname -m

# The seed's case: podman (arm64, runc) runs amd64 and i386 images made here.
if [ -e "$here/podman" ]; then
    for pair in amd64:amd64 386:i386; do  # podman's name for it : Debian's
        a=${pair%%:*} img=/var/tmp/image-${pair%%:*}
        mkdir -p "$img/bin"
        cp "$here/busybox-${pair#*:}" "$img/bin/busybox"
        ln -sf busybox "$img/bin/uname"
        ln -sf busybox "$img/bin/sh"
        tar -C "$img" -c . | podman import --arch "$a" - "localhost/busybox-$a" >/dev/null 2>&1
        result image "$a" "$(podman image inspect --format '{{.Architecture}}' "localhost/busybox-$a")"
        result podman "$a" "$(podman --runtime runc run --rm --network none --arch "$a" "localhost/busybox-$a" uname -m 2>&1)"
    done
    show podman --runtime runc run --rm --network none --arch amd64 localhost/busybox-amd64 uname -m
fi

echo "=== end of boot $boot"
if [ "$boot" -lt "$(cat "$here/boots")" ]; then
    systemctl reboot
else
    systemctl poweroff
fi
