# make demo                      the bundled demo smoke suite (starts its own demo service)
# make test                      the project's tests (needs postgresql, redis-server, rabbitmq-server)
# make smoke-tests ENV=prod      your smoke suite after a deploy, as in the seed's error recovery
SMOKE_CONFIG ?= .coditect/config/smoke-test-hook.json
ENV ?=
SMOKE_ARGS ?=
PYTEST ?= python -m pytest

.PHONY: demo test smoke-tests

demo:
	$(PYTEST) --smoke-config example_suites/demo/smoke-test-hook.json example_suites/demo

test:
	$(PYTEST)

smoke-tests:
	$(PYTEST) -p no:cacheprovider --smoke-config $(SMOKE_CONFIG) $(if $(ENV),--smoke-env $(ENV)) $(SMOKE_ARGS)
