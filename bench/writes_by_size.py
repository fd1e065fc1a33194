#!/usr/bin/env python3
"""One-request write latency and disk bytes per commit into stores of growing size, one node.

usage: bench/writes_by_size.py BINARY [SIZES_MB...]   (default 0.01 10 100; one line per store size)

One node, default (coordinated) writes, a data directory in $TMPDIR; 30 `PUT /data/counter` on one
keep-alive connection after a `PUT /data` of the store; disk bytes from /proc/PID/io write_bytes.
"""
import http.client, json, shutil, socket, subprocess, sys, tempfile, time

binary = sys.argv[1]
sizes = [float(s) for s in sys.argv[2:]] or [0.01, 10, 100]
WRITES = 30


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_bytes(pid):
    """Bytes the process (all its threads) caused to be written to storage."""
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("write_bytes:"))


def store(megabytes):
    n = max(1, int(megabytes * 1e6 / 110))
    return json.dumps({f"k{i}": "x" * 100 for i in range(n)}, separators=(",", ":")).encode()


for mb in sizes:
    directory = tempfile.mkdtemp(prefix="cf-measure-")
    port = free_port()
    proc = subprocess.Popen([binary, f"--data.d={directory}", f"--bind=127.0.0.1:{port}", "--log-level=warn",
                             "--max-body=200000000"], stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.02)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = store(mb)
    c.request("PUT", "/data", body)
    r = c.getresponse(); r.read()
    assert r.status == 200, (r.status, mb)
    time.sleep(1.0)  # let the writer settle (compaction of the first write, if any)
    before = write_bytes(proc.pid)
    latencies = []
    for i in range(WRITES):
        t = time.perf_counter()
        c.request("PUT", "/data/counter", str(i).encode())
        r = c.getresponse(); r.read()
        latencies.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, (r.status, r.read())
    time.sleep(0.5)
    after = write_bytes(proc.pid)
    latencies.sort()
    median, p90 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.9)]
    per_commit = (after - before) / WRITES
    print(f"store {len(body)/1e6:8.2f} MB: median {median:7.2f} ms, p90 {p90:7.2f} ms, disk per commit {per_commit/1024:10.1f} KiB", flush=True)
    proc.terminate(); proc.wait()
    shutil.rmtree(directory)
