# SPDX-License-Identifier: GPL-2.0-only
# vblkd: build, tests, demo, benchmarks, install.  Plain GNU make; `make help` lists the targets.

VERSION := 0.1.0

# ---------------------------------------------------------------------------
# Tools and options (all overridable on the command line)
# ---------------------------------------------------------------------------
CROSS_COMPILE ?=
ifeq ($(origin CC),default)
CC := $(CROSS_COMPILE)gcc
endif
ifeq ($(origin AR),default)
AR := $(CROSS_COMPILE)ar
endif
ifneq ($(CROSS_COMPILE),)
PKG_CONFIG ?= $(CROSS_COMPILE)pkg-config
else
PKG_CONFIG ?= pkg-config
endif
CLANG ?= clang
INSTALL ?= install

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

SANITIZE ?= 0
# ThreadSanitizer instead (make check-tsan sets it): build/tsan.
TSAN ?= 0
WERROR ?= 1
V ?= 0
# Seconds each fuzz target runs in `make check` and in `make fuzz`.
FUZZ_CHECK_TIME ?= 20
FUZZ_TIME ?= 300

ifeq ($(TSAN),1)
BUILD ?= build/tsan
else ifeq ($(SANITIZE),1)
BUILD ?= build/sanitize
else
BUILD ?= build/default
endif

ifeq ($(V),1)
Q :=
quiet = @true
else
Q := @
quiet = @printf '  %-7s %s\n'
endif

# ---------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------
CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes -Wshadow \
	-Wswitch-enum -Wundef -Wwrite-strings -Wno-unused-parameter
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Iinclude -MMD -MP $(WARNINGS) \
	-DVBLKD_VERSION='"$(VERSION)"'
