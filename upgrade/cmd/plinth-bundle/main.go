// Command plinth-bundle makes and checks signed Plinth upgrade images
// (package upgrade). The image build runs it:
//
//	plinth-bundle pubkey -key FILE [-create]   print the base64 public key
//	plinth-bundle make -key FILE -version V -release N -kernel F -initrd F [-created UNIX] -o OUT
//	plinth-bundle verify -pubkey BASE64 FILE   check a bundle as a host would
package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/plinth/plinth/upgrade"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "plinth-bundle:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: plinth-bundle pubkey|make|verify ...")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	key := fs.String("key", "", "ed25519 private key (PKCS #8 PEM)")
	create := fs.Bool("create", false, "pubkey: make the key first when it does not exist")
	version := fs.String("version", "", "make: the version the image holds")
	release := fs.Uint64("release", 0, "make: the image's monotonic release number (api.Release of the build)")
	kernel := fs.String("kernel", "", "make: the kernel")
	initrd := fs.String("initrd", "", "make: the initramfs")
	created := fs.String("created", "", "make: creation time, Unix seconds (SOURCE_DATE_EPOCH); now when empty")
	out := fs.String("o", "", "make: the bundle to write")
	pub := fs.String("pubkey", "", "verify: base64 public key")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "pubkey":
		priv, err := upgrade.LoadKey(*key)
		if errors.Is(err, os.ErrNotExist) && *create {
			priv, err = upgrade.GenerateKey(*key)
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, upgrade.EncodePublicKey(priv.Public().(ed25519.PublicKey)))
		return nil
	case "make":
		if *version == "" || *release == 0 || *kernel == "" || *initrd == "" || *out == "" {
			return errors.New("make needs -key, -version, -release, -kernel, -initrd and -o")
		}
		priv, err := upgrade.LoadKey(*key)
		if err != nil {
			return err
		}
		when := time.Now()
		if *created != "" {
			sec, err := strconv.ParseInt(*created, 10, 64)
			if err != nil {
				return fmt.Errorf("-created %q: %w", *created, err)
			}
			when = time.Unix(sec, 0)
		}
		tmp := *out + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		if err := upgrade.Write(f, priv, *version, *release, *kernel, *initrd, when); err != nil {
			f.Close()
			os.Remove(tmp)
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Rename(tmp, *out)
	case "verify":
		if fs.NArg() != 1 {
			return errors.New("verify needs one bundle")
		}
		k, err := upgrade.ParsePublicKey(*pub)
		if err != nil {
			return err
		}
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		dir, err := os.MkdirTemp("", "plinth-bundle-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		st, err := upgrade.Open(f, k, dir, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: Plinth %s (release %d), signature and checksums good\n", filepath.Base(fs.Arg(0)), st.Manifest.Version, st.Manifest.Release)
		return nil
	}
	return fmt.Errorf("unknown command %q (pubkey, make, verify)", args[0])
}
