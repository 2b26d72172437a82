"""Caddy in front of the application, asking Bascule before proxying the requests the
switch names.

The switch is a flag file per kind of request in ``switch/``, that ``file`` matchers
look for (a stat, no network call): ``all`` (every request) and ``writes`` (any method
but GET, HEAD and OPTIONS). Maintenance off, neither exists and requests go straight to
the application, but for one whose query holds a bypass token (Bascule takes it out of
the URL); read-only, ``writes`` exists; on, both.

The question is ``forward_auth`` written out as the ``reverse_proxy`` it stands for
(``forward_auth`` puts its own 2xx handler first, and Caddy 2.6's ``copy_headers``
leaves a literal placeholder where Bascule sends no header): a bodiless GET of
``/rest/v1/gate`` with the visitor's headers plus ``X-Forwarded-Method`` and
``X-Forwarded-Uri``. A 2xx goes on to the application, ``X-Bascule-Bypassed`` (when
Bascule names a bypass token) set on the application's request and on the visitor's
answer; any other answer (the 503 page or envelope, the 303 that sets the bypass
cookie) is the visitor's as it is. Fail open: Bascule refusing the connection, or not
answering within the recipe's timeout, is an error that ``handle_errors`` answers with
the application, unless the request had passed (the application's own failure, then).
"""

from __future__ import annotations

from pathlib import Path

from bascule.proxies import TOKEN_PARAM, Recipe, set_flags

TEMPLATE = """\
# Written by `bascule proxy-config caddy`: while maintenance is on, requests ask Bascule
# at {bascule_url} whether they go to the application at {upstream_url} (the switch in
# {dir}/switch, kept by `bascule proxy-follow`); Bascule silent or slow (more than
# {timeout}) lets them through.
{{
	# No admin endpoint (a system Caddy may hold :2019), no certificates to get.
	admin off
	auto_https off
	storage file_system {dir}/data
}}

# Ask Bascule; let through, to the application.
(bascule_asks) {{
	reverse_proxy {bascule} {{
		method GET
		# The "?" drops the visitor's query, which Bascule reads in X-Forwarded-Uri
		# (a visitor's own ?deny= must not reach the decision endpoint).
		rewrite {decision}?
		header_up X-Forwarded-Method {{method}}
		header_up X-Forwarded-Uri {{uri}}
		# Caddy listens on plain HTTP: https can only be a TLS terminator's word in
		# front, which Bascule believes for one thing, a Secure bypass cookie.
		header_up X-Forwarded-Proto {{http.request.header.X-Forwarded-Proto}}
		# Bascule reads X-Original-URI too: a visitor's own is not passed on.
		header_up -X-Original-URI
		header_up -X-Original-Method
		transport http {{
			dial_timeout {timeout}
			response_header_timeout {timeout}
			# Idle connections closed before uvicorn's 5 s closes them.
			keepalive 4s
		}}
		@bypassed {{
			status 2xx
			header X-Bascule-Bypassed *
		}}
		handle_response @bypassed {{
			request_header X-Bascule-Bypassed {{rp.header.X-Bascule-Bypassed}}
			header X-Bascule-Bypassed {{rp.header.X-Bascule-Bypassed}}
			vars bascule_passed yes
		}}
		@allowed status 2xx
		handle_response @allowed {{
			vars bascule_passed yes
		}}
		# Any other answer is copied to the visitor, status, headers and body.
	}}
	reverse_proxy {upstream} {{
{to_application}
	}}
}}

http://:{port} {{
	bind {host}
	# A bypass token in a URL is masked (Bascule takes it out with a 303; the first
	# request is logged as it came).
	log {{
		output file {dir}/access.log
		format filter {{
			wrap json
			fields {{
				request>uri query {{
					replace bascule-bypass *
				}}
				request>headers>Referer delete
			}}
		}}
	}}
	# Asked about: a request whose query holds a bypass token, and those the switch names.
	@token query {token}=*
	@asks_all file {{
		root {dir}/switch
		try_files /all
	}}
	@asks_writes {{
		not method GET HEAD OPTIONS
		file {{
			root {dir}/switch
			try_files /writes
		}}
	}}
	route {{
		# Only Bascule says a request used a bypass token.
		request_header -X-Bascule-Bypassed
		route @token {{
			import bascule_asks
		}}
		route @asks_all {{
			import bascule_asks
		}}
		route @asks_writes {{
			import bascule_asks
		}}
		# Not asked about: to the application, whose errors are its own.
		vars bascule_passed yes
		reverse_proxy {upstream} {{
{to_application}
		}}
	}}
	# Bascule unreachable or slow: the request was not let through, nor refused; it
	# goes to the application. An error once it had passed is the application's own.
	handle_errors {{
		@unasked not vars bascule_passed yes
		reverse_proxy @unasked {upstream} {{
{to_application}
		}}
	}}
}}
"""

TO_APPLICATION = [
    # The token is Bascule's business, not the application's (the gate drops it too).
    "header_up -X-Bascule-Bypass",
]


def write(recipe: Recipe, directory: Path) -> list[str]:
    """Write the ``Caddyfile`` (and Caddy's environment) into ``directory``; the command."""
    config = directory / "Caddyfile"
    config.write_text(
        TEMPLATE.format(
            **recipe.values(directory),
            host=recipe.listen_host,
            port=recipe.listen_port,
            token=TOKEN_PARAM,
            to_application="\n".join(f"\t\t\t{line}" for line in TO_APPLICATION),
        )
    )
    # `caddy run` saves the config it runs (autosave.json) under XDG_CONFIG_HOME, and
    # keeps its data under XDG_DATA_HOME: both here, not in the user's home.
    environment = directory / "caddy.env"
    environment.write_text(f"XDG_CONFIG_HOME={directory}/config\nXDG_DATA_HOME={directory}/data\n")
    return [
        "caddy",
        "run",
        "--config",
        str(config),
        "--adapter",
        "caddyfile",
        "--envfile",
        str(environment),
    ]


# The switch: flag files (see bascule.proxies.set_flags).
switch = set_flags
