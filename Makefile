# dmh set-up and entry points. `make test` and `make reproduce` first install what they need (once: a second call
# with pyproject.toml and constraints.txt unchanged skips the installs in seconds).
#
#   make / make install   .venv with dmh[dev] at the versions of constraints.txt, the data packages, Fashion-MNIST,
#                         the Debian training photographs of the released denoisers (data/photos/, dmh/photos.json)
#   make test             the test suite (TEST_PREFIX="unshare -n" runs it without network; PYTEST_ARGS="-k nets");
#                         installs Chromium + ChromeDriver first (apt) for the explorer's browser test
#   make test-long        the docs' long commands run to their end, the task networks' full test scores (~3 min)
#   make reproduce        the whole study at PRESET (cpu by default, or smoke; the paper scale runs with torchrun -m dmh.ddp)
#   make bench            the benchmarks
#   make mutate           mutation testing of the thin core against its fast tests (mutmut; bench/MUTATION.md)
#   make lab              JupyterLab on the notebooks (the explorer, 08, reads the last run's results/cpu/)
#   make lint             ruff
#   make clean            remove results/ ; make distclean also removes .venv

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Data packages (docs/DESIGN.md, "Splits"): their images are all dmh uses, so they are installed without their dependencies.
DATA_PKGS := sporco==0.2.2.post1 foolbox==3.3.4
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
FASHION_MNIST_DEB := dataset-fashion-mnist
PRESET ?= cpu
TEST_PREFIX ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := install
.PHONY: install data photos browser test test-long reproduce bench mutate lint lab clean distclean

install: $(STAMP) data photos

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install -c constraints.txt -e '.[dev]'
	$(PY) -m pip install --no-deps -c constraints.txt $(DATA_PKGS)
	touch $@

# Fashion-MNIST from Debian's package where apt is available (skipped if it, or $$DMH_FASHION_MNIST, is there);
# otherwise say what to do.
data:
	@if [ -d "$(FASHION_MNIST_DIR)" ] || [ -d "$${DMH_FASHION_MNIST:-}" ]; then \
		:; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory _data_hint; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(FASHION_MNIST_DEB)) \
			|| $(MAKE) --no-print-directory _data_hint; \
	elif sudo -n true 2>/dev/null; then \
		(sudo -n apt-get update && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y $(FASHION_MNIST_DEB)) \
			|| $(MAKE) --no-print-directory _data_hint; \
	else \
		$(MAKE) --no-print-directory _data_hint; \
	fi

# The released denoisers' training photographs: `apt-get download` of the packages in dmh/photos.json, checked by
# sha256, downscaled into data/photos/ (skipped in a second when done). Only `dmh train-denoiser` needs them: where
# apt is missing or fails, say so and go on.
photos: $(STAMP) data
	@$(PY) -m dmh.photos install || echo "make: the training photographs were not installed (only dmh train-denoiser needs them): see python -m dmh.photos install --help"

.PHONY: _data_hint
_data_hint:
	@echo "make: Fashion-MNIST is not installed ($(FASHION_MNIST_DIR) is missing) and could not be installed here."
	@echo "      On Debian/Ubuntu run:  sudo apt-get install $(FASHION_MNIST_DEB)"
	@echo "      or put the four idx .gz files in a folder and set DMH_FASHION_MNIST=<dir> (or pass that folder as the"
	@echo "      data root); torchvision's FashionMNIST(root, download=True) can fetch them where a network is available."

# Headless Chromium and its driver for the explorer's browser test (tests/test_browser.py), from Debian's packages
# like Fashion-MNIST; elsewhere install Chromium + ChromeDriver yourself (the test looks for `chromium` and
# `chromedriver` on PATH).
BROWSER_DEBS := chromium chromium-driver
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		:; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(BROWSER_DEBS)) \
			|| echo "make: could not install $(BROWSER_DEBS); the browser test will fail"; \
	elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		(sudo -n apt-get update && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y $(BROWSER_DEBS)) \
			|| echo "make: could not install $(BROWSER_DEBS); the browser test will fail"; \
	else \
		echo "make: install Chromium and ChromeDriver (Debian: apt-get install $(BROWSER_DEBS)) for the browser test"; \
	fi

test: install browser
	$(TEST_PREFIX) $(PY) -m pytest $(PYTEST_ARGS)

# The checks of a minute or so outside the suite (tests marked `long`): the docs' long commands run as written to
# their end, the kept task networks' scores on their whole test sets.
test-long: install
	$(TEST_PREFIX) $(PY) -m pytest -m long $(PYTEST_ARGS)

reproduce: install
	$(VENV)/bin/dmh reproduce --preset $(PRESET)

bench: install
	$(PY) bench/run.py

# Mutation testing (mutmut, [tool.mutmut] in pyproject.toml: the core modules against their fast tests), caches off so
# that every mutant recomputes; one thread per mutant, a mutant per core. mutmut runs the tests in its copy of dmh/
# (mutants/), so the released weights are pointed to where they are. The score and the survivors: bench/MUTATION.md.
# mutmut forks each mutant's test run; a forked child can wait forever on a lock copied from the parent, which mutmut
# reports as a timeout: bench/mutation.py runs every timeout again without the fork before it scores.
mutate: install
	rm -rf mutants
	t0=$$(date +%s); DMH_CACHE=off DMH_PRETRAINED=$(CURDIR)/data/pretrained OMP_NUM_THREADS=1 \
		$(VENV)/bin/mutmut run --max-children $$(nproc); \
		$(PY) bench/mutation.py $$(( $$(date +%s) - t0 ))

# JupyterLab on the notebooks; their parameters cells read results/cpu/ (the last `make reproduce`).
# As root (common in containers) JupyterLab refuses to start without --allow-root: it is added then.
lab: install
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 $$([ "$$(id -u)" = 0 ] && echo --allow-root)

lint: install
	$(VENV)/bin/ruff check dmh tests bench hubconf.py

clean:
	rm -rf results

distclean: clean
	rm -rf $(VENV)
