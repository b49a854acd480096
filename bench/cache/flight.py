"""N concurrent identical requests of a ~1 s query (a fresh key each run): wall time and how
many were executed (Cache-Status "fwd=uri-miss" = ran on an engine; "hit" = shared).
Usage: flight.py URL N SQL_TEMPLATE(with {salt}) -> one line: wall_s=.. executed=.. shared=.. errors=.."""
import json
import sys
import threading
import time
import urllib.request

url, n, tmpl, salt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = json.dumps({"sql": tmpl.format(salt=salt)}).encode()
results = []
lock = threading.Lock()
go = threading.Event()


def one():
    go.wait()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            st = r.headers.get("Cache-Status", "")
            code = r.status
    except Exception as ex:  # noqa: BLE001
        st, code = repr(ex), 0
    with lock:
        results.append((code, st))


ts = [threading.Thread(target=one) for _ in range(n)]
for t in ts:
    t.start()
time.sleep(0.5)  # every thread is parked on the event
t0 = time.monotonic()
go.set()
for t in ts:
    t.join()
wall = time.monotonic() - t0
executed = sum(1 for c, s in results if c == 200 and "fwd=uri-miss" in s)
shared = sum(1 for c, s in results if c == 200 and s.startswith("duckgate; hit"))
errors = sum(1 for c, _ in results if c != 200)
print("wall_s=%.3f executed=%d shared=%d errors=%d" % (wall, executed, shared, errors))
