"""ringstat --prometheus end to end (docs/metrics.md): an sring-sim process
fills a ring nobody reads, so its drop policy drops; ringstat exports the
ring file (/proc/PID/fd/N of the simulator's memfd); Debian's real
Prometheus scrapes it every second: while the ring runs, its query API
shows sring_samples_dropped_total rising from scrape to scrape; once the
ring is stopped, what it answers is exactly the producer's own count. The
exposition text itself has the documented names and types; a ring
that goes away stops being exported (and Prometheus marks it stale); a
kernel ring that appears is picked up; bad addresses, a port in use and a
missing ring are clear errors. Every process started here is killed by a
fixture finalizer, also when a test fails."""

import json
import os
import re
import select
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import SOURCE, tool

PROMETHEUS = "/usr/bin/prometheus"
# Direct connections even when the environment names an HTTP proxy.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))

DOC = os.path.join(SOURCE, "docs", "metrics.md")


def documented_families():
    """{name: type} from the metrics table of docs/metrics.md."""
    with open(DOC) as doc:
        rows = re.findall(r"^\| `(sring_\w+)` \| (counter|gauge) \|", doc.read(), re.M)
    assert len(rows) >= 15, f"{DOC}: the metrics table is missing"
    return dict(rows)


def documented_queries():
    """The PromQL of docs/metrics.md's query table."""
    with open(DOC) as doc:
        section = doc.read().split("## PromQL", 1)[1].split("\n## ", 1)[0]
    queries = re.findall(r"^\| [^|]+ \| `([^`]+)` \|$", section, re.M)
    assert len(queries) >= 8, f"{DOC}: the PromQL table is missing"
    return queries


def free_port():
    # A port the kernel just gave out; Prometheus binds it right after.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=30):
    with HTTP.open(url, timeout=timeout) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


@pytest.fixture
def processes():
    """Starts processes and kills every one of them afterwards, pass or fail."""
    started = []

    def start(args, **kwargs):
        p = subprocess.Popen(args, **kwargs)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.terminate()
    for p in started:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()


