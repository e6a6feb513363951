# lvs-director: every target installs what it needs on a fresh Debian machine.
# The netns and kernel tiers need root (network namespaces, a User-Mode-Linux guest).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the tiers and the demo use: ip/netns, modprobe for the UML guest,
# the reference tools (ipvsadm, keepalived and its genhash), real servers (nginx) and a
# headless browser for the status page's test (chromium and its WebDriver).
DEBS   := iproute2 kmod ipvsadm nginx keepalived procps nftables chromium chromium-driver
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install venv deps test test-unit test-netns test-kernel bench lint demo clean

install: venv deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

# All three tiers; each must run (no tier is skipped silently in CI).
test: test-unit test-netns test-kernel

# Hard limits per tier (the suite takes a few minutes): a hang fails fast, never eats CI.
test-unit: venv
	timeout 900 $(BIN)/python -m pytest tests/unit -q

test-netns: venv deps
	$(SUDO) timeout 1800 $(BIN)/python -m pytest tests/netns -v

test-kernel: venv deps
	$(SUDO) $(BIN)/python tests/kernel/uml.py

# Host benchmarks, then the kernel ones (ours vs ipvsadm-restore) in the UML guest.
bench: venv deps
	$(SUDO) $(BIN)/python -m pytest tests/bench -s -q
	$(SUDO) $(BIN)/python tests/kernel/uml.py --uml-max-map-count 262144 \
		tests/bench/test_kernel_bench.py tests/bench/test_reload_bench.py -s -v

lint: venv
	$(BIN)/ruff check .

# The LVS-DR pair end to end in a User-Mode-Linux guest (root: the guest's namespaces).
demo: venv deps
	$(SUDO) $(BIN)/python -m director.demo

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
