package vmkernel

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/plinth/plinth/api"
)

// heartbeatInterval is how often the event stream sends a comment line, so
// that proxies and clients see the connection alive.
var heartbeatInterval = 15 * time.Second

// events serves GET /v1/events: server-sent events, one per api.Event,
// until the request's context ends (or the subscriber falls behind, after
// an overflow event).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The server's read timeout would otherwise end a long stream.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	ch, cancel := s.cfg.Events.Subscribe()
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": plinth vmkernel events\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(heartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
		case ev, ok := <-ch:
			if !ok {
				return
			}
			b, _ := json.Marshal(ev)
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, b); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// publish sends a VM definition event.
func (s *Server) publish(typ string, spec api.VMSpec, detail string) {
	s.cfg.Events.Publish(api.Event{Type: typ, VMID: spec.ID, Name: spec.Name,
		State: s.cfg.Runner.Status(spec.ID).State, Detail: detail})
}
