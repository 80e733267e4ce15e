"""A JSON-RPC 2.0 provider over HTTP, as Dubbo's `jsonrpc` protocol exports a service, for
srpc's interop tests. Python's standard library only (http.server): no PyPI package serves
JSON-RPC over plain HTTP/1.1 keep-alive without a web framework, and this keeps the peer
small enough to read.

usage: jsonrpc_peer.py NAME PATH
  Listens on 127.0.0.1 (a free port), serves POST /PATH, prints "listening PORT", and runs
  until it is killed (the tests stop it by its PID).

Methods: echo(x) -> x; add(a, b) -> a + b; who() -> NAME; slow(ms) -> NAME after ms;
header(name) -> the request's HTTP header (or null); fail() -> error -32000 with data;
connections() -> how many TCP connections this server has accepted; slow_now() -> how many
slow calls are running; slow_peak() -> the most that ever ran at once; anything else -> -32601.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, PATH = sys.argv[1], "/" + sys.argv[2].lstrip("/")
CONNECTIONS = set()
LOCK = threading.Lock()
SLOW = {"now": 0, "peak": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as jsonrpc4j's servlet container does

    def log_message(self, *args):
        pass

    def do_POST(self):
        with LOCK:
            CONNECTIONS.add(self.client_address)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path != PATH:
            self.answer(404, b"not found")
            return
        try:
            request = json.loads(body)
        except ValueError:
            self.reply(None, error={"code": -32700, "message": "Parse error"})
            return
        if request.get("jsonrpc") != "2.0" or not isinstance(request.get("params"), list):
            self.reply(request.get("id"), error={"code": -32600, "message": "Invalid Request"})
            return
        method, params, rid = request.get("method"), request["params"], request.get("id")
        if method == "echo" and len(params) == 1:
            self.reply(rid, result=params[0])
        elif method == "add" and len(params) == 2:
            self.reply(rid, result=params[0] + params[1])
        elif method == "who" and not params:
            self.reply(rid, result=NAME)
        elif method == "slow" and len(params) == 1:
            with LOCK:
                SLOW["now"] += 1
                SLOW["peak"] = max(SLOW["peak"], SLOW["now"])
            try:
                time.sleep(params[0] / 1000)
            finally:
                with LOCK:
                    SLOW["now"] -= 1
            self.reply(rid, result=NAME)
        elif method in ("slow_now", "slow_peak") and not params:
            with LOCK:
                self.reply(rid, result=SLOW[method[len("slow_"):]])
        elif method == "header" and len(params) == 1:
            self.reply(rid, result=self.headers.get(params[0]))
        elif method == "connections":
            with LOCK:
                self.reply(rid, result=len(CONNECTIONS))
        elif method == "fail":
            self.reply(rid, error={"code": -32000, "message": "boom", "data": {"from": NAME}})
        else:
            self.reply(rid, error={"code": -32601, "message": "Method not found"})

    def reply(self, rid, result=None, error=None):
        answer = {"jsonrpc": "2.0", "id": rid}
        if error is not None:
            answer["error"] = error
        else:
            answer["result"] = result
        self.answer(200, json.dumps(answer).encode())

    def answer(self, status, payload):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
