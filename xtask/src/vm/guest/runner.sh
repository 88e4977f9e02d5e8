#!/bin/sh
# The vm-test scenarios, run by the guest's init. Each prints one line
#   NPRESULT {"scenario":…,"rc":…,<the guest kernel's own counters>,"report":<netprobe's JSON>}
# and netprobe's stderr as NPERR lines; xtask compares the two sides. Counts are not judged here.
N=50
A=10.99.0.10
B=10.99.0.11
# busybox sh prefers its own applets to PATH, and its ip knows no netns or veth.
ip() { /usr/local/bin/ip "$@"; }

echo "NPRESULT {\"scenario\":\"boot\",\"release\":\"$(uname -r)\",\"uptime\":$(cut -d' ' -f1 /proc/uptime)}"

netprobe doctor >/tmp/doctor 2>&1
sed 's/^/NPDOCTOR /' /tmp/doctor

# Two pods joined by a veth pair, IPv6 off so that its chatter adds no drops.
for p in pod-a pod-b; do
    ip netns add $p
    ip netns exec $p sh -c 'echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6;
        echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6'
    ip -n $p link set lo up
done
ip link add va netns pod-a type veth peer name vb netns pod-b
ip -n pod-a addr add $A/24 dev va
ip -n pod-b addr add $B/24 dev vb
ip -n pod-a link set va up
ip -n pod-b link set vb up

# Field $3 of line $2 in the /proc/net/snmp of pod $1 (/proc/net/netstat for TcpExt).
snmp() {
    file=snmp
    [ "$2" = TcpExt ] && file=netstat
    ip netns exec "$1" cat /proc/net/$file | awk -v p="$2:" -v f="$3" \
        '$1 == p { if (!h) { for (i = 2; i <= NF; i++) if ($i == f) c = i; h = 1 } else print $c }'
}

# Column $2 (`drop`, `insert_failed`) of pod $1's /proc/net/stat/nf_conntrack, summed over
# CPUs (hex there).
ct_stat() {
    ip netns exec "$1" cat /proc/net/stat/nf_conntrack |
        awk -v f="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == f) c = i; next } { print $c }' |
        { s=0; while read -r v; do s=$((s + 0x$v)); done; echo $s; }
}

# netprobe report for scenario $1 with --events $2, until it says it is attached. $TIER, when
# set, is the only tier netprobe may use.
np_start() {
    # Gone first: the background shell truncates them only later, and grep would see the last
    # run's "counting".
    rm -f /tmp/np.json /tmp/np.err
    netprobe report --duration 10m --events "$2" ${TIER:+--tier "$TIER"} --format json \
        >/tmp/np.json 2>/tmp/np.err &
    NP=$!
    i=0
    until grep -Eqs '^netprobe: (counting|watching)' /tmp/np.err; do
        kill -0 $NP 2>/dev/null || return 1
        i=$((i + 1))
        [ $i -gt 600 ] && return 1
        sleep 0.2
    done
}

# Ctrl-C once the last per-second poll has seen everything, then the NPRESULT line with the
# kernel's counters, read after netprobe stopped: the JSON members that command $2 prints.
np_result() {
    sleep 1.5
    kill -INT $NP 2>/dev/null
    wait $NP
    rc=$?
    report=null
    [ -s /tmp/np.json ] && report=$(tr -d '\n' </tmp/np.json)
    sed "s/^/NPERR $1@$TIER /" /tmp/np.err
    echo "NPRESULT {\"scenario\":\"$1\",\"tier\":\"$TIER\",\"rc\":$rc,$(eval "$2"),\"report\":$report}"
}

nft_input() {
    ip netns exec $1 nft add table inet np
    ip netns exec $1 nft add chain inet np input '{ type filter hook input priority 0; }'
    ip netns exec $1 nft add rule inet np input $2
}

