package vmkernel_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// TestHostNetworkVLANValidated: the management network's VLAN is checked
// where it enters vmkernel, each refusal naming config.vlan: an ID outside
// 1 to 4094 (0 or none is untagged) is a 422, a value that is no integer a
// 400. (The VLAN applied for real, with its rollback, is qemu-test's
// TestManagementVLAN: the tests' kernel may have no 802.1Q.)
func TestHostNetworkVLANValidated(t *testing.T) {
	rig := vmkerneltest.Start(t, vmkerneltest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, vlan := range []int{4095, 5000, -1} {
		_, err := rig.Client.ChangeNetwork(ctx, api.NetworkChangeRequest{Config: api.NetworkConfig{NIC: "eth0", VLAN: vlan, Mode: "dhcp"}})
		var e *client.Error
		if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Problem.Field != "config.vlan" ||
			!strings.Contains(e.Problem.Problems[0].Message, "outside 0 (none) to 4094") {
			t.Errorf("VLAN %d: %v, want 422 naming config.vlan", vlan, err)
		}
	}
	for _, v := range []string{`"20"`, `20.5`, `true`, `[20]`, `99999999999999999999`} {
		body := fmt.Sprintf(`{"config": {"nic": "eth0", "mode": "dhcp", "vlan": %s}}`, v)
		req := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: vmkernel\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			api.VMKernel(api.HostNetworkPath), len(body), body)
		resp, p := rawRequest(t, rig.Socket, req, false)
		if resp.StatusCode != http.StatusBadRequest || p.Field != "config.vlan" || len(p.Problems) != 1 || !strings.Contains(p.Detail, "want int") {
			t.Errorf("vlan %s: %d %+v, want 400 naming config.vlan", v, resp.StatusCode, p)
		}
	}
}
