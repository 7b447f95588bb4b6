#!/usr/bin/env python3
"""Traffic across a server's shutdown, for scripts/deploy-check.sh.

usage: drain-traffic.py BASE_URL API_KEY THREADS

THREADS keep-alive connections each send GET /api/dashboard 20 times a second (under the
server's default rate limit of 200/s per key) until the server stops accepting
connections, or 15 s pass. Prints the outcomes as JSON: HTTP statuses ("200", "503"),
"closed" (a keep-alive connection the server closed between requests: clients retry
those) and "refused" (no listener any more). A 5xx is what the drain must never answer.
"""

import http.client
import json
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

base, key, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
url = urlsplit(base)
outcomes = Counter()
lock = threading.Lock()
deadline = time.monotonic() + 15


def count(outcome):
    with lock:
        outcomes[outcome] += 1


def user():
    connection = None
    refused = 0
    while time.monotonic() < deadline and refused < 3:
        sent = time.monotonic()
        try:
            if connection is None:
                connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
            connection.request("GET", "/api/dashboard", headers={"authorization": f"Bearer {key}"})
            response = connection.getresponse()
            response.read()
            count(str(response.status))
            if response.getheader("connection", "").lower() == "close":
                connection.close()
                connection = None
        except ConnectionRefusedError:
            refused += 1
            count("refused")
            connection = None
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            count("closed")
            connection = None
        time.sleep(max(0.0, 0.05 - (time.monotonic() - sent)))


workers = [threading.Thread(target=user) for _ in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(json.dumps(dict(sorted(outcomes.items()))))
