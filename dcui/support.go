package dcui

import (
	"context"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/plinth/plinth/api"
)

// supportScreen is View Support Information: the product, the hardware's
// identity (the API's inventory), the certificate, and the clock, remote
// logging and SSH in full (status.go).
type supportScreen struct {
	hw    api.Hardware
	hwErr error
}

type hardwareMsg struct {
	hw  api.Hardware
	err error
}

func (s *supportScreen) open(m *Model, _ screen) tea.Cmd {
	h := m.d.API
	return tea.Batch(m.refresh(), within(10*time.Second, func(ctx context.Context) tea.Msg {
		hw, err := h.Hardware(ctx)
		return hardwareMsg{hw, err}
	}))
}

func (s *supportScreen) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case hardwareMsg:
		s.hw, s.hwErr = msg.hw, msg.err
	case tea.KeyMsg:
		if key := msg.String(); key == "esc" || key == "enter" {
			return m.goTo(scrMenu)
		}
	}
	return nil
}

func (s *supportScreen) view(m *Model) (string, []string, string) {
	sys := s.hw.System
	b := []string{
		"  Product:        Plinth " + m.d.Version,
		"  Kernel:         " + orDash(m.facts.host.Kernel),
		"  QEMU:           " + orDash(m.facts.host.QEMU),
		"  System:         " + orDash(strings.TrimSpace(sys.Vendor+" "+sys.Product)),
		"  Serial number:  " + orDash(sys.Serial),
		"  UUID:           " + orDash(sys.UUID),
		"  BIOS:           " + orDash(strings.TrimSpace(sys.BIOSVendor+" "+sys.BIOSVersion+" "+sys.BIOSDate)),
		"  Boot mode:      " + orDash(sys.BootMode),
		"  TLS certificate SHA-256 fingerprint:",
	}
	b = append(b, indent("    ", fingerprintLines(m.facts.settings.Certificate.Fingerprint))...)
	b = append(b, m.supportStatusLines()...)
	if s.hwErr != nil {
		b = append(b, "", "  "+truncate("Hardware inventory: "+s.hwErr.Error(), m.w-4))
	}
	return "Support Information", b, "<Esc> Back"
}
