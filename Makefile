# raresynth Makefile (STYLE.md section 12).
#
#   make            libraresynth.a, libraresynth.so and the raresynth program in build/
#   make deps       install the Debian packages listed in deps.txt (apt-get; sudo if not root)
#   make demo       build, then generate and validate the demo dataset in demo/
#   make test       unit tests (cmocka, one program per module) + integration tests
#   make asan       the tests again under AddressSanitizer + UBSan, in build/asan
#   make bench      benchmarks (never part of `make test`)
#   make install    PREFIX=/usr/local (also DESTDIR)
#
# Objects go to per-variant build directories with dependency files, so changing flags never
# reuses stale objects.

PREFIX ?= /usr/local
prefix ?= $(PREFIX)
bindir ?= $(prefix)/bin
libdir ?= $(prefix)/lib
includedir ?= $(prefix)/include
datadir ?= $(prefix)/share

CC ?= cc
PKG_CONFIG ?= pkg-config
# Debian's python3 (it has python3-nibabel); a python3 earlier on PATH (pyenv, venv) may not.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)

# Build variant: release (default), asan.
VARIANT ?= release
ifeq ($(VARIANT),release)
BUILD ?= build
OPTFLAGS ?= -O2 -g
else ifeq ($(VARIANT),asan)
BUILD ?= build/asan
# -O1 keeps stack traces usable; recover off so UBSan findings fail the run.
OPTFLAGS ?= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SAN_LDFLAGS = -fsanitize=address,undefined
else
$(error unknown VARIANT '$(VARIANT)': use release or asan)
endif

WARNFLAGS = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wcast-qual -Wcast-align -Wundef \
            -Wpointer-arith -Wswitch-enum -Wformat=2 -Wno-format-nonliteral
# Warnings are errors in CI (CI=true) or when asked (WERROR=1).
ifneq ($(filter true 1,$(CI) $(WERROR)),)
WARNFLAGS += -Werror
endif

# Dependencies through pkg-config, each overridable on the command line.
# GSL links against OpenBLAS, not the reference gslcblas.
GSL_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags gsl)
GSL_LIBS ?= $(shell $(PKG_CONFIG) --libs-only-L gsl) -lgsl
BLAS_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags openblas 2>/dev/null)
BLAS_LIBS ?= $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null || echo -lopenblas)
HDF5_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags hdf5)
HDF5_LIBS ?= $(shell $(PKG_CONFIG) --libs hdf5)
CJSON_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libcjson)
CJSON_LIBS ?= $(shell $(PKG_CONFIG) --libs libcjson)
FFTW_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags fftw3)
FFTW_LIBS ?= $(shell $(PKG_CONFIG) --libs fftw3)
CMOCKA_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags cmocka)
CMOCKA_LIBS ?= $(shell $(PKG_CONFIG) --libs cmocka)
# nifti_clib ships no .pc file on Debian (reference/formats.md).
NIFTI_CFLAGS ?= -I/usr/include/nifti
NIFTI_LIBS ?= -lniftiio -lznz -lz

MODULES = core config phantoms priors generator export
INCLUDES = $(addprefix -I,$(MODULES))

ALL_CPPFLAGS = $(INCLUDES) -D_XOPEN_SOURCE=700 -DRSY_DATADIR='"$(datadir)/raresynth"' \
               $(CPPFLAGS)
ALL_CFLAGS = -std=c11 -pthread -fPIC -fvisibility=hidden $(OPTFLAGS) $(WARNFLAGS) \
             $(GSL_CFLAGS) $(BLAS_CFLAGS) $(HDF5_CFLAGS) $(CJSON_CFLAGS) $(FFTW_CFLAGS) $(NIFTI_CFLAGS) \
             $(CFLAGS)
DEP_LIBS = $(NIFTI_LIBS) $(CJSON_LIBS) $(HDF5_LIBS) $(FFTW_LIBS) $(GSL_LIBS) $(BLAS_LIBS) \
           -lpng -lz -lm -pthread
ALL_LDFLAGS = $(SAN_LDFLAGS) $(LDFLAGS)

LIB_SRCS = $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJS = $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
CLI_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cli/*.c))
TEST_SRCS = $(wildcard tests/test_*.c)
TEST_BINS = $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
BENCH_SRCS = $(wildcard bench/bench_*.c)
BENCH_BINS = $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
PUBLIC_HEADERS = $(foreach m,$(MODULES),$(m)/rsy_$(m).h)

VERSION := $(shell sed -n 's/^\#define RSY_VERSION_STRING "\(.*\)"/\1/p' core/rsy_core.h)
SOVERSION := $(shell sed -n 's/^\#define RSY_VERSION_MAJOR //p' core/rsy_core.h)
STATIC_LIB = $(BUILD)/libraresynth.a
SHARED_LIB = $(BUILD)/libraresynth.so.$(VERSION)
PROGRAM = $(BUILD)/raresynth

DEMO_RECIPE ?= configs/recipes/brain-glioblastoma-mri.json
DEMO_DIR ?= demo
DEMO_CASES ?= 8
JOBS ?= 2

.DEFAULT_GOAL := all
all: $(STATIC_LIB) $(SHARED_LIB) $(PROGRAM)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(STATIC_LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(SHARED_LIB): $(LIB_OBJS)
	$(CC) -shared -Wl,-soname,libraresynth.so.$(SOVERSION) $(ALL_LDFLAGS) -o $@ $^ $(DEP_LIBS)
	ln -sf libraresynth.so.$(VERSION) $(BUILD)/libraresynth.so.$(SOVERSION)
	ln -sf libraresynth.so.$(SOVERSION) $(BUILD)/libraresynth.so

$(PROGRAM): $(CLI_OBJ) $(STATIC_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJ) $(STATIC_LIB) $(DEP_LIBS)

# Tests reach internals through <module>_internal.h and link the static library.
$(BUILD)/tests/%: tests/%.c $(STATIC_LIB) tests/test_util.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) -Itests $(ALL_CFLAGS) $(CMOCKA_CFLAGS) $(ALL_LDFLAGS) -o $@ $< \
	    $(STATIC_LIB) $(CMOCKA_LIBS) $(DEP_LIBS)

# Benchmarks are built -O3 -DNDEBUG (STYLE.md section 11).
$(BUILD)/bench/%: bench/%.c $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) -DNDEBUG $(ALL_CFLAGS) -O3 $(ALL_LDFLAGS) -o $@ $< $(STATIC_LIB) $(DEP_LIBS)

-include $(LIB_OBJS:.o=.d) $(CLI_OBJ:.o=.d)

# ---- install ----------------------------------------------------------------------------
DEBIAN_PACKAGES = $(shell grep -v '^\#' deps.txt)
deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    $(DEBIAN_PACKAGES)

# ---- demo -------------------------------------------------------------------------------
demo: all texture-model
	$(PROGRAM) generate --recipe $(DEMO_RECIPE) --out $(DEMO_DIR) --cases $(DEMO_CASES) \
	    -j $(JOBS) --force
	$(PROGRAM) validate $(DEMO_DIR)

# ---- texture model --------------------------------------------------------------------------
# The default brain texture model, fitted on the Colin27 T1 scan that Debian's mricron-data
# ships (brain-extracted; three intensity classes, CSF / GM / WM). The model holds mixture
# parameters only, no voxel of the scan (docs/texture-model.md). Written beside the presets,
# where recipes find it as "fitted": "brain-colin27"; a build product, never committed.
COLIN27 ?= /usr/share/mricron/templates/ch2bet.nii.gz
TEXTURE_MODEL = configs/textures/brain-colin27.h5
texture-model: $(TEXTURE_MODEL)
$(TEXTURE_MODEL): $(PROGRAM) $(COLIN27)
	$(PROGRAM) fit-texture --image $(COLIN27) --auto-classes 3 --out $@ -v

# ---- tests ------------------------------------------------------------------------------
# The shipped brain recipe draws texture from the fitted Colin27 model, so the tests (which
# load every shipped recipe) need it: a fresh clone fits it first (about 10 s).
test check: all $(TEST_BINS) $(TEXTURE_MODEL)
	@set -e; for t in $(TEST_BINS); do echo "== $$t"; $$t; done
	RARESYNTH=$(PROGRAM) PYTHON=$(PYTHON) bash tests/integration.sh
	@echo "all tests passed ($(VARIANT))"

asan:
	$(MAKE) VARIANT=asan test

# The demo recipe and bench_texture draw from the fitted Colin27 model, so it is made first.
bench: all $(BENCH_BINS) $(TEXTURE_MODEL)
	@set -e; for b in $(BENCH_BINS); do echo "== $$b"; $$b; done
	RARESYNTH=$(PROGRAM) PYTHON=$(PYTHON) bash bench/bench_generate.sh

check-headers:
	@set -e; for h in $(PUBLIC_HEADERS); do \
	    echo "#include \"$$(basename $$h)\"" | $(CC) $(INCLUDES) -std=c11 -Wall -Werror -fsyntax-only -x c - ; \
	    echo "#include \"$$(basename $$h)\"" | $(CXX) $(INCLUDES) -Wall -Werror -fsyntax-only -x c++ - ; \
	done; echo "headers compile alone as C and C++"

format:
	clang-format -i $(LIB_SRCS) $(PUBLIC_HEADERS) cli/*.c tests/*.c tests/*.h bench/*.c

format-check:
	clang-format --dry-run --Werror $(LIB_SRCS) $(PUBLIC_HEADERS) cli/*.c

# ---- install ----------------------------------------------------------------------------
install: all $(TEXTURE_MODEL)
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(libdir)/pkgconfig $(DESTDIR)$(includedir)/raresynth \
	    $(DESTDIR)$(datadir)/raresynth
	install -m 755 $(PROGRAM) $(DESTDIR)$(bindir)/raresynth
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(libdir)/
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(libdir)/
	ln -sf libraresynth.so.$(VERSION) $(DESTDIR)$(libdir)/libraresynth.so.$(SOVERSION)
	ln -sf libraresynth.so.$(SOVERSION) $(DESTDIR)$(libdir)/libraresynth.so
	install -m 644 $(PUBLIC_HEADERS) $(DESTDIR)$(includedir)/raresynth/
	cp -R configs/. $(DESTDIR)$(datadir)/raresynth/
	sed -e 's|@prefix@|$(prefix)|' -e 's|@version@|$(VERSION)|' raresynth.pc.in \
	    > $(DESTDIR)$(libdir)/pkgconfig/raresynth.pc

uninstall:
	rm -f $(DESTDIR)$(bindir)/raresynth $(DESTDIR)$(libdir)/libraresynth.a \
	    $(DESTDIR)$(libdir)/libraresynth.so* $(DESTDIR)$(libdir)/pkgconfig/raresynth.pc
	rm -rf $(DESTDIR)$(includedir)/raresynth $(DESTDIR)$(datadir)/raresynth

clean:
	rm -rf build

distclean: clean
	rm -rf $(DEMO_DIR)

.PHONY: all deps demo texture-model test check asan bench check-headers format format-check install \
        uninstall clean distclean
