"""Python kazoo (ZooKeeper's Python client, from PyPI) against a zab
ensemble's ZooKeeper port: plain operations, then its lock, election,
queue, counter and tree-cache recipes. Run by tests/kazoo.rs.

Usage: python3 kazoo_recipes.py HOST:PORT[,HOST:PORT...]
Exits 0 when every check held; prints each check as it passes.
"""

import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoNodeError, NodeExistsError
from kazoo.recipe.cache import TreeCache, TreeEvent

HOSTS = sys.argv[1]
DEADLINE_S = 30


def client():
    c = KazooClient(hosts=HOSTS, timeout=20.0)
    c.start(timeout=20)
    return c


def wait_for(what, predicate):
    """Polls `predicate` until it holds, for at most DEADLINE_S."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("not within %d s: %s" % (DEADLINE_S, what))


def ok(what):
    print("ok", what, flush=True)


def plain(zk):
    zk.ensure_path("/kz/app")
    zk.create("/kz/app/n", b"1")
    data, stat = zk.get("/kz/app/n")
    assert data == b"1" and stat.version == 0, (data, stat)
    zk.set("/kz/app/n", b"2", version=0)
    try:
        zk.set("/kz/app/n", b"3", version=0)
        raise AssertionError("a stale version was accepted")
    except BadVersionError:
        pass
    try:
        zk.create("/kz/app/n", b"")
        raise AssertionError("a duplicate create was accepted")
    except NodeExistsError:
        pass
    seq = zk.create("/kz/app/s-", b"", sequence=True, ephemeral=True)
    assert seq == "/kz/app/s-0000000001", seq
    assert sorted(zk.get_children("/kz/app")) == ["n", "s-0000000001"]
    assert zk.exists("/kz/none") is None
    try:
        zk.get("/kz/none")
        raise AssertionError("a missing node was read")
    except NoNodeError:
        pass
    tx = zk.transaction()
    tx.create("/kz/app/t1", b"")
    tx.set_data("/kz/app/n", b"4")
    assert tx.commit() == ["/kz/app/t1", zk.exists("/kz/app/n")], "transaction"
    seen = []
    zk.DataWatch("/kz/app/n", lambda data, stat: seen.append(data))
    zk.set("/kz/app/n", b"5")
    wait_for("the data watch's event", lambda: b"5" in seen)
    ok("plain operations, a transaction and a data watch")


def lock(a, b):
    held = []
    inside = [0]
    most = [0]

    def work(zk, who):
        for _ in range(5):
            with zk.Lock("/kz/lock", who):
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                held.append(who)
                time.sleep(0.01)
                inside[0] -= 1

    threads = [threading.Thread(target=work, args=(c, n)) for c, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert len(held) == 10 and most[0] == 1, (held, most)
    ok("lock: 10 holds by two sessions, never two at once")


def election(a, b):
    leaders = []
    done = threading.Event()

    def lead(who):
        leaders.append(who)
        time.sleep(0.1)

    ea = a.Election("/kz/election", "a")
    eb = b.Election("/kz/election", "b")
    ta = threading.Thread(target=ea.run, args=(lead, "a"))
    tb = threading.Thread(target=eb.run, args=(lead, "b"))
    ta.start()
    tb.start()
    ta.join(DEADLINE_S)
    tb.join(DEADLINE_S)
    done.set()
    assert sorted(leaders) == ["a", "b"], leaders
    ok("election: both candidates led, one after the other")


def queue(a, b):
    q = a.Queue("/kz/queue")
    for i in range(10):
        q.put(str(i).encode())
    r = b.Queue("/kz/queue")
    got = [r.get() for _ in range(10)]
    assert got == [str(i).encode() for i in range(10)], got
    ok("queue: FIFO across sessions")


def counter(a, b):
    def add(zk):
        c = zk.Counter("/kz/counter")
        for _ in range(20):
            c += 1

    threads = [threading.Thread(target=add, args=(zk,)) for zk in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    value = a.Counter("/kz/counter").value
    assert value == 40, value
    ok("counter: 40 increments from two sessions")


def tree_cache(a, b):
    events = []
    cache = TreeCache(a, "/kz/tree")
    a.ensure_path("/kz/tree")
    cache.listen(lambda e: events.append(e))
    cache.start()
    wait_for("the cache's initial load",
             lambda: any(e.event_type == TreeEvent.INITIALIZED for e in events))
    b.create("/kz/tree/x", b"x1")
    b.create("/kz/tree/x/y", b"y1")
    b.set("/kz/tree/x", b"x2")
    wait_for("the cache to see the changes",
             lambda: (cache.get_data("/kz/tree/x") or (None, None))[0] is not None
             and cache.get_data("/kz/tree/x").data == b"x2"
             and cache.get_data("/kz/tree/x/y") is not None)
    b.delete("/kz/tree/x/y")
    wait_for("the cache to see the delete", lambda: cache.get_data("/kz/tree/x/y") is None)
    cache.close()
    ok("tree cache: creates, a change and a delete seen")


def main():
    a, b = client(), client()
    try:
        plain(a)
        lock(a, b)
        election(a, b)
        queue(a, b)
        counter(a, b)
        tree_cache(a, b)
    finally:
        a.stop()
        b.stop()
    print("all kazoo checks passed", flush=True)


if __name__ == "__main__":
    main()
