# Headless Chromium from Debian for the web UI's browser test (tests/e2e/test_webui_browser.py).
# Playwright drives this system browser; it never downloads one. A no-op when it is present.
CHROMIUM ?= /usr/bin/chromium

.PHONY: browser
TEST_DEPS += browser

browser:
	@test -x $(CHROMIUM) || { \
		echo "installing chromium (Debian package) for the browser test"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }
