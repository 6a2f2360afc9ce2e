# AutoCV build. `make` builds build/autocv and build/libautocv.a; `make test` runs every test;
# `make run` starts the platform server (with the web UI); `make deps` installs Debian packages
# and the web UI's npm packages.
# Switches: SAN=address (sanitizers), OPT=-O0 -g (debug), ARCH=... (target flags).

BUILD   ?= build
PY      ?= /usr/bin/python3
CC      ?= cc
OPT     ?= -O3 -g
ARCH    ?= -march=native
PKGS    := jansson libpng libturbojpeg libjpeg zlib sqlite3 libmicrohttpd libsodium libarchive libprotobuf-c expat
# OpenBLAS's OpenMP build shares libgomp's thread pool with oneDNN and our kernels (the
# default pthreads build spins its own threads against them); it is not the system default,
# so it is linked by path with an rpath.
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLAS_LIB  := /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_INC  := /usr/include/$(MULTIARCH)/openblas-openmp
DEB_PKGS := build-essential pkg-config libdnnl-dev libopenblas-openmp-dev libjansson-dev libpng-dev \
            libturbojpeg0-dev libjpeg62-turbo-dev zlib1g-dev libcmocka-dev libsqlite3-dev \
            libmicrohttpd-dev libsodium-dev libarchive-dev protobuf-c-compiler libprotobuf-c-dev libexpat1-dev \
            python3 python3-numpy python3-torch python3-torchvision python3-onnx dataset-fashion-mnist \
            chromium fonts-noto-cjk
# The web UI (web/) needs Node.js >= 20.19 and npm (Vite 8): Debian's nodejs/npm when no node
# is installed (Debian 13 has 20.19; on Debian 12 install Node.js 20+ from nodesource.com).
NPM     ?= npm

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation $(OPT) $(ARCH) \
           -fopenmp -pthread -Iinclude -Isrc -I$(BUILD)/gen -I$(BLAS_INC) $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB) -lopenblas -ldnnl -lm -fopenmp -pthread
ifdef SAN
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SAN)
endif

LIB_SRC := $(shell find src -name '*.c' ! -path 'src/cli/*' | sort)
CLI_SRC := $(shell find src/cli -name '*.c' | sort)
# The ONNX schema (src/onnx/onnx.proto) is compiled by protoc-c into $(BUILD)/gen.
GEN_OBJ := $(BUILD)/gen/onnx.pb-c.o
# The web UI built by Vite into $(BUILD)/web and embedded as a C table (src/server/api_static.h).
WEB_OBJ := $(BUILD)/gen/web_assets.o
WEB_SRC := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/package.json \
           web/package-lock.json web/vite.config.js web/svelte.config.js
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(GEN_OBJ) $(WEB_OBJ)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c))
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all deps test run fmnist bench clean check print-cflags print-ldlibs
all: $(BUILD)/autocv $(BUILD)/libautocv.a

# deps: idempotent; runs apt-get update first only when something is missing.
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing:$$missing"; \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi
	@command -v node >/dev/null && command -v $(NPM) >/dev/null || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; echo "installing: nodejs npm"; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends nodejs npm; }
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' || \
	  { echo "deps: the web UI needs Node.js >= 20.19 (this is $$(node --version)): install a newer Node.js"; exit 1; }
	@[ -d web/node_modules ] || { echo "NPM ci (web/)"; cd web && $(NPM) ci --no-audit --no-fund --loglevel=error; }

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC  $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/onnx.pb-c.c: src/onnx/onnx.proto
	@mkdir -p $(BUILD)/gen
	@echo "GEN $<"
	@protoc-c --c_out=$(BUILD)/gen --proto_path=src/onnx $<
$(BUILD)/gen/onnx.pb-c.h: $(BUILD)/gen/onnx.pb-c.c ;

# generated code: our warnings, but never -Werror
$(GEN_OBJ): $(BUILD)/gen/onnx.pb-c.c
	@echo "CC  $<"
	@$(CC) $(filter-out -Werror,$(CFLAGS)) -c $< -o $@

# The web UI: npm packages from web/package-lock.json, `vite build` into $(BUILD)/web when a
# source changed, then the files as a C table.
web/node_modules/.package-lock.json: web/package-lock.json
	@command -v $(NPM) >/dev/null || { echo "npm is missing: run make deps"; exit 1; }
	@echo "NPM ci (web/)"
	@cd web && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

$(BUILD)/web.stamp: $(WEB_SRC) web/node_modules/.package-lock.json
	@mkdir -p $(BUILD)/web
	@echo "WEB $(BUILD)/web"
	@cd web && ./node_modules/.bin/vite build --logLevel warn --outDir $(abspath $(BUILD)/web) --emptyOutDir
	@touch $@

$(BUILD)/gen/web_assets.c: $(BUILD)/web.stamp web/embed_assets.py
	@mkdir -p $(BUILD)/gen
	@$(PY) web/embed_assets.py $(BUILD)/web $@

$(WEB_OBJ): $(BUILD)/gen/web_assets.c src/server/api_static.h
	@echo "CC  $<"
	@$(CC) $(filter-out -Werror,$(CFLAGS)) -c $< -o $@

# everything that includes the generated header waits for it
$(filter $(BUILD)/obj/src/onnx/%,$(LIB_OBJ)): | $(BUILD)/gen/onnx.pb-c.h

$(BUILD)/libautocv.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^
	@echo "AR  $@"

$(BUILD)/autocv: $(CLI_OBJ) $(BUILD)/libautocv.a
	@echo "LD  $@"
	@$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libautocv.a $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libautocv.a
	@mkdir -p $(dir $@)
	@echo "LD  $@"
	@$(CC) $(CFLAGS) -Itests -MMD -MP -MF $@.d -o $@ $< $(BUILD)/libautocv.a $(LDLIBS) -lcmocka

test: deps
	@$(MAKE) --no-print-directory all $(TEST_BIN)
	@$(PY) tests/run_tests.py --build $(BUILD) $(if $(T),--only $(T))

# make check T=frag: build, then run only the tests whose names contain frag (no deps step)
check: all $(TEST_BIN)
	@$(PY) tests/run_tests.py --build $(BUILD) $(if $(T),--only $(T))

# The main job: the platform server on ./autocv-data, http://127.0.0.1:8080 (on first start
# it prints the admin password, or takes AUTOCV_ADMIN_PASSWORD).
run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/autocv serve --data ./autocv-data --listen 127.0.0.1:8080

# The engine's demo: train and evaluate the default classifier on Fashion-MNIST.
fmnist: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/autocv train --task cls --data /usr/share/datasets/fashion-mnist --out $(BUILD)/run/fmnist
	./$(BUILD)/autocv eval --model $(BUILD)/run/fmnist --data /usr/share/datasets/fashion-mnist --split test

bench: deps
	@$(MAKE) --no-print-directory all
	@bash bench/run.sh

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d)

# Flags for programs linked against the library outside this Makefile (bench/run.sh).
print-cflags:
	@echo $(CFLAGS)
print-ldlibs:
	@echo $(LDLIBS)
