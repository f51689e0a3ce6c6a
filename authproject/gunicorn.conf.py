"""gunicorn's configuration for `make serve`: ``gunicorn -c authproject/gunicorn.conf.py authproject.wsgi``.

HOST, PORT and WEB_CONCURRENCY (worker processes) come from the environment, as is usual for
gunicorn deployments; the rest is fixed here.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))

# A worker silent this long is killed and replaced; DATABASE_TIMEOUT (5 s) ends a wait on the
# database well before, with a 503 the client can act on.
timeout = 30
graceful_timeout = 30  # on SIGTERM, requests in flight get this long to finish
keepalive = 5  # seconds an idle proxy connection stays open

# Whether a request came over https is Django's decision alone (TRUST_X_FORWARDED_PROTO), the same
# whatever address the proxy has: gunicorn trusts X-Forwarded-Proto from loopback by default.
secure_scheme_headers = {}

# Access log on stdout: the time, the client, method, path without the query string, status, size,
# duration, user agent, and the request's id (the answer's X-Request-ID, which the app's own log
# lines of that request carry too). Never the query string, the Referer, cookies or the
# Authorization header, any of which could carry a token.
accesslog = "-"
access_log_format = (
    '%(t)s %({x-forwarded-for}i)s %(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s" %({x-request-id}o)s'
)
errorlog = "-"