SAN_FLAGS :=
ifeq ($(SANITIZE),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
# -Wno-tsan: TSan does not model atomic_thread_fence(); the fences order vblkd's accesses to
# rings in guest memory against the guest's (another process, which TSan cannot see anyway).
ifeq ($(TSAN),1)
SAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan
endif
ALL_CFLAGS = $(BASE_CFLAGS) $(SAN_FLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

# Libraries through pkg-config; libaio ships no .pc file, so it is named directly.
XEN_PKGS := xencontrol xenforeignmemory xenevtchn xenstore xendevicemodel xengnttab
pkg_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pkg_libs = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null || echo __missing_$(1))
XEN_CFLAGS := $(call pkg_cflags,$(XEN_PKGS))
XEN_LIBS := $(call pkg_libs,$(XEN_PKGS))
URING_CFLAGS := $(call pkg_cflags,liburing)
URING_LIBS := $(call pkg_libs,liburing)
AIO_LIBS ?= $(shell $(PKG_CONFIG) --libs libaio 2>/dev/null || echo -laio)
JSONC_CFLAGS := $(call pkg_cflags,json-c)
JSONC_LIBS := $(call pkg_libs,json-c)
CMOCKA_CFLAGS := $(call pkg_cflags,cmocka)
CMOCKA_LIBS := $(call pkg_libs,cmocka)
# Libraries of the Xen-independent core (virtio, block engines, loop, log, status output).
CORE_LIBS = $(JSONC_LIBS) $(URING_LIBS) $(AIO_LIBS) -lpthread

# ---------------------------------------------------------------------------
# Sources, discovered by directory: a new module needs no Makefile change.
#   src/core, src/virtio, src/blk -> libvblkd-core.a (no Xen)
#   src/xen, src/*.c but main.c    -> libvblkd-xen.a  (the only code calling libxen*, and the wiring)
#   src/main.c                     -> vblkd (real libxen*) and vblkd-sim (tests/sim/libxensim)
#   tests/unit/test-*.c            -> one CMocka binary per module, linked with the core
#   tests/fuzz/fuzz-*.c            -> libFuzzer targets (clang), corpus in tests/fuzz/corpus/<name>/
#   tests/shell/test-*.sh          -> whole-program tests run by make check (BUILD= names the build)
# ---------------------------------------------------------------------------
CORE_SRCS := $(sort $(wildcard src/core/*.c src/virtio/*.c src/blk/*.c src/vhost/*.c))
# The daemon's wiring (src/*.c but main.c) goes with the Xen side: it is what vblkd-sim tests.
# The kernel's privcmd eventfd ioctls (include/xpriv.h): raw ioctl() for vblkd only; vblkd-sim gets
# libxensim's stand-in, which asks the simulator.
XPRIV_SRCS := $(wildcard src/xen/xpriv-*.c)
XEN_SRCS := $(sort $(filter-out $(XPRIV_SRCS),$(wildcard src/xen/*.c)) \
	$(filter-out src/main.c,$(wildcard src/*.c)))
MAIN_SRC := src/main.c
SIMLIB_SRCS := $(sort $(wildcard tests/sim/libxensim/*.c))
SIMTOOL_SRCS := $(sort $(wildcard tests/sim/xensim/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/test-*.c))
# Unit tests of src/xen modules (test-<module> for src/xen/<module>.c) need the Xen headers and
# libraries; those of src/core, src/virtio and src/blk must build without them.
XEN_UNIT_SRCS := $(filter $(patsubst src/xen/%.c,tests/unit/test-%.c,$(wildcard src/xen/*.c)),$(UNIT_SRCS))
CORE_UNIT_SRCS := $(filter-out $(XEN_UNIT_SRCS),$(UNIT_SRCS))
SIMTEST_SRCS := $(sort $(wildcard tests/sim/test-*.c))
TESTLIB_SRCS := $(sort $(wildcard tests/lib/*.c))
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz-*.c))
# Shell tests: whole-program checks (install, service unit, end to end); exit 77 = skipped.
SH_TESTS := $(sort $(wildcard tests/shell/test-*.sh))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CORE_OBJS := $(call obj,$(CORE_SRCS))
XEN_OBJS := $(call obj,$(XEN_SRCS))
MAIN_OBJ := $(call obj,$(MAIN_SRC))
XPRIV_OBJS := $(call obj,$(XPRIV_SRCS))
SIMLIB_OBJS := $(call obj,$(SIMLIB_SRCS))
SIMTOOL_OBJS := $(call obj,$(SIMTOOL_SRCS))
TESTLIB_OBJS := $(call obj,$(TESTLIB_SRCS))

CORE_LIB := $(BUILD)/libvblkd-core.a
XEN_LIB := $(BUILD)/libvblkd-xen.a
SIM_LIB := $(BUILD)/libxensim.a
TESTLIB := $(BUILD)/libvblkd-test.a

VBLKD := $(BUILD)/vblkd
VBLKD_SIM := $(BUILD)/vblkd-sim
XENSIM := $(BUILD)/xensim
# A vhost-user-blk front end (load generator, reconnect checker): no project code, libc only.
VU_LOAD := $(BUILD)/vu-load
# make bench's measure of how long the machine itself stopped running (libc only).
STALL_PROBE := $(BUILD)/stall-probe
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
XEN_UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(XEN_UNIT_SRCS))
CORE_UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(CORE_UNIT_SRCS))
SIMTEST_BINS := $(patsubst tests/sim/%.c,$(BUILD)/tests/%,$(SIMTEST_SRCS))
TEST_BINS := $(UNIT_BINS) $(SIMTEST_BINS)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))

# Per-test extra link flags, e.g. failure injection:
#   LDFLAGS_test-blk-aio := -Wl,--wrap=io_submit
# (add such lines in the section "Per-module additions" below).

.PHONY: all check check-unit check-fuzz demo bench fuzz install uninstall clean deps help pkgcheck \
	pkgcheck-core unit-core
.DEFAULT_GOAL := all

all: $(CORE_LIB) $(XEN_LIB) $(VBLKD) $(VBLKD_SIM) $(XENSIM) $(VU_LOAD) $(STALL_PROBE) $(TEST_BINS)

help:
	@echo 'Targets:'
	@echo '  all        build vblkd, vblkd-sim, the simulator and the tests (default)'
	@echo '  check      install missing packages, build, run every test (SANITIZE=1 for ASan+UBSan)'
	@echo '  check-tsan the IO thread tests under ThreadSanitizer (build/tsan; part of check)'
	@echo '  demo       install missing packages, run vblkd on the built-in Xen simulator'
	@echo '  bench      vblkd on the simulator beside raw fio, over vhost-user beside qemu-storage-daemon'
	@echo '  fuzz       run each libFuzzer target for FUZZ_TIME seconds (default $(FUZZ_TIME))'
	@echo '  install    install to DESTDIR/PREFIX (default $(PREFIX)); uninstall removes it'
	@echo '  deb        build/deb/vblkd_$(VERSION)_<arch>.deb (deb-arm64: cross-built for arm64)'
	@echo '  clean      remove build/'
	@echo 'Options: V=1 (verbose) WERROR=0 SANITIZE=1 CROSS_COMPILE=aarch64-linux-gnu- CC= PKG_CONFIG='

# Fail early, naming the missing library, instead of with a linker error.
pkgcheck: pkgcheck-core
	@for p in $(XEN_PKGS); do \
		$(PKG_CONFIG) --exists $$p || { \
			echo "error: pkg-config cannot find '$$p'; run scripts/deps.sh build (as root) or set PKG_CONFIG_PATH" >&2; \
			exit 1; }; \
	done

# What the Xen-independent core (and its unit tests) needs.
pkgcheck-core:
	@for p in liburing json-c; do \
		$(PKG_CONFIG) --exists $$p || { \
			echo "error: pkg-config cannot find '$$p'; run scripts/deps.sh build (as root) or set PKG_CONFIG_PATH" >&2; \
			exit 1; }; \
	done

# ---------------------------------------------------------------------------
# Compile and link
# ---------------------------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(quiet) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) $(EXTRA_CFLAGS_$(<)) -c -o $@ $<

# Modules that include Xen or liburing headers get their cflags.
$(XEN_OBJS) $(XPRIV_OBJS) $(MAIN_OBJ) $(SIMLIB_OBJS) $(SIMTOOL_OBJS): CPPFLAGS += $(XEN_CFLAGS)
$(CORE_OBJS) $(XEN_OBJS) $(MAIN_OBJ): CPPFLAGS += $(URING_CFLAGS) $(JSONC_CFLAGS)
$(call obj,$(UNIT_SRCS) $(SIMTEST_SRCS) $(TESTLIB_SRCS)): CPPFLAGS += $(CMOCKA_CFLAGS) $(JSONC_CFLAGS)
$(call obj,$(XEN_UNIT_SRCS) $(SIMTEST_SRCS)): CPPFLAGS += $(XEN_CFLAGS)

%.a:
	@mkdir -p $(dir $@)
	$(quiet) AR $@
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(CORE_LIB): $(CORE_OBJS)
$(XEN_LIB): $(XEN_OBJS)
$(SIM_LIB): $(SIMLIB_OBJS)
$(TESTLIB): $(TESTLIB_OBJS)

$(BUILD)/vblkd: $(MAIN_OBJ) $(XPRIV_OBJS) $(XEN_LIB) $(CORE_LIB) | pkgcheck
	$(quiet) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(XEN_LIBS) $(CORE_LIBS)

# The same daemon objects, with the simulator standing in for libxen*.
$(BUILD)/vblkd-sim: $(MAIN_OBJ) $(XEN_LIB) $(CORE_LIB) $(SIM_LIB) | pkgcheck
	$(quiet) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CORE_LIBS)

$(BUILD)/xensim: $(SIMTOOL_OBJS) $(SIM_LIB) $(CORE_LIB) | pkgcheck
	$(quiet) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CORE_LIBS)

$(VU_LOAD): $(BUILD)/obj/tests/vhost/vu-load.o
	$(quiet) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

$(STALL_PROBE): $(BUILD)/obj/tests/bench/stall-probe.o
	$(quiet) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -pthread

# Unit tests of src/core, src/virtio and src/blk: the core alone, no Xen (tests/shell/test-core-without-xen.sh).
$(CORE_UNIT_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB) $(CORE_LIB) | pkgcheck-core
	@mkdir -p $(dir $@)
	$(quiet) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) $(LDFLAGS_$*) -o $@ $^ $(CMOCKA_LIBS) $(CORE_LIBS)

# Unit tests of src/xen modules that do not need a hypervisor (parsers, caches).
$(XEN_UNIT_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB) $(XEN_LIB) $(CORE_LIB) | pkgcheck
	@mkdir -p $(dir $@)
	$(quiet) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) $(LDFLAGS_$*) -o $@ $^ $(CMOCKA_LIBS) $(XEN_LIBS) $(CORE_LIBS)

unit-core: $(CORE_UNIT_BINS)

# Simulator tests link the simulated libxen* (and may use the daemon's Xen code).
$(SIMTEST_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/sim/%.o $(TESTLIB) $(XEN_LIB) $(SIM_LIB) $(CORE_LIB) | pkgcheck
	@mkdir -p $(dir $@)
	$(quiet) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) $(LDFLAGS_$*) -o $@ $^ $(CMOCKA_LIBS) $(CORE_LIBS)

# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------
# `make check` first installs whatever Debian packages are missing, then runs
# the build and the tests in a sub-make (so pkg-config sees the new packages).
check:
	$(Q)scripts/deps.sh check
	$(Q)$(MAKE) --no-print-directory check-run

.PHONY: check-run
check-run: all fuzz-build
	$(Q)BUILD=$(BUILD) MAKE="$(MAKE)" scripts/run-tests.sh $(TEST_BINS) \
		--sh $(SH_TESTS) --fuzz $(FUZZ_CHECK_TIME) $(FUZZ_BINS)
	$(Q)$(MAKE) --no-print-directory check-tsan

# ThreadSanitizer (issue 19, IO threads): the IO thread module's unit test, the end-to-end tests
# named *io_threads* (several guests on 2 and 3 IO threads: data, a guest destroyed mid-IO, a
# disk removed mid-IO, one guest's disks on two threads, --status) and the restart test on IO
# threads, with the daemon and the simulator built with -fsanitize=thread in build/tsan (the
# restart test: TSAN_RESTART_KILLS kills and SIGTERMs with 3 IO threads, each guest's two disks on
# two of them).  A race reported stops the daemon (halt_on_error, exit 66): the test sees it fail.
# No suppressions.
TSAN_BUILD := build/tsan
TSAN_TESTS := test-vblk test-iothread test-e2e test-restart
# Reports go to files too: a daemon killed by a test (restarts) leaves them there.
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 \
	log_path=$(abspath $(TSAN_BUILD))/tests/tsan-report"
TSAN_RESTART_KILLS ?= 10
.PHONY: check-tsan
check-tsan:
	$(Q)$(MAKE) --no-print-directory TSAN=1 BUILD=$(TSAN_BUILD) \
		$(addprefix $(TSAN_BUILD)/tests/,$(TSAN_TESTS))
	$(Q)echo '  TSAN    test-vblk (lanes), test-iothread, test-e2e *io_threads*, test-restart (io threads)'
	$(Q)rm -f $(TSAN_BUILD)/tests/tsan-report.*
	$(Q)cd $(TSAN_BUILD)/tests && $(TSAN_ENV) ./test-vblk >test-vblk.log 2>&1 || \
		{ cat test-vblk.log; exit 1; }
	$(Q)cd $(TSAN_BUILD)/tests && $(TSAN_ENV) ./test-iothread >test-iothread.log 2>&1 || \
		{ cat test-iothread.log; exit 1; }
	$(Q)cd $(TSAN_BUILD)/tests && $(TSAN_ENV) E2E_FILTER='*io_threads*' ./test-e2e \
		>test-e2e.log 2>&1 || { cat test-e2e.log; exit 1; }
	$(Q)cd $(TSAN_BUILD)/tests && $(TSAN_ENV) RESTART_KILLS=$(TSAN_RESTART_KILLS) RESTART_IO_THREADS=3 \
		RESTART_GUEST_THREADS=2 \
		./test-restart \
		>test-restart.log 2>&1 || { cat test-restart.log; exit 1; }
	$(Q)if ls $(TSAN_BUILD)/tests/tsan-report.* >/dev/null 2>&1; then \
		cat $(TSAN_BUILD)/tests/tsan-report.*; echo 'ThreadSanitizer reported races'; exit 1; fi
	$(Q)grep -h 'PASSED\|FAILED' $(addprefix $(TSAN_BUILD)/tests/,$(addsuffix .log,$(TSAN_TESTS)))

# libFuzzer targets: the core is rebuilt with clang and coverage instrumentation.
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Iinclude -O1 -g -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined $(URING_CFLAGS) $(JSONC_CFLAGS)
FUZZ_CORE_OBJS := $(patsubst %.c,build/fuzz/obj/%.o,$(CORE_SRCS))

# Keep the instrumented objects between runs (make would delete them as intermediates).
.SECONDARY: $(FUZZ_CORE_OBJS)

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(quiet) CLANG $<
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

build/fuzz/%: tests/fuzz/%.c $(FUZZ_CORE_OBJS)
	@mkdir -p $(dir $@)
	$(quiet) FUZZLD $@
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(CORE_LIBS)

.PHONY: fuzz-build
fuzz-build: $(FUZZ_BINS)

check-fuzz: fuzz-build
	$(Q)scripts/run-tests.sh --fuzz $(FUZZ_CHECK_TIME) $(FUZZ_BINS)

fuzz:
	$(Q)scripts/deps.sh fuzz
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)scripts/run-tests.sh --fuzz $(FUZZ_TIME) $(FUZZ_BINS)

# ---------------------------------------------------------------------------
# Demo and benchmarks
# ---------------------------------------------------------------------------
demo:
	$(Q)scripts/deps.sh demo
	$(Q)$(MAKE) --no-print-directory demo-run

# Only what scripts/demo.sh runs: the demo profile of scripts/deps.sh has no test libraries
# (libcmocka-dev, clang), so building `all` would fail on a fresh machine.
# tests/shell/test-demo-build.sh builds this without them.
DEMO_BINS := $(XENSIM) $(VBLKD_SIM)

.PHONY: demo-build demo-run bench-run
demo-build: $(DEMO_BINS)

demo-run: demo-build
	$(Q)BUILD=$(BUILD) scripts/demo.sh

bench:
	$(Q)scripts/deps.sh bench
	$(Q)$(MAKE) --no-print-directory bench-run

# Like the demo: only the binaries scripts/bench.py runs (its profile has no test libraries).
# BENCH_ARGS: scripts/bench.py's options, e.g. BENCH_ARGS='--only vhost' (vhost-user beside
# qemu-storage-daemon alone; vblkd and tests/vhost/vu-load are built for those).
bench-run: $(DEMO_BINS) $(VBLKD) $(VU_LOAD) $(STALL_PROBE)
	$(Q)BUILD=$(BUILD) scripts/bench.sh $(BENCH_ARGS)

# ---------------------------------------------------------------------------
# Install
# ---------------------------------------------------------------------------
install: $(VBLKD)
	$(quiet) INSTALL $(DESTDIR)$(PREFIX)
	$(Q)$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR)
	$(Q)$(INSTALL) -m 0755 $(VBLKD) $(DESTDIR)$(SBINDIR)/vblkd
	$(Q)$(INSTALL) -m 0644 man/vblkd.8 $(DESTDIR)$(MANDIR)/man8/vblkd.8
	$(Q)sed 's|@SBINDIR@|$(SBINDIR)|g' systemd/vblkd.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/vblkd.service
	$(Q)chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/vblkd.service

uninstall:
	$(quiet) RM $(DESTDIR)$(PREFIX)
	$(Q)rm -f $(DESTDIR)$(SBINDIR)/vblkd $(DESTDIR)$(MANDIR)/man8/vblkd.8 \
		$(DESTDIR)$(SYSTEMDUNITDIR)/vblkd.service

deps:
	$(Q)scripts/deps.sh build

# ---------------------------------------------------------------------------
# Debian package (debian/, dpkg-buildpackage): build/deb/vblkd_$(VERSION)_<arch>.deb
# ---------------------------------------------------------------------------
# Built from a copy of the tree (scripts/build-deb.sh), without the tests; make check builds it
# again and runs lintian (tests/shell/test-deb.sh).  deb-arm64 cross-builds against check-xen's
# arm64 sysroot (downloaded once, about 70 MB, into VBLKD_XEN_CACHE).
.PHONY: deb deb-run deb-arm64 deb-arm64-run
deb:
	$(Q)scripts/deps.sh deb
	$(Q)$(MAKE) --no-print-directory deb-run

deb-run:
	$(Q)scripts/build-deb.sh build/deb

deb-arm64:
	$(Q)scripts/deps.sh deb xen
	$(Q)$(MAKE) --no-print-directory deb-arm64-run

deb-arm64-run:
	$(Q)tests/xen/fetch-arm64.sh
	$(Q)scripts/build-deb.sh --arch arm64 build/deb-arm64

clean:
	rm -rf build

# ---------------------------------------------------------------------------
# Real Xen on Arm under QEMU (issue 7): `make cross`, `make check-xen`
# ---------------------------------------------------------------------------
# Downloads and builds are cached in VBLKD_XEN_CACHE (default ~/.cache/vblkd-xen, outside the tree,
# so `make clean` keeps them); per-run output goes to build/xen.  See tests/xen/check-xen.sh.
#   make cross                      arm64 vblkd in build/arm64 against Debian 12's arm64 .debs
#   make cross XEN_RELEASE=13       the same against Debian 13's, in build/arm64-debian13
#   make check-xen                  vblkd on each stack of XEN_STACKS under qemu-system-aarch64:
#                                   12: Xen 4.17 + Debian 12 Dom0/DomU; 13: Xen 4.20 + Debian 13's;
#                                   13-xen: Xen 4.20 + Debian 13 with the kernel check-xen builds
#                                   (grant mappings, privcmd's fast path; issue 20)
#   make check-xen XEN_SELFTEST=1   the harness alone, with a xenstore-only fake backend
#   make check-xen XEN_SYSTEMD=0    without the second Dom0 (systemd, vblkd from make deb-arm64)
XEN_RELEASE ?= 12
export XEN_RELEASE
XEN_STACKS ?= 12 13 13-xen
XEN_CROSS_BUILD ?= build/arm64$(if $(filter 12,$(XEN_RELEASE)),,-debian$(XEN_RELEASE))
XEN_CROSS_COMPILE ?= aarch64-linux-gnu-
XEN_PKG_CONFIG := $(CURDIR)/tests/xen/arm64-pkg-config
XEN_SELFTEST ?= 0
XEN_SYSTEMD ?= 1
export XEN_SYSTEMD
XEN_CROSS_MAKE = $(MAKE) --no-print-directory BUILD=$(XEN_CROSS_BUILD) SANITIZE=0 \
	CROSS_COMPILE=$(XEN_CROSS_COMPILE) CC=$(XEN_CROSS_COMPILE)gcc AR=$(XEN_CROSS_COMPILE)ar \
	PKG_CONFIG=$(XEN_PKG_CONFIG)

# vhost-user-blk under QEMU (issue 21): Debian's qemu-system-x86 (TCG) and kernel against vblkd's
# --vhost-user exports.  The kernel is cached in VBLKD_VHOST_CACHE (default ~/.cache/vblkd-vhost);
# logs and images go to build/vhost.  See tests/vhost/check-vhost.sh.
.PHONY: check-vhost check-vhost-run
check-vhost:
	$(Q)scripts/deps.sh vhost build
	$(Q)$(MAKE) --no-print-directory check-vhost-run

check-vhost-run: $(VBLKD)
	$(Q)VBLKD=$(VBLKD) tests/vhost/check-vhost.sh

.PHONY: cross cross-run check-xen check-xen-run
cross:
	$(Q)scripts/deps.sh xen
	$(Q)$(MAKE) --no-print-directory cross-run

cross-run:
	$(Q)tests/xen/fetch-arm64.sh
	$(Q)$(XEN_CROSS_MAKE) $(XEN_CROSS_BUILD)/vblkd

check-xen:
	$(Q)scripts/deps.sh xen $(if $(filter 0,$(XEN_SYSTEMD)),,deb)
	$(Q)$(MAKE) --no-print-directory check-xen-run

# The systemd Dom0 (XEN_SYSTEMD=0 leaves it out) installs vblkd from `make deb-arm64`'s package.
check-xen-run:
ifeq ($(XEN_SELFTEST),1)
	$(Q)XEN_SELFTEST=1 tests/xen/check-xen.sh
else
	$(Q)$(MAKE) --no-print-directory cross-run
ifneq ($(XEN_SYSTEMD),0)
	$(Q)$(MAKE) --no-print-directory deb-arm64-run > build/deb-arm64.log 2>&1 || \
		{ tail -n 30 build/deb-arm64.log; echo 'make deb-arm64 failed (build/deb-arm64.log)'; exit 1; }
endif
	$(Q)$(if $(filter 13%,$(XEN_STACKS)),$(MAKE) --no-print-directory cross-run XEN_RELEASE=13 \
		XEN_CROSS_BUILD=build/arm64-debian13)
	$(Q)rc=0; for s in $(XEN_STACKS); do \
		case $$s in \
		12) env XEN_RELEASE=12 XEN_KERNEL=debian XEN_OUT=build/xen VBLKD=build/arm64/vblkd \
			VBLKD_DEB=$(CURDIR)/build/deb-arm64/vblkd_$(VERSION)_arm64.deb tests/xen/check-xen.sh || rc=1 ;; \
		13) env XEN_RELEASE=13 XEN_KERNEL=debian XEN_OUT=build/xen-debian13 \
			VBLKD=build/arm64-debian13/vblkd tests/xen/check-xen.sh || rc=1 ;; \
		13-xen) env XEN_RELEASE=13 XEN_KERNEL=xen XEN_OUT=build/xen-debian13-xen \
			VBLKD=build/arm64-debian13/vblkd tests/xen/check-xen.sh || rc=1 ;; \
		*) echo "XEN_STACKS: unknown stack $$s (12, 13, 13-xen)"; rc=1 ;; \
		esac; \
	done; exit $$rc
endif

# ---------------------------------------------------------------------------
# Per-module additions (extra link flags of single tests and the like)
# ---------------------------------------------------------------------------
# test-loop checks that loop_run() never polls with a timeout.
LDFLAGS_test-loop := -Wl,--wrap=epoll_wait
# Block layer: failures and short transfers injected around libaio and liburing.
# Its completions come from the ring in user space (blk-aio-ring.c): the injection wraps that too.
LDFLAGS_test-blk-aio := -Wl,--wrap=io_submit -Wl,--wrap=io_getevents -Wl,--wrap=io_setup \
	-Wl,--wrap=blk_aio_ring_getevents
EXTRA_CFLAGS_tests/unit/test-blk-aio.c := -Isrc/blk
# test-gmem: a PROT_NONE reservation that cannot be put back.
LDFLAGS_test-gmem := -Wl,--wrap=mmap
# test-virtio-dev: a host out of memory when a queue starts.
LDFLAGS_test-virtio-dev := -Wl,--wrap=calloc
LDFLAGS_test-blk-uring := -Wl,--wrap=io_uring_submit -Wl,--wrap=io_uring_peek_batch_cqe \
	-Wl,--wrap=io_uring_queue_init

# test-vq-journal: the journal built again with a hook at each barrier (a kill point), linked
# ahead of the core library so the library's own vq-journal.o is never pulled in.  Order-only:
# a change to its source or headers rebuilds the library too, which relinks the test.
VQ_JOURNAL_HOOK_OBJ := $(BUILD)/obj/test-hook/src/virtio/vq-journal.o
$(VQ_JOURNAL_HOOK_OBJ): src/virtio/vq-journal.c
	@mkdir -p $(dir $@)
	$(quiet) CC $@
	$(Q)$(CC) $(ALL_CFLAGS) -DVQ_JOURNAL_TEST_HOOK -c -o $@ $<
LDFLAGS_test-vq-journal := $(VQ_JOURNAL_HOOK_OBJ)
$(BUILD)/tests/test-vq-journal: | $(VQ_JOURNAL_HOOK_OBJ)

# test-daemon-record: the daemon's records module (src/daemon-record.h is the daemon's own header,
# not in include/).  It needs no Xen, only the device core it saves, so it is linked, ahead of the
# core library, into a core unit test.  Order-only, with the test's object depending on the
# module's: a change to the module rebuilds the test's object, which relinks the test.
DREC_OBJ := $(call obj,src/daemon-record.c)
EXTRA_CFLAGS_tests/unit/test-daemon-record.c := -Isrc
LDFLAGS_test-daemon-record := $(DREC_OBJ)
$(BUILD)/tests/test-daemon-record: | $(DREC_OBJ)
$(call obj,tests/unit/test-daemon-record.c): $(DREC_OBJ)

# test-disc: a refused xenstore write while a disk's state is answered.
LDFLAGS_test-disc := -Wl,--wrap=xs_write

# Simulator tests spawn the simulator process: they need it built and its path.
$(call obj,$(SIMTEST_SRCS)): CPPFLAGS += -DXENSIM_BIN='"$(abspath $(BUILD))/xensim"' \
	-DVBLKD_SIM_BIN='"$(abspath $(BUILD))/vblkd-sim"' $(JSONC_CFLAGS)
# End-to-end tests run the simulator and the daemon linked with it.
$(SIMTEST_BINS): | $(XENSIM) $(VBLKD_SIM)

-include $(shell find $(BUILD) build/fuzz -name '*.d' 2>/dev/null)
