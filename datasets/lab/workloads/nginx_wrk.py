"""nginx serving a 4 KiB static file, driven by wrk over loopback TCP; requests per second.

The server starts once per run (foreground, one worker, access log off, every path it writes inside the
role's directory); each phase is one ``wrk -t1 -c<level> -d<seconds>s`` on keep-alive connections. Level =
concurrent HTTP connections. The metric is wrk's ``Requests/sec`` over the whole phase.

wrk cannot use a unix socket, so each role listens on its own 127.0.0.1 port, reserved at service start and
kept in the role's runtime directory for its phases (``reserve_port``, also used by other TCP services).
"""

from __future__ import annotations

import re
from pathlib import Path

from cotenant.datasets.lab.workloads.base import WORKLOADS, ParseError, WorkContext, Workload, last_number
from cotenant.datasets.lab.workloads.ports import port_accepts, reserve_port

STATIC_FILE = "static-4k.html"
STATIC_BYTES = 4096


def parse_wrk(output: str) -> float:
    # Error pages served fast would otherwise pass for a fast server (a missing file gives 404s).
    if re.search(r"Non-2xx or 3xx responses: [1-9]", output):
        raise ParseError(f"wrk got error responses ({output[-200:]!r})")
    rate = last_number(r"Requests/sec:\s+([\d.]+)", output, "wrk Requests/sec")
    if rate <= 0:
        raise ParseError(f"wrk completed no request ({output[-200:]!r})")
    return rate


NGINX_CONF = """\
daemon off;
master_process on;
# As root, workers would otherwise switch to nobody, who may not read the lab's scratch directory.
user root;
worker_processes 1;
worker_rlimit_nofile 8192;
pid {role_dir}/nginx.pid;
error_log stderr warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    # A missing file fails the phase's parse (404s); logging each one would flood the service log.
    log_not_found off;
    default_type text/html;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    # wrk keeps its connections open; nginx's default of 1000 requests each would add reconnect churn.
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    # Compiled-in defaults are under /var/lib/nginx, created at start-up: keep them in the role's directory.
    client_body_temp_path {role_dir}/client_body;
    proxy_temp_path {role_dir}/proxy;
    fastcgi_temp_path {role_dir}/fastcgi;
    uwsgi_temp_path {role_dir}/uwsgi;
    scgi_temp_path {role_dir}/scgi;

    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location / {{
        }}
    }}
}}
"""


@WORKLOADS.register("nginx_wrk")
class NginxWrk(Workload):
    name = "nginx_wrk"
    unit = "requests_per_second"
    description = "nginx (1 worker) serving a 4 KiB static file + wrk -t1, level = HTTP connections"
    category = "web"

    @staticmethod
    def root(scratch: Path) -> Path:
        return scratch / "nginx_wrk"

    def prepare(self, scratch: Path) -> None:
        root = self.root(scratch)
        root.mkdir(parents=True, exist_ok=True)
        line = "<p>cotenant interference lab static page</p>\n"
        body = (line * (STATIC_BYTES // len(line) + 1))[:STATIC_BYTES]
        (root / STATIC_FILE).write_text(body)

    def service_command(self, ctx: WorkContext) -> list[str] | None:
        port = reserve_port(ctx, "nginx")
        conf = ctx.role_dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(role_dir=ctx.role_dir, port=port, root=self.root(ctx.scratch)))
        # -p: relative paths resolve in the role's directory; -e: the start-up log goes to stderr, not to
        # /var/log/nginx/error.log (opened before the configuration is read).
        return ["nginx", "-p", f"{ctx.role_dir}/", "-c", str(conf), "-e", "stderr"]

    def service_ready(self, ctx: WorkContext) -> bool:
        return port_accepts(reserve_port(ctx, "nginx"))

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        port = reserve_port(ctx, "nginx")
        return [
            "wrk",
            "-t1",
            f"-c{level}",
            f"-d{seconds}s",
            "--latency",
            f"http://127.0.0.1:{port}/{STATIC_FILE}",
        ]

    def parse(self, output: str) -> float:
        return parse_wrk(output)
