"""netns.py -- "hosts" on one machine for the tests that need several:
network namespaces joined by veth pairs, real TCP between them.

Owns: the namespaces <tag>-s (the database server's host) and
<tag>-w1..wN (workers' hosts), one veth pair per worker, <net>.N.1 on the
server's side and <net>.N.2 on worker N's; only those and loopback, nothing
else on the machine.  cut(N) takes the server's end of worker N's link down,
a silent partition (no FIN, no RST reaches either side); heal(N) brings it
back.  down() removes everything.  Used by partition.py (test_partition.sh)
and by torture.py (its partition fault).  Needs root and ip(8); available()
says why not otherwise, and the callers skip.
"""
import os
import shutil
import subprocess


def sh(*argv, check=True):
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r


class Hosts:
    def __init__(self, tag, nworkers, net="10.231"):
        self.tag, self.n, self.net = tag, nworkers, net
        self.srv = tag + "-s"

    @staticmethod
    def available(tag):
        """"" when namespaces can be made and entered here, else why not."""
        if os.getuid() != 0 or not shutil.which("ip"):
            return "needs root and ip(8)"
        # entering a namespace is the part that fails where / is not a
        # mount point (a chroot): probe that too, not only creating one
        probe = tag + "-probe"
        try:
            sh("ip", "netns", "add", probe)
            sh("ip", "-n", probe, "link", "set", "lo", "up")
        except RuntimeError as e:
            return f"network namespaces unavailable ({e})"
        finally:
            sh("ip", "netns", "del", probe, check=False)
        return ""

    def worker_ns(self, i):
        return f"{self.tag}-w{i}"

    def server_addr(self, i):
        """The server's address as worker i reaches it."""
        return f"{self.net}.{i}.1"

    def worker_addr(self, i):
        return f"{self.net}.{i}.2"

    def server_addrs(self):
        return ",".join(self.server_addr(i) for i in range(1, self.n + 1))

    def subnet(self):
        return f"{self.net}.0.0/16"

    def up(self):
        sh("ip", "netns", "add", self.srv)
        sh("ip", "-n", self.srv, "link", "set", "lo", "up")
        for i in range(1, self.n + 1):
            w = self.worker_ns(i)
            sh("ip", "netns", "add", w)
            sh("ip", "-n", w, "link", "set", "lo", "up")
            sh("ip", "link", "add", f"{self.tag}s{i}", "netns", self.srv, "type", "veth", "peer", "name",
               f"{self.tag}w{i}", "netns", w)
            sh("ip", "-n", self.srv, "addr", "add", f"{self.server_addr(i)}/24", "dev", f"{self.tag}s{i}")
            sh("ip", "-n", w, "addr", "add", f"{self.worker_addr(i)}/24", "dev", f"{self.tag}w{i}")
            sh("ip", "-n", self.srv, "link", "set", f"{self.tag}s{i}", "up")
            sh("ip", "-n", w, "link", "set", f"{self.tag}w{i}", "up")

    def down(self):
        for n in [self.srv] + [self.worker_ns(i) for i in range(1, self.n + 1)]:
            sh("ip", "netns", "del", n, check=False)

    def in_server(self, argv):
        return ["ip", "netns", "exec", self.srv] + list(argv)

    def in_worker(self, i, argv):
        return ["ip", "netns", "exec", self.worker_ns(i)] + list(argv)

    def cut(self, i):
        sh("ip", "-n", self.srv, "link", "set", f"{self.tag}s{i}", "down")

    def heal(self, i):
        sh("ip", "-n", self.srv, "link", "set", f"{self.tag}s{i}", "up")
