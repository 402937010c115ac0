// Command plinth-pxe network-boots Plinth hosts (see package
// github.com/plinth/plinth/installer/pxe):
//
//	plinth-pxe bundle -o build/pxe [-kernel build/vmlinuz] [-initrd build/initramfs.cpio.zst] [-ipxe /usr/lib/ipxe]
//	plinth-pxe serve -dir BUNDLE -iface IF [-http :8080] [-tftp :69] [-answers DIR] [-install] [-cmdline "..."]
//
// serve runs proxy DHCP beside the network's own DHCP server, TFTP and HTTP
// until interrupted. Hosts boot stateless (plinth.config=URL: their answer
// file, fetched and applied at every boot) or, with -install, run the
// unattended install (plinth.answer=URL).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/plinth/plinth/installer/pxe"
)

func main() {
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

const usage = "usage: plinth-pxe bundle -o DIR [flags] | plinth-pxe serve -dir BUNDLE -iface IF [flags]"

func run(stdout io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "bundle":
		return bundle(stdout, args[1:])
	case "serve":
		return serve(args[1:])
	}
	return fmt.Errorf("unknown command %q; %s", args[0], usage)
}

func bundle(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("bundle", flag.ContinueOnError)
	out := fs.String("o", "build/pxe", "bundle directory to write")
	var b pxe.Bundle
	fs.StringVar(&b.Kernel, "kernel", "build/vmlinuz", "kernel")
	fs.StringVar(&b.Initrd, "initrd", "build/initramfs.cpio.zst", "initramfs")
	fs.StringVar(&b.IPXEDir, "ipxe", pxe.DefaultIPXEDir, "directory of iPXE binaries (Debian's ipxe package)")
	cmdline := fs.String("cmdline", "", "extra kernel command line for the generic boot.ipxe")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b.Cmdline = strings.Fields(*cmdline)
	if err := b.Write(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "PXE bundle in %s (serve it: plinth-pxe serve -dir %s -iface IF)\n", *out, *out)
	return nil
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var c pxe.Config
	fs.StringVar(&c.Dir, "dir", "", "the bundle directory (make pxe: build/pxe)")
	fs.StringVar(&c.Iface, "iface", "", "interface the PXE clients are on (proxy DHCP listens there)")
	fs.StringVar(&c.HTTPAddr, "http", ":8080", "HTTP listen address")
	fs.StringVar(&c.TFTPAddr, "tftp", ":69", "TFTP listen address")
	fs.StringVar(&c.Answers, "answers", "", "per-host answer files (default: BUNDLE/answers)")
	fs.BoolVar(&c.Install, "install", false, "pass plinth.answer=URL: hosts run the unattended install (default: plinth.config=URL, stateless hosts that fetch their answer file at every boot)")
	ip := fs.String("ip", "", "address clients reach this server at (default: the interface's)")
	cmdline := fs.String("cmdline", "", "extra kernel command line for every host")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.Dir == "" {
		return errors.New("serve: -dir is required")
	}
	if *ip != "" {
		a, err := netip.ParseAddr(*ip)
		if err != nil {
			return fmt.Errorf("serve: -ip: %w", err)
		}
		c.ServerIP = a
	}
	c.Cmdline = strings.Fields(*cmdline)
	c.Logf = log.Printf
	s, err := pxe.NewServer(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return s.Serve(ctx)
}
