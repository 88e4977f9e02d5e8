//! Traffic for lab incidents, run inside a pod with `ip netns exec`. Every loop is bounded.
//!
//!   labtool sink PORT                      accept TCP connections (IPv4 and IPv6), read and
//!                                          discard
//!   labtool listen PORT                    listen and never accept (the accept queue fills)
//!   labtool send ADDR PORT BYTES           one connection, BYTES written, then close
//!   labtool connect ADDR PORT TIMEOUT_MS   one connection attempt, exit 0 if it connected
//!   labtool connect-loop ADDR PORT N       N short connections, actively closed; prints
//!                                          {"ok":…,"eaddrnotavail":…,"other":…}
//!   labtool connect-many ADDR PORT N MS    N connection attempts at once, each given MS;
//!                                          prints how many connected
//!   labtool blast ADDR PORT N              N 18-byte UDP datagrams, as fast as possible
//!   labtool blast-for ADDR PORT SECS [PPS] 18-byte UDP datagrams for SECS seconds, as fast as
//!                                          possible or paced to PPS; prints how many were sent
//!   labtool pulses ADDR PORT SECS PPS N MS smooth UDP at PPS for SECS seconds, plus N datagrams
//!                                          back to back every MS ms; prints when each burst's
//!                                          first datagram was sent (CLOCK_MONOTONIC ns), as a
//!                                          JSON list
//!   labtool gapped ADDR PORT COUNT N US MS COUNT bursts of N datagrams, each as two back-to-back
//!                                          halves US µs apart (spinning on the clock), the next
//!                                          burst MS ms or more after the last datagram (asleep,
//!                                          so it may run SCHED_FIFO); prints each
//!                                          datagram's send time (CLOCK_MONOTONIC ns), a JSON
//!                                          list per burst
//!   labtool udp-sink PORT                  receive UDP datagrams and discard them
//!   labtool read-every MS FILE...          read each FILE every MS ms, forever (the
//!                                          bench's reference for a monitor without BPF)
//!   labtool udp-echo ADDR PORT             answer every UDP datagram to ADDR:PORT with itself,
//!                                          from that address (a resolver)
//!   labtool lookups ADDR PORT N            N queries of 30 bytes, one at a time, each waiting
//!                                          up to 1 s for its answer; prints how many answered
//!   labtool stream ADDR PORT SECS          one TCP connection written to for SECS seconds;
//!                                          prints the bytes written
//!   labtool collide SRC SPORT ADDR PORT    the Envoy retry: two sockets with SO_REUSEADDR
//!                                          bound to one source, connected to one peer; prints
//!                                          the second connect's errno (0 if it worked)
//!   labtool noise SECS PPS TARGET...      background for SECS seconds: an 18-byte UDP datagram
//!                                          to each TARGET (ADDR:PORT, [ADDR%IFINDEX]:PORT for
//!                                          IPv6 link scope; broadcast allowed) PPS times a
//!                                          second; prints how many were sent
//!   labtool qemu-exit CODE                 end the QEMU guest it runs in through isa-debug-exit
//!                                          (port 0xf4): QEMU exits with (CODE << 1) | 1
//!   labtool bind-taken ADDR PORT N         listen on ADDR:PORT, then N more binds to it; prints
//!                                          how many failed with EADDRINUSE
//!   labtool idle ADDR PORT N MS            N connections at once, each: a write, MS ms quiet,
//!                                          another write; prints how many were reset
//!   labtool bind-taken-in-new-netns PORT N in each of N new network namespaces (all held
//!                                          until it exits, ~200 KB each), a bind to
//!                                          0.0.0.0:PORT while it is taken; prints
//!                                          {"eaddrinuse":…,"netns":[inode…]}
//!   labtool udp-race N ADDR PORT SRC...    N rounds of two threads, one on each of the first two
//!                                          CPUs it may use, sending one UDP datagram each at the same
//!                                          instant, from a new socket each round: with one SRC
//!                                          both share one socket bound to SRC (one new flow),
//!                                          with two each has its own, bound to SRCi on one port

