# Prometheus from Debian for the dashboard test (tests/e2e/test_prometheus.py, pytest -m prometheus):
# a real Prometheus scrapes the scheduler and a `hami monitor`, then every PromQL expression of
# the Grafana dashboard is evaluated through its HTTP API.
#   prometheus-deps  installs Debian's `prometheus` package when root (only the binary is used:
#                    the test starts its own server on loopback; the package's service is not
#                    needed); as another user it only says what is missing and the test is
#                    skipped with that reason
PROMETHEUS_DEBS := prometheus

.PHONY: prometheus-deps
prometheus-deps:
	@missing=""; \
	for p in $(PROMETHEUS_DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "prometheus-deps: not root, so the Prometheus dashboard test will not run; missing Debian packages:$$missing (as root: make prometheus-deps)"; \
		exit 0; fi; \
	echo "prometheus-deps: installing$$missing (Debian packages for the dashboard test)"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null

TEST_DEPS += prometheus-deps
