package guestagent

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/plinth/plinth/api"
)

// Facts asks the agent what the guest says of itself: the agent's version,
// the OS, the host name and the interfaces with their addresses (loopback
// left out). Only the version is required of the agent; what an older or
// restricted agent does not offer is left empty.
func (a *Agent) Facts(ctx context.Context) (api.GuestInfo, error) {
	g := api.GuestInfo{UpdatedAt: time.Now().UTC()}
	var info struct {
		Version string `json:"version"`
	}
	if err := a.Run(ctx, "guest-info", nil, &info); err != nil {
		return g, err
	}
	g.AgentVersion = bound(info.Version, 64)
	var os struct {
		PrettyName    string `json:"pretty-name"`
		KernelRelease string `json:"kernel-release"`
		ID            string `json:"id"`
	}
	if a.Run(ctx, "guest-get-osinfo", nil, &os) == nil {
		g.OS, g.Kernel, g.OSID = bound(os.PrettyName, 128), bound(os.KernelRelease, 128), bound(os.ID, 32)
	}
	var host struct {
		HostName string `json:"host-name"`
	}
	if a.Run(ctx, "guest-get-host-name", nil, &host) == nil {
		g.Hostname = bound(host.HostName, 253)
	}
	var ifs []struct {
		Name string `json:"name"`
		MAC  string `json:"hardware-address"`
		IPs  []struct {
			Address string `json:"ip-address"`
			Prefix  int    `json:"prefix"`
		} `json:"ip-addresses"`
	}
	if a.Run(ctx, "guest-network-get-interfaces", nil, &ifs) == nil {
		for _, i := range ifs {
			if len(g.Interfaces) == 64 {
				break
			}
			gi := api.GuestInterface{Name: bound(i.Name, 32), MAC: bound(i.MAC, 32)}
			for _, ip := range i.IPs {
				addr, err := netip.ParseAddr(ip.Address)
				if err != nil || addr.IsLoopback() || len(gi.Addresses) == 32 {
					continue
				}
				gi.Addresses = append(gi.Addresses, fmt.Sprintf("%s/%d", addr, ip.Prefix))
			}
			if i.Name == "lo" {
				continue
			}
			g.Interfaces = append(g.Interfaces, gi)
		}
		sort.Slice(g.Interfaces, func(x, y int) bool { return g.Interfaces[x].Name < g.Interfaces[y].Name })
	}
	return g, nil
}

// bound cuts a string from the guest to at most n bytes.
func bound(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Shutdown asks the guest to power off (guest-shutdown, mode powerdown);
// the agent gives no answer when it does.
func (a *Agent) Shutdown(ctx context.Context) error {
	return a.Send(ctx, "guest-shutdown", map[string]any{"mode": "powerdown"})
}

// Freeze freezes the guest's file systems (guest-fsfreeze-freeze) and
// returns how many; call Thaw after, whatever happens in between.
func (a *Agent) Freeze(ctx context.Context) (int, error) {
	var n int
	err := a.Run(ctx, "guest-fsfreeze-freeze", nil, &n)
	return n, err
}

// Thaw thaws them (guest-fsfreeze-thaw).
func (a *Agent) Thaw(ctx context.Context) (int, error) {
	var n int
	err := a.Run(ctx, "guest-fsfreeze-thaw", nil, &n)
	return n, err
}
