package hostconf

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/peerstest"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
)

// clockLog records what the NTP client would move the clock by: a test
// never sets the host's clock.
type clockLog struct {
	mu   sync.Mutex
	offs []time.Duration
}

func (c *clockLog) set(off time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offs = append(c.offs, off)
	return nil
}

func (c *clockLog) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.offs)
}

func newTestHost(t *testing.T, clock *clockLog) (*Host, layout.Host) {
	lay := layout.Under(t.TempDir())
	for _, d := range []string{lay.State, lay.Run, lay.ConfigDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return New(Config{Layout: lay, SetClock: clock.set, NoTimeKeeper: true}), lay
}

// TestTimeSources: the servers come from the API, else the answer file,
// else DHCP; each answers from Debian's chronyd, and the clock is moved
// by what it says.
func TestTimeSources(t *testing.T) {
	port := peerstest.FreePort(t)
	peerstest.Chrony(t, "127.0.0.1", port)
	// DHCP names addresses only (port 123): a chronyd of its own on a
	// loopback address of its own.
	dhcpIP := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(250), 1+rand.IntN(250))
	peerstest.Chrony(t, dhcpIP, 123)
	var clock clockLog
	h, lay := newTestHost(t, &clock)
	ctx := context.Background()

	st := h.SyncTime(ctx)
	if st.Synced || !strings.Contains(st.Problem, "no NTP server") || !st.Config.Enabled || len(st.Servers) != 0 {
		t.Fatalf("no servers: %+v", st)
	}

	// DHCP: the lease's NTP servers option, as the keeper records it.
	ack, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithOption(dhcpv4.OptNTPServers(net.ParseIP(dhcpIP))))
	if err != nil {
		t.Fatal(err)
	}
	ap := netconf.Applied{ACK: ack.ToBytes(), Obtained: time.Now()}
	if err := saveJSON(lay.Run+"/"+netconf.AppliedFile, ap); err != nil {
		t.Fatal(err)
	}
	st = h.SyncTime(ctx)
	if !st.Synced || st.Server != dhcpIP || st.Stratum != 8 || len(st.Servers) != 1 || st.Servers[0].Source != SourceDHCP || st.Problem != "" {
		t.Fatalf("DHCP: %+v", st)
	}
	if clock.count() != 1 || st.LastSync == nil || time.Since(*st.LastSync) > 5*time.Second || st.OffsetSeconds > 0.05 || st.OffsetSeconds < -0.05 {
		t.Fatalf("DHCP: clock moved %d times; %+v", clock.count(), st)
	}

	// The answer file wins over DHCP.
	local := "127.0.0.1:" + strconv.Itoa(port)
	if err := os.WriteFile(lay.NTPFile(), []byte("# from the answer file\n"+local+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st = h.SyncTime(ctx); !st.Synced || st.Server != local || st.Servers[0].Source != SourceAnswerFile {
		t.Fatalf("answer file: %+v", st)
	}

	// The API wins over both; a server that does not answer is reported
	// beside the one that does, which is used.
	dead := "127.0.0.1:" + strconv.Itoa(peerstest.FreePort(t))
	t0 := time.Now()
	st, err = h.SetTime(ctx, api.TimeConfig{Enabled: true, Servers: []string{dead, local}})
	if err != nil || !st.Synced || st.Server != local || len(st.Servers) != 2 || st.Servers[0].Source != SourceAPI ||
		!strings.Contains(st.Servers[0].LastError, dead) || st.Servers[1].LastError != "" || st.Problem != "" {
		t.Fatalf("API: %+v, %v", st, err)
	}
	if d := time.Since(t0); d > 2*queryTimeout {
		t.Errorf("a round took %v", d)
	}
	// Only a dead server: reported, within the query's deadline.
	t0 = time.Now()
	st, err = h.SetTime(ctx, api.TimeConfig{Enabled: true, Servers: []string{dead}})
	if err != nil || !strings.Contains(st.Problem, "no NTP server answers") || !strings.Contains(st.Problem, dead) {
		t.Fatalf("dead server: %+v, %v", st, err)
	}
	if d := time.Since(t0); d > queryTimeout+time.Second {
		t.Errorf("a dead server held the round %v", d)
	}
	// Off: no problem, not synced, the clock left alone.
	n := clock.count()
	if st, err = h.SetTime(ctx, api.TimeConfig{Enabled: false}); err != nil || st.Synced || st.Problem != "" || st.Config.Enabled {
		t.Fatalf("off: %+v, %v", st, err)
	}
	if h.SyncTime(ctx); clock.count() != n {
		t.Error("the clock was moved while the NTP client is off")
	}
	// Saved: a new Host reads it.
	if cfg, err := New(Config{Layout: lay}).TimeConfig(); err != nil || cfg.Enabled || len(cfg.Servers) != 0 {
		t.Errorf("saved: %+v, %v", cfg, err)
	}
}

func TestTimeValidation(t *testing.T) {
	h, _ := newTestHost(t, &clockLog{})
	_, err := h.SetTime(context.Background(), api.TimeConfig{Enabled: true, Servers: []string{"pool.ntp.org", "bad host", "10.0.0.1:0", "[2001:db8::1]:123"}})
	var verr *api.ValidationError
	if !errors.As(err, &verr) || len(verr.Problems) != 2 || verr.Problems[0].Field != "servers[1]" || verr.Problems[1].Field != "servers[2]" {
		t.Fatalf("err %v", err)
	}
	_, err = h.SetTime(context.Background(), api.TimeConfig{Servers: strings.Split("a b c d e f g h i", " ")})
	if !errors.As(err, &verr) || verr.Problems[0].Field != "servers" {
		t.Fatalf("nine servers: %v", err)
	}
}
