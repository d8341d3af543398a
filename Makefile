# tusk: PGXS build of a C++17 PostgreSQL extension.
#   make / make install   build and install (PG_CONFIG picks the server, default PostgreSQL 15)
#   make test             install what is missing, build, install, run every test
#   make demo             a private server showing a slow query become a cache hit
#   make bench            throughput and speedup figures, printed as ratios

EXTENSION = tusk
EXTVERSION = 0.2.0
MODULE_big = tusk
OBJS = \
	src/tusk.o \
	src/l1_cache.o \
	src/l2_cache.o \
	src/l3_cache.o \
	src/l3_queue.o \
	src/pending.o \
	src/invalidation.o \
	src/single_flight.o \
	src/fingerprint.o \
	src/query_runner.o \
	src/cache_functions.o \
	src/metrics.o \
	src/metric_functions.o \
	src/worker.o \
	src/alerts.o \
	src/traces.o \
	src/prepared.o \
	src/row_stream.o \
	src/batch_insert.o \
	src/benchmark.o \
	src/core/l1_store.o \
	src/core/ttl.o \
	src/core/dependency_clock.o \
	src/core/cache_key.o \
	src/core/circuit_breaker.o \
	src/core/l2_format.o \
	src/core/plain_json.o \
	src/core/histogram.o \
	src/core/metric_registry.o \
	src/core/redis_client.o
DATA = sql/tusk--$(EXTVERSION).sql sql/tusk--0.1.0.sql sql/tusk--0.1.0--0.2.0.sql

REGRESS = tusk_setup tusk_cached tusk_invalidation tusk_errors tusk_transactions tusk_privileges tusk_large tusk_l3 tusk_metrics tusk_traces tusk_query tusk_batch_insert tusk_benchmark
# Run by make test only, which points the instance at its throwaway Redis.
REGRESS_REDIS = tusk_l2
REGRESS_OPTS = --temp-instance=regress_instance --temp-config=test/regress.conf
EXTRA_CLEAN = regress_instance results regression.diffs regression.out test/unit/tusk_unit

PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
PG_CPPFLAGS = -Isrc
PG_CXXFLAGS = -std=c++17 -Wno-register
SHLIB_LINK += -lhiredis -lxxhash -lstdc++

# Debian's server is built with LLVM; its bitcode rule would compile C++ without -std=c++17.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
else
all install installcheck:
	@echo "PostgreSQL server headers not found ($(PG_CONFIG)); 'make test' installs them." >&2
	@exit 1
endif

# PGXS tracks no header dependencies: rebuild every object when any header changes.
$(OBJS): $(wildcard src/*.hpp src/core/*.hpp)

test:
	@bash test/run-tests.sh

demo:
	@bash test/demo.sh

bench:
	@bash test/bench.sh && bash test/bench_invalidation.sh

.PHONY: test demo bench
