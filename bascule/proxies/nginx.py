"""nginx in front of the application, asking Bascule with ``auth_request`` while
maintenance is on.

The switch is a flag file per kind of request in ``switch/``, that nginx looks for
(a stat, no network call): ``all`` (GET, HEAD, OPTIONS) and ``writes`` (any other
method). Maintenance off, neither exists and requests go straight to the
application, but for one whose query holds a bypass token (Bascule takes it out of
the URL). Read-only, ``writes`` exists; on, both. A request nginx asks about goes to
the named location ``@gated``, method, URI and body kept.

There, it first makes a bodiless subrequest to ``/rest/v1/gate?deny=403`` (the
visitor's headers, ``X-Original-URI``/``-Method`` naming the request): a 2xx lets it
through to the application (with ``X-Bascule-Bypassed`` copied onto the answer), a 403
sends it to a named location that asks ``/rest/v1/gate`` again without ``deny`` and
gives the visitor Bascule's own answer (the 503 page or envelope, or the 303 that sets
the bypass cookie) with its status. Fail open: a Bascule that refuses the connection,
or does not answer within the recipe's timeout, makes ``auth_request`` fail with a 500
that ``error_page`` sends to the application unasked; so does a Bascule that fails
between the two questions. The application's own answers (its 403s, its 500s) are never
intercepted (``proxy_intercept_errors`` stays off), so they reach the visitor as they are.

nginx's workers run as ``nobody`` when nginx starts as root: they must be able to
search the recipe's directory, or they would never see the switch (and never ask):
such a directory is refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bascule.proxies import TOKEN_PARAM, Recipe, address, set_flags

# The internal location of the subrequest: a visitor asking for it gets a 404 (nginx
# answers ``internal`` locations only to subrequests and redirections).
CHECK = "/.bascule-gate"


TEMPLATE = """\
# Written by `bascule proxy-config nginx`: while maintenance is on, requests ask Bascule
# at {bascule_url} whether they go to the application at {upstream_url} (the switch in
# {dir}/switch, kept by `bascule proxy-follow`); Bascule silent or slow (more than
# {timeout}) lets them through.
worker_processes 1;
pid {dir}/nginx.pid;
# crit: nginx's errors name the request line, which may hold a bypass token; the access
# log (masked) says how each request was decided ($bascule_status).
error_log stderr crit;

events {{
    worker_connections 1024;
}}