use std::{
    io::{self, Read, Write},
    net::{IpAddr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    process::exit,
    thread,
    time::{Duration, Instant},
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match a.as_slice() {
        ["sink", port] => sink(port.parse().expect("port")),
        ["listen", port] => TcpListener::bind(("0.0.0.0", port.parse().expect("port"))).map(|l| {
            thread::sleep(Duration::from_secs(3600));
            drop(l)
        }),
        ["connect-many", addr, port, n, ms] => connect_many(
            sockaddr(addr, port),
            n.parse().expect("n"),
            Duration::from_millis(ms.parse().expect("ms")),
        ),
        ["send", addr, port, bytes] => send(sockaddr(addr, port), bytes.parse().expect("bytes")),
        ["connect", addr, port, ms] => TcpStream::connect_timeout(
            &sockaddr(addr, port),
            Duration::from_millis(ms.parse().expect("ms")),
        )
        .map(drop),
        ["blast", addr, port, n] => blast(sockaddr(addr, port), n.parse().expect("n")),
        ["blast-for", addr, port, secs, rest @ ..] => blast_for(
            sockaddr(addr, port),
            Duration::from_secs_f64(secs.parse().expect("seconds")),
            rest.first().map(|r| r.parse().expect("pps")),
        ),
        ["udp-sink", port] => udp_sink(port.parse().expect("port")),
        ["read-every", ms, files @ ..] => {
            read_every(Duration::from_millis(ms.parse().expect("ms")), files)
        }
        ["udp-echo", addr, port] => udp_echo(sockaddr(addr, port)),
        ["lookups", addr, port, n] => lookups(sockaddr(addr, port), n.parse().expect("n")),
        ["gapped", addr, port, count, n, us, ms] => gapped(
            sockaddr(addr, port),
            count.parse().expect("count"),
            n.parse().expect("n"),
            Duration::from_micros(us.parse().expect("us")),
            Duration::from_millis(ms.parse().expect("ms")),
        ),
        ["pulses", addr, port, secs, pps, n, ms] => pulses(
            sockaddr(addr, port),
            Duration::from_secs_f64(secs.parse().expect("seconds")),
            pps.parse().expect("pps"),
            n.parse().expect("n"),
            Duration::from_millis(ms.parse().expect("ms")),
        ),
        ["stream", addr, port, secs] => {
            stream(sockaddr(addr, port), Duration::from_secs_f64(secs.parse().expect("seconds")))
        }
        ["collide", src, sport, addr, port] => collide(sockaddr(src, sport), sockaddr(addr, port)),
        ["bind-taken", addr, port, n] => bind_taken(sockaddr(addr, port), n.parse().expect("n")),
        ["idle", addr, port, n, ms] => idle(
            sockaddr(addr, port),
            n.parse().expect("n"),
            Duration::from_millis(ms.parse().expect("ms")),
        ),
        ["bind-taken-in-new-netns", port, n] => {
            bind_taken_in_new_netns(port.parse().expect("port"), n.parse().expect("n"))
        }
        ["connect-loop", addr, port, n] => {
            connect_loop(sockaddr(addr, port), n.parse().expect("n"))
        }
        ["noise", secs, pps, targets @ ..] => {
            noise(secs.parse().expect("secs"), pps.parse().expect("pps"), targets)
        }
        ["qemu-exit", code] => qemu_exit(code.parse().expect("code")),
        ["udp-race", n, addr, port, sources @ ..] => udp_race(
            n.parse().expect("n"),
            sockaddr(addr, port),
            &sources.iter().map(|s| s.parse().expect("source address")).collect::<Vec<_>>(),
        ),
        _ => {
            eprintln!("usage: see the comment at the top of tests/src/bin/labtool.rs");
            exit(2)
        }
    };
    if let Err(e) = result {
        eprintln!("labtool: {e}");
        exit(1);
    }
}

fn sockaddr(addr: &str, port: &str) -> SocketAddr {
    SocketAddr::new(addr.parse::<IpAddr>().expect("address"), port.parse().expect("port"))
}

fn sink(port: u16) -> io::Result<()> {
    // Dual-stack: IPv4 clients arrive as v4-mapped addresses.
    let listener = TcpListener::bind(("::", port))?;
    for conn in listener.incoming() {
        let mut conn = conn?;
        thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        });
    }
    Ok(())
}

fn send(to: SocketAddr, bytes: usize) -> io::Result<()> {
    let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    let chunk = vec![0x5a; 16384];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        conn.write_all(&chunk[..n])?;
        left -= n;
    }
    conn.shutdown(std::net::Shutdown::Write)?;
    // Wait for the peer's close so that every byte was acknowledged.
    let _ = conn.read(&mut [0u8; 1]);
    Ok(())
}