# Every family at each tier it has a program for: drops at the tracepoint tiers, tcp, ports
# and softnet also at fentry and kprobe (conntrack's functions are a module's: kprobe only).
TIERS="tp_btf raw_tracepoint tracepoint"
TCP_TIERS="fentry kprobe $TIERS"
FUNCTION_TIERS="fentry kprobe"
PORT_TIERS="fentry kprobe tracepoint"
SOFTNET_TIERS="fentry kprobe tp_btf"

# Closed port: N datagrams to a port nothing listens on, each a NO_SOCKET drop in pod-b.
for TIER in $TIERS; do
    before=$(snmp pod-b Udp NoPorts)
    np_start closed-port drops && ip netns exec pod-a labtool blast $B 8080 $N
    np_result closed-port 'echo "\"sent\":$N,\"noports\":$(($(snmp pod-b Udp NoPorts) - before))"'
done

# TCP retransmits: pod-b's input loses one in ten segments to its sink.
nft_input pod-b 'tcp dport 5001 numgen random mod 10 == 0 drop'
ip netns exec pod-b labtool sink 5001 &
SINK=$!
sleep 0.3
for TIER in $TCP_TIERS; do
    a0=$(snmp pod-a Tcp RetransSegs)
    b0=$(snmp pod-b Tcp RetransSegs)
    np_start tcp-retransmits tcp && ip netns exec pod-a timeout 60 labtool send $B 5001 1000000
    np_result tcp-retransmits 'echo "\"retrans_a\":$(($(snmp pod-a Tcp RetransSegs) - a0)),\"retrans_b\":$(($(snmp pod-b Tcp RetransSegs) - b0))"'
done
# Failed retransmits: pod-a's output also drops one in five, so some retransmits are refused
# on the way out (EPERM) and TCPRetransFail counts them. No tail loss probes: they call
# __tcp_retransmit_skb directly, past the hook on tcp_retransmit_skb.
nft_output() {
    ip netns exec $1 nft add table inet npout
    ip netns exec $1 nft add chain inet npout output '{ type filter hook output priority 0; }'
    ip netns exec $1 nft add rule inet npout output $2
}
nft_output pod-a 'tcp dport 5001 numgen random mod 5 == 0 drop'
ip netns exec pod-a sh -c 'echo 0 >/proc/sys/net/ipv4/tcp_early_retrans'
for TIER in $FUNCTION_TIERS; do
    f0=$(snmp pod-a TcpExt TCPRetransFail)
    np_start tcp-failed-retransmits tcp && ip netns exec pod-a timeout 60 labtool send $B 5001 1000000
    np_result tcp-failed-retransmits 'echo "\"retrans_fail_a\":$(($(snmp pod-a TcpExt TCPRetransFail) - f0))"'
done
TIER=
ip netns exec pod-a sh -c 'echo 3 >/proc/sys/net/ipv4/tcp_early_retrans'
ip netns exec pod-a nft delete table inet npout
kill $SINK
ip netns exec pod-b nft delete table inet np

# Port exhaustion: ten ephemeral ports, forty short actively closed connections.
ip netns exec pod-a sh -c 'echo "40000 40009" >/proc/sys/net/ipv4/ip_local_port_range'
ip netns exec pod-b labtool sink 5003 &
SINK=$!
sleep 0.3
for TIER in $PORT_TIERS; do
    client=null
    np_start port-exhaustion ports && client=$(ip netns exec pod-a labtool connect-loop $B 5003 40)
    np_result port-exhaustion 'echo "\"client\":$client"'
done
TIER=
kill $SINK
ip netns exec pod-a sh -c 'echo "32768 60999" >/proc/sys/net/ipv4/ip_local_port_range'

# Bind conflicts: a listener on pod-b's port 5007, then five more binds to it.
for TIER in $PORT_TIERS; do
    failed=null
    np_start bind-conflict ports && failed=$(ip netns exec pod-b labtool bind-taken $B 5007 5)
    np_result bind-conflict 'echo "\"eaddrinuse\":$failed"'
done
TIER=

# Conntrack full: a table of 20 and 40 connections at once into a tracked pod-b, twice.
nft_input pod-b 'ct state new counter accept'
ip netns exec pod-b labtool sink 5005 &
SINK=$!
echo 20 >/proc/sys/net/netfilter/nf_conntrack_max
sleep 0.3
# The conntrack family alone first, while the table is empty: its count of the kernel's
# rate-limited "table full" messages against the guest's own log.
# Older kernels print "table full, dropping packet", newer ones "table full in netns N, ...".
full_msgs() { dmesg | grep -c "nf_conntrack: table full"; }
before=$(full_msgs)
np_start conntrack-messages conntrack && ip netns exec pod-a labtool connect-many $B 5005 40 2500
np_result conntrack-messages 'echo "\"messages\":$(($(full_msgs) - before))"'
# Then with drops: packets freed by conntrack's verdict against its drop counter. The table is
# still full of the first run's connections, so every new one is dropped.
before=$(ct_stat pod-b drop)
np_start conntrack-full drops,conntrack && ip netns exec pod-a labtool connect-many $B 5005 40 2500
np_result conntrack-full 'echo "\"ct_drop\":$(($(ct_stat pod-b drop) - before))"'
# At the kprobe tier conntrack counts the failed allocations itself, per netns, exactly.
before=$(ct_stat pod-b drop)
TIER=kprobe
np_start conntrack-alloc-failures conntrack && ip netns exec pod-a labtool connect-many $B 5005 40 2500
np_result conntrack-alloc-failures 'echo "\"ct_drop\":$(($(ct_stat pod-b drop) - before))"'
TIER=
kill $SINK
echo 65536 >/proc/sys/net/netfilter/nf_conntrack_max

# Conntrack insert races (incidents 02/04), at the kprobe tier, where conntrack counts the
# inserts __nf_conntrack_confirm failed. pod-a DNATs a DNS Service address to pod-b and
# masquerades what leaves it; two threads send at the same instant from two addresses on one
# port, so the two new flows clash on their reply tuple, which no kernel resolves: the loser's
# insert fails and its packet is dropped.
DNS_VIP=10.96.0.10
SECOND=10.99.0.210
ip -n pod-a addr add $SECOND/32 dev va
ip -n pod-a route add $DNS_VIP/32 dev va
ip netns exec pod-a nft -f - <<RULES
table ip npnat {
    chain output { type nat hook output priority -100; ip daddr $DNS_VIP udp dport 53 dnat to $B; }
    chain postrouting { type nat hook postrouting priority 100; oif va masquerade; }
}
RULES
ip netns exec pod-b labtool udp-sink 53 &
SINK=$!
sleep 0.3
before=$(ct_stat pod-a insert_failed)
TIER=kprobe
np_start conntrack-insert-failed conntrack && ip netns exec pod-a labtool udp-race 2000 $DNS_VIP 53 $A $SECOND
np_result conntrack-insert-failed 'echo "\"insert_failed\":$(($(ct_stat pod-a insert_failed) - before))"'
TIER=
kill $SINK
ip netns exec pod-a nft delete table ip npnat

# Softnet squeeze (incident 01): pod-b's packets steered onto CPU 1 by RPS, a budget of 4 and a
# backlog of 8, a UDP blast from CPU 0. Last: the budget and backlog are global.
squeezes() {
    s=0
    while read -r _ _ squeezed _; do s=$((s + 0x$squeezed)); done </proc/net/softnet_stat
    echo $s
}
ip netns exec pod-b sh -c 'echo 2 >/sys/class/net/vb/queues/rx-0/rps_cpus'
echo 4 >/proc/sys/net/core/netdev_budget
echo 8 >/proc/sys/net/core/netdev_max_backlog
for TIER in $SOFTNET_TIERS; do
    before=$(squeezes)
    np_start softnet-squeeze softnet && ip netns exec pod-a taskset -c 0 labtool blast $B 9 20000
    np_result softnet-squeeze 'echo "\"squeezes\":$(($(squeezes) - before))"'
done
TIER=

echo "NPRESULT {\"scenario\":\"done\",\"uptime\":$(cut -d' ' -f1 /proc/uptime)}"