http {{
    # A bypass token in a URL (and in the Referer it may leave) is masked: Bascule takes
    # it out of the URL with a 303, but the first request is logged as it came.
    map $request $bascule_logged_request {{
        "~^(?<head>[^ ]* [^ ]*?[?&]bascule-bypass=)[^ ]*(?<tail> .*)$" "${{head}}*${{tail}}";
        default $request;
    }}
    map $http_referer $bascule_logged_referer {{
        "~^(?<head>[^?]*[?].*?bascule-bypass=)" "${{head}}*";
        default $http_referer;
    }}
    log_format bascule '$remote_addr - $remote_user [$time_local] "$bascule_logged_request" '
                       '$status $body_bytes_sent "$bascule_logged_referer" "$http_user_agent" '
                       'bascule=$bascule_status';
    access_log {dir}/access.log bascule;
    # Everything under this directory: no path of the system nginx's is written.
    client_body_temp_path {dir}/temp/client_body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    server_tokens off;

    # The switch: the flag file that says whether nginx asks Bascule about a request
    # of this method (read-only, GET, HEAD and OPTIONS go through unasked); and whether
    # its query holds a bypass token, which Bascule takes out in every state.
    map $request_method $bascule_switch {{
        GET {dir}/switch/all;
        HEAD {dir}/switch/all;
        OPTIONS {dir}/switch/all;
        default {dir}/switch/writes;
    }}
    map $args $bascule_url_token {{
        "~(^|&){token}=" 1;
        default 0;
    }}

    # What Bascule is told of the visitor's request, and nothing else of it: a visitor's
    # other headers (a control byte, a hundred of them) must not make Bascule refuse the
    # question itself. Only the bypass cookie of their cookies; the scheme they came by
    # (https from a TLS terminator in front: the bypass cookie is then Secure).
    map $http_cookie $bascule_cookie {{
        "~(?:^|;)[ ]*(?<pair>bascule-bypass=[^;]*)" $pair;
        default "";
    }}
    map $http_x_forwarded_proto $bascule_proto {{
        "~*^https$" https;
        default $scheme;
    }}
    # Whether auth_request's error (500) means that Bascule gave no answer: nothing but
    # nginx's own 502 (refused, reset) or 504 (timed out) from it. Then the request goes
    # to the application (fail open); any answer that is no decision is a refusal.
    map $bascule_status $bascule_unanswered {{
        "~^(50[24])([ ,:]+50[24])*$" 1;
        default 0;
    }}

    # Connections to Bascule and to the application are kept open between requests
    # (HTTP/1.1 with an empty Connection header in each location that proxies); closed
    # on nginx's side before uvicorn's 5 s idle timeout closes them on the other.
    upstream bascule {{
        server {bascule};
        keepalive 16;
        keepalive_timeout 4s;
    }}

    upstream application {{
        server {upstream};
        keepalive 32;
    }}

    server {{
        listen {listen};
        # @unanswered and @bascule may send a request on in turn.
        recursive_error_pages on;

        location / {{
            # Asked about (the switch, or a token to take out of the URL): @gated, the
            # request as it came. Otherwise straight to the application.
            error_page 418 = @gated;
            if ($bascule_url_token) {{
                return 418;
            }}
            if (-f $bascule_switch) {{
                return 418;
            }}
            proxy_intercept_errors off;
            proxy_pass http://application;
{to_application}
            proxy_set_header X-Bascule-Bypassed "";
        }}

        location @gated {{
            auth_request {check};
            # Bascule names the bypass token that let the request through; nginx adds
            # no header whose value is empty.
            auth_request_set $bascule_bypassed $upstream_http_x_bascule_bypassed;
            auth_request_set $bascule_status $upstream_status;
            add_header X-Bascule-Bypassed $bascule_bypassed always;
            # 403: refused; the visitor gets Bascule's own answer. 500: auth_request had
            # no decision (no answer, or an answer not 2xx/401/403): @unanswered tells.
            # Neither applies to the application's answers, proxied as they are.
            error_page 403 = @bascule;
            error_page 500 = @unanswered;
            proxy_intercept_errors off;
            proxy_pass http://application;
{to_application}
            # Only Bascule says a request used a bypass token (no header when empty).
            proxy_set_header X-Bascule-Bypassed $bascule_bypassed;
        }}

        location = {check} {{
            internal;
            proxy_pass http://bascule{decision}?deny=403;
{to_bascule}
        }}

        location @unanswered {{
            # Bascule answered, but not with a decision (a question it could not read):
            # refused, and the visitor gets what Bascule answers. No answer: fail open.
            error_page 403 = @bascule;
            if ($bascule_unanswered = 0) {{
                return 403;
            }}
            proxy_pass http://application;
{to_application}
            proxy_set_header X-Bascule-Bypassed "";
        }}

        location @bascule {{
            # The same question without deny: Bascule's answer, status and all, is the
            # visitor's (a named location's proxy_pass takes no URI, hence the rewrite).
            rewrite ^ {decision}? break;
            proxy_pass http://bascule;
{to_bascule}
            proxy_intercept_errors off;
            error_page 502 504 = @application;
        }}

        location @application {{
            proxy_pass http://application;
{to_application}
            proxy_set_header X-Bascule-Bypassed "";
        }}
    }}
}}
"""

# proxy_set_header in a location replaces every one inherited, so each location that
# proxies says all of its own.
TO_BASCULE = [
    # A bodiless GET, whatever the visitor's request, with only the headers the decision
    # depends on (a visitor's own X-Forwarded-Uri or X-Original-URI never among them).
    "proxy_method GET",
    "proxy_pass_request_body off",
    "proxy_pass_request_headers off",
    'proxy_set_header Content-Length ""',  # nginx says the visitor's, without the body
    "proxy_http_version 1.1",
    'proxy_set_header Connection ""',
    "proxy_set_header Host {bascule}",
    "proxy_set_header X-Original-URI $request_uri",
    "proxy_set_header X-Original-Method $request_method",
    "proxy_set_header Accept $http_accept",
    "proxy_set_header Cookie $bascule_cookie",
    "proxy_set_header X-Bascule-Bypass $http_x_bascule_bypass",
    # Whether the bypass cookie Bascule sets is Secure.
    "proxy_set_header X-Forwarded-Proto $bascule_proto",
    "proxy_connect_timeout {timeout}",
    "proxy_send_timeout {timeout}",
    "proxy_read_timeout {timeout}",
    # proxy_next_upstream keeps its default: a kept-alive connection Bascule had closed
    # is tried again on a new one (nginx counts no try for it), a timeout is not.
]
TO_APPLICATION = [
    "proxy_http_version 1.1",
    'proxy_set_header Connection ""',
    "proxy_set_header Host $http_host",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for",
    "proxy_set_header X-Forwarded-Proto $scheme",
    # The token is Bascule's business, not the application's (the gate drops it too).
    'proxy_set_header X-Bascule-Bypass ""',
]


def check_directory(directory: Path) -> None:
    """Refuse a directory that nginx's workers could not search, started as root (they
    run as nobody then): they would never see the switch, and never ask Bascule."""
    if os.geteuid() != 0:
        return  # the workers are the user who starts nginx
    for folder in [directory, *directory.parents]:
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            raise ValueError(
                f"nginx's workers (nobody, under root) cannot search {folder}, and would never"
                f" see the switch in {directory}: give a directory they can reach (chmod o+x"
                f" {folder}, or another place)"
            )


# The switch: flag files (see bascule.proxies.set_flags).
switch = set_flags


def write(recipe: Recipe, directory: Path) -> list[str]:
    """Write ``nginx.conf`` (and its temp directory) into ``directory``; the command."""
    values = recipe.values(directory)

    def block(lines: list[str]) -> str:
        return "\n".join(f"            {line.format(**values)};" for line in lines)

    (directory / "temp").mkdir(exist_ok=True)
    config = directory / "nginx.conf"
    config.write_text(
        TEMPLATE.format(
            **values,
            listen=address(recipe.listen_host, recipe.listen_port),
            check=CHECK,
            token=TOKEN_PARAM,
            to_bascule=block(TO_BASCULE),
            to_application=block(TO_APPLICATION),
        )
    )
    return ["nginx", "-p", str(directory), "-c", str(config), "-g", "daemon off;"]