fn connect_loop(to: SocketAddr, n: u32) -> io::Result<()> {
    let (mut ok, mut unavailable, mut other) = (0u32, 0u32, 0u32);
    for _ in 0..n {
        match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(conn) => {
                ok += 1;
                drop(conn); // we close first: the TIME_WAIT stays on this side
            }
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => unavailable += 1,
            Err(_) => other += 1,
        }
    }
    println!(r#"{{"ok":{ok},"eaddrnotavail":{unavailable},"other":{other}}}"#);
    Ok(())
}

fn noise(secs: u64, pps: u32, targets: &[&str]) -> io::Result<()> {
    let to: Vec<SocketAddr> = targets.iter().map(|t| target(t)).collect();
    let v4 = UdpSocket::bind("0.0.0.0:0")?;
    v4.set_broadcast(true)?;
    let v6 = UdpSocket::bind("[::]:0")?;
    let end = Instant::now() + Duration::from_secs(secs);
    let mut sent = 0u64;
    while Instant::now() < end {
        for t in &to {
            let sock = if t.is_ipv4() { &v4 } else { &v6 };
            sock.send_to(&[0u8; 18], t)?;
            sent += 1;
        }
        thread::sleep(Duration::from_secs(1) / pps);
    }
    println!("{sent}");
    Ok(())
}

/// `ADDR:PORT`, or `[ADDR%IFINDEX]:PORT` for an IPv6 link-scope address.
fn target(t: &str) -> SocketAddr {
    if let Some((scoped, port)) = t.strip_prefix('[').and_then(|r| r.split_once("]:")) {
        let (addr, scope) = scoped.split_once('%').unwrap_or((scoped, "0"));
        let addr = addr.parse().expect("IPv6 address");
        let v6 =
            SocketAddrV6::new(addr, port.parse().expect("port"), 0, scope.parse().expect("index"));
        return SocketAddr::V6(v6);
    }
    t.parse().expect("ADDR:PORT")
}

fn connect_many(to: SocketAddr, n: u32, each: Duration) -> io::Result<()> {
    let attempts: Vec<_> =
        (0..n).map(|_| thread::spawn(move || TcpStream::connect_timeout(&to, each).ok())).collect();
    // Hold every connection until all attempts are done, so none frees a queue slot.
    let conns: Vec<_> = attempts.into_iter().filter_map(|t| t.join().ok().flatten()).collect();
    println!("{}", conns.len());
    Ok(())
}

fn idle(to: SocketAddr, n: u32, quiet: Duration) -> io::Result<()> {
    let conns: Vec<_> = (0..n)
        .map(|_| {
            thread::spawn(move || -> io::Result<bool> {
                let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
                conn.write_all(b"request\n")?;
                thread::sleep(quiet);
                conn.write_all(b"request\n")?;
                // A reset answers the second write; the read sees it (the sink never replies).
                conn.set_read_timeout(Some(Duration::from_millis(300)))?;
                let read = conn.read(&mut [0u8; 1]);
                Ok(matches!(read, Err(e) if e.kind() == io::ErrorKind::ConnectionReset))
            })
        })
        .collect();
    let reset = conns.into_iter().map(|t| t.join()).filter(|r| matches!(r, Ok(Ok(true)))).count();
    println!("{reset}");
    Ok(())
}

fn bind_taken(addr: SocketAddr, n: u32) -> io::Result<()> {
    let _first = TcpListener::bind(addr)?;
    let in_use = (0..n)
        .filter(|_| {
            TcpListener::bind(addr).err().and_then(|e| e.raw_os_error()) == Some(libc::EADDRINUSE)
        })
        .count();
    println!("{in_use}");
    Ok(())
}

fn bind_taken_in_new_netns(port: u16, n: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // Each namespace is held open to the end: a freed one's inode number is given out again.
    let limit = libc::rlimit { rlim_cur: u64::from(n) + 64, rlim_max: u64::from(n) + 64 };
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (mut in_use, mut held) = (0, Vec::new());
    for _ in 0..n {
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        held.push(std::fs::File::open("/proc/thread-self/ns/net")?);
        let _first = TcpListener::bind(("0.0.0.0", port))?;
        let second = TcpListener::bind(("0.0.0.0", port));
        in_use += u32::from(second.err().and_then(|e| e.raw_os_error()) == Some(libc::EADDRINUSE));
    }
    let netns =
        held.iter().map(|f| f.metadata().map(|m| m.ino())).collect::<io::Result<Vec<_>>>()?;
    println!("{{\"eaddrinuse\":{in_use},\"netns\":{netns:?}}}");
    Ok(())
}

fn collide(src: SocketAddr, to: SocketAddr) -> io::Result<()> {
    let first = reuse_bound(src)?;
    connect(&first, to).map_err(io::Error::from_raw_os_error)?;
    let second = reuse_bound(src)?;
    let errno = connect(&second, to).err().unwrap_or(0);
    println!("{errno}");
    Ok(())
}

