# mxgate — plain Makefile. `make` builds build/mxgate; `make SAN=1` builds
# the AddressSanitizer+UBSan variant in build-san/; `make check` runs the
# whole test suite against the sanitizer build.

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS = libevent libevent_openssl libevent_pthreads openssl libcares libpsl inih \
	sqlite3 libxml-2.0 zlib libzip

ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT = -O1
else
BUILD ?= build
SANFLAGS =
OPT = -O2
endif

CPPFLAGS += -I. -D_GNU_SOURCE
CFLAGS += -std=c11 -g $(OPT) -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-Wformat=2 -Wstrict-prototypes $(SANFLAGS) $(shell $(PKG_CONFIG) --cflags $(PKGS))
LDFLAGS += $(SANFLAGS)
LDLIBS += $(shell $(PKG_CONFIG) --libs $(PKGS)) -lpthread \
	$(shell $(PKG_CONFIG) --libs libcrypt)

LIB_SRCS = \
	lib/buf.c \
	lib/log.c \
	lib/id.c \
	lib/fsutil.c \
	lib/dns.c \
	lib/dns_cache.c \
	lib/cidr.c \
	lib/metrics.c \
	smtp/command.c \
	smtp/path.c \
	smtp/datastream.c \
	smtp/session.c \
	smtp/session_cmd.c \
	smtp/session_auth.c \
	smtp/sasl.c \
	smtp/tls.c \
	smtp/client.c \
	smtp/message.c \
	smtp/mime.c \
	smtp/reply.c \
	smtp/address.c \
	auth/spf.c \
	auth/spf_macro.c \
	auth/spf_record.c \
	auth/spf_header.c \
	auth/spf_query.c \
	auth/dkim.c \
	auth/dkim_canon.c \
	auth/dkim_tags.c \
	auth/dkim_sign.c \
	auth/dkim_key.c \
	auth/dkim_keycache.c \
	auth/authres.c \
	auth/orgdomain.c \
	auth/dmarc_record.c \
	auth/dmarc.c \
	auth/dmarc_query.c \
	policy/received.c \
	policy/verdict.c \
	report/store.c \
	report/store_import.c \
	report/recorder.c \
	report/aggregate.c \
	report/aggregate_mail.c \
	report/import.c \
	report/import_xml.c \
	report/import_mime.c \
	report/send.c \
	queue/envelope.c \
	queue/dsn.c \
	queue/spool.c \
	queue/spool_hold.c \
	queue/commit.c \
	queue/scheduler.c \
	queue/delivery.c \
	queue/mxlookup.c \
	gateway/config.c \
	gateway/config_parse.c \
	gateway/config_policy.c \
	gateway/config_outbound.c \
	gateway/config_report.c \
	gateway/inbound.c \
	gateway/inbound_dmarc.c \
	gateway/outbound.c \
	gateway/listener.c \
	gateway/authdb.c \
	gateway/authdb_check.c \
	gateway/auth.c \
	gateway/usercmd.c \
	gateway/daemon.c \
	gateway/reporting.c \
	gateway/check.c \
	gateway/dkimcmd.c \
	gateway/quarantine.c \
	gateway/spoolcli.c \
	gateway/queuecmd.c \
	gateway/reportcmd.c \
	gateway/dnscmd.c \
	gateway/dnscmd_spf.c \
	gateway/metrics_http.c \
	gateway/http_request.c

MAIN_SRCS = gateway/main.c

UNIT_TESTS = \
	test_buf \
	test_log \
	test_command \
	test_path \
	test_datastream \
	test_config \
	test_spool \
	test_commit \
	test_session \
	test_dns \
	test_metrics \
	test_mxlookup \
	test_spf \
	test_spf_conformance \
	test_message \
	test_dkim \
	test_address \
	test_received \
	test_dmarc \
	test_dmarc_conformance \
	test_verdict \
	test_sasl \
	test_authdb \
	test_dsn \
	test_report_store \
	test_report_aggregate \
	test_report_import \
	test_report_send \
	test_reply \
	test_mime \
	test_http_request

FUZZ_TARGETS = fuzz_command fuzz_datastream fuzz_path fuzz_envelope \
	fuzz_spf_record fuzz_spf_macro fuzz_message fuzz_dkim_tags \
	fuzz_dkim_canon fuzz_dkim_key fuzz_dmarc_record fuzz_from fuzz_received \
	fuzz_sasl fuzz_dsn fuzz_report_import fuzz_reply fuzz_mime fuzz_config \
	fuzz_http

LIB_OBJS = $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJS = $(MAIN_SRCS:%.c=$(BUILD)/%.o)
DEPS = $(LIB_OBJS:.o=.d) $(MAIN_OBJS:.o=.d)

.PHONY: all bench clean check check-unit check-integration fuzz install run san uninstall

all: $(BUILD)/mxgate

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libmxgate.a: $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/mxgate: $(MAIN_OBJS) $(BUILD)/libmxgate.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests (cmocka), one binary per module under test.
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libmxgate.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(shell $(PKG_CONFIG) --cflags cmocka yaml-0.1) -o $@ $^ \
		$(LDFLAGS) $(LDLIBS) $(shell $(PKG_CONFIG) --libs cmocka yaml-0.1)

unit-tests: $(addprefix $(BUILD)/tests/,$(UNIT_TESTS))

san:
	$(MAKE) SAN=1 all unit-tests

# The whole suite: sanitizer build, unit tests, integration tests, a short
# fuzz run when clang is present. Ends with "N passed, N failed".
check:
	$(MAKE) SAN=1 all unit-tests
	$(MAKE) all	# the plain build, for the valgrind leak test
	MXGATE_BUILD=build-san tests/run-all.sh

