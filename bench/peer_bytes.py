#!/usr/bin/env python3
"""Network bytes per commit and one-request write latency in a three-node coordinated cluster.

    bench/peer_bytes.py target/release/lighthouse 10000000 30

Starts three nodes on loopback (data directories under /tmp, the 2nd and 3rd seeded by the one
before), puts a store of about STORE_BYTES (1 KB values) through the coordinator, then times
WRITES one-key PUTs to the coordinator on one keep-alive connection, and reports their median
and p90, the bytes all nodes wrote to peers per commit (lighthouse_peer_sent_bytes_total) and the
disk bytes per commit (/proc/PID/io). It stops everything it started. It is not a test.
usage: peer_bytes.py BINARY STORE_BYTES [WRITES]"""
import http.client, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time

binary, size = sys.argv[1], int(sys.argv[2])
writes = int(sys.argv[3]) if len(sys.argv) > 3 else 30

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

ports = [free_port() for _ in range(3)]
root = tempfile.mkdtemp(prefix="peers-bench-")
procs = []
for i, port in enumerate(ports):
    d = os.path.join(root, f"n{i}"); os.mkdir(d)
    args = [binary, f"--bind=127.0.0.1:{port}", f"--data.d={d}", "--log-level=warn"]
    if i > 0:
        args.append(f"--seeds=127.0.0.1:{ports[i-1]}")
    procs.append(subprocess.Popen(args, stderr=subprocess.DEVNULL))

def req(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, body=body)
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, data

def wait(what, cond, limit=60):
    end = time.time() + limit
    while time.time() < end:
        try:
            if cond(): return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out: {what}")

def settled():
    vs = [json.loads(req(p, "GET", "/version")[1]) for p in ports]
    st = [json.loads(req(p, "GET", "/state")[1])["writes"] for p in ports]
    return all(v == vs[0] for v in vs) and all(s.get("coordinator") and len(s.get("voters", [])) == 3 for s in st) \
        and all(s["accepted"]["sequence"] == vs[0]["sequence"] for s in st)

try:
    wait("a settled cluster", settled)
    coord = json.loads(req(ports[0], "GET", "/state")[1])["writes"]["coordinator"]
    cport = int(coord.rsplit(":", 1)[1])
    value = "v" * 1000
    n = max(1, size // 1010)
    store = "{" + ",".join(f'"k{i}":"{value}"' for i in range(n)) + "}"
    st, body = req(cport, "PUT", "/data", store.encode())
    assert st == 200, (st, body)
    wait("the store everywhere", settled)
    time.sleep(1)
    wait("settled again", settled)

    def io(pid):
        d = dict(l.split(": ") for l in open(f"/proc/{pid}/io").read().split("\n") if l)
        return int(d["wchar"]), int(d["write_bytes"])

    def peer_sent(port):
        text = req(port, "GET", "/metrics")[1].decode()
        m = re.search(r"^lighthouse_peer_sent_bytes_total (\d+)", text, re.M)
        return int(m.group(1)) if m else None

    before_io = [io(p.pid) for p in procs]
    before_sent = [peer_sent(p) for p in ports]
    t_start = time.time()
    c = http.client.HTTPConnection("127.0.0.1", cport, timeout=60)
    lat = []
    for i in range(writes):
        t0 = time.perf_counter()
        c.request("PUT", "/data/k1", body=json.dumps(f"w{i}").encode())
        r = c.getresponse(); r.read()
        lat.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200, r.status
    c.close()
    wait("the last write everywhere", lambda: all(req(p, "GET", "/data/k1")[1].strip() == json.dumps(f"w{writes-1}").encode() for p in ports))
    elapsed = time.time() - t_start
    after_io = [io(p.pid) for p in procs]
    def counters(port):
        text = req(port, "GET", "/metrics")[1].decode()
        return {k: int(v) for k, v in re.findall(r"^lighthouse_(changes_pushed_total|changes_refused_total|copies_pushed_total) (\d+)", text, re.M)}
    print("counters", [counters(p) for p in ports], file=sys.stderr)
    after_sent = [peer_sent(p) for p in ports]
    disk = sum(a[1] - b[1] for a, b in zip(after_io, before_io)) / writes
    sent = None if None in before_sent else sum(a - b for a, b in zip(after_sent, before_sent)) / writes
    lat.sort()
    print(json.dumps({
        "store_bytes": len(store), "writes": writes,
        "latency_ms_median": round(statistics.median(lat), 2), "latency_ms_p90": round(lat[int(0.9 * len(lat)) - 1], 2),
        "peer_sent_bytes_per_commit_all_nodes (counter)": sent,
        "disk_bytes_per_commit_all_nodes": round(disk),
        "seconds": round(elapsed, 1),
    }))
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    shutil.rmtree(root, ignore_errors=True)