/// A TCP socket with SO_REUSEADDR, bound to `src`.
fn reuse_bound(src: SocketAddr) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = src else { return Err(io::Error::other("IPv4 only")) };
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let len = size_of::<libc::c_int>() as u32;
    let on = (&one as *const libc::c_int).cast();
    if unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, on, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let sa = sockaddr_in(v4);
    let sa_len = size_of::<libc::sockaddr_in>() as u32;
    if unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), sa_len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// connect(), returning the errno on failure.
fn connect(sock: &std::os::fd::OwnedFd, to: SocketAddr) -> Result<(), i32> {
    let SocketAddr::V4(v4) = to else { return Err(libc::EAFNOSUPPORT) };
    let sa = sockaddr_in(v4);
    let len = size_of::<libc::sockaddr_in>() as u32;
    let rc =
        unsafe { libc::connect(sock.as_raw_fd(), (&sa as *const libc::sockaddr_in).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    }
}

fn sockaddr_in(a: std::net::SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
        sin_zero: [0; 8],
    }
}

fn blast(to: SocketAddr, n: u64) -> io::Result<()> {
    let sock = std::net::UdpSocket::bind(("0.0.0.0", 0))?;
    let payload = [0x42u8; 18];
    for _ in 0..n {
        // A full qdisc or socket buffer only loses this datagram; the blast goes on.
        let _ = sock.send_to(&payload, to);
    }
    Ok(())
}

fn blast_for(to: SocketAddr, secs: Duration, pps: Option<u64>) -> io::Result<()> {
    let sock = std::net::UdpSocket::bind(("0.0.0.0", 0))?;
    let payload = [0x42u8; 18];
    let start = std::time::Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < secs {
        // In batches of 64, so that reading the clock is not what limits the rate.
        for _ in 0..64 {
            if sock.send_to(&payload, to).is_ok() {
                sent += 1;
            }
        }
        if let Some(pps) = pps {
            let due = Duration::from_secs_f64(sent as f64 / pps as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
    println!("{sent}");
    Ok(())
}

fn read_every(period: Duration, files: &[&str]) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        for f in files {
            buf.clear();
            std::io::Read::read_to_end(&mut std::fs::File::open(f)?, &mut buf)?;
        }
        std::thread::sleep(period);
    }
}

fn udp_sink(port: u16) -> io::Result<()> {
    let sock = std::net::UdpSocket::bind(("0.0.0.0", port))?;
    let mut buf = [0u8; 2048];
    loop {
        sock.recv_from(&mut buf)?;
    }
}

fn udp_echo(at: SocketAddr) -> io::Result<()> {
    let sock = UdpSocket::bind(at)?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        sock.send_to(&buf[..n], from)?;
    }
}

fn lookups(to: SocketAddr, n: u32) -> io::Result<()> {
    let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap();
    let sock = UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    let query = [0x35u8; 30];
    let mut buf = [0u8; 64];
    let mut answered = 0;
    for _ in 0..n {
        sock.send_to(&query, to)?;
        if sock.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
    }
    println!("{answered}");
    Ok(())
}

fn stream(to: SocketAddr, secs: Duration) -> io::Result<()> {
    let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    let chunk = vec![0x5a; 65536];
    let start = std::time::Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < secs {
        conn.write_all(&chunk)?;
        bytes += chunk.len() as u64;
    }
    println!("{bytes}");
    Ok(())
}

fn pulses(to: SocketAddr, secs: Duration, pps: u64, n: u32, every: Duration) -> io::Result<()> {
    let sock = std::net::UdpSocket::bind(("0.0.0.0", 0))?;
    let payload = [0x42u8; 18];
    let start = std::time::Instant::now();
    let gap = Duration::from_secs_f64(1.0 / pps as f64);
    let (mut next_smooth, mut next_burst) = (start, start + every);
    let mut starts = Vec::new();
    while start.elapsed() < secs {
        let now = std::time::Instant::now();
        if now >= next_burst {
            // Stamped once the first datagram is on its way, not before the call.
            let _ = sock.send_to(&payload, to);
            starts.push(monotonic_ns());
            for _ in 1..n {
                let _ = sock.send_to(&payload, to);
            }
            next_burst += every;
        } else if now >= next_smooth {
            let _ = sock.send_to(&payload, to);
            // After a stall (a busy machine), go on from now: catching up would send the
            // missed packets back to back, a burst nobody injected.
            next_smooth = (next_smooth + gap).max(now + gap);
        } else {
            // Spin: sleeping would bunch the smooth packets up and make bursts of its own.
            std::hint::spin_loop();
        }
    }
    println!("{starts:?}");
    Ok(())
}

