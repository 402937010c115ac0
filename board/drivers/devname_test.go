package drivers

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseDevnames(t *testing.T) {
	got, err := ParseDevnames(strings.NewReader("# Device nodes to trigger on-demand module loading.\nloop loop-control c10:237\ntun net/tun c10:200\nfoo sda b8:0\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Devname{
		{Module: "loop", Name: "loop-control", Major: 10, Minor: 237},
		{Module: "tun", Name: "net/tun", Major: 10, Minor: 200},
		{Module: "foo", Name: "sda", Block: true, Major: 8},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"tun net/tun", "tun net/tun x10:200", "tun net/tun c10", "tun ../etc/x c10:200", "tun /etc/x c1:2", "tun net/tun c10:-1"} {
		if _, err := ParseDevnames(strings.NewReader(bad + "\n")); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
