#!/bin/sh
# PID 1 of the User-Mode-Linux guest booted by tests/kernel/uml.py.
#
# The guest's root is the host's / over hostfs, read-only. This script makes the
# places programs write to live in guest RAM, points module loading at the UML
# modules unpacked on the host, loads ip_vs, runs the command the host left in the
# result directory and hands its exit status back through that directory.
#
# Kernel command line words KEY=VALUE arrive here as environment:
#   LVS_UML_RESULT   host path of the result directory (mounted read-write)
#   LVS_UML_MODULES  host path of the unpacked modules/<version> directory
#
# Files in the result directory:
#   command  written by the host: a sh script to run
#   ready    written here once the guest is set up (guest uptime in seconds)
#   output   everything this script and the command print
#   status   the command's exit status (125: the guest could not be set up)
#
# The command runs with LVS_KERNEL_GUEST=1 (tests/kernel/conftest.py looks for it).

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOME=/root
LANG=C.UTF-8
export PATH HOME LANG

SETUP_FAILED=125
STATE=/run/lvs-uml
RESULT=$STATE/result

say() { echo "guest-init: $*" >&2; }

halt() {
    sync
    # poweroff -f asks the kernel directly, with no service manager to talk to;
    # SysRq "o" is the fallback should that binary be missing.
    poweroff -f >/dev/null 2>&1
    echo o >/proc/sysrq-trigger
    sleep 5
}

# Reports a status only once the result directory is there to hold it; without it
# the host sees no status and says the guest failed to start.
finish() {
    if [ -d "$RESULT" ] && mountpoint -q "$RESULT"; then
        echo "$1" >"$RESULT/status.part" && mv "$RESULT/status.part" "$RESULT/status"
    fi
    halt
}

setup_failed() {
    say "setup failed: $*"
    finish $SETUP_FAILED
}

mount -t proc proc /proc || setup_failed "mount /proc"
mount -t sysfs sysfs /sys || setup_failed "mount /sys"
# The kernel may have mounted devtmpfs on /dev itself (DEVTMPFS_MOUNT).
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev || setup_failed "mount /dev"
mount -t tmpfs -o mode=0755 tmpfs /run || setup_failed "mount /run"
mkdir -p /run/netns "$RESULT" "$STATE/overlay" || setup_failed "mkdir in /run"

[ -n "$LVS_UML_RESULT" ] || setup_failed "LVS_UML_RESULT not set"
mount -t hostfs -o "$LVS_UML_RESULT" hostfs "$RESULT" || setup_failed "mount result dir"
exec >>"$RESULT/output" 2>&1

# Module loading: the kernel's own on-demand loads (schedulers, ipv6) go through
# /proc/sys/kernel/modprobe as well, so the wrapper is registered there.
[ -d "$LVS_UML_MODULES" ] || setup_failed "no modules at LVS_UML_MODULES=$LVS_UML_MODULES"
host_modprobe=$(command -v modprobe) || setup_failed "modprobe not found (package kmod)"
mkdir -p "$STATE/modroot/lib/modules" || setup_failed "mkdir modroot"
ln -s "$LVS_UML_MODULES" "$STATE/modroot/lib/modules/$(uname -r)" || setup_failed "link modules"
cat >"$STATE/modprobe" <<EOF || setup_failed "write modprobe wrapper"
#!/bin/sh
exec $host_modprobe -d $STATE/modroot "\$@"
EOF
chmod 0755 "$STATE/modprobe" || setup_failed "chmod modprobe wrapper"
echo "$STATE/modprobe" >/proc/sys/kernel/modprobe || setup_failed "register modprobe wrapper"
mkdir -p "$STATE/bin" && ln -sf "$STATE/modprobe" "$STATE/bin/modprobe"
PATH=$STATE/bin:$PATH

# Writable /tmp, /var, /root, /etc: the host's files below, guest RAM (/run) on top.
"$STATE/modprobe" overlay || setup_failed "modprobe overlay"
for dir in /tmp /var /root /etc; do
    name=${dir#/}
    mkdir -p "$STATE/overlay/$name/upper" "$STATE/overlay/$name/work" ||
        setup_failed "mkdir overlay $name"
    chmod --reference="$dir" "$STATE/overlay/$name/upper"
    mount -t overlay overlay \
        -o "lowerdir=$dir,upperdir=$STATE/overlay/$name/upper,workdir=$STATE/overlay/$name/work" \
        "$dir" || setup_failed "overlay on $dir"
done

ip link set lo up || setup_failed "lo up"
modprobe ip_vs || setup_failed "modprobe ip_vs"
[ -e /proc/net/ip_vs ] || setup_failed "ip_vs loaded but /proc/net/ip_vs missing"

LVS_KERNEL_GUEST=1
export LVS_KERNEL_GUEST
cut -d' ' -f1 /proc/uptime >"$RESULT/ready"

cd / && sh "$RESULT/command" </dev/null
finish $?
