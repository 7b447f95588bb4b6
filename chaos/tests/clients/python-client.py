"""Drives `aimate chaos proxy` with the published Python client (toxiproxy-python 0.1.1,
from PyPI) through every call it offers, and checks each call's effect on real traffic
through the proxy: round trips timed, connections refused or cut.

    TOXIPROXY_HOST=127.0.0.1 TOXIPROXY_PORT=PORT UPSTREAM=127.0.0.1:PORT \\
        OTHER_UPSTREAM=127.0.0.1:PORT python python-client.py

Exits 0 after printing "ok: N checks", 1 with the first failed check.
"""

import os
import socket
import sys
import time

from toxiproxy import Toxiproxy
from toxiproxy.exceptions import NotFound, ProxyExists

checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise AssertionError("check failed: " + what)
    checks += 1


def round_trip(address, size=4):
    """Milliseconds to send `size` bytes through `address` and read them back from the
    echo upstream, or the reason it failed (a string)."""
    host, port = address.rsplit(":", 1)
    started = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(b"x" * size)
            received = 0
            while received < size:
                data = conn.recv(65536)
                if not data:
                    return "closed"
                received += len(data)
    except OSError as error:
        return type(error).__name__
    return (time.monotonic() - started) * 1000


def main():
    server = Toxiproxy()
    server.update_api_consumer(os.environ["TOXIPROXY_HOST"], int(os.environ["TOXIPROXY_PORT"]))
    upstream = os.environ["UPSTREAM"]
    other = os.environ["OTHER_UPSTREAM"]

    check(server.running(), "running")
    check(b"aimate-chaos" in server.version(), "version")

    proxy = server.create(upstream=upstream, name="py")
    check(proxy.enabled, "create: enabled")
    plain = round_trip(proxy.listen)
    check(isinstance(plain, float) and plain < 100, "create: traffic passes (%r)" % plain)
    try:
        server.create(upstream=upstream, name="py")
        check(False, "create twice raises ProxyExists")
    except ProxyExists:
        check(True, "create twice raises ProxyExists")

    check("py" in server.proxies(), "proxies")
    check(server.get_proxy("py").upstream == upstream, "get_proxy")
    check(server.get_proxy("nope") is None, "get_proxy unknown")

    proxy.add_toxic(type="latency", attributes={"latency": 200, "jitter": 0})
    slowed = round_trip(proxy.listen)
    check(isinstance(slowed, float) and 190 <= slowed < 400, "add_toxic latency 200: %r" % slowed)
    toxics = proxy.toxics()
    check(list(toxics) == ["latency_downstream"], "toxics: default name %r" % list(toxics))
    toxic = proxy.get_toxic("latency_downstream")
    check(toxic.type == "latency" and toxic.attributes["latency"] == 200, "get_toxic")
    check(proxy.get_toxic("nope") is None, "get_toxic unknown")
    proxy.destroy_toxic("latency_downstream")
    back = round_trip(proxy.listen)
    check(isinstance(back, float) and back < 100, "destroy_toxic: %r" % back)
    try:
        proxy.destroy_toxic("latency_downstream")
        check(False, "destroy_toxic twice raises NotFound")
    except NotFound:
        check(True, "destroy_toxic twice raises NotFound")

    proxy.add_toxic(name="cut", type="limit_data", attributes={"bytes": 10})
    check(round_trip(proxy.listen, 100) == "closed", "limit_data 10 bytes")
    proxy.destroy_toxic("cut")
    proxy.add_toxic(
        name="narrow", type="bandwidth", stream="downstream", toxicity=1.0, attributes={"rate": 100}
    )
    paced = round_trip(proxy.listen, 50000)
    check(isinstance(paced, float) and 450 <= paced < 1000, "bandwidth 100 KB/s, 50 KB: %r" % paced)
    proxy.destroy_toxic("narrow")

    proxy.disable()
    check(not isinstance(round_trip(proxy.listen), float), "disable refuses traffic")
    proxy.enable()
    check(isinstance(round_trip(proxy.listen), float), "enable")
    with proxy.down():
        check(not isinstance(round_trip(proxy.listen), float), "down(): no traffic")
    check(isinstance(round_trip(proxy.listen), float), "after down(): traffic again")

    # populate (client side: get_proxy, destroy, create): a changed upstream replaces it.
    populated = server.populate([{"name": "py", "upstream": other, "listen": "127.0.0.1:0"}])
    check(len(populated) == 1 and populated[0].upstream == other, "populate replaced py")
    moved = server.get_proxy("py")
    check(isinstance(round_trip(moved.listen), float), "populate: traffic passes")

    moved.add_toxic(type="latency", attributes={"latency": 300})
    check(server.reset(), "reset")
    after = round_trip(moved.listen)
    check(isinstance(after, float) and after < 100, "reset removed the toxic: %r" % after)

    check(server.destroy(moved), "destroy")
    check(server.get_proxy("py") is None, "destroyed")
    server.create(upstream=upstream, name="a")
    server.create(upstream=upstream, name="b")
    server.destroy_all()
    check(server.proxies() == {}, "destroy_all")

    print("ok: %d checks" % checks)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - any failure is the test's failure
        print("%s: %s" % (type(error).__name__, error), file=sys.stderr)
        sys.exit(1)
