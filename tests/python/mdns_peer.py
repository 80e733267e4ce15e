"""A third-party DNS-SD peer on python-zeroconf, on loopback (IPv4) only.

Usage:
  mdns_peer.py publish TYPE NAME PORT [key=value ...]
      registers NAME.TYPE.local. with address 127.0.0.1 and those TXT strings, prints
      "registered", and unregisters (goodbye) when stdin closes.
  mdns_peer.py browse TYPE
      prints one JSON object per line for every instance it resolves
      ({"event": "resolved", "name", "port", "addresses", "txt": [[key, value], ...]}) and
      every removal ({"event": "removed", "name"}), until stdin closes.
"""

import json
import socket
import sys
import threading

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf


def zeroconf() -> Zeroconf:
    return Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)


def say(obj) -> None:
    print(json.dumps(obj) if not isinstance(obj, str) else obj, flush=True)


def publish(zc: Zeroconf, ty: str, name: str, port: int, pairs: list) -> None:
    properties = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        properties[key] = value
    info = ServiceInfo(
        f"{ty}.local.",
        f"{name}.{ty}.local.",
        addresses=[socket.inet_aton("127.0.0.1")],
        port=port,
        properties=properties,
        server="zeroconf-peer.local.",
    )
    zc.register_service(info)
    say("registered")
    sys.stdin.read()
    zc.unregister_service(info)


class Listener(ServiceListener):
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def _resolved(self, zc: Zeroconf, ty: str, name: str) -> None:
        info = zc.get_service_info(ty, name, timeout=3000)
        if info is None:
            return
        txt = []
        raw = info.text or b""
        i = 0
        while i < len(raw):
            n = raw[i]
            s = raw[i + 1 : i + 1 + n].decode("utf-8", "replace")
            i += 1 + n
            if s:
                k, sep, v = s.partition("=")
                txt.append([k, v if sep else None])
        with self.lock:
            say(
                {
                    "event": "resolved",
                    "name": name,
                    "port": info.port,
                    "addresses": info.parsed_addresses(),
                    "txt": txt,
                }
            )

    def add_service(self, zc: Zeroconf, ty: str, name: str) -> None:
        self._resolved(zc, ty, name)

    def update_service(self, zc: Zeroconf, ty: str, name: str) -> None:
        self._resolved(zc, ty, name)

    def remove_service(self, zc: Zeroconf, ty: str, name: str) -> None:
        with self.lock:
            say({"event": "removed", "name": name})


def browse(zc: Zeroconf, ty: str) -> None:
    ServiceBrowser(zc, f"{ty}.local.", Listener())
    say("browsing")
    sys.stdin.read()


def main() -> None:
    zc = zeroconf()
    try:
        if sys.argv[1] == "publish":
            publish(zc, sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
        elif sys.argv[1] == "browse":
            browse(zc, sys.argv[2])
        else:
            raise SystemExit(f"unknown command {sys.argv[1]}")
    finally:
        zc.close()


if __name__ == "__main__":
    main()