def start_exporter(processes, *args, env=None, address="127.0.0.1:0", shown="127.0.0.1"):
    """ringstat --prometheus ADDRESS ARGS; returns (process, port) from the
    line it prints (port 0: it takes a free one, no race)."""
    p = processes([tool("tools/ringstat"), "--prometheus", address, *args],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ready, _, _ = select.select([p.stdout], [], [], 15)
    assert ready, "ringstat --prometheus printed nothing in 15 s"
    line = p.stdout.readline()
    m = re.fullmatch(rf"ringstat: serving Prometheus metrics on http://{re.escape(shown)}:(\d+)/metrics\n", line)
    assert m, f"unexpected first line {line!r}; stderr: {p.stderr.read() if p.poll() is not None else ''}"
    return p, int(m.group(1))


def parse_exposition(text):
    """{family: type} and [(name, {label: value}, value)] from the text format."""
    types, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
            assert m, f"not a sample line: {line!r}"
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            samples.append((m.group(1), labels, float(m.group(3))))
    return types, samples


def memfd_of(pid, name="sring"):
    """/proc/PID/fd/N of the process' ring file (the memfd called name)."""
    fds = f"/proc/{pid}/fd"
    for fd in sorted(os.listdir(fds), key=int):
        try:
            target = os.readlink(f"{fds}/{fd}")
        except OSError:
            continue
        if target.startswith(f"/memfd:{name} "):
            return f"{fds}/{fd}"
    pytest.fail(f"process {pid} has no memfd called {name}")


# How long the ring runs once started: scraped (every second) while it
# runs, it must show its drops rising; its end is then waited for, not timed.
RUN_SECONDS = 15


@pytest.fixture
def waiting_ring(tmp_path, processes):
    """An sring-sim process whose ring is made and waits for its consumer;
    started, it produces 2 M frames/s for RUN_SECONDS into a 64 KiB ring that
    nobody reads (the drop policy). Yields (path of the ring file, start(),
    which connects, starts and returns the consumer's ring, the simulator
    process)."""
    import sring  # the binding (PYTHONPATH): the consumer that holds the ring

    socket_path = str(tmp_path / "sim.sock")
    sim = processes([tool("tools/sring-sim"), "--socket", socket_path, "--rate", "2M", "--duration",
                     str(RUN_SECONDS), "--accept-timeout", "120", "--block-size", "4096", "--ring-size", "64K",
                     "--policy", "drop"], stderr=subprocess.PIPE, text=True)
    # The ring file exists once the socket does (sring-sim listens after making it).
    wait_for("sring-sim's socket", lambda: os.path.exists(socket_path) or sim.poll() is not None, 20)
    assert sim.poll() is None, sim.stderr.read()
    rings = []

    def start():
        ring = sring.connect(socket_path, timeout=10)
        rings.append(ring)
        ring.start()
        return ring

    yield memfd_of(sim.pid), start, sim
    for ring in rings:
        ring.close()


def ring_json(path):
    """The ring's own counters through ringstat --json (the producer page)."""
    r = subprocess.run([tool("tools/ringstat"), "--json", "--once", "-i", "0.05", path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[0])


def producer_totals(stderr):
    """The simulator's own final count: (blocks, frames) produced and dropped."""
    m = re.search(r"produced (\d+) blocks \((\d+) frames\), dropped (\d+) blocks \((\d+) frames\)", stderr)
    assert m, stderr
    return tuple(int(v) for v in m.groups())


def query(port, promql):
    _, _, body = get(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def start_prometheus(tmp_path, processes, target_port):
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: sring\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target_port}']\n")
    log = open(tmp_path / "prometheus.log", "w")
    processes([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
              stdout=log, stderr=log)
    log.close()
    return port


def wait_for(what, condition, timeout, log=None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
            if result:
                return result
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s" + (f"; log:\n{log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.25)


def test_prometheus_sees_exactly_the_rings_drops(tmp_path, processes, waiting_ring):
    path, start_ring, sim = waiting_ring
    # Exporter and Prometheus first, scraping the ring before it runs: the
    # scrapes while it runs do not wait on their start-up.
    exporter, port = start_exporter(processes, path)
    prom = start_prometheus(tmp_path, processes, port)
    log = tmp_path / "prometheus.log"
    wait_for("Prometheus ready", lambda: get(f"http://127.0.0.1:{prom}/-/ready")[0] == 200, 40, log)
    wait_for("a scrape of the ring", lambda: query(prom, "sring_samples_dropped_total"), 40, log)

    # While the ring runs: successive scrapes, as Prometheus' query API
    # answers them, show the drop counter rising. Asked for as the raw
    # samples of each scrape (a range selector), so that a test process slow
    # to ask still sees the scrapes taken while the ring ran.
    def running_drops():
        """The drop counts of the scrapes that saw the ring running, in order."""
        dropped = query(prom, "sring_samples_dropped_total[5m]")
        running = query(prom, 'sring_state{state="running"}[5m]')
        assert len(dropped) <= 1 and len(running) <= 1, (dropped, running)
        if not dropped or not running:
            return []
        # The series of one scrape share its timestamp.
        scraped_running = {t for t, v in running[0]["values"] if float(v) == 1}
        return [float(v) for t, v in dropped[0]["values"] if t in scraped_running]

    ring = start_ring()
    counts = wait_for("two scrapes of the running ring, the later with more drops",
                      lambda: (c := running_drops()) and len(c) >= 2 and c[-1] > c[0] and c, 40, log)
    assert counts == sorted(counts), f"a counter went down: {counts}"
    first = counts[0]
    # And the increase the documented queries use, from those scrapes.
    wait_for("increase(sring_samples_dropped_total[1m]) > 0",
             lambda: query(prom, "increase(sring_samples_dropped_total[1m]) > 0"), 40, log)

    # Stopped (its RUN_SECONDS over): the counters are final, and everything
    # below must match them exactly.
    wait_for("the ring to stop", lambda: ring.state != "running", RUN_SECONDS + 60)
    own = ring_json(path)
    assert own["state"] == "stopped"
    assert own["samples_dropped"] > first, f"a ring nobody reads must drop: {own}"

    # The exposition text: the documented families with their types, one
    # series per family for this ring, values the ring's own.
    status, content_type, text = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and content_type.startswith("text/plain"), content_type
    types, samples = parse_exposition(text)
    documented = documented_families()
    for name, kind in documented.items():
        assert types.get(name) == kind, f"{name}: TYPE {types.get(name)}, documented {kind}"
    assert not [n for n in types if n.startswith("sring_") and n not in documented], "undocumented families"
    ours = {(n, tuple(sorted(l.items()))): v for n, l, v in samples if n.startswith("sring_")}
    assert all(dict(key[1])["ring"] == path for key in ours)
    by_name = {n: v for (n, labels), v in ours.items() if len(labels) == 1}
    assert by_name["sring_samples_dropped_total"] == own["samples_dropped"]
    assert by_name["sring_samples_produced_total"] == own["samples_produced"]
    assert by_name["sring_blocks_dropped_total"] == own["blocks_dropped"]
    assert by_name["sring_blocks_produced_total"] == own["blocks_produced"]
    assert by_name["sring_overruns_total"] == own["overruns"]
    assert by_name["sring_ring_size_bytes"] == 64 * 1024
    assert by_name["sring_fill_bytes"] == own["fill_bytes"] > 0
    assert by_name["sring_frame_size_bytes"] == 2  # u16, one channel
    states = {dict(k[1])["state"]: v for k, v in ours.items() if k[0] == "sring_state"}
    assert states["stopped"] == 1 and sum(states.values()) == 1, states
    info = [dict(k[1]) for k in ours if k[0] == "sring_ring_info"]
    assert info == [{"ring": path, "format": "u16", "channels": "1", "bits_per_sample": "16"}]

    # Prometheus, scraping every second, has the stopped ring's exact count
    # (once a scrape after the stop is in).
    def final_scrape():
        result = query(prom, 'sring_samples_dropped_total and on(ring) sring_state{state="stopped"} == 1')
        return result if result and float(result[0]["value"][1]) == own["samples_dropped"] else None

    result = wait_for("a scrape of the stopped ring's final count", final_scrape, 40, log)
    assert len(result) == 1, result
    assert result[0]["metric"]["ring"] == path
    assert result[0]["metric"]["job"] == "sring"
    assert float(result[0]["value"][1]) == own["samples_dropped"] > 0
    up = query(prom, 'up{job="sring"}')
    assert [float(r["value"][1]) for r in up] == [1.0]
    for promql in documented_queries():
        query(prom, promql)  # each parses and evaluates
    # The documented byte rate multiplies two families: their series match one to one.
    product = query(prom, "sring_samples_produced_total * sring_frame_size_bytes")
    assert [float(r["value"][1]) for r in product] == [own["samples_produced"] * 2.0]

    # The producer's own final count, independent of any ring reader: the
    # consumer hangs up, sring-sim prints it and exits, and its ring is gone.
    ring.close()
    _, err = sim.communicate(timeout=30)
    blocks, frames, dropped_blocks, dropped_frames = producer_totals(err)
    assert (dropped_frames, dropped_blocks, frames, blocks) == \
        (own["samples_dropped"], own["blocks_dropped"], own["samples_produced"], own["blocks_produced"])
    assert float(result[0]["value"][1]) == dropped_frames

    # Gone: no series left in the exposition, and Prometheus marks the series stale.
    _, _, text = get(f"http://127.0.0.1:{port}/metrics")
    assert not [s for s in parse_exposition(text)[1] if s[0].startswith("sring_")], text
    wait_for("Prometheus to see the ring gone",
             lambda: query(prom, "sring_samples_dropped_total") == [], 20, log)
    assert exporter.poll() is None, "the exporter outlives its rings"
    exporter.terminate()
    _, err = exporter.communicate(timeout=15)
    assert exporter.returncode == 0, err
    assert f"{path} is gone, no longer exported" in err, err


def write_fake_ring(root, name, **values):
    ring = root / name
    ring.mkdir(parents=True)
    files = dict.fromkeys(["ring_size", "head", "tail", "blocks_produced", "samples_produced", "blocks_dropped",
                           "samples_dropped", "overruns", "wakeups", "bad_tails", "high_water", "fill"], 0)
    files.update(state="running", sample_format=7, channels=2, bits_per_sample=32)
    files.update(values)
    for file, value in files.items():
        (ring / file).write_text(f"{value}\n")


def test_kernel_rings_are_listed_at_each_scrape(tmp_path, processes):
    # A fake /sys/class/sring (SRING_SYSFS_ROOT, as ringstat_test uses): no
    # rings at first; then a ring appears, and later goes.
    root = tmp_path / "sysfs"
    root.mkdir()
    env = dict(os.environ, SRING_SYSFS_ROOT=str(root))
    exporter, port = start_exporter(processes, env=env)
    assert not [s for s in parse_exposition(get(f"http://127.0.0.1:{port}/metrics")[2])[1]
                if s[0].startswith("sring_")]
    write_fake_ring(root, "sring0", samples_dropped=4242, ring_size=1 << 20)
    _, samples = parse_exposition(get(f"http://127.0.0.1:{port}/metrics")[2])
    assert ("sring_samples_dropped_total", {"ring": "sring0"}, 4242.0) in samples
    assert ("sring_ring_info", {"ring": "sring0", "format": "cs16", "channels": "2", "bits_per_sample": "32"},
            1.0) in samples
    for file in (root / "sring0").iterdir():
        file.unlink()
    (root / "sring0").rmdir()
    _, samples = parse_exposition(get(f"http://127.0.0.1:{port}/metrics")[2])
    assert not [s for s in samples if s[0].startswith("sring_")]
    exporter.terminate()
    _, err = exporter.communicate(timeout=15)
    assert exporter.returncode == 0
    assert "no sring rings yet" in err and "exporting sring0" in err and "sring0 is gone" in err, err


def listening_ipv4(port):
    """The local addresses with a TCP socket listening on port (/proc/net/tcp)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return {socket.inet_ntoa(bytes.fromhex(local.split(":")[0])[::-1])
            for local, state in ((r[1], r[3]) for r in rows)
            if state == "0A" and int(local.split(":")[1], 16) == port}


def test_a_bare_port_listens_on_every_address(tmp_path, processes):
    # The documented default: a Prometheus on another host can scrape it.
    env = dict(os.environ, SRING_SYSFS_ROOT=str(tmp_path))
    _, port = start_exporter(processes, env=env, address="0", shown="0.0.0.0")
    assert listening_ipv4(port) == {"0.0.0.0"}
    assert get(f"http://127.0.0.1:{port}/metrics")[0] == 200
    _, port = start_exporter(processes, env=env)
    assert listening_ipv4(port) == {"127.0.0.1"}, "127.0.0.1:PORT is loopback only"


def run_ringstat(*args, env=None, binary="tools/ringstat"):
    return subprocess.run([tool(binary), *args], capture_output=True, text=True, timeout=30, env=env)


@pytest.mark.parametrize("address, message", [
    ("70000", "the port is a number from 0 to 65535"),
    ("http", "the port is a number from 0 to 65535"),
    ("127.0.0.1", "the port is a number from 0 to 65535"),
    ("example.org:9732", "not an IP address"),
    ("::1:9732", "an IPv6 address goes in brackets"),
    ("192.0.2.1:9732", "cannot listen on 192.0.2.1:9732: Cannot assign requested address"),
])
def test_bad_addresses_are_clear_errors(tmp_path, address, message):
    r = run_ringstat("--prometheus", address, env=dict(os.environ, SRING_SYSFS_ROOT=str(tmp_path)))
    assert r.returncode == 1
    assert message in r.stderr and "Traceback" not in r.stderr and r.stdout == "", r.stderr


def test_a_port_in_use_a_missing_ring_and_the_static_build(tmp_path):
    env = dict(os.environ, SRING_SYSFS_ROOT=str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_ringstat("--prometheus", f"127.0.0.1:{port}", env=env)
    assert r.returncode == 1
    assert r.stderr == f"ringstat: cannot listen on 127.0.0.1:{port}: Address already in use\n"

    r = run_ringstat("--prometheus", "127.0.0.1:0", "sring7", env=env)
    assert (r.returncode, r.stderr) == (1, "ringstat: no such ring: sring7 (is the sring module loaded?)\n")
    r = run_ringstat("--prometheus", "127.0.0.1:0", str(tmp_path / "no-such-ring"), env=env)
    assert r.returncode == 1 and "no-such-ring" in r.stderr and r.stdout == "", r.stderr

    r = run_ringstat("--prometheus", "127.0.0.1:0", "--once", env=env)
    assert r.returncode == 1 and "no -i, -c, --once or --json" in r.stderr

    # The QEMU guest's static ringstat cannot link prometheus-cpp: it says so.
    r = run_ringstat("--prometheus", "127.0.0.1:0", env=env, binary="tools/ringstat-static")
    assert r.returncode == 1 and "not available in this static build" in r.stderr, r.stderr
    assert "--prometheus" in run_ringstat("--help").stdout
    assert "This static build has no --prometheus" in run_ringstat("--help", binary="tools/ringstat-static").stdout


def test_the_documented_configuration_is_valid(tmp_path):
    # docs/metrics.md's alerting rules and scrape configuration, as promtool sees them.
    with open(DOC) as doc:
        rules, config = re.findall(r"```yaml\n(.*?)```", doc.read(), re.S)
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "prometheus.yml").write_text(config + "rule_files: ['rules.yml']\n")
    r = subprocess.run(["/usr/bin/promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "3 rules found" in r.stdout, r.stdout + r.stderr


def test_ipv6_serves_or_says_why(tmp_path, processes):
    # Debian's civetweb has no IPv6: a clear reason then, never civetweb's
    # "possible problem binding to port". Its outcome is waited for, not
    # guessed from a time: its "serving" line, or its exit (the line is
    # then empty: end of file).
    r = processes([tool("tools/ringstat"), "--prometheus", "[::1]:0"], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, text=True, env=dict(os.environ, SRING_SYSFS_ROOT=str(tmp_path)))
    ready, _, _ = select.select([r.stdout], [], [], 60)
    assert ready, "ringstat --prometheus [::1]:0 neither served nor exited in 60 s"
    line = r.stdout.readline()
    if line:  # it serves: a civetweb with IPv6
        assert re.fullmatch(r"ringstat: serving Prometheus metrics on http://\[::1\]:\d+/metrics\n", line), line
        r.terminate()
        r.communicate(timeout=15)
        return
    _, err = r.communicate(timeout=30)
    assert r.returncode == 1
    assert err == "ringstat: cannot listen on [::1]:0: the HTTP server (civetweb) has no IPv6 support here; " \
                  "give an IPv4 address\n", err
