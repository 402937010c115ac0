package installer

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFindAnswerSources(t *testing.T) {
	ctx := context.Background()
	sys := t.TempDir()
	none := AnswerEnv{Sys: sys, Cmdline: map[string]string{}}
	if _, err := FindAnswer(ctx, none); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("nothing given: %v, want ErrNoAnswer", err)
	}

	// SMBIOS OEM string (type 11): a 5-byte formatted area, then strings.
	oem := filepath.Join(sys, "firmware", "dmi", "entries", "11-0")
	os.MkdirAll(oem, 0o755)
	raw := append([]byte{11, 5, 0, 0, 2}, []byte("other\x00"+OEMStringPrefix+base64.StdEncoding.EncodeToString([]byte("hostname = oem\n"))+"\x00\x00")...)
	os.WriteFile(filepath.Join(oem, "raw"), raw, 0o444)
	got, err := FindAnswer(ctx, none)
	if err != nil || string(got.Data) != "hostname = oem\n" || got.Source != "SMBIOS OEM string" {
		t.Fatalf("OEM string: %+v %v", got, err)
	}

	// fw_cfg wins over the OEM string; the module is asked for when the
	// directory is missing.
	loaded := ""
	env := none
	env.LoadModule = func(name string) error {
		loaded = name
		fw := filepath.Join(sys, "firmware", "qemu_fw_cfg", "by_name", FWCfgName)
		os.MkdirAll(fw, 0o755)
		return os.WriteFile(filepath.Join(fw, "raw"), []byte("hostname = fwcfg\n"), 0o444)
	}
	got, err = FindAnswer(ctx, env)
	if err != nil || string(got.Data) != "hostname = fwcfg\n" || loaded != "qemu_fw_cfg" {
		t.Fatalf("fw_cfg: %+v %v (loaded %q)", got, err, loaded)
	}

	// The kernel command line wins over everything.
	f := filepath.Join(t.TempDir(), "a.cfg")
	os.WriteFile(f, []byte("hostname = url\n"), 0o644)
	env.Cmdline = map[string]string{CmdlineKey: "file://" + f}
	got, err = FindAnswer(ctx, env)
	if err != nil || string(got.Data) != "hostname = url\n" {
		t.Fatalf("plinth.answer: %+v %v", got, err)
	}
	env.Cmdline = map[string]string{CmdlineKey: "ftp://x/y"}
	if _, err := FindAnswer(ctx, env); err == nil {
		t.Fatal("ftp:// accepted")
	}
}
