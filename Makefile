# Two commands do everything (see README): `make book` and `make test`. Each sets itself up.
SHELL := /bin/bash
PYTHON_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MATHJAX_VERSION := 3.2.2
MATHJAX := _build/mathjax_static/mathjax/tex-chtml.js
PROFILE = $(shell $(PY) -c "import diffusion_lite as dl; print(dl.profile())" 2>/dev/null || echo cpu)

# Dependencies: by default the exact versions of the lock files, so that a notebook that ran here
# runs the same next year; DEPS=ranges installs the ranges of requirements*.txt instead (newest
# versions that fit). `make lock` regenerates the lock files from the ranges in a fresh venv.
DEPS ?= lock
ifeq ($(DEPS),ranges)
BOOK_REQS := requirements.txt
TEST_REQS := requirements-test.txt
else ifeq ($(DEPS),lock)
BOOK_REQS := requirements-lock.txt
TEST_REQS := requirements-test-lock.txt
else
$(error DEPS must be 'lock' or 'ranges', got '$(DEPS)')
endif
LOCK_VENV := .cache/lock-venv

.PHONY: book test unit notebooks book-build browser clean setup lock repo-url

# ---------------------------------------------------------------------------- set-up
$(VENV)/.book-deps-$(DEPS): $(BOOK_REQS) pyproject.toml
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(BOOK_REQS)
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.test-deps-$(DEPS): $(VENV)/.book-deps-$(DEPS) $(TEST_REQS)
	$(PY) -m pip install -q -r $(TEST_REQS)
	touch $@

# Exact versions: resolve the ranges in a fresh venv, book first, then the tests on top of it.
# Local version labels (torch's +cpu) are dropped: the same version installs from PyPI elsewhere.
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON_SYS) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q -r requirements.txt
	{ echo "# Exact versions for the book, resolved from requirements.txt by 'make lock' on $$(date -u +%F)"; \
	  echo "# with $$($(LOCK_VENV)/bin/python -V). Regenerate with 'make lock'; use the ranges with DEPS=ranges."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | sed -E 's/^([A-Za-z0-9_.-]+==[^+]+)\+.*/\1/'; \
	} > requirements-lock.txt
	$(LOCK_VENV)/bin/python -m pip install -q -r requirements-test.txt -c requirements-lock.txt
	{ echo "# Exact versions for the tests (the book's lock plus the test tools), from requirements-test.txt"; \
	  echo "# by 'make lock' on $$(date -u +%F) with $$($(LOCK_VENV)/bin/python -V)."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | sed -E 's/^([A-Za-z0-9_.-]+==[^+]+)\+.*/\1/'; \
	} > requirements-test-lock.txt
	rm -rf $(LOCK_VENV)
	@echo "Wrote requirements-lock.txt and requirements-test-lock.txt"

# The repository address is one setting, `repository: url:` in _config.yml; this copies it into
# every chapter's first cell (the install line a notebook opened on Colab runs).
repo-url:
	$(PY) tools/repo_url.py

# MathJax 3 from the npm registry, copied into the build's static files: math renders offline.
$(MATHJAX):
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed once to fetch MathJax for offline math"; exit 1; }
	mkdir -p .cache/npm _build/mathjax_static
	npm install --silent --no-audit --no-fund --prefix .cache/npm mathjax@$(MATHJAX_VERSION)
	rm -rf _build/mathjax_static/mathjax
	cp -r .cache/npm/node_modules/mathjax/es5 _build/mathjax_static/mathjax

setup: $(VENV)/.test-deps-$(DEPS) $(MATHJAX)

# ---------------------------------------------------------------------------- the book
# Notebooks execute at build time (cached); a change of profile clears the execution cache.
book: $(VENV)/.book-deps-$(DEPS) $(MATHJAX)
	@mkdir -p _build; p="$(PROFILE)"; \
	if [ "$$(cat _build/.profile 2>/dev/null)" != "$$p" ]; then rm -rf _build/.jupyter_cache _build/html _build/jupyter_execute; fi; \
	echo "$$p" > _build/.profile; echo "Building the book with profile $$p"
	TQDM_DISABLE=1 $(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "The book is in _build/html/index.html"

# ---------------------------------------------------------------------------- the tests
# Unit tests and every notebook under nbval (smoke profile), then the book build with warnings
# as errors, then the built pages in headless Chromium.
test: $(VENV)/.test-deps-$(DEPS) $(MATHJAX)
	DL_PROFILE=smoke $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --ignore=tests/test_browser.py -q
	DL_PROFILE=smoke $(MAKE) --no-print-directory book
	DL_PROFILE=smoke $(PY) -m pytest tests/test_browser.py -q -rs

unit: $(VENV)/.test-deps-$(DEPS)
	DL_PROFILE=smoke $(PY) -m pytest tests --ignore=tests/test_browser.py -q

clean:
	rm -rf _build .cache
