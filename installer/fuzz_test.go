package installer

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// FuzzParseAnswer feeds the answer-file parser what a network or a boot
// medium could hold: it never panics; what it refuses is a *LineError
// naming a line the file has; what it accepts has a bcrypt hash, a valid
// management network and only the keys' allowed values.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		"root_password_hash = " + goodHash + "\nhostname = esx-01\nnetwork = static\naddress = 192.0.2.10/24\ngateway = 192.0.2.1\n",
		"disk.serial = TARGET0\ndisk.min_size = 4G\noverwrite = yes\nroot_password_hash = '" + goodHash + "'\nafter = reboot\n",
		"root_password_hash = " + goodHash + "\ndns = 192.0.2.53, 192.0.2.54\nntp = pool.ntp.org\nssh_key = ssh-ed25519 AAAA a@b\nvlan = 42\n",
		"root_password = Secret-123\n", "colour = blue\n", "# only a comment\n", "\x00\xff=\n", "disk.model = [\n",
		"disk.max_size = 1e400T\nroot_password_hash = " + goodHash + "\n", strings.Repeat("a", 70000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAnswer(bytes.NewReader(data))
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is not a *LineError", err)
			}
			if lines := bytes.Count(data, []byte("\n")) + 1; le.Line < 0 || le.Line > lines+1 {
				t.Fatalf("error names line %d of a %d-line file: %v", le.Line, lines, err)
			}
			return
		}
		if _, err := bcrypt.Cost([]byte(a.PasswordHash)); err != nil {
			t.Fatalf("accepted without a bcrypt hash: %q", a.PasswordHash)
		}
		if err := a.Network.Validate(); err != nil {
			t.Fatalf("accepted an invalid network: %v", err)
		}
		if a.After != "poweroff" && a.After != "reboot" {
			t.Fatalf("after = %q", a.After)
		}
	})
}