check-unit:
	$(MAKE) SAN=1 all unit-tests
	MXGATE_BUILD=build-san tests/run-all.sh unit

# libFuzzer targets (clang). `make fuzz-build` builds them into build-fuzz/
# (the library sources once, into build-fuzz/libfuzz.a); `make fuzz` builds
# them and runs each for a bounded time (tests/fuzz/run.sh: FUZZ_SECONDS per
# target, FUZZ_JOBS at once).
FUZZ_CC ?= clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
	$(shell $(PKG_CONFIG) --cflags $(PKGS))
FUZZ_LIBS = $(shell $(PKG_CONFIG) --libs openssl libpsl libxml-2.0 zlib \
	libzip libcares libevent inih libcrypt) -lpthread
FUZZ_LIB_SRCS = \
	lib/buf.c \
	lib/log.c \
	lib/id.c \
	lib/dns.c \
	lib/dns_cache.c \
	lib/metrics.c \
	lib/cidr.c \
	smtp/command.c \
	smtp/path.c \
	smtp/datastream.c \
	smtp/message.c \
	smtp/address.c \
	smtp/sasl.c \
	smtp/reply.c \
	smtp/mime.c \
	queue/envelope.c \
	queue/dsn.c \
	auth/spf.c \
	auth/spf_macro.c \
	auth/spf_record.c \
	auth/spf_header.c \
	auth/dkim.c \
	auth/dkim_canon.c \
	auth/dkim_tags.c \
	auth/dkim_sign.c \
	auth/dkim_key.c \
	auth/dkim_keycache.c \
	auth/dmarc_record.c \
	auth/dmarc.c \
	auth/orgdomain.c \
	policy/received.c \
	report/import.c \
	report/import_xml.c \
	report/import_mime.c \
	gateway/config.c \
	gateway/config_parse.c \
	gateway/config_policy.c \
	gateway/config_outbound.c \
	gateway/config_report.c \
	gateway/authdb.c \
	gateway/http_request.c
FUZZ_OBJS = $(FUZZ_LIB_SRCS:%.c=build-fuzz/obj/%.o)

.PHONY: fuzz-build
fuzz-build: $(addprefix build-fuzz/,$(FUZZ_TARGETS))

fuzz: fuzz-build
	tests/fuzz/run.sh

build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -MMD -MP -c -o $@ $<

build-fuzz/libfuzz.a: $(FUZZ_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

# a target links only the library objects it needs
build-fuzz/%: tests/fuzz/%.c build-fuzz/libfuzz.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -MMD -MP -MF build-fuzz/obj/$*.d -MT $@ \
		-o $@ $< build-fuzz/libfuzz.a $(FUZZ_LIBS)

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_TARGETS:%=build-fuzz/obj/%.d)

# Benchmarks (timings, never pass/fail): see tests/bench/ and BENCHMARKS.md.
$(BUILD)/bench_%: tests/bench/bench_%.c $(BUILD)/libmxgate.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# The SMTP load generator (libevent only; the scenarios and commit.sh use it).
$(BUILD)/smtpload: tests/bench/smtpload.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) $(LDLIBS) -lm

# The scenarios of issue 10 against the plain build (tests/bench/run.sh
# builds build/mxgate and build/smtpload itself, whatever SAN says): small
# defaults, BENCH_* variables for bigger runs; results and the filled-in
# table go to build/bench-results/<time>/. BENCH_MICRO=1 adds spf.sh,
# dkim.sh and commit.sh.
bench:
	tests/bench/run.sh

run: all
	tests/tools/demo.sh $(BUILD)/mxgate etc/mxgate.ini

# `make install` builds build/mxgate and installs it with the systemd unit
# (its binary path following PREFIX), the man pages, the DMARC report
# schema and the example configuration; /etc/mxgate/mxgate.ini itself is
# never written. INSTALL_BIN=path installs that binary as it is, without
# building (a binary built elsewhere, or the test suite's).
INSTALL_BIN ?=
UNITDIR ?= /lib/systemd/system
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/mxgate

install: $(if $(INSTALL_BIN),,all)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)/etc/mxgate $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DATADIR)
	install -m 0755 $(or $(INSTALL_BIN),$(BUILD)/mxgate) $(DESTDIR)$(PREFIX)/sbin/mxgate
	sed 's|/usr/sbin/mxgate|$(PREFIX)/sbin/mxgate|g' etc/mxgate.service \
		> $(DESTDIR)$(UNITDIR)/mxgate.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/mxgate.service.tmp
	mv $(DESTDIR)$(UNITDIR)/mxgate.service.tmp $(DESTDIR)$(UNITDIR)/mxgate.service
	install -m 0644 etc/mxgate.ini $(DESTDIR)/etc/mxgate/mxgate.ini.example
	install -m 0644 etc/mxgate.8 $(DESTDIR)$(MANDIR)/man8/mxgate.8
	install -m 0644 etc/mxgate.ini.5 $(DESTDIR)$(MANDIR)/man5/mxgate.ini.5
	install -m 0644 etc/dmarc-aggregate-2.0.xsd $(DESTDIR)$(DATADIR)/dmarc-aggregate-2.0.xsd

# Removes what install put in place; the configuration, keys and spool stay.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/mxgate $(DESTDIR)$(UNITDIR)/mxgate.service \
		$(DESTDIR)/etc/mxgate/mxgate.ini.example \
		$(DESTDIR)$(MANDIR)/man8/mxgate.8 $(DESTDIR)$(MANDIR)/man5/mxgate.ini.5 \
		$(DESTDIR)$(DATADIR)/dmarc-aggregate-2.0.xsd
	rmdir $(DESTDIR)$(DATADIR) 2>/dev/null || true

clean:
	rm -rf build build-san build-fuzz

-include $(DEPS)
