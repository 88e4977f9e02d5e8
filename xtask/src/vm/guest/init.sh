#!/bin/busybox sh
# PID 1 of a vm-test guest: mounts what netprobe needs, loads the scenarios' modules, runs the
# runner, and ends QEMU through isa-debug-exit (code 0: QEMU exits with status 1); a kernel
# panic instead resets, which -no-reboot turns into status 0.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/usr/local/bin:/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
while read -r m; do
    insmod "$m" || echo "NPERR init insmod $m failed"
done </modules.list
# Results go to the second serial port, where no kernel message can cut into them. The console
# keeps the kernel's default loglevel: netprobe counts "table full" messages as they are printed.
stty -F /dev/ttyS1 raw -echo
sh /runner.sh >/dev/ttyS1
labtool qemu-exit 0
poweroff -f
