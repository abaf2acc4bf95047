# Two commands do everything (see README): `make book` and `make test`. Each sets itself up.
SHELL := /bin/bash
PYTHON_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MATHJAX_VERSION := 3.2.2
MATHJAX := _build/mathjax_static/mathjax/tex-chtml.js
PROFILE = $(shell $(PY) -c "import diffusion_lite as dl; print(dl.profile())" 2>/dev/null || echo cpu)

.PHONY: book test unit notebooks book-build browser clean setup

# ---------------------------------------------------------------------------- set-up
$(VENV)/.book-deps: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.test-deps: $(VENV)/.book-deps requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

# MathJax 3 from the npm registry, copied into the build's static files: math renders offline.
$(MATHJAX):
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed once to fetch MathJax for offline math"; exit 1; }
	mkdir -p .cache/npm _build/mathjax_static
	npm install --silent --no-audit --no-fund --prefix .cache/npm mathjax@$(MATHJAX_VERSION)
	rm -rf _build/mathjax_static/mathjax
	cp -r .cache/npm/node_modules/mathjax/es5 _build/mathjax_static/mathjax

setup: $(VENV)/.test-deps $(MATHJAX)

# ---------------------------------------------------------------------------- the book
# Notebooks execute at build time (cached); a change of profile clears the execution cache.
book: $(VENV)/.book-deps $(MATHJAX)
	@mkdir -p _build; p="$(PROFILE)"; \
	if [ "$$(cat _build/.profile 2>/dev/null)" != "$$p" ]; then rm -rf _build/.jupyter_cache _build/html _build/jupyter_execute; fi; \
	echo "$$p" > _build/.profile; echo "Building the book with profile $$p"
	TQDM_DISABLE=1 $(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "The book is in _build/html/index.html"

# ---------------------------------------------------------------------------- the tests
# Unit tests and every notebook under nbval (smoke profile), then the book build with warnings
# as errors, then the built pages in headless Chromium.
test: $(VENV)/.test-deps $(MATHJAX)
	DL_PROFILE=smoke $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --ignore=tests/test_browser.py -q
	DL_PROFILE=smoke $(MAKE) --no-print-directory book
	DL_PROFILE=smoke $(PY) -m pytest tests/test_browser.py -q -rs

unit: $(VENV)/.test-deps
	DL_PROFILE=smoke $(PY) -m pytest tests --ignore=tests/test_browser.py -q

clean:
	rm -rf _build .cache
