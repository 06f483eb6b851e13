#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""HTTPS server for the TLS-verification test: 127.0.0.1, port 0, answers 200 "ok".

Usage: tls_server.py CERT KEY  -> prints the port on stdout, serves until killed.
No name lookups: request logging is switched off.
"""
import http.server
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
