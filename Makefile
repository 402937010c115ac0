# Plinth: `make run` boots the appliance under QEMU; `make test` checks everything.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export GOFLAGS := -mod=mod

IMAGE := build/vmlinuz build/initramfs.cpio.zst
GO_SOURCES := $(shell find . -name '*.go' -not -path './build/*') go.mod go.sum
WEB_INPUTS := web/package.json web/package-lock.json $(wildcard web/src/*) $(wildcard web/bundle/*.go)
IMAGE_INPUTS := $(GO_SOURCES) $(WEB_INPUTS) $(wildcard initramfs/*.sh initramfs/*.txt initramfs/*.lock)

.PHONY: all deps web image usb iso pxe next run test vet unit fuzz e2e bench clean

all: image

deps:
	@scripts/deps.sh

build/.deps: scripts/deps.sh initramfs/packages.lock
	@mkdir -p build && scripts/deps.sh && touch $@

image: build/.deps $(IMAGE) usb

# The web client (web/src, npm packages pinned by web/package-lock.json),
# bundled by esbuild into web/dist, which mgmtd embeds; the image build
# runs the same step.
web: build/.deps web/dist/index.html.gz

web/dist/index.html.gz: $(WEB_INPUTS)
	go run ./web/cmd/plinth-webbuild

# Boot media (installer/mkimage.sh): build/plinth-VERSION.img, the USB stick /
# disk image (UEFI and BIOS), and build/plinth-VERSION.iso (hybrid: CD or
# stick, UEFI or BIOS). Each takes a few seconds; no loop devices, no mounts.
usb: build/.deps $(IMAGE)
	installer/mkimage.sh

iso: build/.deps $(IMAGE)
	installer/mkimage.sh --iso

# The PXE bundle (build/pxe): kernel, initramfs, iPXE binaries for legacy
# and UEFI PXE, a generic boot.ipxe and answers/. Serve it with
# `plinth-pxe serve -dir build/pxe -iface IF` (docs/INSTALL.md).
pxe: build/.deps $(IMAGE)
	go run ./installer/cmd/plinth-pxe bundle -o build/pxe

$(IMAGE) &: $(IMAGE_INPUTS)
	initramfs/build.sh

# The same system as version VERSION-next, with its signed upgrade image,
# in build/next: what the end-to-end upgrade test upgrades to.
next: build/next/version

build/next/version: $(IMAGE)
	initramfs/build.sh --next

run: build/.deps $(IMAGE)
	go run ./qemu-test/cmd/plinth-run

vet: build/.deps web
	go vet ./...
	@out="$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The unit tests include real-QEMU integration tests that boot the image's
# kernel; they run after the image is built and may not skip for want of it.
# Every process a test run starts carries PLINTH_TEST_RUN=$(TEST_RUN); the
# run ends by checking that none of them is left (and killing any that is).
TEST_RUN := $(shell date +%s)-$(shell echo $$PPID)
LEFTOVERS := go run ./qemu-test/cmd/plinth-leftovers -run $(TEST_RUN)

# go test starts packages in the order it is given them: the longest first
# (vmkernel's alone takes 8 to 10 minutes), so that the short ones fill the
# other core at the end instead of vmkernel's running on alone. On a slow
# day vmkernel's package alone took 11.5 minutes: the deadline is 45.
UNIT_FIRST := ./vmkernel ./vmkernel/runner ./vmkernel/cmd/vmkernel ./dcui ./web ./qemu-test
unit: build/.deps web $(IMAGE)
	@rc=0; first="$$(go list $(UNIT_FIRST))"; pkgs="$$first $$(go list ./... | grep -vxF "$$first")"; \
	PLINTH_TEST_RUN=$(TEST_RUN) PLINTH_REQUIRE=1 PLINTH_REQUIRE_KERNEL=1 go test -count=1 -timeout 45m $$pkgs || rc=$$?; \
	$(LEFTOVERS) || rc=1; exit $$rc

# Every request decoder has a fuzz target; `make test` runs each for a
# count of inputs (about 10 s each on the 2-core build machine), `make fuzz
# FUZZTIME=10m` runs them all for longer. Counts, not durations: a
# duration's deadline races Go 1.26's fuzz coordinator, which then fails a
# clean run with "context deadline exceeded" (golang/go#75804, fixed in
# Go 1.27; seen here in vmkernel's FuzzRoutes).
FUZZTIME ?=
# Every wait has a deadline: a fuzz run that outlives its time by this much
# has hung (the coordinator waits for ever on a worker's pipes held open by
# a process the worker left).
FUZZDEADLINE ?= 5m
# Go minimizes each input that widens coverage, for up to a minute, before
# fuzzing on; that is where a counted run's time went (FuzzParseAnswer's
# inputs with a root_password line are bcrypt-hashed, about 0.1 s a call:
# 145 s for its 100000 inputs in one run, 27 s without minimizing). The counted runs
# of make test do not minimize (an input that fails is still written, whole);
# a run with FUZZTIME does.
FUZZMINIMIZE = $(if $(FUZZTIME),60s,0)
FUZZ_TARGETS := ./mgmtd:FuzzDecodeJSON:80000x ./mgmtd:FuzzRoutes:6000x ./vmkernel:FuzzRoutes:12000x \
	./vmkernel/diskimage:FuzzInspect:400000x ./upgrade:FuzzOpen:20000x ./installer:FuzzParseAnswer:100000x \
	./installer/pxe:FuzzHandleDHCP:150000x ./vmkernel/ovf:FuzzMap:80000x
fuzz: build/.deps
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$${rest#*:}; ft=$(FUZZTIME); ft=$${ft:-$$n}; \
		echo "fuzz $$pkg $$name for $$ft"; \
		timeout -k 10 $(FUZZDEADLINE) go test -run '^$$' -fuzz "^$$name$$" -fuzztime $$ft -fuzzminimizetime $(FUZZMINIMIZE) "$$pkg" || \
			{ echo "fuzz $$name: failed or passed its deadline of $(FUZZDEADLINE)"; exit 1; }; \
	done

# The appliance tests took 19 minutes in one clean-clone run and 37 in a
# later one on the same machine (its CPU doing half the work a second):
# the first pass has 60 minutes. plinth-e2e runs them (as go test -v
# shows them) and runs again, alone and within 20 minutes each time, up to
# three times, a test that lost its appliance to the rig's TCG (a triple
# fault, or a panic on a corrupted stack, with VMs running nested), saying
# so; any other failure fails at once (README, "The two commands").
e2e: build/.deps $(IMAGE) iso next
	@rc=0; PLINTH_TEST_RUN=$(TEST_RUN) PLINTH_E2E=1 PLINTH_REQUIRE=1 go run ./qemu-test/cmd/plinth-e2e -timeout 60m -reruns 3 -rerun-timeout 20m -run '^TestAppliance' ./qemu-test/ || rc=$$?; \
	$(LEFTOVERS) || rc=1; exit $$rc

# The parts run one after the other. Beside the appliance tests (which keep
# about 1.4 of the two cores busy), the unit tests and fuzz targets at
# nice 19 made the appliance's guest kernel stall ("rcu_preempt kthread
# timer wakeup didn't happen": an idle vCPU that its timer never woke),
# as two appliances side by side did (docs/PERFORMANCE.md).
test: build/.deps vet unit fuzz e2e

bench: build/.deps $(IMAGE)
	go run ./bench/boot -n 7
	go run ./bench/poweron -n 20 -libvirt
	go run ./bench/api -runs 3
	go run ./bench/dcui -n 11
	go test -run XXX -bench . ./bench/backupbench ./bench/webbench ./bench/hwbench ./bench/snapbench
	go test -run XXX -bench . -benchmem -count 5 ./bench/boardbench

clean:
	rm -rf build/*.cpio* build/vmlinuz build/pvh build/modules build/payload build/payload-root build/size-report.txt build/e2e-*.log build/plinth-*.img build/plinth-*.iso build/media build/iso-root build/esp.img build/plinth-*.upgrade build/next
