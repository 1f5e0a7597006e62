"""The attack suite: each attack of attacks.py from a second host on the LAN while a
real call runs, and what must hold for each.

Three network namespaces on one bridge, a LAN of their own: the server (10.77.0.1),
the call (10.77.0.2: lanrelay-load, one publisher to four viewers, str0m peers through
the real signaling and UDP) and the attacker (10.77.0.3, which also forges source
addresses in 10.77.128.0/17). For each attack the suite starts a fresh call, starts
the attack once the call is up, and checks:

- the call: every viewer receives, loss under 1 %, transit p99 under 50 ms;
- the server afterwards: its open files and memory back near where they were, the
  attacker's sessions and connections gone;
- the attack's own evidence (a refusal counter that rose, a connection closed).

    sudo python3 tests/attack/suite.py [--seconds 20] [--only hijack,half-open]

Needs root (namespaces, raw sockets) and the release builds of lanrelay and
lanrelay-load (`cargo build --release --workspace`). benches/attack.sh runs it with
the issue's full rates; tests/run.sh runs a shorter pass.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SRV, CALL, EVIL = "10.77.0.1", "10.77.0.2", "10.77.0.3"
PORT = 8443
TOKEN = "attack-suite-operator"


class Lan:
    """The three namespaces and the bridge; removed on exit, also after a failure."""

    def __init__(self):
        tag = str(os.getpid())[-5:]
        self.srv, self.call, self.evil = (f"lra{tag}-{n}" for n in ("srv", "call", "evil"))

    def __enter__(self):
        def ip(*a):
            subprocess.run(["ip", *a], check=True)

        for ns in (self.srv, self.call, self.evil):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", self.srv, "link", "add", "br0", "type", "bridge")
        for ns, addr, name in ((self.call, CALL, "call"), (self.evil, EVIL, "evil")):
            ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"to-{name}",
               "netns", self.srv)
            ip("-n", self.srv, "link", "set", f"to-{name}", "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{addr}/16", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", self.srv, "addr", "add", f"{SRV}/16", "dev", "br0")
        ip("-n", self.srv, "link", "set", "br0", "up")
        return self

    def __exit__(self, *exc):
        for ns in (self.srv, self.call, self.evil):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)

    def run(self, ns, argv, **kw):
        return subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)


class Server:
    """lanrelay in the server namespace, with short timeouts so a run is quick."""

    def __init__(self, lan, binary):
        self.ns = lan.srv
        self.certs = tempfile.mkdtemp(prefix="lanrelay-attack-")
        self.log = open(os.path.join(self.certs, "server.log"), "w+")
        self.proc = lan.run(lan.srv, [
            binary, "--listen", f"{SRV}:{PORT}", "--certs", self.certs, "--http-listen", "off",
            "--operator-token", TOKEN, "--connect-timeout", "5", "--header-timeout", "5",
            # A dropped WebSocket keeps its participant this long for a resume.
            "--resume-grace", "3",
            "--workers", "2",
        ], stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "lanrelay=warn"})
        self.pid = self.proc.pid
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.get("/healthz") is not None:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("the server did not start:\n" + self.output())
        # `ip netns exec` execs the server: the pid is the server's own.

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def get(self, path):
        # The suite itself sits outside the namespaces: reach the server from inside.
        out = subprocess.run(
            ["ip", "netns", "exec", self.ns, sys.executable, "-c",
             "import sys; sys.path.insert(0, sys.argv[1]); import wire; "
             "s, _, b = wire.https(sys.argv[2], int(sys.argv[3]), 'GET', sys.argv[4], "
             "headers={'Authorization': 'Bearer ' + sys.argv[5]}); print(s); print(b, end='')",
             HERE, SRV, str(PORT), path, TOKEN],
            capture_output=True, text=True, timeout=10,
        )
        if out.returncode != 0:
            return None
        status, _, body = out.stdout.partition("\n")
        return body if status == "200" else None

    def metric(self, name):
        """The value of a metric line `name` (with its labels), or 0."""
        text = self.get("/metrics") or ""
        m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    def rooms(self):
        return json.loads(self.get("/api/rooms") or "[]")

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_mib(self):
        with open(f"/proc/{self.pid}/status") as f:
            kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return kb / 1024

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def participants(rooms):
    for room in rooms.get("rooms", rooms) if isinstance(rooms, dict) else rooms:
        for p in room.get("participants", []) + room.get("viewers", []):
            yield room["name"], p


class Call:
    """A one-to-four call of lanrelay-load from the call namespace."""

    def __init__(self, lan, server, load_binary, seconds):
        self.json = os.path.join(server.certs, f"load-{time.monotonic_ns()}.json")
        self.err = open(self.json + ".log", "w+")
        self.proc = lan.run(lan.call, [
            load_binary, "--server-url", f"https://{SRV}:{PORT}", "--server-pid", str(server.pid),
            "--scenario", "one-to-many", "--viewers", "4", "--duration", str(seconds),
            "--warmup", "1", "--video-kbps", "1000", "--bind", CALL, "--json", self.json,
        ], stdout=subprocess.DEVNULL, stderr=self.err)

    def wait_measuring(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.err.seek(0)
            if "measuring" in self.err.read():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.err.seek(0)
        raise RuntimeError("the call did not start:\n" + self.err.read())

    def result(self):
        self.proc.wait(timeout=120)
        with open(self.json) as f:
            rows = json.load(f)
        return rows["rows"][0] if isinstance(rows, dict) else rows[0]


def attack(lan, name, seconds, **opts):
    argv = [sys.executable, os.path.join(HERE, "attacks.py"), name, "--server", f"{SRV}:{PORT}",
            "--seconds", str(seconds)]
    for k, v in opts.items():
        if v is not None:
            argv += [f"--{k}", str(v)]
    return lan.run(lan.evil, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"the attack failed:\n{err}")
    return json.loads(out.strip().splitlines()[-1])


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


# What each attack needs and what must hold after it, beyond what holds for all.
def plan(full):
    rate = (lambda quick, issue: issue if full else quick)
    return {
        # No attack: what the call looks like on this machine now.
        "none": dict(opts=lambda room, victim: {}, counter=None),
        # Refused STUN rises; the victim keeps its media (the call's loss says so).
        "hijack": dict(opts=lambda room, victim: {"victim": victim, "rate": 50},
                       counter="lanrelay_stun_refused_total"),
        "stun-sources": dict(opts=lambda room, victim: {"rate": rate(1000, 2000)},
                             counter="lanrelay_stun_refused_total"),
        "unknown-ufrag": dict(opts=lambda room, victim: {"rate": rate(10000, 47500)},
                              counter="lanrelay_unroutable_datagrams_total"),
        "ghost-whip": dict(opts=lambda room, victim: {},
                           counter='lanrelay_refused_total{limit="unconnected"}'),
        # Its queue and TCP buffers fill in seconds, then writes time out after 10 s.
        "stalled-ws": dict(opts=lambda room, victim: {"room": room}, counter=None, min_seconds=25),
        # The server reads the flooder at --signaling-rate, so TCP holds it back.
        "direct-flood": dict(opts=lambda room, victim: {"room": room, "victim": "pub"},
                             counter='lanrelay_refused_total{limit="signaling_rate"}'),
        "half-open": dict(opts=lambda room, victim: {"count": 300},
                          counter='lanrelay_refused_total{limit="connections"}'),
    }


def run_one(lan, server, load_bin, name, spec, seconds):
    seconds = max(seconds, spec.get("min_seconds", 0))
    fds0, rss0 = server.fds(), server.rss_mib()
    counter0 = server.metric(spec["counter"]) if spec["counter"] else 0
    call = Call(lan, server, load_bin, seconds)
    call.wait_measuring()
    rooms = server.rooms()
    room = next(r for r, p in participants(rooms) if r.startswith("load-") and p.get("name") == "pub")
    victim = next((p.get("relay") or {}).get("remote") for r, p in participants(rooms)
                  if r == room and p.get("name") == "pub")
    atk = attack(lan, name, max(1, seconds - 2), **spec["opts"](room, victim))
    row = call.result()
    evidence = finish(atk)
    failures = []
    if row["receiving"] != row["receivers"]:
        failures.append(f"{row['receiving']} of {row['receivers']} viewers received")
    if row["lossPct"] >= 1.0:
        failures.append(f"loss {row['lossPct']:.2f} % (under 1 % expected)")
    if row["transitP99Us"] >= 50_000:
        failures.append(f"transit p99 {row['transitP99Us'] / 1000:.1f} ms (under 50 ms expected)")
    if spec["counter"] and server.metric(spec["counter"]) <= counter0:
        failures.append(f"{spec['counter']} did not rise")
    if name == "stalled-ws" and not evidence.get("stalled_removed_after_s"):
        failures.append("the client that does not read was not removed")
    if name == "direct-flood" and not evidence.get("rate_limited"):
        failures.append("the flooder was never refused")
    if name == "half-open":
        if evidence["closed_by_end"] < evidence["opened"]:
            failures.append(f"{evidence['opened'] - evidence['closed_by_end']} half-open connections survived")
        if evidence["opened"] > 128:
            failures.append(f"{evidence['opened']} connections held from one address (128 allowed)")
    # Afterwards: the attacker's sessions gone, files and memory back.
    gone = wait_for("sessions gone", lambda: not list(participants(server.rooms())), 15)
    if not gone:
        left = [(r, p.get("name")) for r, p in participants(server.rooms())]
        failures.append(f"sessions left after the attack: {left}")
    wait_for("fds back", lambda: server.fds() <= fds0 + 3, 10)
    fds1, rss1 = server.fds(), server.rss_mib()
    if fds1 > fds0 + 3:
        failures.append(f"open files {fds0} -> {fds1}")
    if rss1 > rss0 + 25:
        failures.append(f"memory {rss0:.0f} -> {rss1:.0f} MiB")
    line = (f"{name:14} loss {row['lossPct']:5.2f} %  p99 {row['transitP99Us'] / 1000:5.1f} ms  "
            f"recv {row['receiving']}/{row['receivers']}  fds {fds0}->{fds1}  "
            f"rss {rss0:.0f}->{rss1:.0f} MiB  {json.dumps({k: v for k, v in evidence.items() if k != 'attack'})}")
    return line, failures


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=12, help="length of each call (the attack runs 2 s less)")
    p.add_argument("--full", action="store_true", help="the issue's rates (47,500/s unknown-ufrag, ...)")
    p.add_argument("--only", help="comma-separated attack names")
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "lanrelay"))
    p.add_argument("--load", default=os.path.join(ROOT, "target", "release", "lanrelay-load"))
    o = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("the attack suite needs root (network namespaces, forged source addresses)")
    specs = plan(o.full)
    names = o.only.split(",") if o.only else list(specs)
    failed = []
    with Lan() as lan:
        server = Server(lan, o.bin)
        try:
            for name in names:
                line, failures = run_one(lan, server, o.load, name, specs[name], o.seconds)
                if failures and all(f.startswith(("loss ", "transit ")) for f in failures):
                    # The call's figures alone: on a shared two-core machine one run can
                    # be starved by other work. A second run decides.
                    print(f"{line}\n{'':14} again (the call alone missed: {'; '.join(failures)})", flush=True)
                    line, failures = run_one(lan, server, o.load, name, specs[name], o.seconds)
                status = "ok" if not failures else "FAILED: " + "; ".join(failures)
                print(f"{line}\n{'':14} {status}", flush=True)
                if failures:
                    failed.append(name)
                if server.proc.poll() is not None:
                    failed.append("server exited")
                    print(server.output()[-3000:])
                    break
        finally:
            server.stop()
    print(f"attack suite: {len(names) - len(failed)} passed, {len(failed)} failed")
    # For tests/run.sh's totals.
    print(f"# pass {len(names) - len(failed)}\n# fail {len(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
