"""A third-party ZooKeeper peer for srpc's interop tests, on kazoo.

Writes provider nodes exactly as Java Dubbo (URLEncoder over the full URL, node data = the
creator's IP) and Apache's Python Dubbo (tri://host:port?service=X, data host:port) name
them, and reads nodes back so the Rust side can check what it wrote.

usage:
  zk_peer.py HOSTS write-java ROOT     -> prints the node path it created
  zk_peer.py HOSTS write-python ROOT   -> prints the node path it created
  zk_peer.py HOSTS write-raw PATH DATA
  zk_peer.py HOSTS set-data PATH DATA
  zk_peer.py HOSTS read DIR            -> one line per child: <name>\t<data>
  zk_peer.py HOSTS delete PATH
  zk_peer.py HOSTS acl PATH [USER:PASS] -> the node's ACL schemes, e.g. "digest", or "denied"
  zk_peer.py HOSTS try-delete PATH     -> "denied" or "deleted"
"""
import sys
from urllib.parse import quote_plus

from kazoo.client import KazooClient

# A provider URL as Java Dubbo 3 writes it (sorted parameters, decoded).
JAVA_URL = (
    "dubbo://10.0.0.5:20880/com.acme.Echo?anyhost=true&application=echo-provider"
    "&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&interface=com.acme.Echo"
    "&methods=echo,ping&pid=4242&release=3.3.0&service-name-mapping=true&side=provider"
    "&timestamp=1700000000000"
)
PYTHON_URL = "tri://127.0.0.1:50051?service=org.example.Greeter"


def java_encode(text):
    # java.net.URLEncoder: unreserved A-Z a-z 0-9 . - * _, space as +, upper-case %XX.
    return quote_plus(text, safe="*")


def main():
    hosts, command, *args = sys.argv[1:]
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=10)
    try:
        if command == "write-java":
            root = args[0]
            path = f"{root}/com.acme.Echo/providers/{java_encode(JAVA_URL)}"
            zk.create(path, b"10.0.0.5", makepath=True)
            print(path)
        elif command == "write-python":
            root = args[0]
            path = f"{root}/org.example.Greeter/providers/{java_encode(PYTHON_URL)}"
            zk.create(path, b"127.0.0.1:50051", makepath=True)
            print(path)
        elif command == "write-raw":
            zk.create(args[0], args[1].encode(), makepath=True)
        elif command == "set-data":
            zk.set(args[0], args[1].encode())
        elif command == "read":
            for child in sorted(zk.get_children(args[0])):
                data, _ = zk.get(f"{args[0]}/{child}")
                print(f"{child}\t{data.decode()}")
        elif command == "delete":
            zk.delete(args[0], recursive=True)
        elif command == "acl":
            from kazoo.exceptions import NoAuthError
            if len(args) > 1:
                zk.add_auth("digest", args[1])
            try:
                acls, _ = zk.get_acls(args[0])
                print(",".join(sorted({acl.id.scheme for acl in acls})))
            except NoAuthError:
                print("denied")
        elif command == "try-delete":
            from kazoo.exceptions import NoAuthError
            try:
                zk.delete(args[0])
                print("deleted")
            except NoAuthError:
                print("denied")
        else:
            sys.exit(f"unknown command {command}")
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    main()