fn gapped(to: SocketAddr, count: u32, n: u32, pause: Duration, apart: Duration) -> io::Result<()> {
    let sock = std::net::UdpSocket::bind(("0.0.0.0", 0))?;
    let payload = [0x42u8; 18];
    let mut bursts: Vec<Vec<u64>> = Vec::new();
    for _ in 0..count {
        // Asleep between bursts (at least `apart`), so a real-time sender starves nobody.
        thread::sleep(apart);
        let mut sent = Vec::with_capacity(n as usize);
        let mut last = 0;
        for i in 0..n {
            if i == n / 2 {
                // Spun: a sleep may oversleep by more than the pause itself.
                while monotonic_ns() < last + pause.as_nanos() as u64 {}
            }
            let _ = sock.send_to(&payload, to);
            last = monotonic_ns();
            sent.push(last);
        }
        bursts.push(sent);
    }
    println!("{bursts:?}");
    Ok(())
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Debian's cloud kernels have no /dev/port, so the guest's init writes the port itself.
#[cfg(target_arch = "x86_64")]
fn qemu_exit(code: u8) -> io::Result<()> {
    if unsafe { libc::ioperm(0xf4, 1, 1) } != 0 {
        return Err(io::Error::last_os_error());
    }
    unsafe { std::arch::asm!("out dx, al", in("dx") 0xf4u16, in("al") code) };
    Ok(())
}

#[cfg(not(target_arch = "x86_64"))]
fn qemu_exit(_code: u8) -> io::Result<()> {
    Err(io::Error::other("isa-debug-exit is an x86 port"))
}

/// The sockets of each round of [`udp_race`]: one shared by both threads, or one each bound to
/// the same port on two addresses.
fn race_sockets(sources: &[IpAddr]) -> io::Result<[std::sync::Arc<UdpSocket>; 2]> {
    use std::sync::Arc;
    match sources {
        [one] => {
            let s = Arc::new(UdpSocket::bind((*one, 0))?);
            Ok([s.clone(), s])
        }
        [first, second] => {
            // Another socket may hold the first one's port on the second address: a new port.
            for _ in 0..16 {
                let a = UdpSocket::bind((*first, 0))?;
                if let Ok(b) = UdpSocket::bind((*second, a.local_addr()?.port())) {
                    return Ok([Arc::new(a), Arc::new(b)]);
                }
            }
            Err(io::Error::other("no port free on both sources"))
        }
        _ => Err(io::Error::other("one or two source addresses")),
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> io::Result<Vec<usize>> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Two pinned threads send at once, `n` times. Sockets reach them over channels; both then
/// spin on a shared counter until the other has arrived too, so that the two sendto() calls
/// run through netfilter on two CPUs at the same time.
fn udp_race(n: u32, to: SocketAddr, sources: &[IpAddr]) -> io::Result<()> {
    use std::sync::{atomic::AtomicU32, atomic::Ordering, mpsc};
    let arrived = AtomicU32::new(0);
    thread::scope(|s| {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let mut feeds = Vec::new();
        let cpus = allowed_cpus()?;
        for i in 0..2 {
            let (tx, rx) = mpsc::channel::<std::sync::Arc<UdpSocket>>();
            feeds.push(tx);
            let (done, arrived) = (done_tx.clone(), &arrived);
            // Under `taskset -c 0` both threads share CPU 0: they take turns, nothing races.
            let cpu = cpus[i % cpus.len()];
            s.spawn(move || {
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
                }
                for (round, sock) in rx.iter().enumerate() {
                    let all = 2 * (round as u32 + 1);
                    arrived.fetch_add(1, Ordering::SeqCst);
                    while arrived.load(Ordering::SeqCst) < all {
                        std::hint::spin_loop();
                    }
                    let _ = sock.send_to(b"labtool udp-race", to);
                    let _ = done.send(());
                }
            });
        }
        for _ in 0..n {
            let socks = race_sockets(sources)?;
            for (feed, sock) in feeds.iter().zip(socks) {
                feed.send(sock).map_err(io::Error::other)?;
            }
            for _ in 0..2 {
                done_rx.recv().map_err(io::Error::other)?;
            }
        }
        drop(feeds);
        println!("{n}");
        Ok(())
    })
}
