# capaccess: PGXS build.  PG_CONFIG may be overridden: make PG_CONFIG=...

EXTENSION = capaccess
MODULE_big = capaccess
OBJS = \
	src/admin.o \
	src/capaccess.o \
	src/deadlock.o \
	src/fnv1a.o \
	src/gate.o \
	src/idle.o \
	src/json_api.o \
	src/monitor.o \
	src/peek.o \
	src/seq.o \
	src/slots.o \
	src/stats.o \
	src/table.o \
	src/update.o \
	src/verify.o \
	src/write.o
DATA = capaccess--1.0.sql capaccess--1.0--1.1.sql
PGFILEDESC = "capaccess - per-customer caps without lost updates"

# The library must be preloaded, so every suite runs against a temporary
# instance of its own, started with regress.conf (installcheck with PGXS
# cannot use the user's server for this).  Run them as a non-root user.
REGRESS = setup fnv1a api errors rollback prepare security verify parallel scope early_release dba_edits outside_writes ddl admin owner_context direct_write seq_blocks attack upgrade
REGRESS_OPTS = --encoding=UTF8 --no-locale --temp-instance=./tmp_check --temp-config=$(srcdir)/regress.conf

ISOLATION = gate_commit gate_abort gate_deadlock gate_isolation_levels gate_row_moves gate_early_release gate_outside_writes gate_slotless gate_own_row
ISOLATION_OPTS = --temp-instance=./tmp_check_iso --temp-config=$(srcdir)/regress.conf

TAP_TESTS = 1

EXTRA_CLEAN = tmp_check tmp_check_iso tmp_check_nopreload tmp_check_updated \
	output_iso output_nopreload output_updated \
	results regression.diffs regression.out log

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies; every object depends on this one.
$(OBJS): src/capaccess.h src/compat.h

# Formatting (pg_bsd_indent with pgindent's options), static analysis, and a
# release archive of what an install needs (see .gitattributes).
.PHONY: format format-check lint dist
format:
	scripts/format
format-check:
	scripts/format --check
lint:
	scripts/lint
DIST_VERSION = $(shell sed -n 's/.*"version": "\([0-9.]*\)".*/\1/p' META.json | head -1)
dist:
	git archive --format=tar.gz --prefix=capaccess-$(DIST_VERSION)/ \
		-o capaccess-$(DIST_VERSION).tar.gz HEAD
	@echo "wrote capaccess-$(DIST_VERSION).tar.gz"

# Each suite on its own, so that a test driver can count them separately.
.PHONY: check-regress check-nopreload check-isolation check-tap

check-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

# The functions without the preload: a second instance, default config.
check-nopreload:
	$(pg_regress_installcheck) --temp-instance=./tmp_check_nopreload \
		--outputdir=./output_nopreload not_preloaded

check-isolation:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)

# The same suite on an install updated from 1.0: setup_updated replaces
# setup.
.PHONY: check-regress-updated
check-regress-updated:
	$(pg_regress_installcheck) --encoding=UTF8 --no-locale \
		--temp-instance=./tmp_check_updated --temp-config=$(srcdir)/regress.conf \
		--outputdir=./output_updated setup_updated $(filter-out setup,$(REGRESS))

check-tap:
	$(prove_installcheck)

# pg_upgrade to this server from an older one, both with capaccess
# installed: make check-pg-upgrade CAPACCESS_OLD_PG_CONFIG=/path/to/pg_config
.PHONY: check-pg-upgrade
check-pg-upgrade: PROVE_TESTS = t/upgrade/*.pl
export CAPACCESS_OLD_PG_CONFIG
check-pg-upgrade:
	$(prove_installcheck)
