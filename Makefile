# One entry per habit; the README and .ci/run use these same commands.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve check test lint docs screenshots bench system-packages image image-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installed again whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The spec linters, the TypeScript client generator and the console's linters, exactly as
# package-lock.json pins them.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Debian packages the tests need: Chromium for the browser tests, a Java runtime for
# OpenAPI Generator, valgrind for the instruction counts, wrk for the benchmark, nginx,
# Caddy and HAProxy for the proxy recipes (Envoy and Traefik come from PyPI), libfaketime
# for hosts whose clocks disagree, Prometheus (and promtool) for /metrics, Alertmanager for
# the silence kept during maintenance; and those of the image (below). Installed only when
# missing.
system-packages: image-packages
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v callgrind_annotate >/dev/null || missing="$$missing valgrind"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	[ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	[ -x /usr/bin/caddy ] || missing="$$missing caddy"; \
	[ -x /usr/sbin/haproxy ] || missing="$$missing haproxy"; \
	[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing="$$missing faketime"; \
	[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || missing="$$missing prometheus"; \
	[ -x /usr/bin/prometheus-alertmanager ] || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# What builds and runs the image: podman (with runc: crun fails on these hosts),
# mmdebstrap for its Debian base, and systemd-nspawn, which boots the systemd unit in tests.
image-packages:
	@missing=""; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	command -v mmdebstrap >/dev/null || missing="$$missing mmdebstrap"; \
	[ -x /usr/sbin/runc ] || missing="$$missing runc"; \
	command -v systemd-nspawn >/dev/null || missing="$$missing systemd-container"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The container image (docs/deployment.md), saved to $(OUT)/image/ for `podman load`.
image: image-packages | $(BIN)/python
	$(BIN)/python deploy/image.py --output $(OUT)/image

serve: $(VENV)/.installed
	$(BIN)/bascule serve

# The fast default: every test that needs no browser, JVM, Node.js, valgrind or podman.
check: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 -m "not browser and not jvm and not node and not valgrind and not slow and not image"

# The whole suite, as CI runs it.
test: system-packages $(VENV)/.installed-test node_modules/.installed
	mkdir -p $(OUT)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --junitxml=$(OUT)/junit.xml

# The console's modules and the banner's script: prettier's format, and tsc's types as
# jsconfig.json sets them.
CONSOLE_JS := bascule/console/*.js
BANNER_JS := bascule/banner/*.js

lint: $(VENV)/.installed-test node_modules/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/cog --check --check-fail-msg 'run `make docs`' -I . docs/cli.md docs/deployment.md
	node_modules/.bin/prettier --check $(CONSOLE_JS) $(BANNER_JS) jsconfig.json
	node_modules/.bin/tsc --project jsconfig.json

# The generated parts of docs/cli.md and docs/deployment.md, rendered by docs/reference.py.
docs: $(VENV)/.installed-test
	$(BIN)/cog -r -I . docs/cli.md docs/deployment.md

# The pictures docs/ shows, as the last `make test` took them.
screenshots:
	cp $(OUT)/screenshots/docs/*.png docs/screenshots/

# The benchmark (bench/README.md): about 6 minutes, writes bench/RESULTS.md; wrk, from
# Debian's packages, drives the load.
bench: system-packages $(VENV)/.installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)
