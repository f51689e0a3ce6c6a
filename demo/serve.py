#!/usr/bin/env python3
"""Serve the demo page (this folder) on its own origin, with no build step.

    python demo/serve.py --port 5173 --api http://localhost:8000/api

``/config.js`` is generated from ``--api``, so the same files work against any API; everything is
sent with ``Cache-Control: no-store`` so that a reload always runs the current code. Standard
library only: the e2e tests start it too, on free ports.
"""

import argparse
import functools
import json
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = {"/", "/index.html", "/app.js", "/auth-client.js", "/style.css"}


class DemoHandler(SimpleHTTPRequestHandler):
    """Static files of the demo, a generated config.js, nothing else."""

    extensions_map = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", "": "text/plain"}

    def __init__(self, *args, api: str, **kwargs):
        self.api = api
        super().__init__(*args, directory=str(HERE), **kwargs)

    def do_GET(self):
        """config.js from --api; the page's own files; 404 for anything else (serve.py included)."""
        self._answer(body=True)

    def do_HEAD(self):
        """Like GET, without the body."""
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/config.js":
            content = f"export const API_BASE = {json.dumps(self.api)};\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if body:
                self.wfile.write(content)
        elif path in FILES and body:
            super().do_GET()
        elif path in FILES:
            super().do_HEAD()
        else:
            self.send_error(404)

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args):
        """Quiet unless --verbose."""
        if self.server.verbose:
            super().log_message(format, *args)


def main() -> None:
    """Parse the arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5173, help="port (default 5173)")
    parser.add_argument("--api", default="http://localhost:8000/api", help="the API's root URL")
    parser.add_argument("--verbose", action="store_true", help="log each request")
    args = parser.parse_args()

    server = ThreadingHTTPServer((args.host, args.port), functools.partial(DemoHandler, api=args.api))
    server.verbose = args.verbose
    print(f"Demo page on http://localhost:{server.server_address[1]}/ (API {args.api})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
